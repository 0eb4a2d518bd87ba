"""Signatures: the columns a table API takes, with their types, checked on every request.

A :class:`Signature` is what MLflow calls a column-based schema (``ColSpec``): one
:class:`ColumnSpec` per column, with a name (``None`` for a positional table, MLflow's
``TensorSpec`` of shape ``(-1, n)``), a type and whether it may hold nulls. It is inferred
from ``pack(..., example=...)`` (a DataFrame's dtypes, an array's dtype, the JSON types of
rows or records) and kept in the manifest; :meth:`Signature.check` enforces it on each
parsed table, one vectorized test per column (numpy dtype kinds, ``pandas.api.types``),
never a Python loop over rows::

    signature = infer(pandas.DataFrame({"age": [30, 41], "city": ["Oslo", "Lima"]}))
    array, names = signature.check(np.array([[30, "Oslo"]], dtype=object), ("age", "city"))
    signature.check(np.array([["x", "Oslo"]], dtype=object), ("age", "city"))
    # BadInput: column 'age' expects integer, got string ('x') in row 1

Types are JSON Schema's, so ``/docs.json`` shows them as they are: ``boolean``,
``integer`` (MLflow's integer/long), ``number`` (float/double; integers are accepted),
``string``, and ``any`` (not checked: dates, categories, mixed columns). Unlike MLflow,
which drops the extra columns of a request, an extra column is refused (400): a client
sending ``sepal_widht`` learns of its typo instead of silently getting a prediction made
without that column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import BadInput
from ..store.manifest import SIGNATURE_TYPES, signature_problem

TYPES = SIGNATURE_TYPES  # boolean, integer, number, string, any (checked in the manifest too)
# CSV cells read as null in a column that takes numbers or booleans.
_NULL_TEXT = ("", "na", "n/a", "#n/a", "#na", "<na>", "nan", "-nan", "null", "none")
_TRUE_TEXT, _FALSE_TEXT = ("true", "1"), ("false", "0")
_PANDAS_DTYPES = {"integer": "int64", "number": "float64", "boolean": "bool"}


@dataclass(frozen=True)
class ColumnSpec:
    """One column: ``name`` (None: by position), ``type`` (one of :data:`TYPES`) and
    ``optional``: the column may hold nulls (the example had some, as MLflow infers)."""

    name: str | None
    type: str
    optional: bool = False

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.optional:
            out["optional"] = True
        return out


@dataclass(frozen=True)
class Signature:
    """The columns of a table API. ``source``: ``example`` (inferred from the example the
    bundle was packed with, enforced by :meth:`check`) or ``adapter`` (what the adapter's
    ``columns``/``n_columns``/``numeric`` already enforce, given or learnt from the model:
    shown, not checked twice)."""

    inputs: tuple[ColumnSpec, ...]
    source: str = "example"

    @property
    def named(self) -> bool:
        return all(c.name is not None for c in self.inputs)

    @property
    def names(self) -> tuple:
        return tuple(c.name for c in self.inputs)

    @property
    def numeric(self) -> bool:
        """Every column takes numbers and none holds nulls: the table is one float array."""
        return all(c.type in ("integer", "number") and not c.optional for c in self.inputs)

    def to_dict(self) -> dict:
        return {"from": self.source, "inputs": [c.to_dict() for c in self.inputs]}

    @classmethod
    def from_dict(cls, data: Any) -> "Signature":
        """The signature a manifest records; ValueError says which part is wrong."""
        problem = signature_problem(data)  # the manifest's own check, shared
        if problem:
            raise ValueError(problem)
        return cls(tuple(ColumnSpec(c.get("name"), c["type"], bool(c.get("optional", False)))
                         for c in data["inputs"]), data.get("from", "example"))

    def describe(self) -> str:
        """``age (integer), city (string)``, or ``4 columns: number`` for positional ones."""
        if not self.named and len({c.type for c in self.inputs}) == 1:
            return f"{len(self.inputs)} columns: {self.inputs[0].type}"
        return ", ".join(f"{c.name if c.name is not None else f'column {i + 1}'} "
                         f"({c.type}{', optional' if c.optional else ''})"
                         for i, c in enumerate(self.inputs))

    def pandas_dtypes(self) -> dict:
        """dtype per DataFrame column (name, or position for a positional table) for the
        columns an object array cannot type by itself; empty when no column needs one."""
        if self.numeric and all(c.type == "number" for c in self.inputs):
            return {}
        out = {}
        for i, c in enumerate(self.inputs):
            dtype = _PANDAS_DTYPES.get(c.type)
            if c.optional:  # nulls: NaN in a float column, None in an object one
                dtype = "float64" if c.type in ("integer", "number") else None
            if dtype is not None:
                out[c.name if self.named else i] = dtype
        return out

    # enforcement

    def check(self, array: np.ndarray, names: tuple | None,
              text: bool = False) -> tuple[np.ndarray, tuple | None]:
        """``array`` (rows x columns) and its column ``names`` (None: by position) as this
        signature takes them: columns put in signature order, each converted to its type.
        ``text``: the cells are CSV text, parsed per column type. BadInput names the first
        missing, unexpected or wrongly typed column."""
        if self.named and names is not None:
            given = set(names)
            missing = [c.name for c in self.inputs if c.name not in given]
            if missing:
                raise BadInput(f"missing column {missing[0]!r}"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                               + f"; this API takes {self.describe()}")
            extra = [n for n in names if n not in set(self.names)]
            if extra:
                raise BadInput(f"unexpected column {extra[0]!r}; this API takes "
                               f"{self.describe()}")
            if names != self.names:
                array = array[:, [names.index(n) for n in self.names]]
        elif array.shape[1] != len(self.inputs):
            raise BadInput(f"expected {len(self.inputs)} columns per row ({self.describe()}), "
                           f"got {array.shape[1]}")
        out_names = self.names if self.named else names
        if self.numeric and not text and array.dtype.kind in "iuf":
            return self._check_numbers(array), out_names
        columns = [_check_column(array[:, i], c, _label(c, i), text)
                   for i, c in enumerate(self.inputs)]
        if all(col.dtype.kind in "iuf" for col in columns) and self.numeric:
            return np.column_stack(columns).astype(np.float64, copy=False), out_names
        out = np.empty(array.shape, dtype=object)
        for i, col in enumerate(columns):
            out[:, i] = col
        return out, out_names

    def _check_numbers(self, array: np.ndarray) -> np.ndarray:
        """The fast path: a numeric array for a signature of numbers, checked whole (finite
        values; whole numbers in integer columns) with no per-column Python work."""
        if array.dtype.kind == "f":
            finite = np.isfinite(array)
            if not finite.all():
                row, column = (int(i[0]) for i in np.nonzero(~finite))
                spec = self.inputs[column]
                raise BadInput(f"column {_label(spec, column)} expects {spec.type}, got "
                               f"{array[row, column]} in row {row + 1}")
            integers = [i for i, c in enumerate(self.inputs) if c.type == "integer"]
            if integers:
                part = array[:, integers]
                whole = part == np.round(part)
                if not whole.all():
                    row, index = (int(i[0]) for i in np.nonzero(~whole))
                    column = integers[index]
                    raise BadInput(f"column {_label(self.inputs[column], column)} expects "
                                   f"integer, got number in row {row + 1}")
        return array.astype(np.float64, copy=False)

    # documentation

    def column_schema(self, spec: ColumnSpec) -> dict:
        """The JSON Schema of one column's values (OpenAPI 3.0: ``nullable``)."""
        schema: dict[str, Any] = {} if spec.type == "any" else {"type": spec.type}
        if spec.optional and schema:
            schema["nullable"] = True
        return schema


def infer(frame: Any, named: bool = True, source: str = "example") -> Signature:
    """The signature of a ``pandas.DataFrame`` (an example): column names when ``named``,
    a type per column from its dtype (object columns by ``pandas.api.types.infer_dtype``),
    ``optional`` where it holds nulls."""
    import pandas as pd

    specs = [ColumnSpec(str(name) if named else None, _series_type(series, pd),
                        bool(series.isna().any())) for name, series in frame.items()]
    return Signature(tuple(specs), source)


def positional(width: int, type_: str, source: str = "adapter") -> Signature:
    """``width`` unnamed columns of one type."""
    return Signature(tuple(ColumnSpec(None, type_) for _ in range(width)), source)


def named_columns(names: Sequence[str], type_: str, source: str = "adapter") -> Signature:
    return Signature(tuple(ColumnSpec(str(n), type_) for n in names), source)


# -- helpers --------------------------------------------------------------------------------


def _label(spec: ColumnSpec, index: int) -> str:
    """What follows "column" in a message: ``'age'``, or ``2`` for a positional one."""
    return repr(spec.name) if spec.name is not None else str(index + 1)


def _series_type(series: Any, pd: Any) -> str:
    types = pd.api.types
    if types.is_bool_dtype(series.dtype):
        return "boolean"
    if types.is_integer_dtype(series.dtype):
        return "integer"
    if types.is_float_dtype(series.dtype):
        return "number"
    if series.dtype == object or types.is_string_dtype(series.dtype):
        return {"string": "string", "integer": "integer", "floating": "number",
                "mixed-integer-float": "number", "boolean": "boolean"}.get(
            types.infer_dtype(series, skipna=True), "any")
    return "any"


def _json_type(value: Any) -> str:
    """A value as a JSON client wrote it: null, boolean, integer, number, string, ..."""
    if value is None or (isinstance(value, float) and value != value):
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, np.integer)):
        return "integer"
    if isinstance(value, (float, np.floating)):
        return "number"
    if isinstance(value, str):
        return "string"
    return {list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _refuse(values: np.ndarray, bad: np.ndarray, spec: ColumnSpec, label: str,
            got: str | None = None) -> BadInput:
    """The 400 for a column: what it expects, what its first bad cell holds, which row."""
    row = int(np.flatnonzero(bad)[0])
    value = values[row]
    got = got or _json_type(value)
    shown = f" ({str(value)[:40]!r})" if got == "string" else ""
    if isinstance(value, str) and not value.strip():
        got, shown = "an empty cell", ""
    return BadInput(f"column {label} expects {spec.type}, got {got}{shown} in row {row + 1}")


def _check_column(values: np.ndarray, spec: ColumnSpec, label: str, text: bool) -> np.ndarray:
    """One column's values as ``spec`` takes them, or BadInput; numpy/pandas operations
    over the whole column, a Python loop only to name the bad cell of a refused one."""
    import pandas as pd

    if spec.type == "any":
        return values
    if text:
        return _check_text_column(values, spec, label, pd)
    if values.dtype != object:
        kind = values.dtype.kind
        inferred = {"i": "integer", "u": "integer", "f": "floating", "b": "boolean",
                    "U": "string", "S": "string"}.get(kind, "mixed")
        nulls = np.isnan(values) if kind == "f" else np.zeros(len(values), dtype=bool)
    else:
        nulls = pd.isna(values)
        inferred = pd.api.types.infer_dtype(values, skipna=True)
    if nulls.any() and not spec.optional:
        raise _refuse(values, nulls, spec, label, "null")
    accepted = {"integer": ("integer", "floating", "mixed-integer-float"),
                "number": ("integer", "floating", "mixed-integer-float"),
                "boolean": ("boolean",), "string": ("string",)}[spec.type]
    if inferred == "empty":  # nulls only, in an optional column
        return np.full(len(values), np.nan) if spec.type in ("integer", "number") else values
    if inferred not in accepted:
        wrong = np.array([not n and _json_type(v) not in _JSON_OK[spec.type]
                          for v, n in zip(values, nulls)])
        raise _refuse(values, wrong if wrong.any() else ~nulls, spec, label)
    if spec.type in ("integer", "number"):
        try:
            floats = values.astype(np.float64) if values.dtype == object else values
        except (OverflowError, ValueError, TypeError):
            raise BadInput(f"column {label} holds an integer too large for a number") from None
        finite = np.isfinite(floats) | nulls
        if not finite.all():
            raise _refuse(floats, ~finite, spec, label, "a number too large (infinity)")
        if spec.type == "integer":
            whole = (floats == np.round(floats)) | nulls
            if not whole.all():
                raise _refuse(floats, ~whole, spec, label, "number")
            if spec.optional and nulls.any():
                return floats
            if np.abs(floats).max() >= 2.0 ** 63:
                raise BadInput(f"column {label} holds an integer too large for 64 bits")
            return values.astype(np.int64) if values.dtype.kind not in "iu" else values
        return floats
    return values


_JSON_OK = {"integer": ("integer", "number"), "number": ("integer", "number"),
            "boolean": ("boolean",), "string": ("string",)}


def _check_text_column(values: np.ndarray, spec: ColumnSpec, label: str, pd: Any) -> np.ndarray:
    """A CSV column (text cells) parsed as ``spec``'s type: numbers by ``pandas.to_numeric``,
    booleans from true/false/1/0, nulls from the usual markers (NA, null, an empty cell)."""
    if spec.type == "string":
        return values
    text = np.char.strip(values.astype(str))
    lower = np.char.lower(text)
    nulls = np.isin(lower, _NULL_TEXT)
    if nulls.any() and not spec.optional:
        raise _refuse(text, nulls, spec, label, "null" if text[nulls][0] else None)
    if spec.type == "boolean":
        true, false = np.isin(lower, _TRUE_TEXT), np.isin(lower, _FALSE_TEXT)
        bad = ~(true | false | nulls)
        if bad.any():
            raise _refuse(text, bad, spec, label, "string")
        if nulls.any():
            out = np.where(true, True, False).astype(object)
            out[nulls] = None
            return out
        return true
    numbers = pd.to_numeric(np.where(nulls, "nan", text), errors="coerce")
    numbers = np.asarray(numbers, dtype=np.float64)
    bad = np.isnan(numbers) & ~nulls
    if bad.any():
        raise _refuse(text, bad, spec, label, "string")
    values = np.where(nulls, np.nan, numbers)
    return _check_column(values, spec, label, text=False)

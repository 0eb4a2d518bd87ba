"""DataframeInput: rows of a table, as JSON or CSV, → one ``pandas.DataFrame`` per batch.

Its parsing (JSON rows, records, split form and ``instances``; CSV with or without a
header), its checks of width and numbers, and its OpenAPI request schema all live here::

    adapter = DataframeInput(n_columns=4, numeric=True)
    p1 = adapter.parse(b"[[5.1, 3.5, 1.4, 0.2]]", "application/json")
    p2 = adapter.parse(b"5.9,3.0,5.1,1.8\\n", "text/csv")
    adapter.make_batch([p1, p2])     # one DataFrame of 2 rows
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any, Sequence

import numpy as np

from ..errors import BadInput, UnsupportedMediaType
from . import csv_reading
from .base import _JSON_TYPES, InputAdapter, Payload, _media_type
from .decoding import loads_json
from .encoding import to_jsonable
from .signature import Signature, infer, named_columns, positional

_CSV_TYPES = ("text/csv", "application/csv")
_NUMBER_TYPES = frozenset({int, float})  # JSON numbers (bool is not among them)
_FLOAT64, _INT64 = np.dtype(np.float64), np.dtype(np.int64)
# Where a signature's error names its row (see bento_nb.adapters.signature).
_SIGNATURE_ROW = re.compile(r"in row (\d+)$")
# CSV cells that are values, never column names: pandas' missing-value markers and booleans.
_NOT_NAMES = frozenset({"", "na", "n/a", "#n/a", "#na", "<na>", "nan", "-nan", "null", "none",
                        "true", "false"})
# pandas' ``to_json(orient=...)`` forms (0.x's ``orient``), by what ``typ`` they recover.
ORIENTS = ("split", "records", "index", "columns", "values")
_SERIES_ORIENTS = ("split", "records", "index", "values")


class DataframeInput(InputAdapter):
    """Rows of a table → ``pandas.DataFrame``.

    JSON bodies: a list of rows ``[[5.1, 3.5, 1.4, 0.2]]``, records ``[{"a": 1, ...}]``,
    pandas' split form ``{"columns": [...], "data": [[...]]}``, ``{"instances": ...}`` or a
    single record ``{"a": 1}``; ``text/csv`` bodies with or without a header row.

    Every form pandas' ``DataFrame.to_json(orient=...)`` writes is read: ``values`` and
    ``records`` (the lists above), ``split``, ``columns`` (``{column: {index: value}}``) and
    ``index`` (``{index: {column: value}}``). ``orient`` (BentoML 0.x's option) tells the
    last two apart; unset, a dict of dicts is ``index`` when its inner keys are the
    adapter's names (or rows of its width, or its outer keys pandas' labels ``"0"``,
    ``"1"``, ... and the inner ones names), else ``columns``; other bodies are read by
    their form whatever ``orient`` says. ``typ="series"`` reads a Series' forms (a list of
    values, ``{label: value}``, split, or a one-column CSV) and hands the API a
    ``pandas.Series``. ``dtype`` (or its 0.x name ``input_dtypes``): one dtype for every
    column, a list by position or a dict by column name, applied to the DataFrame; a cell
    it cannot convert is a 400 naming the column. Cells of several types keep each
    column's own dtype (a text column leaves the numbers numbers).

    A CSV's first row is its header only when it spells the adapter's column names (in any
    order), when every cell is a name: not empty, not a number, not a missing-value or
    boolean marker (``NA``, ``NaN``, ``null``, ``None``, ``TRUE``, ...), when it is
    pandas' positional labels ``0,1,...,n-1`` (n ≥ 2; ``to_csv(index=False)`` of a frame
    without names: the columns are then taken in order), or when its first cell is empty
    and the rest is such a header (``to_csv()``'s index column, which is dropped).
    Anything else is a data row, so a row is never dropped as a header by mistake: a
    first row with an empty or ``NA`` cell is data and, like a JSON ``null``, refused (400)
    when ``numeric``. A header with another numeric-looking name (``id,2021``) is
    therefore read as data too (refused by a numeric adapter); send such names in the JSON
    split form or make them the adapter's ``columns``. (A data row that is exactly
    ``0,1,...,n-1`` first in a body is read as a header.)

    With a named :attr:`signature` (from the bundle's example) a first row of names is a
    header only if it spells at least one of the signature's names, so a headerless row of
    text for string columns stays data.

    ``columns`` (names) or ``n_columns`` fix the expected width; ``numeric=True`` refuses
    strings, booleans and nulls, naming the first cell that is not a number. When the packed
    model is a scikit-learn estimator they are learnt from it: the width from
    ``feature_names_in_`` / ``n_features_in_``, ``numeric`` from what first sees the input
    (:func:`~bento_nb.frameworks.sklearn.takes_numbers`): True for an estimator or pipeline
    that starts with a numeric step, False for one that starts with an encoder or a column
    transformer (values then keep their JSON types), unset when it cannot be told.
    """

    kind = "dataframe"
    media_types = ("application/json", "text/csv")
    # Set from the bundle's example (see bento_nb.adapters.signature): then it, not
    # ``columns``, decides which names a request must have; every column's type is checked.
    signature: Signature | None = None
    # BentoML 0.x's options; class defaults too, for adapters pickled before they existed
    orient: str | None = None
    typ: str = "frame"
    dtype: Any = None

    def __init__(self, columns: Sequence[str] | None = None, n_columns: int | None = None,
                 numeric: bool | None = None, *, orient: str | None = None, typ: str = "frame",
                 dtype: Any = None, input_dtypes: Any = None):
        if typ not in ("frame", "series"):
            raise ValueError(f"typ must be 'frame' or 'series', not {typ!r}")
        allowed = ORIENTS if typ == "frame" else _SERIES_ORIENTS
        if orient is not None and orient not in allowed:
            raise ValueError(f"orient must be one of {', '.join(allowed)} (typ={typ!r}), "
                             f"not {orient!r}")
        if typ == "series" and (columns is not None or n_columns is not None):
            raise ValueError("a Series has one column: typ='series' takes no columns or n_columns")
        if dtype is not None and input_dtypes is not None:
            raise ValueError("give dtype or input_dtypes (its 0.x name), not both")
        self.columns = tuple(columns) if columns is not None else None
        self.orient = orient
        self.typ = typ
        self.dtype = _normalized_dtype(dtype if dtype is not None else input_dtypes,
                                       self.columns, typ)
        if n_columns is None and isinstance(self.dtype, list) and self.columns is None:
            n_columns = len(self.dtype)  # one dtype per column, by position
        self.n_columns = len(self.columns) if self.columns is not None else n_columns
        self.numeric = numeric
        self.signature = None

    def configure(self, model: Any) -> None:
        if self.typ == "series":
            return  # one value per row: a model's width says nothing about it
        names = getattr(model, "feature_names_in_", None)
        count = getattr(model, "n_features_in_", None)
        if names is None and not isinstance(count, (int, np.integer)):
            return  # not a fitted scikit-learn-style model: nothing to learn
        if self.n_columns is None:
            if names is not None:
                self.columns = tuple(str(n) for n in names)
                self.n_columns = len(self.columns)
            else:
                self.n_columns = int(count)
        if self.numeric is None:
            from ..frameworks.sklearn import takes_numbers

            self.numeric = takes_numbers(model)
            if self.numeric is None and names is None:
                self.numeric = True  # fitted on an array: of numbers, as other models' are

    def infer_signature(self, value: Any) -> Signature:
        """The signature of an example (what ``pack(..., example=...)`` was given): a
        DataFrame's column names and dtypes, an array's dtype by position, or the JSON
        types of rows (by position) or records (by name)."""
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return infer(value, named=all(isinstance(c, str) for c in value.columns))
        if isinstance(value, np.ndarray) and value.ndim == 2:
            return infer(pd.DataFrame(value), named=False)
        payload = DataframeInput(numeric=False).from_python(value)
        names = list(payload.columns) if payload.columns else None
        return infer(pd.DataFrame(payload.value, columns=names).infer_objects(),
                     named=names is not None)

    def described_signature(self) -> Signature | None:
        """The signature to show: the example's, else what ``columns``/``n_columns``/
        ``numeric`` say (numbers, or any values), else None (nothing is known)."""
        if self.signature is not None:
            return self.signature
        kind = "number" if self.numeric else "any"
        if self.columns is not None:
            return named_columns(self.columns, kind)
        if self.n_columns is not None:
            return positional(self.n_columns, kind)
        return None

    def example_body(self, value: Any) -> Any:
        """A DataFrame with named columns as records (its names documented), any other
        table as a list of rows."""
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            if value.isna().any().any():  # missing values as JSON nulls (optional columns)
                value = value.astype(object).where(value.notna(), None)
            if all(isinstance(c, str) for c in value.columns):
                return to_jsonable(value.to_dict(orient="records"))
            return to_jsonable(value.to_numpy().tolist())
        return to_jsonable(value)

    def config(self) -> dict:
        out: dict[str, Any] = {"type": type(self).__name__}
        if self.columns is not None:
            out["columns"] = list(self.columns)
        if self.n_columns is not None:
            out["n_columns"] = self.n_columns
        if self.numeric is not None:
            out["numeric"] = self.numeric
        if self.orient is not None:
            out["orient"] = self.orient
        if self.typ != "frame":
            out["typ"] = self.typ
        if self.dtype is not None:
            out["dtype"] = self.dtype
        return out

    # parsing

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media in _CSV_TYPES:
            return self._from_csv(body)
        if media in _JSON_TYPES:
            obj = loads_json(body)
            fast = self._from_number_rows(obj)
            return fast if fast is not None else self._from_json(obj)
        raise UnsupportedMediaType(
            f"content type {media!r} is not supported: send application/json or text/csv"
        )

    def from_python(self, value: Any) -> Payload:
        import pandas as pd

        if self.typ == "series":
            if isinstance(value, pd.DataFrame):
                if value.shape[1] != 1:
                    raise BadInput(f"a Series takes one column, got {value.shape[1]}")
                value = value.iloc[:, 0]
            if isinstance(value, (pd.Series, np.ndarray)):
                return self._finish_series(value.to_numpy() if isinstance(value, pd.Series)
                                           else value.reshape(-1))
        if isinstance(value, pd.DataFrame):
            return self._from_frame(value)
        if isinstance(value, np.ndarray):
            value = value.tolist() if value.ndim else value.item()
        if isinstance(value, (bytes, str)):
            return self._from_json(loads_json(value))
        return self._from_json(value)

    def from_array(self, array: np.ndarray) -> Payload:
        """A two-dimensional array of rows (a decoded tensor, see
        :mod:`bento_nb.server.oip`) as a payload, checked as :meth:`parse` checks a body:
        numbers of a numeric adapter go straight to the width and finiteness checks,
        anything else is read as rows of values."""
        if array.ndim != 2:
            raise BadInput("each row must be a flat list of values (a table has two dimensions)")
        if self.numeric and array.dtype.kind in "iuf":
            if array.dtype.kind == "f" and array.dtype.itemsize != 8:
                array = array.astype(np.float64)  # as JSON numbers are: the same predictions
            return self._finish(array, self.columns)
        return self._from_rows(array.tolist(), None)

    def _from_frame(self, frame) -> Payload:
        if frame.empty:
            raise BadInput("empty input: expected at least one row")
        columns = tuple(str(c) for c in frame.columns)
        if self._by_signature:
            return self._finish(frame.to_numpy(), None if _is_range(frame.columns) else columns)
        if self.columns is not None:
            if set(self.columns) - set(columns):
                raise BadInput(f"missing column(s): {sorted(set(self.columns) - set(columns))}")
            frame = frame[list(self.columns)]
            columns = self.columns
        elif self.n_columns is not None and frame.shape[1] != self.n_columns:
            raise BadInput(f"expected {self.n_columns} columns, got {frame.shape[1]}")
        else:
            columns = tuple(frame.columns) if not _is_range(frame.columns) else None
        return self._finish(frame.to_numpy(), columns)

    def from_frame(self, frame, first_row: int = 1) -> Payload:
        """Rows a batch run read (a chunk of a CSV, JSON Lines or Parquet file, or of a
        DataFrame) as the payload the server would build from the same rows: the same
        checks of width, names and numbers, the errors naming rows from ``first_row``.

        Columns numbered 0..n-1 (a file without a header) are taken in order; named
        columns are selected by the adapter's ``columns`` (others are ignored). For a
        positional numeric adapter (a width, no names) names only label the errors, as a
        CSV header does in a request. Text cells holding numbers (read cell by cell, see
        :func:`~bento_nb.adapters.csv_reading.read_block`) are numbers."""
        frame = self.check_columns(frame)
        if self.typ == "series":
            column = frame.iloc[:, 0]
            if self.numeric and column.dtype == object:
                column = column.infer_objects()
            return self._finish_series(column.to_numpy(), first_row=first_row)
        labels = None if _is_range(frame.columns) else tuple(str(c) for c in frame.columns)
        if self.numeric and any(dtype == object for dtype in frame.dtypes):
            frame = frame.infer_objects()
        names = labels if self._by_signature or self.columns is None else self.columns
        payload = self._finish(frame.to_numpy(), names, first_row=first_row)
        if self.signature is None and self.columns is None and (
                labels is None or (self.n_columns is not None and self.numeric)):
            payload.columns = None
        return payload

    def check_columns(self, frame):
        """``frame``'s columns as this adapter takes them (selected by name when it has
        names), or a BadInput about the whole table: names missing, another width, none."""
        if frame.shape[1] == 0:
            raise BadInput("empty input: expected at least one column")
        if self.typ == "series":
            if frame.shape[1] != 1:
                raise BadInput(f"a Series takes one column, got {frame.shape[1]}")
            return frame
        if self._by_signature:
            return frame  # the signature checks the names and puts them in its order
        if self.columns is not None and not _is_range(frame.columns):
            present = [str(c) for c in frame.columns]
            missing = [c for c in self.columns if c not in present]
            if missing:
                raise BadInput(f"missing column(s) {missing}: the input has {present}")
            if present != list(frame.columns):
                frame = frame.set_axis(present, axis=1)
            return frame[list(self.columns)]
        if self.n_columns is not None and frame.shape[1] != self.n_columns:
            raise BadInput(f"expected {self.n_columns} columns, got {frame.shape[1]}")
        return frame

    def csv_header(self, cells: Sequence[str]) -> tuple | None:
        """The first row of a CSV as its header, or None when it is data: a header when it
        spells this adapter's column names (in any order), when every cell is a name (not
        empty, not a number, not a missing-value or boolean marker), when it is pandas'
        positional labels ``0,1,...,n-1`` (n ≥ 2: ``to_csv()`` of a frame without names),
        or when its first cell is empty and the others are such a header (the index column
        ``to_csv()`` writes; :func:`csv_names` then drops it)."""
        first = [c.strip() for c in cells]
        header = self._header_cells(first, single_label=False)
        if header is None and len(first) > 1 and first[0] == "":
            rest = self._header_cells(first[1:], single_label=True)
            if rest is not None:
                return ("", *rest)
        return header

    def _header_cells(self, first: list[str], single_label: bool) -> tuple | None:
        known = self.signature.names if self._by_signature else self.columns
        if known is not None and len(first) == len(known) and set(first) == set(known):
            return tuple(first)
        if first == [str(i) for i in range(len(first))] and (len(first) > 1 or single_label):
            return tuple(first)
        names_only = all(c.lower() not in _NOT_NAMES and not _is_number(c) for c in first)
        if self._by_signature and not set(first) & set(known):
            names_only = False  # text data for string columns, not a header of other names
        return tuple(first) if names_only else None

    def _from_json(self, obj: Any) -> Payload:
        if isinstance(obj, dict) and "instances" in obj and len(obj) == 1:
            return self._from_json(obj["instances"])
        if self.typ == "series":
            return self._series_from_json(obj)
        if isinstance(obj, dict):
            if set(obj) == {"columns", "data"} or set(obj) == {"columns", "data", "index"}:
                columns, data = obj["columns"], obj["data"]
                if not isinstance(columns, list) or not all(
                        isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool))
                        for c in columns):
                    raise BadInput('"columns" must be a list of strings')
                if columns and columns == list(range(len(columns))):
                    return self._from_rows(data, None)  # pandas' labels 0..n-1: positions
                return self._from_rows(data, tuple(str(c) for c in columns))
            if obj and all(isinstance(v, dict) for v in obj.values()):
                return self._from_nested(obj)
            if obj and all(isinstance(v, list) for v in obj.values()):
                names = tuple(obj)
                lengths = {len(v) for v in obj.values()}
                if len(lengths) != 1:
                    raise BadInput("columns have different lengths")
                return self._from_rows([list(r) for r in zip(*obj.values())], names)
            return self._from_records([obj])
        if not isinstance(obj, list):
            raise BadInput(
                "expected a list of rows such as [[5.1, 3.5, 1.4, 0.2]], a list of records, "
                'or {"columns": [...], "data": [[...]]}'
            )
        if not obj:
            raise BadInput("empty input: expected at least one row")
        first = obj[0]
        if isinstance(first, dict):
            return self._from_records(obj)
        if isinstance(first, list):
            return self._from_rows(obj, None)
        raise BadInput(
            f"expected a list of rows, e.g. [{json.dumps(obj[:4])}] for one row, "
            "not a flat list of values"
        )

    def _from_nested(self, obj: dict) -> Payload:
        """pandas' ``columns`` form ``{column: {index: value}}`` or ``index`` form ``{index:
        {column: value}}``: ``orient`` says which; unset, the form whose outer keys are
        not the expected names but whose inner keys are is ``index``, any other
        ``columns`` (pandas' default for a DataFrame)."""
        orient = self.orient
        if orient not in ("index", "columns"):
            known = self.signature.names if self._by_signature else self.columns
            orient = "columns"
            width = self.n_columns
            if known is not None and not set(obj) <= set(known) and all(
                    set(inner) <= set(known) for inner in obj.values()):
                orient = "index"
            elif known is None and width is not None and len(obj) != width and all(
                    len(inner) == width for inner in obj.values()):
                orient = "index"  # rows of the expected width, by index label
            elif known is None and _labels(obj) and not _labels(next(iter(obj.values()))):
                orient = "index"  # outer keys 0..n-1 (a default index), inner keys names
        if orient == "index":  # rows by index label: each one a record
            return self._from_records(list(obj.values()))
        names = tuple(obj)
        labels = list(next(iter(obj.values())))
        for name, column in obj.items():
            if column.keys() != set(labels):
                raise BadInput(f"column {name!r} has other index labels than column "
                               f"{names[0]!r}: every column needs one value per row")
        if not labels:
            raise BadInput("empty input: expected at least one row")
        return self._from_rows([[obj[n][label] for n in names] for label in labels], names)

    def _series_from_json(self, obj: Any) -> Payload:
        """A Series as ``to_json`` writes one: ``values``/``records`` (a list of values),
        ``index`` (``{label: value}``) or ``split`` (``{"name", "index", "data"}``)."""
        if isinstance(obj, dict):
            if isinstance(obj.get("data"), list) and set(obj) <= {"name", "index", "data"}:
                obj = obj["data"]
            else:
                obj = list(obj.values())
        if not isinstance(obj, list):
            raise BadInput("expected the values of a Series: a list such as [1.5, 2.5], "
                           '{"0": 1.5, "1": 2.5} or {"index": [...], "data": [...]}')
        if not obj:
            raise BadInput("empty input: expected at least one value")
        if any(isinstance(v, (list, dict)) for v in obj):
            raise BadInput("a Series takes one value per row, not lists or records")
        array = np.array(obj, dtype=object if self.numeric is False else None)
        if array.dtype.kind in "US" or (self.numeric and any(v is True or v is False for v in obj)):
            array = np.array(obj, dtype=object)  # each value keeps its own type
        return self._finish_series(array)

    def _finish_series(self, array: np.ndarray, first_row: int = 1) -> Payload:
        if array.ndim != 1:
            raise BadInput("a Series takes one column")
        if array.shape[0] == 0:
            raise BadInput("empty input: expected at least one value")
        if self.numeric:
            if array.dtype.kind not in "iuf":
                row, _, value = _first_non_number(array.reshape(-1, 1))
                raise BadInput(f"expected numbers; row {row + first_row} holds {_describe(value)}")
            if array.dtype.kind == "f" and not _all_finite(array):
                row = int(np.nonzero(~np.isfinite(array))[0][0])
                raise BadInput(f"NaN and infinite values are not allowed; row {row + first_row} "
                               f"holds {array[row]}")
        if self.dtype is not None:
            self._typed_series(array)
        return Payload(array, array.shape[0], None)

    def _from_number_rows(self, obj: Any) -> Payload | None:
        """The payload :meth:`_from_json` makes of a list of rows of plain numbers, for a
        numeric adapter without a signature, with one look at each row and no other check;
        None for any other body (text, booleans, nulls, ragged rows, another width, a
        value that may not be finite, ...), which :meth:`_from_json` then reads with its
        exact messages. The hot path of a served scikit-learn model."""
        if not self.numeric or self.signature is not None or type(obj) is not list or not obj \
                or self.orient is not None or self.typ != "frame" or self.dtype is not None:
            return None
        first = obj[0]
        if type(first) is not list:
            return None
        width = self.n_columns if self.n_columns is not None else len(first)
        if not width:
            return None
        for row in obj:
            if type(row) is not list or len(row) != width or not _NUMBER_TYPES.issuperset(
                    map(type, row)):
                return None
        try:
            array = np.array(obj)  # what _from_rows makes of the same rows
        except (OverflowError, ValueError, TypeError):
            return None
        if array.dtype == _FLOAT64:
            # JSON has no infinity, but 1e400 reads as one: any among them makes the sum
            # not finite (as does a sum that overflows; _from_json then decides)
            if not math.isfinite(sum(map(sum, obj))):
                return None
        elif array.dtype != _INT64:  # integers beyond 64 bits: _from_json words the error
            return None
        return Payload(array, len(obj), self.columns)

    def _from_records(self, records: list) -> Payload:
        if not all(isinstance(r, dict) for r in records):
            raise BadInput("mixed records and non-records in one list")
        names = (None if self._by_signature else self.columns) or tuple(records[0])
        if not names:
            raise BadInput("empty record: expected at least one column")
        wanted = set(names)
        rows = []
        for i, record in enumerate(records):
            keys = set(record)
            if keys != wanted:
                missing, extra = sorted(wanted - keys), sorted(keys - wanted)
                detail = "; ".join(s for s in (
                    f"missing {missing}" if missing else "", f"unknown {extra}" if extra else "") if s)
                raise BadInput(f"record {i} does not match the columns {list(names)}: {detail}")
            rows.append([record[n] for n in names])
        return self._from_rows(rows, names)

    @property
    def _by_signature(self) -> bool:
        """The signature names the columns: it checks the names, not ``columns``."""
        return self.signature is not None and self.signature.named

    def _from_rows(self, rows: Any, names: tuple | None, text: bool = False) -> Payload:
        if not isinstance(rows, list) or not rows:
            raise BadInput("empty input: expected at least one row")
        if not all(isinstance(r, list) for r in rows):
            raise BadInput("every row must be a list of values")
        if names is not None:
            if len(set(names)) != len(names):
                duplicates = sorted({n for n in names if names.count(n) > 1})
                raise BadInput(f"duplicate column name(s): {duplicates}")
            if any(len(r) != len(names) for r in rows):
                raise BadInput(f"{len(names)} column name(s) but rows of other lengths: "
                               "every row needs one value per column")
        if names is not None and self.columns is not None and names != self.columns \
                and not self._by_signature:
            if set(names) != set(self.columns):
                raise BadInput(
                    f"columns {list(names)} do not match the expected {list(self.columns)}"
                )
            order = [names.index(c) for c in self.columns]
            rows = [[r[i] for i in order] if len(r) == len(names) else r for r in rows]
            names = self.columns
        # A signature of several types: object, so numpy keeps each cell's JSON type. One
        # of numbers: numeric as for ``numeric``, kept as sent when numpy could not.
        typed = self.signature is not None and not self.signature.numeric
        numbers = self.numeric or (self.signature is not None and self.signature.numeric)
        try:
            array = np.array(rows, dtype=None if self.numeric is not False and not typed
                             else object)
        except (ValueError, TypeError):
            raise BadInput("rows have different lengths or nested values") from None
        if array.dtype.kind in "US" and not typed:
            # numpy made every cell text because one is: each keeps its own type, so one
            # text column leaves the others numbers (see make_batch)
            array = np.array(rows, dtype=object)
        if numbers and not typed and (array.dtype.kind not in "iuf" or any(
                v is True or v is False for row in rows for v in row)):
            # Refused below: keep the values as sent (numpy made booleans numbers, or every
            # value text), so the error names the cell that is not a number.
            array = np.array(rows, dtype=object)
        if array.ndim != 2 or (array.dtype == object and any(
                isinstance(v, (list, dict)) for v in array.flat)):
            raise BadInput("each row must be a flat list of values (a table has two dimensions)")
        if self._by_signature:
            pass  # the signature checks the names and puts the columns in its order
        elif self.columns is not None:
            names = self.columns
        elif self.n_columns is not None:
            names = None  # a positional model: names in the body are only labels
        return self._finish(array, names, text)

    def _from_csv(self, body: bytes) -> Payload:
        fast = self._from_csv_numbers(body)
        if fast is not None:
            return fast
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadInput("CSV body is not UTF-8 text") from None
        try:
            # Only blank lines are skipped: a row of empty cells (",,,") is data, like any row.
            records = [r for r in csv.reader(io.StringIO(text)) if len(r) > 1 or r and r[0].strip()]
        except csv.Error as e:
            raise BadInput(f"malformed CSV: {e}") from None
        if not records:
            raise BadInput("empty CSV: expected at least one row")
        header = self.csv_header(records[0])
        if header is not None:
            records = records[1:]
            if not records:
                raise BadInput("CSV has a header row but no data rows")
        width = len(header) if header else len(records[0])
        for i, r in enumerate(records):
            if len(r) != width:
                raise BadInput(f"CSV row {i + 1} has {len(r)} values, expected {width}")
        header, index = csv_names(header, self.known_names)
        if index:
            records = [r[1:] for r in records]
        if self.signature is not None:  # text cells, parsed per column by the signature
            return self._series_of(self._from_rows(records, header, text=True))
        rows = [[_csv_value(c) for c in r] for r in records]
        if header is not None and self.columns is None and self.n_columns is not None \
                and self.numeric:
            header = None  # a positional model: the header only named the columns
        return self._series_of(self._from_rows(rows, header))

    @property
    def known_names(self) -> tuple | None:
        """The names a header must spell to be this adapter's: the signature's or ``columns``."""
        return self.signature.names if self._by_signature else self.columns

    def _series_of(self, payload: Payload) -> Payload:
        """A table payload as a Series' (``typ="series"``): its one column."""
        if self.typ != "series":
            return payload
        if payload.value.shape[1] != 1:
            raise BadInput(f"a Series takes one column, got {payload.value.shape[1]}")
        return self._finish_series(payload.value[:, 0])

    def _from_csv_numbers(self, body: bytes) -> Payload | None:
        """The payload :meth:`_from_csv` makes of a table of plain numbers, by pyarrow's
        C parser; None for any other body (text or empty cells, quotes, ragged rows, a
        header alone, ...), which the Python parser then reads with its exact messages."""
        if self.numeric is False or self.signature is not None \
                or len(body) < csv_reading.FAST_MIN_BYTES:
            return None  # cells keep their own types, or the signature parses each column
        cells, rest = csv_reading.first_line(body)
        if cells is None:
            return None
        header = self.csv_header(cells)
        if header is not None and len(set(header)) != len(header):
            return None
        array = csv_reading.numbers(rest if header is not None else body.removeprefix(
            b"\xef\xbb\xbf"), len(cells))
        if array is None:
            return None
        names, index = csv_names(header, self.known_names)
        if index:
            array = array[:, 1:]
        if names is not None and self.columns is not None and names != self.columns:
            if set(names) != set(self.columns):
                return None
            array = array[:, [names.index(c) for c in self.columns]]
        if self.columns is not None:
            names = self.columns
        elif self.n_columns is not None:
            names = None  # a positional model: the header only named the columns
        return self._series_of(self._finish(array, names))

    def _finish(self, array: np.ndarray, names: tuple | None, text: bool = False,
                first_row: int = 1) -> Payload:
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise BadInput("empty input: expected at least one row and one column")
        if self.signature is not None:
            try:
                array, names = self.signature.check(array, names, text)
            except BadInput as e:  # its "in row N" counts from 1: count from first_row
                if first_row == 1:
                    raise
                raise BadInput(_SIGNATURE_ROW.sub(
                    lambda m: f"in row {int(m.group(1)) + first_row - 1}", e.message)) from None
        if self.n_columns is not None and array.shape[1] != self.n_columns:
            raise BadInput(f"expected {self.n_columns} columns per row, got {array.shape[1]}")
        if self.numeric:
            if array.dtype.kind not in "iuf":
                row, column, value = _first_non_number(array)
                raise BadInput(f"expected numbers in every column; row {row + first_row}, "
                               f"{_column_label(column, names)} holds {_describe(value)}")
            if array.dtype.kind == "f" and not _all_finite(array):
                row, column = (int(i[0]) for i in np.nonzero(~np.isfinite(array)))
                raise BadInput(f"NaN and infinite values are not allowed; row {row + first_row}, "
                               f"{_column_label(column, names)} holds {array[row, column]}")
        if self.dtype is not None:  # each request's own error; converted once per batch
            import pandas as pd

            self._typed(pd.DataFrame(array, columns=list(names) if names else None))
        return Payload(array, array.shape[0], names)

    def _dtypes(self, labels: Sequence) -> dict:
        """``dtype=`` as a mapping of the frame's column labels to dtypes: one for every
        column, a list by position, or a dict by name (digits: by position when the frame
        has no names). A column it names that the frame lacks is a BadInput."""
        if isinstance(self.dtype, str):
            return {label: self.dtype for label in labels}
        if isinstance(self.dtype, list):
            if len(labels) != len(self.dtype):
                raise BadInput(f"expected {len(self.dtype)} columns (one per dtype), "
                               f"got {len(labels)}")
            return dict(zip(labels, self.dtype))
        by_name = {str(label): label for label in labels}
        mapping = {}
        for key, dtype in self.dtype.items():
            if key in by_name:
                mapping[by_name[key]] = dtype
            elif key.isdigit() and int(key) < len(labels) and not any(
                    isinstance(label, str) for label in labels):
                mapping[labels[int(key)]] = dtype
            else:
                raise BadInput(f"missing column {key!r} (dtype gives its type): the input has "
                               f"{[str(label) for label in labels]}")
        return mapping

    def _typed(self, frame):
        """``frame`` with the columns ``dtype=`` names converted, or a BadInput naming
        the first column that cannot be."""
        mapping = self._dtypes(list(frame.columns))
        try:
            return frame.astype(mapping)
        except (ValueError, TypeError, OverflowError):
            pass
        for label, dtype in mapping.items():
            try:
                frame[label].astype(dtype)
            except (ValueError, TypeError, OverflowError) as e:
                detail = " ".join(str(e).split())[:120]
                raise BadInput(f"column {label!r} cannot be read as {dtype}: {detail}") from None
        raise BadInput(f"the input cannot be read with dtype {self.dtype}")

    def _typed_series(self, values: np.ndarray):
        import pandas as pd

        try:
            return pd.Series(values).astype(self.dtype)
        except (ValueError, TypeError, OverflowError) as e:
            detail = " ".join(str(e).split())[:120]
            raise BadInput(f"the values cannot be read as {self.dtype}: {detail}") from None

    def _openapi_series(self, example: Any) -> dict:
        """Request schema of a ``typ="series"`` adapter: a Series' JSON forms, or CSV."""
        item = {"type": "number"} if self.numeric else {}
        if example is None:
            example = [0.5, 1.5, 2.5]
        csv_text = "".join(f"{v}\n" for v in example) if isinstance(example, list) else ""
        return {"required": True, "content": {
            "application/json": {"schema": _series_schema(item), "example": example},
            "text/csv": {"schema": {"type": "string"}, "example": csv_text}}}

    # batching

    def make_single(self, payload: Payload):
        return self.make_batch([payload])

    def make_batch(self, payloads: Sequence[Payload]):
        import pandas as pd

        columns = payloads[0].columns
        if any(p.columns != columns for p in payloads):
            raise ValueError("make_batch needs payloads with equal columns; "
                             "group them by Payload.columns first")
        arrays = [p.value for p in payloads]
        data = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        if self.typ == "series":
            series = pd.Series(data, copy=False)
            if data.dtype == object:
                series = series.infer_objects()
            return series.astype(self.dtype) if self.dtype is not None else series
        frame = pd.DataFrame(data, columns=list(columns) if columns else None, copy=False)
        if self.signature is not None:  # once per batch: int64, bool columns
            dtypes = self.signature.pandas_dtypes()
            if dtypes:
                frame = frame.astype(dtypes)
        if data.dtype == object:  # cells of several types: each column its own dtype
            frame = frame.infer_objects()
        if self.dtype is not None:
            frame = frame.astype(self._dtypes(list(frame.columns)))
        return frame

    def make_array(self, payloads: Sequence[Payload]) -> np.ndarray | None:
        """The batch as the numpy array ``make_batch(payloads).to_numpy()`` would give,
        without building the DataFrame, for payloads without column names whose cells need
        no per-column dtype; None for any other batch (then call :meth:`make_batch`)."""
        if payloads[0].columns is not None or self.typ != "frame" or self.dtype is not None or (
                self.signature is not None and self.signature.pandas_dtypes()):
            return None
        arrays = [p.value for p in payloads]
        data = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        return None if data.dtype == object else data

    def openapi_request(self, example: Any = None) -> dict:
        """Request schema. For a known width of numbers (a scikit-learn model) every body
        it admits is accepted, but numbers too large for a float, and every body it refuses
        is refused, but what JSON Schema cannot pin down: a positional model takes records
        with any n names, the same in every record, so the schema admits one record with any
        names or many named x0, x1, ...; a single record, a dict of columns, pandas'
        ``columns`` and ``index`` forms, the split form with ``index``, a Series' forms
        (``typ="series"``) and nested ``instances`` are accepted but not described. With a
        signature, records name each column's type exactly; a row's items are any of the
        signature's types (OpenAPI 3.0 has no schema per position), its description lists
        them in order."""
        if self.typ == "series":
            return self._openapi_series(example)
        signature = self.signature
        expected_names = signature.names if self._by_signature else self.columns
        expected_width = len(signature.inputs) if signature is not None else self.n_columns
        width = expected_width or 4
        item = {"type": "number"} if self.numeric else {}
        column_schemas = [item] * width
        if signature is not None:  # each column's type; a row's items: any of them
            column_schemas = [signature.column_schema(c) for c in signature.inputs]
            unique = [s for i, s in enumerate(column_schemas) if s not in column_schemas[:i]]
            item = unique[0] if len(unique) == 1 else (
                {} if {} in unique else {"anyOf": unique})
        row: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
        if expected_width is not None:
            row.update(minItems=expected_width, maxItems=expected_width)
        if signature is not None:
            row["description"] = f"one value per column: {signature.describe()}"
        names = list(expected_names) if expected_names else [f"x{i}" for i in range(width)]
        named = {"type": "object", "properties": dict(zip(names, column_schemas)),
                 "required": names, "additionalProperties": False}
        if expected_names is not None:
            records = [{"type": "array", "items": named, "minItems": 1,
                        "description": "a list of records"}]
        elif expected_width is not None:
            records = [
                {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object", "minProperties": width, "maxProperties": width,
                    "additionalProperties": item},
                 "description": f"one record: any {width} names, taken in order as labels"},
                {"type": "array", "items": named, "minItems": 1,
                 "description": "a list of records (any names are taken as labels, "
                                "the same in every record; x0, x1, ... shown here)"},
            ]
        else:
            records = [{"type": "array", "minItems": 1, "items": {
                "type": "object", "minProperties": 1, "additionalProperties": item},
                "description": "a list of records with the same names"}]
        column_names: dict[str, Any] = {"type": "array", "items": {"type": "string"},
                                        "minItems": 1, "uniqueItems": True}
        if expected_names is not None:
            column_names["items"] = {"type": "string", "enum": names}
        if expected_width is not None:
            column_names.update(minItems=expected_width, maxItems=expected_width)
        forms = [
            {"type": "array", "items": row, "minItems": 1, "description": "a list of rows"},
            *records,
            {"type": "object", "required": ["columns", "data"], "additionalProperties": False,
             "description": "pandas' split form; rows have one value per column",
             "properties": {"columns": column_names,
                            "data": {"type": "array", "items": row, "minItems": 1}}},
        ]
        table = {"anyOf": [*forms, {
            "type": "object", "required": ["instances"], "additionalProperties": False,
            "description": 'any of the forms above inside {"instances": ...}',
            "properties": {"instances": {"anyOf": forms}}}]}
        if example is None:
            example = [[round(0.5 + i, 1) for i in range(width)]]
        return {
            "required": True,
            "content": {
                "application/json": {"schema": table, "example": example},
                "text/csv": {"schema": {"type": "string"}, "example": _csv_example(example)},
            },
        }


def _series_schema(item: dict) -> dict:
    values = {"type": "array", "items": item, "minItems": 1, "description": "the values"}
    return {"anyOf": [
        values,
        {"type": "object", "minProperties": 1, "additionalProperties": item,
         "description": "pandas' index form: {label: value}"},
        {"type": "object", "required": ["data"], "description": "pandas' split form",
         "properties": {"name": {}, "index": {"type": "array"}, "data": values}},
    ]}


def csv_names(header: tuple | None, known: tuple | None = None) -> tuple[tuple | None, bool]:
    """The column names a CSV header (from :meth:`DataframeInput.csv_header`) gives, and
    whether its first column is ``to_csv()``'s index (an empty first name), to be dropped.
    pandas' positional labels ``0..n-1`` give no names (the columns are taken in order),
    unless they are the adapter's own names (``known``)."""
    if header is None:
        return None, False
    index = len(header) > 1 and header[0] == ""
    names = header[1:] if index else header
    if names == tuple(str(i) for i in range(len(names))) and (
            known is None or set(names) != set(known)):
        names = None
    return names, index


def _csv_example(body: Any) -> str:
    """A table body (rows, records or the split form) as CSV text; a header row when the
    body names its columns."""
    if isinstance(body, dict) and "instances" in body:
        body = body["instances"]
    header, rows = None, body
    if isinstance(body, dict) and "columns" in body:
        header, rows = body["columns"], body.get("data") or []
    elif isinstance(body, list) and body and all(isinstance(r, dict) for r in body):
        header = list(body[0])
        rows = [[r.get(k) for k in header] for r in body]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(r if isinstance(r, list) else [r] for r in rows)
    return out.getvalue()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_non_number(array: np.ndarray) -> tuple[int, int, Any]:
    """Where a table a numeric adapter refuses first holds something else than a number."""
    for (row, column), value in np.ndenumerate(array):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            return row, column, value
        if isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63:
            return row, column, value
    return 0, 0, array.flat[0]  # not reached for a table numpy could not make numeric


def _column_label(index: int, names: tuple | None) -> str:
    return f"column {names[index]!r}" if names else f"column {index + 1}"


def _describe(value: Any) -> str:
    """A refused cell as a user wrote it: JSON words, or CSV's empty cell."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, str):
        return "an empty cell" if not value.strip() else f"the text {value[:40]!r}"
    if isinstance(value, int):
        return f"an integer of {len(str(abs(value)))} digits, too large for a number column"
    return f"a {type(value).__name__}"


_csv_value = csv_reading.cell_value


def _is_range(index) -> bool:
    import pandas as pd

    return isinstance(index, pd.RangeIndex)


def _labels(keys) -> bool:
    """Whether ``keys`` are pandas' default labels "0", "1", ... (a RangeIndex in JSON)."""
    return list(keys) == [str(i) for i in range(len(keys))]


def _normalized_dtype(dtype: Any, columns: tuple | None, typ: str) -> Any:
    """``dtype=`` as the manifest records it: None, one dtype for every column, a list by
    position or a dict by column name, each dtype a string pandas reads; a ValueError
    (at the service's definition) for anything else."""
    if dtype is None:
        return None
    if isinstance(dtype, (dict, list, tuple)) and typ == "series":
        raise ValueError("a Series has one dtype: give dtype='float64', not a dict or a list")
    if isinstance(dtype, dict):
        if not dtype:
            raise ValueError("dtype is an empty dict: name at least one column, or leave it out")
        out = {str(k): _dtype_name(v, k) for k, v in dtype.items()}
        if columns is not None:
            unknown = [k for k in out if k not in columns]
            if unknown:
                raise ValueError(f"dtype names column(s) {unknown} that are not in columns "
                                 f"{list(columns)}")
        return out
    if isinstance(dtype, (list, tuple)):
        if not dtype:
            raise ValueError("dtype is an empty list: give one dtype per column")
        out = [_dtype_name(v, i) for i, v in enumerate(dtype)]
        if columns is not None and len(out) != len(columns):
            raise ValueError(f"dtype lists {len(out)} dtype(s) for {len(columns)} columns")
        return out
    return _dtype_name(dtype, None)


def _dtype_name(value: Any, column: Any) -> str:
    from pandas.api.types import pandas_dtype

    try:
        resolved = pandas_dtype(value)
    except (TypeError, ValueError):
        where = f" for column {column!r}" if column is not None else ""
        raise ValueError(f"dtype {value!r}{where} is not a dtype pandas knows "
                         "(e.g. 'float64', 'int64', 'str', 'bool', 'category')") from None
    return value if isinstance(value, str) else str(resolved)


def _all_finite(array: np.ndarray) -> bool:
    """No NaN or infinity in a float array; a few rows (one request's) are looked at in
    Python, where numpy's per-call cost would be most of it."""
    if array.size <= 64:
        return all(map(math.isfinite, array.ravel().tolist()))
    return bool(np.isfinite(array).all())

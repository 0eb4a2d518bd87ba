"""Input adapters: how an HTTP body, a CLI argument or a Python value becomes an API's
argument, and how results become JSON.

Each adapter parses one request into a :class:`Payload` (validated, with its row count)
and assembles many payloads into one batch argument cheaply; the server splits the batch's
results back with :func:`split_results`::

    adapter = DataframeInput(n_columns=4, numeric=True)
    p1 = adapter.parse(b"[[5.1, 3.5, 1.4, 0.2]]", "application/json")
    p2 = adapter.parse(b"5.9,3.0,5.1,1.8\\n", "text/csv")
    df = adapter.make_batch([p1, p2])        # one DataFrame of 2 rows
    split_results(model.predict(df), [p1.rows, p2.rows])   # [[0], [2]]

Anything that does not fit raises :class:`~bento_nb.errors.BadInput` (HTTP 400) or
:class:`~bento_nb.errors.UnsupportedMediaType` (415) with a message that says what was
expected.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Sequence

import numpy as np

from .errors import BadInput, ModelError, UnsupportedMediaType

_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")
_CSV_TYPES = ("text/csv", "application/csv")
# How deep client JSON may nest lists and objects (``[[1]]`` is 2 levels): deeper documents
# are refused with a 400, well before Python's recursion limit, so that an API that returns
# what it was given (a JsonInput echo) can always be answered.
MAX_JSON_DEPTH = 100
# CSV cells that are values, never column names: pandas' missing-value markers and booleans.
_NOT_NAMES = frozenset({"", "na", "n/a", "#n/a", "#na", "<na>", "nan", "-nan", "null", "none",
                        "true", "false"})


class Payload:
    """One parsed request: ``value`` is adapter-specific, ``rows`` its batch size."""

    __slots__ = ("value", "rows", "columns")

    def __init__(self, value: Any, rows: int = 1, columns: tuple | None = None):
        self.value = value
        self.rows = rows
        self.columns = columns


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _reject_constant(name: str) -> None:
    raise BadInput(f"{name} is not allowed in JSON input; send null-free finite numbers")


def loads_json(body: bytes | str) -> Any:
    """Client JSON → Python, strictly: every way a body can fail to decode is a BadInput
    (400) that says why, never another exception. NaN/Infinity are refused, integers longer
    than Python converts (``sys.get_int_max_str_digits()``, 4300 digits) are refused rather
    than rounded, and documents nested more than :data:`MAX_JSON_DEPTH` levels deep are
    refused, so whatever is accepted can be handed to the API and its echo encoded back."""
    if not body or not body.strip():
        raise BadInput("empty body: expected JSON")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except BadInput:
        raise
    except UnicodeDecodeError:
        raise BadInput("body is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError:  # the only other ValueError of json.loads: int() of too many digits
        raise BadInput(f"an integer in the JSON has more than {sys.get_int_max_str_digits()} "
                       "digits; send it as a string, or round it to a float") from None
    except RecursionError:
        raise BadInput(f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    if _nesting_exceeds(body, value, MAX_JSON_DEPTH):
        raise BadInput(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


# Opening brackets and braces, and their depth steps, for :func:`_nesting_exceeds`.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = np.zeros(256, dtype=np.int32)
_BRACKET_STEPS[list(b"[{")] = 1
_BRACKET_STEPS[list(b"]}")] = -1


def _nesting_exceeds(body: bytes | str, value: Any, limit: int) -> bool:
    """Whether the decoded ``value`` of ``body`` nests lists and objects deeper than
    ``limit``. Cheap first: a body with at most ``limit`` brackets cannot be too deep (most
    requests), nor can one whose brackets, when no string could hide any (a table of
    numbers), never open more than ``limit`` deep; only other bodies are walked."""
    raw = body.encode() if isinstance(body, str) else body
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    if b'"' not in raw:
        brackets = np.frombuffer(raw.translate(None, _NOT_BRACKETS), dtype=np.uint8)
        return int(_BRACKET_STEPS[brackets].cumsum().max()) > limit
    stack = [(value, 1)] if type(value) is list or type(value) is dict else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is list or type(child) is dict:
                stack.append((child, depth + 1))
    return False


class InputAdapter:
    """Base class. Subclasses set ``kind`` and implement :meth:`parse`."""

    kind = "base"
    media_types: tuple[str, ...] = ("application/json",)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        raise NotImplementedError

    def from_python(self, value: Any) -> Payload:
        """An in-process argument (already Python) as a payload."""
        return Payload(value)

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        """The API argument for a batch of payloads (``batch=True`` APIs)."""
        return [p.value for p in payloads]

    def make_single(self, payload: Payload) -> Any:
        """The API argument for one payload (``batch=False`` APIs)."""
        return payload.value

    def configure(self, model: Any) -> None:
        """Learn the expected input from a packed model, when the user did not say."""

    def example_body(self, value: Any) -> Any:
        """An in-process input (what the API is called with) as a request body, for the
        documented example of a bundle (``pack(..., example=...)``)."""
        return to_jsonable(value)

    def encode_example(self, body: Any) -> tuple[bytes, str]:
        """``body`` (from :meth:`example_body`) as the bytes and content type a client
        sends; raises BadInput when it cannot be sent."""
        try:
            return json.dumps(body, allow_nan=False).encode(), "application/json"
        except (TypeError, ValueError) as e:
            raise BadInput(f"not JSON: {e}") from None

    def config(self) -> dict:
        """What the manifest records about this adapter."""
        return {"type": type(self).__name__}

    def openapi_request(self, example: Any = None) -> dict:
        """The OpenAPI ``requestBody``; ``example``: a body from :meth:`example_body`."""
        return {"content": {"application/json": {"schema": {},
                                                  "example": {} if example is None else example}}}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({options})"


class DataframeInput(InputAdapter):
    """Rows of a table → ``pandas.DataFrame``.

    JSON bodies: a list of rows ``[[5.1, 3.5, 1.4, 0.2]]``, records ``[{"a": 1, ...}]``,
    pandas' split form ``{"columns": [...], "data": [[...]]}``, ``{"instances": ...}`` or a
    single record ``{"a": 1}``; ``text/csv`` bodies with or without a header row.

    A CSV's first row is its header only when it spells the adapter's column names (in any
    order) or when every cell is a name: not empty, not a number, not a missing-value or
    boolean marker (``NA``, ``NaN``, ``null``, ``None``, ``TRUE``, ...). Anything else is a
    data row, so a row is never dropped as a header by mistake: a first row with an empty or
    ``NA`` cell is data and, like a JSON ``null``, refused (400) when ``numeric``. A header
    with a numeric-looking name (``id,2021``) is therefore read as data too (refused by a
    numeric adapter); send such names in the JSON split form or make them the adapter's
    ``columns``.

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

    def __init__(self, columns: Sequence[str] | None = None, n_columns: int | None = None,
                 numeric: bool | None = None):
        self.columns = tuple(columns) if columns is not None else None
        self.n_columns = len(self.columns) if self.columns is not None else n_columns
        self.numeric = numeric

    def configure(self, model: Any) -> None:
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
            from .frameworks.sklearn import takes_numbers

            self.numeric = takes_numbers(model)
            if self.numeric is None and names is None:
                self.numeric = True  # fitted on an array: of numbers, as other models' are

    def example_body(self, value: Any) -> Any:
        """A DataFrame with named columns as records (its names documented), any other
        table as a list of rows."""
        import pandas as pd

        if isinstance(value, pd.DataFrame):
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
        return out

    # parsing

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media in _CSV_TYPES:
            return self._from_csv(body)
        if media in _JSON_TYPES:
            return self._from_json(loads_json(body))
        raise UnsupportedMediaType(
            f"content type {media!r} is not supported: send application/json or text/csv"
        )

    def from_python(self, value: Any) -> Payload:
        import pandas as pd

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

    def _from_json(self, obj: Any) -> Payload:
        if isinstance(obj, dict):
            if "instances" in obj and len(obj) == 1:
                return self._from_json(obj["instances"])
            if set(obj) == {"columns", "data"} or set(obj) == {"columns", "data", "index"}:
                columns, data = obj["columns"], obj["data"]
                if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                    raise BadInput('"columns" must be a list of strings')
                return self._from_rows(data, tuple(columns))
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

    def _from_records(self, records: list) -> Payload:
        if not all(isinstance(r, dict) for r in records):
            raise BadInput("mixed records and non-records in one list")
        names = self.columns or tuple(records[0])
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

    def _from_rows(self, rows: Any, names: tuple | None) -> Payload:
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
        if names is not None and self.columns is not None and names != self.columns:
            if set(names) != set(self.columns):
                raise BadInput(
                    f"columns {list(names)} do not match the expected {list(self.columns)}"
                )
            order = [names.index(c) for c in self.columns]
            rows = [[r[i] for i in order] if len(r) == len(names) else r for r in rows]
            names = self.columns
        try:
            array = np.array(rows, dtype=None if self.numeric is not False else object)
        except (ValueError, TypeError):
            raise BadInput("rows have different lengths or nested values") from None
        if self.numeric and (array.dtype.kind not in "iuf" or any(
                v is True or v is False for row in rows for v in row)):
            # Refused below: keep the values as sent (numpy made booleans numbers, or every
            # value text), so the error names the cell that is not a number.
            array = np.array(rows, dtype=object)
        if array.ndim != 2 or (array.dtype == object and any(
                isinstance(v, (list, dict)) for v in array.flat)):
            raise BadInput("each row must be a flat list of values (a table has two dimensions)")
        if self.columns is not None:
            names = self.columns
        elif self.n_columns is not None:
            names = None  # a positional model: names in the body are only labels
        return self._finish(array, names)

    def _from_csv(self, body: bytes) -> Payload:
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
        header = None
        first = [c.strip() for c in records[0]]
        if (self.columns is not None and len(first) == len(self.columns)
                and set(first) == set(self.columns)) or all(
                c.lower() not in _NOT_NAMES and not _is_number(c) for c in first):
            header, records = tuple(first), records[1:]
            if not records:
                raise BadInput("CSV has a header row but no data rows")
        width = len(header) if header else len(records[0])
        for i, r in enumerate(records):
            if len(r) != width:
                raise BadInput(f"CSV row {i + 1} has {len(r)} values, expected {width}")
        rows = [[_csv_value(c) for c in r] for r in records]
        if header is not None and self.columns is None and self.n_columns is not None \
                and self.numeric:
            header = None  # a positional model: the header only named the columns
        return self._from_rows(rows, header)

    def _finish(self, array: np.ndarray, names: tuple | None) -> Payload:
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise BadInput("empty input: expected at least one row and one column")
        if self.n_columns is not None and array.shape[1] != self.n_columns:
            raise BadInput(f"expected {self.n_columns} columns per row, got {array.shape[1]}")
        if self.numeric:
            if array.dtype.kind not in "iuf":
                row, column, value = _first_non_number(array)
                raise BadInput(f"expected numbers in every column; row {row + 1}, "
                               f"{_column_label(column, names)} holds {_describe(value)}")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                row, column = (int(i[0]) for i in np.nonzero(~np.isfinite(array)))
                raise BadInput(f"NaN and infinite values are not allowed; row {row + 1}, "
                               f"{_column_label(column, names)} holds {array[row, column]}")
        return Payload(array, array.shape[0], names)

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
        return pd.DataFrame(data, columns=list(columns) if columns else None, copy=False)

    def openapi_request(self, example: Any = None) -> dict:
        """Request schema. For a known width of numbers (a scikit-learn model) every body
        it admits is accepted, but numbers too large for a float, and every body it refuses
        is refused, but what JSON Schema cannot pin down: a positional model takes records
        with any n names, the same in every record, so the schema admits one record with any
        names or many named x0, x1, ...; a single record, a dict of columns, the split form
        with ``index`` and nested ``instances`` are accepted but not described."""
        width = self.n_columns or 4
        item = {"type": "number"} if self.numeric else {}
        row: dict[str, Any] = {"type": "array", "items": item, "minItems": 1}
        if self.n_columns is not None:
            row.update(minItems=self.n_columns, maxItems=self.n_columns)
        names = list(self.columns) if self.columns else [f"x{i}" for i in range(width)]
        named = {"type": "object", "properties": {n: item for n in names},
                 "required": names, "additionalProperties": False}
        if self.columns is not None:
            records = [{"type": "array", "items": named, "minItems": 1,
                        "description": "a list of records"}]
        elif self.n_columns is not None:
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
        if self.columns is not None:
            column_names["items"] = {"type": "string", "enum": names}
        if self.n_columns is not None:
            column_names.update(minItems=self.n_columns, maxItems=self.n_columns)
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


class JsonInput(InputAdapter):
    """Any JSON document → the parsed Python value (one per request in a batch). Documents
    nested more than :data:`MAX_JSON_DEPTH` levels deep are refused (400), so that what the
    API returns of its input can always be written back as JSON."""

    kind = "json"
    media_types = ("application/json",)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media not in _JSON_TYPES:
            raise UnsupportedMediaType(f"content type {media!r} is not supported: send application/json")
        return Payload(loads_json(body))

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {"application/json": {
            "schema": {"description": f"any JSON document nested at most {MAX_JSON_DEPTH} "
                                      "levels deep, integers of at most 4300 digits"},
            "example": {"text": "hello"} if example is None else example}}}


class StringInput(InputAdapter):
    """A UTF-8 text body → ``str``."""

    kind = "string"
    media_types = ("text/plain",)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media and not (media.startswith("text/") or media in ("application/json",
                                                               "application/x-www-form-urlencoded")):
            raise UnsupportedMediaType(f"content type {media!r} is not supported: send text/plain")
        try:
            return Payload(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadInput("body is not UTF-8 text") from None

    def example_body(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise BadInput(f"the example of a text API is a str, not {type(value).__name__}")
        return value

    def encode_example(self, body: Any) -> tuple[bytes, str]:
        return body.encode("utf-8"), "text/plain"

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {"text/plain": {
            "schema": {"type": "string"}, "example": "hello" if example is None else example}}}


class FileInput(InputAdapter):
    """Raw bytes: the body itself, or the first file of a ``multipart/form-data`` body."""

    kind = "file"
    media_types = ("application/octet-stream", "multipart/form-data")

    def example_body(self, value: Any) -> Any:
        raise BadInput("a file API takes no documented example (examples are JSON or text)")

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media == "multipart/form-data":
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + (content_type or "").encode("latin-1", "replace")
                + b"\r\n\r\n" + body)
            for part in message.iter_parts() if message.is_multipart() else ():
                data = part.get_payload(decode=True)
                if data is not None:
                    return Payload(data)
            raise BadInput("multipart body holds no file part")
        return Payload(bytes(body))

    def from_python(self, value: Any) -> Payload:
        if isinstance(value, str):
            value = value.encode()
        return Payload(bytes(value))

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}},
        }}


ADAPTERS = {cls.kind: cls for cls in (DataframeInput, JsonInput, StringInput, FileInput)}


def adapter_from_config(config: dict | str) -> InputAdapter:
    """Rebuild an adapter from :meth:`InputAdapter.config` or from a kind name."""
    if isinstance(config, str):
        kind = config.lower()
        if kind not in ADAPTERS:
            raise BadInput(f"unknown input kind {config!r}: use one of {sorted(ADAPTERS)}")
        return ADAPTERS[kind]()
    options = dict(config)
    name = options.pop("type")
    by_class = {cls.__name__: cls for cls in ADAPTERS.values()}
    if name not in by_class:
        raise BadInput(f"unknown input adapter {name!r}")
    return by_class[name](**options)


# -- outputs ------------------------------------------------------------------------------


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


def to_jsonable(obj: Any) -> Any:
    """numpy and pandas values → plain JSON-able Python."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    module = type(obj).__module__
    if module.startswith("pandas"):
        if hasattr(obj, "to_dict") and hasattr(obj, "columns"):
            return to_jsonable(obj.to_dict(orient="records"))
        if hasattr(obj, "tolist"):
            return to_jsonable(obj.tolist())
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return obj


def dumps_json(obj: Any, compact: bool = True) -> bytes:
    """JSON bytes of a result; NaN/Infinity become null so the output is valid JSON.
    ``compact=False`` puts a space after separators, for people (the CLI)."""
    separators = (",", ":") if compact else (", ", ": ")
    try:
        obj = to_jsonable(obj)
        try:
            return json.dumps(obj, allow_nan=False, separators=separators).encode()
        except ValueError:  # NaN or infinity; any other ValueError is raised again below
            return json.dumps(_finite(obj), separators=separators).encode()
    except RecursionError:
        raise ModelError("the API returned a value nested too deeply for JSON, or one that "
                         "contains itself") from None
    except TypeError as e:
        raise ModelError(f"the API returned a value that is not JSON-serializable: {e}") from None
    except ValueError as e:  # a circular reference, an integer too long to write out
        raise ModelError(f"the API returned a value that cannot be written as JSON: {e}") from None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


def split_results(results: Any, sizes: Sequence[int]) -> list[Any]:
    """Cut a batch API's results into one slice per request, in order."""
    total = sum(sizes)
    if hasattr(results, "iloc"):  # pandas: keep rows as records
        rows = results.iloc
    elif isinstance(results, (list, tuple, np.ndarray)):
        rows = results
    elif hasattr(results, "__len__") and hasattr(results, "__getitem__"):
        rows = results
    else:
        raise ModelError(
            f"a batch API must return one result per input row; got {type(results).__name__}")
    if len(results) != total:
        raise ModelError(
            f"a batch API must return one result per input row: got {len(results)} for {total} rows")
    out, start = [], 0
    for n in sizes:
        out.append(rows[start:start + n])
        start += n
    return out


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


def _csv_value(text: str) -> Any:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        if len(text) > sys.get_int_max_str_digits() and text.lstrip("+-").isdigit():
            raise BadInput(f"an integer in the CSV has {len(text.lstrip('+-'))} digits, more "
                           f"than {sys.get_int_max_str_digits()}; send fewer digits") from None
    try:
        return float(text)
    except ValueError:
        return text


def _is_range(index) -> bool:
    import pandas as pd

    return isinstance(index, pd.RangeIndex)

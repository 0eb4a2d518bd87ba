"""Writing a batch run's results in input order as they come: a JSON list (stdout by
default), or a ``.csv``, ``.jsonl``, ``.json`` or ``.parquet`` file with a ``prediction``
column (the input columns before it with ``keep``)::

    sink = _sink(options, single=False)
    for result in results:
        sink.write(result)
    sink.close(ok=True)     # the temporary file renamed into place; ok=False: removed

A file is written under a temporary name beside it and renamed at the end, so it exists
only when the run succeeded.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInput, UsageError
from .reading import _SUFFIXES
from .running import ChunkResult, _as_list

if TYPE_CHECKING:
    from .options import BatchOptions

_PARQUET_ROW_GROUP = 1 << 18  # rows buffered before a Parquet row group is written
PREDICTION = "prediction"


class _Sink:
    """Writes chunk results in order to ``path`` (a temporary file renamed at the end)
    or to ``stream``."""

    def __init__(self, path: str | None, stream=None):
        self.path = path
        self._tmp = None
        if path is not None:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise BadInput(f"cannot write {path}: folder {folder} does not exist")
            fd, self._tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                             suffix=".partial", dir=folder)
            os.close(fd)
            self.stream = open(self._tmp, "wb")
        else:
            self.stream = stream if stream is not None else sys.stdout.buffer
        self.written = 0

    def write(self, result: ChunkResult) -> None:
        raise NotImplementedError

    def close(self, ok: bool) -> None:
        self._finish(ok)
        if self._tmp is None:
            self.stream.flush()
            return
        self.stream.close()
        if ok:
            os.replace(self._tmp, self.path)
        else:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass

    def _finish(self, ok: bool) -> None:
        pass


class _JsonSink(_Sink):
    """A JSON list of results, written as it grows (``[a, b, ...]``); ``single``: one
    item's result alone, as ``bento-nb run`` prints for one file."""

    def __init__(self, path, stream=None, single: bool = False):
        super().__init__(path, stream)
        self.single = single
        self._started = False
        self._held: list = []

    def write(self, result: ChunkResult) -> None:
        from ..adapters import dumps_json

        if self.single:
            self._held.extend(_as_list(result.values))
            self.written = len(self._held)
            return
        values = _as_list(result.values)
        if not values:
            return
        text = dumps_json(values, compact=False)[1:-1]
        self.stream.write((b", " if self._started else b"[") + text)
        self._started = True
        self.written += len(values)

    def _finish(self, ok: bool) -> None:
        from ..adapters import dumps_json

        if not ok:
            if self._started:
                self.stream.write(b"\n")
            return
        if self.single and len(self._held) == 1:
            self.stream.write(dumps_json(self._held[0], compact=False) + b"\n")
        elif self.single:
            self.stream.write(dumps_json(self._held, compact=False) + b"\n")
        else:
            self.stream.write((b"]" if self._started else b"[]") + b"\n")


def _result_frame(result: ChunkResult, keep: bool):
    """The rows to write: the prediction column, after the input columns with ``keep``."""
    import pandas as pd

    values = result.values
    if isinstance(values, np.ndarray) and values.ndim > 1:
        column = list(values)
    elif isinstance(values, (pd.Series, np.ndarray)):
        column = np.asarray(values)
    else:  # objects, or numbers with nulls: kept as they are (2 stays 2 beside a null)
        column = pd.Series([to_plain(v) for v in _as_list(values)], dtype=object)
    if keep and result.frame is not None:
        frame = result.frame.reset_index(drop=True).copy()
        frame.columns = [str(c) for c in frame.columns]
        if PREDICTION in frame.columns:
            raise UsageError(f"the input has a column {PREDICTION!r}: it cannot be kept "
                             "beside the prediction")
        frame[PREDICTION] = column.to_numpy() if isinstance(column, pd.Series) else column
        return frame
    return pd.DataFrame({PREDICTION: column})


def to_plain(value):
    from ..adapters import to_jsonable

    return to_jsonable(value)


class _JsonlSink(_Sink):
    def __init__(self, path, stream=None, keep: bool = False):
        super().__init__(path, stream)
        self.keep = keep

    def write(self, result: ChunkResult) -> None:
        from ..adapters import dumps_json, to_jsonable

        frame = _result_frame(result, self.keep)
        if not len(frame):
            return
        records = to_jsonable(frame.to_dict(orient="records"))
        self.stream.write(b"".join(dumps_json(r) + b"\n" for r in records))
        self.written += len(frame)


def _arrow_table(frame):
    """``frame`` as an Arrow table; a column of mixed values (numbers beside text, as a
    kept input column with bad cells has) as text."""
    import pyarrow as pa

    columns = {}
    for name in frame.columns:
        values = frame[name]
        if values.dtype == object:  # an empty CSV cell is a missing value in the output
            values = values.map(lambda v: None if isinstance(v, str) and not v.strip() else v)
        try:
            columns[str(name)] = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[str(name)] = pa.array(
                [None if v is None else v if isinstance(v, str) else json.dumps(to_plain(v))
                 for v in values], pa.string())
    return pa.table(columns)


class _CsvSink(_Sink):
    def __init__(self, path, stream=None, keep: bool = False):
        super().__init__(path, stream)
        self.keep = keep
        self._header = True

    def write(self, result: ChunkResult) -> None:
        import pyarrow.csv as pacsv

        frame = _result_frame(result, self.keep)
        if not len(frame):
            return
        for column in frame.columns:  # vectors (predict_proba) as JSON text
            if frame[column].dtype == object and any(
                    isinstance(v, (list, np.ndarray, dict)) for v in frame[column]):
                frame[column] = [json.dumps(to_plain(v)) for v in frame[column]]
        buffer = io.BytesIO()
        pacsv.write_csv(_arrow_table(frame), buffer,
                        pacsv.WriteOptions(include_header=self._header))
        self.stream.write(buffer.getvalue())
        self._header = False
        self.written += len(frame)


class _ParquetSink(_Sink):
    def __init__(self, path, stream=None, keep: bool = False):
        if path is None:
            raise UsageError("Parquet is not written to stdout: give --output FILE.parquet")
        super().__init__(path, stream)
        self.keep = keep
        self._writer = None
        self._held: list = []
        self._held_rows = 0

    def write(self, result: ChunkResult) -> None:
        frame = _result_frame(result, self.keep)
        if not len(frame):
            return
        self._held.append(_arrow_table(frame))
        self._held_rows += len(frame)
        self.written += len(frame)
        if self._held_rows >= _PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._held:
            return
        tables = self._held
        if self._writer is None:
            schema = tables[0].schema  # a column of nulls takes the first type seen after
            for index, column in enumerate(schema):
                if pa.types.is_null(column.type):
                    typed = [t.schema.field(index).type for t in tables
                             if t.num_columns == len(schema) and
                             not pa.types.is_null(t.schema.field(index).type)]
                    if typed:
                        schema = schema.set(index, column.with_type(typed[0]))
            self._writer = pq.ParquetWriter(self.stream, schema)
            self._schema = schema
        schema = self._schema
        try:
            table = pa.concat_tables([_conform(t, schema) for t in tables])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise BadInput(f"results do not fit one Parquet schema ({schema}): {e}") from None
        self._writer.write_table(table)
        self._held, self._held_rows = [], 0

    def _finish(self, ok: bool) -> None:
        if ok:
            self._flush()
            if self._writer is None:  # no rows: an empty file with the one column
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({PREDICTION: pa.array([], pa.null())}), self.stream)
        if self._writer is not None:
            self._writer.close()


def _conform(table, schema):
    """``table`` with the columns and types of ``schema`` (the file's, from its first rows).
    A cell that does not fit its column's type (text in a column of numbers: a kept cell of
    a bad row) is written as null; a column of text takes anything as text."""
    import pandas as pd
    import pyarrow as pa

    if table.schema == schema:
        return table
    if table.schema.names != schema.names:
        raise BadInput(f"the input's columns changed from {schema.names} to "
                       f"{table.schema.names}: write them to separate files")
    columns = []
    for column, wanted in zip(table.columns, schema):
        if column.type == wanted.type:
            columns.append(column)
            continue
        try:
            columns.append(column.cast(wanted.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            if not (pa.types.is_integer(wanted.type) or pa.types.is_floating(wanted.type)):
                raise
            numbers = pd.to_numeric(pd.Series(column.to_pylist(), dtype=object),
                                    errors="coerce")
            columns.append(pa.array(numbers, from_pandas=True).cast(wanted.type, safe=False))
    return pa.table(columns, schema=schema)


def output_format(path: str | None, given: str | None) -> str:
    if given:
        return given
    if path is None or path == "-":
        return "json"
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise UsageError(f"cannot tell the format of {path} by its suffix: name it .csv, "
                         ".json, .jsonl or .parquet, or give --output-format")
    return _SUFFIXES[suffix]


def _sink(options: BatchOptions, single: bool, stream=None) -> _Sink:
    path = None if options.output in (None, "-") else options.output
    fmt = output_format(options.output, options.output_format)
    if fmt == "json":
        return _JsonSink(path, stream, single=single)
    if fmt == "jsonl":
        return _JsonlSink(path, stream, keep=options.keep_columns)
    if fmt == "csv":
        return _CsvSink(path, stream, keep=options.keep_columns)
    return _ParquetSink(path, stream, keep=options.keep_columns)

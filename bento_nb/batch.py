"""Batch scoring: one API of a bundle over files or a DataFrame of any size, in chunks.

    report = predict("Iris:latest", "data/*.csv", output="scores.parquet", workers=2)
    scores = predict("Iris:latest", frame)        # a DataFrame in memory: an array back

How it works. A *source* cuts the input into chunks of ``batch_size`` rows: CSV and JSON
Lines by lines (parsed by pyarrow's C parsers), Parquet by row batches, a JSON document
whole, a folder of files one file per item (a file, text or JSON API). Each chunk becomes
the payload the server would build from the same rows, with the same adapter and the
same validation (width, names, numbers), and the API runs once per chunk. A *sink* writes
the results in input order as they come (JSON on stdout by default, or ``.csv``,
``.jsonl``, ``.json``, ``.parquet``), to a temporary file renamed into place at the end,
so an output file exists only when the run succeeded.

Memory is bounded by the chunk: at most two chunks per worker are read ahead, whatever
the input's size. With one worker a reader thread reads and parses the next chunks while
the model runs (pyarrow parses without the GIL); ``workers=N`` runs N processes (spawned,
each loading the bundle once) that parse and predict, the results put back in chunk order.

A bad row (a cell that is not a number, a ragged CSV line, a row the model raises on)
stops the run with its file and row number (``on_error="fail"``), or is left out
(``"skip"``) or given a null result (``"null"``) and counted. A chunk that fails is split
in halves until the bad rows are alone, so good rows around them still run in batches.
"""

from __future__ import annotations

import glob as globbing
import io
import json
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .errors import BadInput, BentoNbError, ModelError, NotFound, UsageError
from .options import option

DEFAULT_BATCH_SIZE = 50_000
FORMATS = ("csv", "json", "jsonl", "parquet")
ON_ERROR = ("fail", "skip", "null")
_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl",
             ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_READ_BLOCK = 1 << 22       # bytes read from a text file at a time
_PARQUET_ROW_GROUP = 1 << 18  # rows buffered before a Parquet row group is written
PREDICTION = "prediction"


@dataclass
class BatchOptions:
    """How a batch run reads, calls and writes; the flags of ``bento-nb run``."""

    output: str | None = option(None, "--output", "write results to PATH (.csv, .jsonl, "
                                ".json, .parquet) or - for stdout (default: a JSON list "
                                "on stdout)", metavar="PATH", short="-o")
    output_format: str | None = option(None, "--output-format", "format of --output "
                                       "(default: by its suffix, else json)",
                                       metavar="csv|json|jsonl|parquet")
    batch_size: int = option(DEFAULT_BATCH_SIZE, "--batch-size", "rows per chunk read and "
                             "per API call")
    workers: int = option(1, "--workers", "processes running the API, each loading the "
                          "bundle once; results keep the input order")
    on_error: str = option("fail", "--on-error", "a bad row stops the run (fail), is left "
                           "out (skip) or gets a null result (null)", metavar="fail|skip|null")
    keep_columns: bool = option(False, "--keep-columns", "write the input columns beside "
                                "the prediction (csv, jsonl, parquet)")
    progress: bool | None = None  # a bar on stderr; None: when stderr is a terminal

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise UsageError(f"--on-error must be one of {', '.join(ON_ERROR)}, "
                             f"not {self.on_error!r}")
        if self.output_format is not None and self.output_format not in FORMATS:
            raise UsageError(f"--output-format must be one of {', '.join(FORMATS)}, "
                             f"not {self.output_format!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UsageError(f"--batch-size must be a positive number of rows, "
                             f"not {self.batch_size!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise UsageError(f"--workers must be at least 1, not {self.workers!r}")


@dataclass
class BatchReport:
    """What a run did: rows read and written, rows left out or given nulls, and the first
    few bad rows' messages."""

    rows: int = 0
    written: int = 0
    skipped: int = 0
    nulls: int = 0
    seconds: float = 0.0
    output: str | None = None
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        text = f"{self.rows:,} rows in {self.seconds:.1f} s ({rate:,.0f} rows/s)"
        if self.skipped:
            text += f"; {self.skipped:,} bad rows skipped"
        if self.nulls:
            text += f"; {self.nulls:,} bad rows given null"
        return text + (f"; wrote {self.output}" if self.output else "")


# -- chunks -------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Rows of one source. ``kind``: ``"csv"``/``"jsonl"`` (``data``: whole lines as bytes;
    ``names``: the CSV header), ``"frame"`` (a DataFrame or an Arrow table) or ``"items"``
    (a list of ``(label, bytes)`` for an API that takes one file, text or document)."""

    index: int
    source: str
    first_row: int
    kind: str
    data: Any
    names: tuple | None = None
    size: int = 0  # bytes of input this chunk stands for (the progress estimate)


@dataclass
class ChunkResult:
    index: int
    values: Any  # one result per written row (an array or a list)
    frame: Any = None  # the rows written, for --keep-columns
    rows: int = 0
    skipped: int = 0
    nulls: int = 0
    errors: list[str] = field(default_factory=list)
    size: int = 0


# -- inputs -------------------------------------------------------------------------------


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """Files named by ``paths``: each a file, ``-`` (stdin), a folder (its files, sorted)
    or a glob (sorted). A missing file or a glob that matches nothing is NotFound."""
    files: list[str] = []
    for text in paths:
        if text == "-":
            files.append(text)
        elif globbing.has_magic(text):
            matched = sorted(p for p in globbing.glob(text, recursive=True) if os.path.isfile(p))
            if not matched:
                raise NotFound(f"no file matches {text}")
            files.extend(matched)
        elif os.path.isdir(text):
            inside = sorted(str(p) for p in Path(text).iterdir()
                            if p.is_file() and not p.name.startswith("."))
            if not inside:
                raise NotFound(f"folder {text} holds no files")
            files.extend(inside)
        elif not os.path.exists(text):
            raise NotFound(f"cannot read {text}: no such file")
        else:
            files.append(text)
    if not files:
        raise UsageError("no input: give --input-file PATH (a file, folder, glob or -)")
    return files


def input_format(path: str, given: str | None) -> str:
    if given:
        return given
    return _SUFFIXES.get(Path(path).suffix.lower(), "json") if path != "-" else "json"


def _open(path: str):
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}") from None


def _shown(path: str) -> str:
    return "stdin" if path == "-" else path


def _line_blocks(stream, batch_size: int, quoted: bool = True) -> Iterator[tuple[int, bytes]]:
    """Whole lines of ``stream`` in blocks of ``batch_size`` lines: (lines before, block).
    With ``quoted`` (CSV) a block never ends inside a quoted field (an even number of
    quotes before its end), so a value spanning lines stays in one block."""
    pending = b""
    line = 0
    while True:
        data = stream.read(_READ_BLOCK)
        if data:
            pending += data
        if not pending:
            return
        ends = np.flatnonzero(np.frombuffer(pending, dtype=np.uint8) == 10)
        if not data:  # the last line may lack its newline
            ends = np.append(ends, len(pending) - 1) if not pending.endswith(b"\n") else ends
        if quoted and b'"' in pending and len(ends):
            quotes = np.cumsum(np.frombuffer(pending, dtype=np.uint8) == 34)
            ends = ends[quotes[ends] % 2 == 0]
        start = 0
        taken = 0
        while len(ends) - taken >= batch_size or (not data and taken < len(ends)):
            last = min(taken + batch_size, len(ends)) - 1
            stop = int(ends[last]) + 1
            yield line, pending[start:stop]
            line += last + 1 - taken
            taken = last + 1
            start = stop
        pending = pending[start:]
        if not data:
            if pending.strip():  # an unclosed quote: the parser says what is wrong
                yield line, pending
            return


def _csv_header(stream, adapter) -> tuple[tuple | None, bytes, int]:
    """The header of a CSV stream as the adapter reads one (None: the first line is data),
    the bytes read past it, and the lines it took (0 or 1, and blank lines before it)."""
    import csv

    head = b""
    lines = 0
    while True:
        line = stream.readline()
        if not line:
            return None, head, 0
        if line.strip():
            break
        lines += 1
    try:
        first = next(csv.reader([line.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error):
        return None, line, 0
    header = adapter.csv_header(first)
    if header is None:
        return None, line, lines
    return header, b"", lines + 1


def read_chunks(files: Sequence[str], adapter, fmt: str | None, batch_size: int,
                per_row: bool) -> Iterator[Chunk]:
    """The chunks of every file in order. ``per_row``: a table API (rows), else an API
    that takes one item per file (or per JSON Lines line for a JSON API)."""
    index = 0
    for path in files:
        kind = input_format(path, fmt)
        shown = _shown(path)
        if not per_row:
            for chunk in _item_chunks(path, kind, adapter, batch_size, index):
                index = chunk.index + 1
                yield chunk
            continue
        if kind == "parquet":
            for chunk in _parquet_chunks(path, batch_size, index):
                index = chunk.index + 1
                yield chunk
            continue
        stream = _open(path)
        try:
            if kind == "json":
                body = stream.read()
                if not body.strip():
                    continue  # an empty file; no rows at all is refused at the end
                try:
                    payload = adapter.parse(body, "application/json")
                except BadInput as e:
                    raise BadInput(f"{shown}: {e.message}") from None
                frame = _payload_frame(payload)
                for start in range(0, len(frame), batch_size):
                    yield Chunk(index, shown, start + 1, "frame",
                                frame.iloc[start:start + batch_size], size=len(body))
                    index += 1
                continue
            names, head, before = (_csv_header(stream, adapter) if kind == "csv"
                                   else (None, b"", 0))
            blocks = _line_blocks(_Prefixed(head, stream), batch_size, quoted=kind == "csv")
            for lines, block in blocks:
                yield Chunk(index, shown, lines + 1 + (before if names is None else 0),
                            kind, block, names, size=len(block))
                index += 1
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()


class _Prefixed:
    """A binary stream with ``head`` put back in front."""

    def __init__(self, head: bytes, stream):
        self._head = head
        self._stream = stream

    def read(self, n: int) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head + self._stream.read(max(0, n - len(head)))
        return self._stream.read(n)


def _payload_frame(payload):
    import pandas as pd

    return pd.DataFrame(payload.value, columns=list(payload.columns) if payload.columns else None)


def _parquet_chunks(path: str, batch_size: int, index: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except OSError as e:
        raise BadInput(f"cannot read {path} as Parquet: {e}") from None
    total = max(1, parquet.metadata.num_rows)
    size = os.path.getsize(path)
    first = 1
    for batch in parquet.iter_batches(batch_size=batch_size):
        yield Chunk(index, path, first, "frame", batch, size=int(size * batch.num_rows / total))
        first += batch.num_rows
        index += 1


def _item_chunks(path: str, kind: str, adapter, batch_size: int,
                 index: int) -> Iterator[Chunk]:
    shown = _shown(path)
    if kind == "jsonl" and adapter.kind == "json":  # one document per line
        stream = _open(path)
        try:
            for lines, block in _line_blocks(stream, batch_size, quoted=False):
                items = [(f"{shown} line {lines + i + 1}", line)
                         for i, line in enumerate(block.splitlines()) if line.strip()]
                if items:
                    yield Chunk(index, shown, lines + 1, "items", items, size=len(block))
                    index += 1
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        return
    stream = _open(path)
    try:
        body = stream.read()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    yield Chunk(index, shown, 1, "items", [(shown, body)], size=len(body))


# -- running a chunk ----------------------------------------------------------------------


class ChunkRunner:
    """Runs chunks through one API: parse, validate as the server does, call, and isolate
    bad rows by halving when ``on_error`` is skip or null."""

    def __init__(self, inference_api, on_error: str = "fail", keep_columns: bool = False):
        self.api = inference_api
        self.adapter = inference_api.input
        self.on_error = on_error
        self.keep_columns = keep_columns
        from .adapters import DataframeInput

        self.per_row = isinstance(self.adapter, DataframeInput)

    def run(self, chunk: Chunk, parsed: tuple | None = None) -> ChunkResult:
        """The results of ``chunk``; ``parsed``: what :meth:`parse` made of it already."""
        if chunk.kind == "items":
            return self._run_items(chunk)
        frame, numbers, bad = parsed if parsed is not None else self.parse(chunk)
        return self._run_frame(chunk, frame, numbers, bad)

    def parse(self, chunk: Chunk) -> tuple | None:
        """A table chunk's rows as (DataFrame, row numbers or None, refused rows); None
        for items. Mostly pyarrow's C code: it runs beside the model in a reader thread."""
        return None if chunk.kind == "items" else self._frame(chunk)

    # tables

    def _frame(self, chunk: Chunk):
        """The chunk as a DataFrame, the row number of each of its rows (None: counted
        from ``first_row``), and the rows its parser refused as (row, message)."""
        if chunk.kind == "frame":
            data = chunk.data
            if hasattr(data, "to_pandas"):
                data = data.to_pandas()
            return data.reset_index(drop=True), None, []
        if chunk.kind == "csv":
            return _parse_csv_block(chunk.data, chunk.names, chunk.source, chunk.first_row)
        return _parse_jsonl_block(chunk.data, chunk.source, chunk.first_row)

    def _run_frame(self, chunk: Chunk, frame, numbers, bad: list) -> ChunkResult:
        rows = len(frame) + len(bad)
        if numbers is None:
            numbers = np.arange(chunk.first_row, chunk.first_row + len(frame))
        pieces: list[tuple[int, int, Any]] = []
        failed: list[tuple[int, BentoNbError]] = []
        if len(frame):
            try:  # a problem of the whole table (names, width) is never a row's
                self.adapter.check_columns(frame)
            except BadInput as e:
                raise BadInput(f"{chunk.source}: {e.message}") from None
            self._halve(frame, numbers, 0, len(frame), pieces, failed, chunk.source)
        if self.on_error == "fail" and (failed or bad):  # the first bad row, by its number
            if bad and (not failed or bad[0][0] < failed[0][0]):
                raise BadInput(bad[0][1])
            raise failed[0][1]
        messages = [m for _, m in sorted(bad + [(row, e.message) for row, e in failed])]
        if self.on_error == "null" and (failed or bad):
            values, kept = self._with_nulls(frame, numbers, pieces, bad, failed)
        else:
            values = _concat([v for _, _, v in pieces])
            kept = None
            if self.keep_columns:
                kept = _take(frame, [(s, e) for s, e, _ in pieces])
        result = ChunkResult(chunk.index, values, kept, rows=rows, size=chunk.size,
                             errors=messages[:5])
        if self.on_error == "skip":
            result.skipped = len(bad) + len(failed)
        elif self.on_error == "null":
            result.nulls = len(bad) + len(failed)
        return result

    def _halve(self, frame, numbers, start: int, stop: int, pieces: list, failed: list,
               source: str) -> None:
        """Run rows ``start:stop``; when that fails, each half, down to single rows,
        which are then the bad rows (with fail, the first bad row ends the search)."""
        if start >= stop or (failed and self.on_error == "fail"):
            return
        try:
            payload = self.adapter.from_frame(frame.iloc[start:stop],
                                              first_row=int(numbers[start]))
            pieces.append((start, stop, self.api.run_batch([payload])[0]))
            return
        except BentoNbError as e:
            if stop - start == 1:
                failed.append((int(numbers[start]), _located(e, source, int(numbers[start]))))
                return
        middle = (start + stop) // 2
        self._halve(frame, numbers, start, middle, pieces, failed, source)
        self._halve(frame, numbers, middle, stop, pieces, failed, source)

    def _with_nulls(self, frame, numbers, pieces, bad, failed):
        """Every row of the chunk in order, a null result for each bad one."""
        import pandas as pd

        by_row: dict[int, Any] = {}
        for start, stop, values in pieces:
            for offset, value in enumerate(_as_list(values)):
                by_row[int(numbers[start + offset])] = value
        for row, _ in failed:
            by_row[row] = None
        for row, _ in bad:
            by_row[row] = None
        order = sorted(by_row)
        values = [by_row[r] for r in order]
        kept = None
        if self.keep_columns:
            parsed = {int(n): i for i, n in enumerate(numbers)}
            empty = [None] * frame.shape[1]
            kept = pd.DataFrame([list(frame.iloc[parsed[r]]) if r in parsed else empty
                                 for r in order], columns=frame.columns, dtype=object)
        return values, kept

    # one item at a time (file, text and JSON APIs)

    def _run_items(self, chunk: Chunk) -> ChunkResult:
        media = self.adapter.media_types[0]
        values: list[Any] = []
        labels: list[str] = []
        messages: list[str] = []
        skipped = nulls = 0
        parsed: list[tuple[str, Any]] = []
        for label, body in chunk.data:
            try:
                parsed.append((label, self.adapter.parse(body, media)))
            except BentoNbError as e:
                if self.on_error == "fail":
                    raise _labelled(e, label) from None
                parsed.append((label, e))
        good = [(i, p) for i, (_, p) in enumerate(parsed) if not isinstance(p, BentoNbError)]
        results: dict[int, Any] = {}
        self._halve_items(good, results)
        for i, (label, payload) in enumerate(parsed):
            outcome = results.get(i, payload)
            if isinstance(outcome, BentoNbError):
                if self.on_error == "fail":
                    raise _labelled(outcome, label) from None
                messages.append(f"{label}: {outcome.message}")
                if self.on_error == "skip":
                    skipped += 1
                    continue
                nulls += 1
                outcome = None
            values.append(outcome)
            labels.append(label)
        frame = None
        if self.keep_columns:
            import pandas as pd

            frame = pd.DataFrame({"input": labels})
        return ChunkResult(chunk.index, values, frame, rows=len(parsed), skipped=skipped,
                           nulls=nulls, errors=messages[:5], size=chunk.size)

    def _halve_items(self, items: list, results: dict) -> None:
        if not items:
            return
        try:
            if self.api.batch:
                out = self.api.run_batch([p for _, p in items])
            else:
                out = [self.api.run_one(p) for _, p in items]
        except BentoNbError as e:
            if len(items) == 1:
                results[items[0][0]] = e
                return
            middle = len(items) // 2
            self._halve_items(items[:middle], results)
            self._halve_items(items[middle:], results)
            return
        for (i, _), value in zip(items, out):
            results[i] = value


def _labelled(error: BentoNbError, label: str) -> BentoNbError:
    import copy

    located = copy.copy(error)
    located.args = (f"{label}: {error.message}",)
    return located


def _located(error: BentoNbError, source: str, row: int) -> BentoNbError:
    """``error`` of one row, of the same class, its message naming the source and row."""
    import copy

    where = f"row {row}"
    message = error.message
    located = copy.copy(error)
    located.args = (f"{source}: {message}" if where in message
                    else f"{source} {where}: {message}",)
    return located


def _parse_csv_block(data: bytes, names: tuple | None, source: str, first_row: int):
    """A block of CSV lines as a DataFrame (:func:`~bento_nb.adapters.csv_reading.read_block`),
    the row number of each of its rows, and its ragged lines as (row, message). Rows are
    numbered by line after the header, blank lines included, as an editor shows them."""
    from .adapters.csv_reading import read_block

    try:
        frame, ragged = read_block(data, names)
    except BadInput as e:
        last = first_row + data.count(b"\n")
        raise BadInput(f"{source} rows {first_row}-{last}: {e.message}") from None
    if not ragged and b"\n\n" not in data and b"\n\r\n" not in data \
            and not data.startswith((b"\n", b"\r\n")):
        return frame, None, []
    numbers, bad = [], []
    pending = [(actual, expected, text.rstrip("\r")) for actual, expected, text in ragged]
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        row = first_row + offset
        if pending and line.rstrip(b"\r").decode("utf-8", "replace") == pending[0][2]:
            actual, expected, _ = pending.pop(0)
            bad.append((row, f"{source} row {row}: CSV row has {actual} values, "
                             f"expected {expected}"))
            continue
        numbers.append(row)
    return frame, np.array(numbers[:len(frame)]), bad


def _parse_jsonl_block(data: bytes, source: str, first_row: int):
    """A block of JSON Lines (records or lists of values) as a DataFrame, and its lines
    that are not JSON as (row, message)."""
    import pandas as pd

    lines = data.split(b"\n")
    kept = [(first_row + i, ln) for i, ln in enumerate(lines) if ln.strip()]
    try:
        values = json.loads(b"[" + b",".join(ln for _, ln in kept) + b"]")
        numbers = [n for n, _ in kept]
        bad: list[tuple[int, str]] = []
    except ValueError:
        values, numbers, bad = [], [], []
        for number, line in kept:
            try:
                values.append(json.loads(line))
                numbers.append(number)
            except ValueError as e:
                bad.append((number, f"{source} row {number}: not JSON: {e}"))
    if values and all(isinstance(v, dict) for v in values):
        frame = pd.DataFrame.from_records(values)
    elif values and all(isinstance(v, list) for v in values):
        widths = {len(v) for v in values}
        if len(widths) > 1:
            raise BadInput(f"{source}: JSON Lines rows near row {first_row} have "
                           "different lengths")
        frame = pd.DataFrame(values)
    elif not values:
        frame = pd.DataFrame()
    else:
        raise BadInput(f"{source} row {first_row}: expected one record or one list of values "
                       "per line")
    return frame, np.array(numbers), bad


def _as_list(values) -> list:
    if isinstance(values, np.ndarray):
        return list(values)
    if hasattr(values, "tolist"):
        return values.tolist()
    return list(values)


def _concat(parts: list) -> Any:
    if len(parts) == 1:
        return parts[0]
    if parts and all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    out: list = []
    for p in parts:
        out.extend(_as_list(p))
    return out


def _take(frame, ranges: list[tuple[int, int]]):
    import pandas as pd

    if len(ranges) == 1 and ranges[0] == (0, len(frame)):
        return frame
    if not ranges:
        return frame.iloc[0:0]
    return pd.concat([frame.iloc[s:e] for s, e in ranges], ignore_index=True)


# -- outputs ------------------------------------------------------------------------------


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
        from .adapters import dumps_json

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
        from .adapters import dumps_json

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
    from .adapters import to_jsonable

    return to_jsonable(value)


class _JsonlSink(_Sink):
    def __init__(self, path, stream=None, keep: bool = False):
        super().__init__(path, stream)
        self.keep = keep

    def write(self, result: ChunkResult) -> None:
        from .adapters import dumps_json, to_jsonable

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


# -- workers ------------------------------------------------------------------------------
#
# Measured on 2 cores (RF(200), 2M rows, --workers 2): the main process spends ~0.5 s of CPU
# reading, sending and writing chunks, the workers are never short of work, and a RF
# predicts on one thread; what held two workers back was start-up. Each spawned worker
# imported numpy, pandas, pyarrow and scikit-learn and unpickled the model (~2 s of CPU
# each) only after the main process had done the same, one after the other: ~4.5 s
# before the first prediction, half of the run's time at 2M rows. Now the workers are
# forked from a fork server that starts first and imports those modules once, while the
# main process loads the bundle; a worker then only unpickles the model (~0.2 s).

# The runner of a worker process: set once by _start_worker (a process-pool initializer).
_WORKER: ChunkRunner | None = None
_LIMITS: Any = None  # the worker's thread limits (threadpoolctl), kept for its lifetime

# Libraries a fork server may import before it forks workers: safe to fork once imported
# (no thread of theirs holds a lock across a fork; OpenBLAS and Arrow reset their thread
# pools in the child). tensorflow, torch and the like are imported by each worker after
# the fork instead.
_FORK_SAFE = frozenset({"numpy", "pandas", "pyarrow", "scipy", "sklearn", "joblib",
                        "threadpoolctl", "cloudpickle"})
_WORKER_MODULES = ("bento_nb.batch", "bento_nb.service", "bento_nb.adapters",
                   "pandas", "pyarrow.csv", "pyarrow.parquet")
_SCANNED_PICKLE_BYTES = 1 << 24  # a larger pickle is not read for module names


def _start_worker(spec: tuple, api_name: str, on_error: str, keep: bool,
                  threads: int) -> None:
    global _WORKER, _LIMITS
    service = _service_from_spec(spec)
    _WORKER = ChunkRunner(service.apis[api_name], on_error, keep)
    # N workers on a machine's cores: a model that runs a thread pool (OpenMP, BLAS:
    # xgboost, lightgbm, HistGradientBoosting) gets its share of them, not all of them
    # in every worker, which would oversubscribe the cores N times.
    from threadpoolctl import threadpool_limits

    _LIMITS = threadpool_limits(limits=threads)
    import pyarrow

    pyarrow.set_cpu_count(threads)


def _work(chunk: Chunk) -> ChunkResult:
    return _WORKER.run(chunk)


def _service_spec(target, service) -> tuple:
    """How a worker process gets the service: the bundle's folder, or the live service
    pickled (a model of the notebook that was never packed)."""
    if target.bundle is not None:
        return ("path", str(target.bundle.path))
    import cloudpickle

    return ("pickle", cloudpickle.dumps(service))


def _service_from_spec(spec: tuple):
    if spec[0] == "path":
        from .service import load

        # The main process verified the bundle's checksums when it loaded it, just before
        # starting the workers: each worker hashing every file again would only cost time.
        return load(spec[1], verify=False)
    import cloudpickle

    return cloudpickle.loads(spec[1])


def _worker_context(target):
    """The multiprocessing context of the worker processes, its fork server started now
    (it imports :data:`_WORKER_MODULES` and the bundle's fork-safe libraries while the
    caller loads the bundle). Where there is no fork server (Windows): spawn."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    # Set before the server starts; a server already running (an earlier run in this
    # process) keeps what it imported, and workers import the rest themselves.
    context.set_forkserver_preload(list(_WORKER_MODULES) + _bundle_modules(target))
    forkserver.ensure_running()
    return context


def _bundle_modules(target) -> list[str]:
    """The fork-safe modules the bundle's pickled artifacts refer to (``sklearn.ensemble._forest``
    for a random forest), read from the pickles' opcodes, never by unpickling."""
    from . import _pickling

    bundle = getattr(target, "bundle", None)
    if bundle is None:
        return []
    found: set[str] = set()
    for record in [bundle.manifest.get("service") or {}] + list(
            bundle.manifest.get("artifacts") or []):
        path = bundle.path / str(record.get("file") or "")
        if not str(record.get("file") or "").endswith(".pkl") or not path.is_file() or \
                path.stat().st_size > _SCANNED_PICKLE_BYTES:
            continue
        try:
            found |= _pickling.pickled_modules(path, top_level=False)
        except Exception:  # noqa: BLE001 - a hint for speed only; the worker loads it anyway
            continue
    return sorted(m for m in found if m.split(".")[0] in _FORK_SAFE)


def _results(chunks: Iterable[Chunk], runner: ChunkRunner, options: BatchOptions,
             spec: tuple | None, api_name: str, context=None) -> Iterator[ChunkResult]:
    """Results of ``chunks`` in their order: here, or in ``options.workers`` processes
    (of ``context``) with at most two chunks per worker read ahead."""
    if options.workers <= 1:
        for chunk, parsed in _read_ahead(chunks, runner.parse):
            yield runner.run(chunk, parsed)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // options.workers)
    pool = ProcessPoolExecutor(max_workers=options.workers,
                               mp_context=context or multiprocessing.get_context("spawn"),
                               initializer=_start_worker,
                               initargs=(spec, api_name, options.on_error,
                                         options.keep_columns, threads))
    pending: deque = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(_work, chunk))
            if len(pending) >= 2 * options.workers:
                yield _result_of(pending.popleft())
        while pending:
            yield _result_of(pending.popleft())
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _read_ahead(chunks: Iterable[Chunk], parse, depth: int = 2) -> Iterator[tuple]:
    """``(chunk, parse(chunk))`` in order, read and parsed by a thread up to ``depth``
    chunks ahead, so reading and parsing (pyarrow, without the GIL) overlap the model.
    An error of the reader is raised here, at its place in the order."""
    import queue
    import threading

    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for chunk in chunks:
                item = (chunk, parse(chunk))
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(done)
        except BaseException as e:  # handed to the consumer, raised there
            ready.put(e)

    reader = threading.Thread(target=read, name="bento_nb-batch-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def _result_of(future) -> ChunkResult:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        raise ModelError("a worker process died (out of memory, or the model crashed it); "
                         "try fewer --workers or a smaller --batch-size") from None


# -- running ------------------------------------------------------------------------------


def run(target, api: str | None, inputs: Sequence[str] | Any, options: BatchOptions,
        input_format_name: str | None = None, stream=None, single_result: bool = False,
        sink: "_Sink | None" = None) -> BatchReport:
    """Run ``api`` of ``target`` (a :class:`~bento_nb.actions.Target`) over ``inputs``
    (paths, folders, globs, ``-``; or a DataFrame) and write the results as ``options``
    say (or to ``sink``). ``single_result``: one input file of a file, text or JSON API
    prints its result alone, not in a list (``bento-nb run``). Returns what was done;
    raises a BentoNbError for a bad input or row, leaving no output file."""
    from .actions import pick_api

    # The workers' fork server starts first: it imports their libraries while this
    # process loads the bundle.
    context = _worker_context(target) if options.workers > 1 else None
    service = target.service()
    api_name = pick_api(api, list(service.apis), service.tag or service.name)
    inference_api = service.apis[api_name]
    runner = ChunkRunner(inference_api, options.on_error, options.keep_columns)
    if _is_frame(inputs):
        if not runner.per_row:
            raise UsageError(f"API {api_name!r} takes {inference_api.input.kind} input, "
                             "not a DataFrame")
        chunks: Iterable[Chunk] = _frame_chunks(inputs, options.batch_size)
        total_bytes = None
        total_rows = len(inputs)
    else:
        files = expand_inputs([os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else
                              [os.fspath(p) for p in inputs])
        if input_format_name == "csv" and not runner.per_row:
            raise UsageError(f"API {api_name!r} takes {inference_api.input.kind} input, "
                             "not CSV")
        chunks = read_chunks(files, inference_api.input, input_format_name,
                             options.batch_size, runner.per_row)
        total_bytes = sum(os.path.getsize(f) for f in files if f != "-") or None
        total_rows = _parquet_rows(files, input_format_name)
        single_result = single_result and not runner.per_row and len(files) == 1 and \
            input_format(files[0], input_format_name) != "jsonl"
    if sink is None:
        sink = _sink(options, single=single_result, stream=stream)
    spec = _service_spec(target, service) if options.workers > 1 else None
    report = BatchReport(output=sink.path)
    bar = _Progress(options.progress, total_rows, total_bytes)
    started = time.perf_counter()
    ok = False
    try:
        for result in _results(chunks, runner, options, spec, api_name, context):
            sink.write(result)
            report.rows += result.rows
            report.skipped += result.skipped
            report.nulls += result.nulls
            if len(report.errors) < 5:
                report.errors.extend(result.errors[:5 - len(report.errors)])
            bar.update(result.rows, result.size)
        if report.rows == 0 and not (single_result and sink.written):
            raise BadInput(_no_rows_message(inputs))
        ok = True
    finally:
        bar.close()
        sink.close(ok)
    report.written = sink.written
    report.seconds = time.perf_counter() - started
    return report


def _no_rows_message(inputs) -> str:
    if _is_frame(inputs):
        return "empty input: the DataFrame has no rows"
    names = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    shown = ", ".join(_shown(os.fspath(n)) for n in names[:3])
    return f"no data rows in {shown}: the input is empty or has only a header row"


def _is_frame(value) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "iloc")


def _frame_chunks(frame, batch_size: int) -> Iterator[Chunk]:
    for index, start in enumerate(range(0, len(frame), batch_size)):
        yield Chunk(index, "DataFrame", start + 1, "frame", frame.iloc[start:start + batch_size])


def _parquet_rows(files: Sequence[str], fmt: str | None) -> int | None:
    if not files or any(input_format(f, fmt) != "parquet" for f in files):
        return None
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


class _Progress:
    """A tqdm bar of rows on stderr (rows/s, ETA), when stderr is a terminal. Without a
    row count (CSV, JSON Lines) the total is estimated from the bytes read so far."""

    def __init__(self, enabled: bool | None, rows: int | None, size: int | None):
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        self._size = size
        self._bytes = 0
        self._rows = 0
        self._estimated = False
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=rows, unit=" rows", unit_scale=True, file=sys.stderr,
                             dynamic_ncols=True, smoothing=0.1)

    def update(self, rows: int, size: int) -> None:
        if self._bar is None:
            return
        self._rows += rows
        self._bytes += size
        if self._size and self._bytes and (self._bar.total is None or self._estimated):
            self._estimated = True
            self._bar.total = max(self._rows, round(self._rows * self._size / self._bytes))
        self._bar.update(rows)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def predict(target: Any, source: Any, output: str | None = None, api: str | None = None,
            batch_size: int = DEFAULT_BATCH_SIZE, workers: int = 1, on_error: str = "fail",
            keep_columns: bool = False, input_format: str | None = None,
            progress: bool | None = False) -> Any:
    """Run ``api`` (default: ``predict``, else the first) of ``target`` over ``source`` in
    chunks of ``batch_size`` rows, in ``workers`` processes.

    ``target``: a tag, a bundle folder, a Bundle, a service or a model object.
    ``source``: a DataFrame, or a path, folder, glob or list of them (CSV, JSON Lines,
    JSON, Parquet, by suffix or ``input_format``). Without ``output`` the results come back:
    an array (one result per row; a list when they are not numbers), or a DataFrame of the
    input columns and ``prediction`` with ``keep_columns``. With ``output`` (a ``.csv``,
    ``.jsonl``, ``.json`` or ``.parquet`` path) they are written there as they come and a
    :class:`BatchReport` is returned. ``on_error``: see :class:`BatchOptions`."""
    from .actions import resolve

    options = BatchOptions(output=None if output is None else os.fspath(output),
                           batch_size=batch_size, workers=workers, on_error=on_error,
                           keep_columns=keep_columns, progress=progress)
    if output is not None:
        return run(resolve(target), api, source, options, input_format)
    collected = _Collect(keep_columns)
    run(resolve(target), api, source, options, input_format, sink=collected)
    return collected.value()


class _Collect:
    """A sink that keeps the results in memory (``predict`` without ``output``)."""

    path = None

    def __init__(self, keep: bool):
        self.keep = keep
        self.parts: list = []
        self.written = 0

    def write(self, result: ChunkResult) -> None:
        self.parts.append(_result_frame(result, True) if self.keep else result.values)
        self.written += len(result.values)

    def close(self, ok: bool) -> None:
        pass

    def value(self) -> Any:
        if self.keep:
            import pandas as pd

            return pd.concat(self.parts, ignore_index=True)
        parts = [p for p in self.parts if len(p)]
        if parts and all(isinstance(p, np.ndarray) for p in parts):
            return np.concatenate(parts)
        out: list = []
        for p in parts:
            out.extend(_as_list(p))
        return out

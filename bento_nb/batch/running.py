"""Running chunks through one API: each chunk parsed (pyarrow's C parsers), validated as
the server validates a request (same adapter: width, names, numbers) and the API called
once per chunk::

    runner = ChunkRunner(service.apis["predict"], on_error="skip")
    result = runner.run(chunk)      # a ChunkResult: values, rows, skipped, errors

A bad row (a cell that is not a number, a ragged CSV line, a row the model raises on)
raises with its file and row number (``on_error="fail"``), or is left out (``"skip"``) or
given a null result (``"null"``) and counted. A chunk that fails is split in halves until
the bad rows are alone, so good rows around them still run in batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import BadInput, BentoNbError
from .reading import Chunk


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


class ChunkRunner:
    """Runs chunks through one API: parse, validate as the server does, call, and isolate
    bad rows by halving when ``on_error`` is skip or null."""

    def __init__(self, inference_api, on_error: str = "fail", keep_columns: bool = False):
        self.api = inference_api
        self.adapter = inference_api.input
        self.on_error = on_error
        self.keep_columns = keep_columns
        from ..adapters import DataframeInput

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
            return _parse_csv_block(chunk.data, chunk.names, chunk.source, chunk.first_row,
                                    getattr(self.adapter, "known_names", None))
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


def _parse_csv_block(data: bytes, names: tuple | None, source: str, first_row: int,
                     known: tuple | None = None):
    """A block of CSV lines as a DataFrame (:func:`~bento_nb.adapters.csv_reading.read_block`),
    the row number of each of its rows, and its ragged lines as (row, message). Rows are
    numbered by line after the header, blank lines included, as an editor shows them.
    ``known``: the adapter's own names (see :func:`~bento_nb.adapters.dataframe_input.csv_names`)."""
    import pandas as pd

    from ..adapters.csv_reading import read_block
    from ..adapters.dataframe_input import csv_names

    try:
        frame, ragged = read_block(data, names)
    except BadInput as e:
        last = first_row + data.count(b"\n")
        raise BadInput(f"{source} rows {first_row}-{last}: {e.message}") from None
    if names:  # to_csv()'s index column goes; labels 0..n-1 are positions, as in a request
        columns, index = csv_names(tuple(names), known)
        if index:
            frame = frame.iloc[:, 1:]
        if columns is None:
            frame = frame.set_axis(pd.RangeIndex(frame.shape[1]), axis=1)
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

"""Reading a batch run's input: the files named (paths, folders, globs, ``-``), cut into
:class:`Chunk` s of ``batch_size`` rows without holding more than a chunk::

    for chunk in read_chunks(expand_inputs(["data/*.csv"]), adapter, None, 50_000, True):
        ...   # chunk.kind "csv": whole lines as bytes, chunk.first_row: its first row number

CSV and JSON Lines are cut by lines (a CSV chunk never ends inside a quoted field), and
parsed later, where the model runs (:mod:`.running`); Parquet by row batches; a JSON
document whole; for an API that takes one file, text or document, one item per file (per
line of a ``.jsonl`` for a JSON API).
"""

from __future__ import annotations

import glob as globbing
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import BadInput, NotFound, UsageError

_SUFFIXES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl",
             ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_READ_BLOCK = 1 << 22       # bytes read from a text file at a time


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


def _frame_chunks(frame, batch_size: int) -> Iterator[Chunk]:
    for index, start in enumerate(range(0, len(frame), batch_size)):
        yield Chunk(index, "DataFrame", start + 1, "frame", frame.iloc[start:start + batch_size])


def _parquet_rows(files: Sequence[str], fmt: str | None) -> int | None:
    if not files or any(input_format(f, fmt) != "parquet" for f in files):
        return None
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

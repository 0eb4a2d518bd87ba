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
the model runs (pyarrow parses without the GIL); ``workers=N`` runs N processes (forked
from a fork server that imported their libraries once, each loading the bundle once) that
parse and predict, the results put back in chunk order.

A bad row (a cell that is not a number, a ragged CSV line, a row the model raises on)
stops the run with its file and row number (``on_error="fail"``), or is left out
(``"skip"``) or given a null result (``"null"``) and counted. A chunk that fails is split
in halves until the bad rows are alone, so good rows around them still run in batches.

The parts: :mod:`.reading` (inputs into chunks), :mod:`.running` (a chunk through the
API, bad rows), :mod:`.writing` (results into files, in order), :mod:`.workers` (the
worker processes), :mod:`.options` (the flags); here :func:`run` and :func:`predict`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import BadInput, UsageError
from .options import DEFAULT_BATCH_SIZE, FORMATS, ON_ERROR, BatchOptions
from .reading import (Chunk, _frame_chunks, _parquet_rows, _shown, expand_inputs, input_format,
                      read_chunks)
from .running import ChunkResult, ChunkRunner, _as_list, _concat
from .workers import results, service_spec, worker_context
from .writing import PREDICTION, _result_frame, _Sink, _sink, output_format, to_plain

__all__ = ["BatchOptions", "BatchReport", "Chunk", "ChunkResult", "ChunkRunner",
           "DEFAULT_BATCH_SIZE", "FORMATS", "ON_ERROR", "PREDICTION", "expand_inputs",
           "input_format", "output_format", "predict", "read_chunks", "run", "to_plain"]

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


def run(target, api: str | None, inputs: Sequence[str] | Any, options: BatchOptions,
        input_format_name: str | None = None, stream=None, single_result: bool = False,
        sink: "_Sink | None" = None) -> BatchReport:
    """Run ``api`` of ``target`` (a :class:`~bento_nb.actions.Target`) over ``inputs``
    (paths, folders, globs, ``-``; or a DataFrame) and write the results as ``options``
    say (or to ``sink``). ``single_result``: one input file of a file, text or JSON API
    prints its result alone, not in a list (``bento-nb run``). Returns what was done;
    raises a BentoNbError for a bad input or row, leaving no output file."""
    from ..actions import pick_api

    # The workers' fork server starts first: it imports their libraries while this
    # process loads the bundle.
    context = worker_context(target) if options.workers > 1 else None
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
    spec = service_spec(target, service) if options.workers > 1 else None
    report = BatchReport(output=sink.path)
    bar = _Progress(options.progress, total_rows, total_bytes)
    started = time.perf_counter()
    ok = False
    try:
        for result in results(chunks, runner, options, spec, api_name, context):
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
    from ..actions import resolve

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
        if len(parts) == 1 and not isinstance(parts[0], np.ndarray):
            return _as_list(parts[0])  # a list, as for several parts
        return _concat(parts)

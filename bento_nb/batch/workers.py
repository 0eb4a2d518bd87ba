"""Running chunks in ``--workers N`` processes, results in input order::

    context = worker_context(target)        # first: its fork server starts importing
    service = target.service()               # ... while this process loads the bundle
    for result in results(chunks, runner, options, spec, "predict", context):
        ...

With one worker a reader thread reads and parses the next chunks while the model runs
(pyarrow parses without the GIL). With N, N processes (each with the service loaded once)
parse and predict; the main process reads chunks, sends each to a worker (at most two per
worker ahead, so memory stays bounded) and takes the results back in chunk order.

Measured on 2 cores (RF(200), 2M rows, --workers 2): the main process spends ~0.5 s of CPU
reading, sending and writing chunks, the workers are never short of work, and a RF
predicts on one thread; what held two workers back was start-up. Each spawned worker
imported numpy, pandas, pyarrow and scikit-learn and unpickled the model (~2 s of CPU
each) only after the main process had done the same, one after the other: ~4.5 s
before the first prediction, half of the run's time at 2M rows. Now the workers are
forked from a fork server that starts first and imports those modules once, while the
main process loads the bundle; a worker then only unpickles the model (~0.2 s).
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..errors import ModelError
from .reading import Chunk
from .running import ChunkResult, ChunkRunner, _read_ahead

if TYPE_CHECKING:
    from .options import BatchOptions

# The runner of a worker process: set once by _start_worker (a process-pool initializer).
_WORKER: ChunkRunner | None = None
_LIMITS: Any = None  # the worker's thread limits (threadpoolctl), kept for its lifetime

# Libraries a fork server may import before it forks workers: safe to fork once imported
# (no thread of theirs holds a lock across a fork; OpenBLAS and Arrow reset their thread
# pools in the child). tensorflow, torch and the like are imported by each worker after
# the fork instead.
_FORK_SAFE = frozenset({"numpy", "pandas", "pyarrow", "scipy", "sklearn", "joblib",
                        "threadpoolctl", "cloudpickle"})
_WORKER_MODULES = ("bento_nb.batch.workers", "bento_nb.service", "bento_nb.adapters",
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


def service_spec(target, service) -> tuple:
    """How a worker process gets the service: the bundle's folder, or the live service
    pickled (a model of the notebook that was never packed)."""
    if target.bundle is not None:
        return ("path", str(target.bundle.path))
    import cloudpickle

    return ("pickle", cloudpickle.dumps(service))


def _service_from_spec(spec: tuple):
    if spec[0] == "path":
        from ..service import load

        # The main process verified the bundle's checksums when it loaded it, just before
        # starting the workers: each worker hashing every file again would only cost time.
        return load(spec[1], verify=False)
    import cloudpickle

    return cloudpickle.loads(spec[1])


def worker_context(target):
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
    """The fork-safe modules the bundle's pickles refer to (``sklearn.ensemble._forest`` for
    a random forest), read from the pickles' opcodes, never by unpickling."""
    from .. import _pickling

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
        except (OSError, ValueError):  # a hint for speed only: the worker loads it anyway
            continue
    return sorted(m for m in found if m.split(".")[0] in _FORK_SAFE)


def results(chunks: Iterable[Chunk], runner: ChunkRunner, options: BatchOptions,
            spec: tuple | None, api_name: str, context=None) -> Iterator[ChunkResult]:
    """Results of ``chunks`` in their order: here, or in ``options.workers`` processes
    (of ``context``) with at most two chunks per worker read ahead."""
    if options.workers <= 1:
        for chunk, parsed in _read_ahead(chunks, runner.parse):
            yield runner.run(chunk, parsed)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, usable_cores() // options.workers)
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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, as a container sets it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _result_of(future) -> ChunkResult:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        raise ModelError("a worker process died (out of memory, or the model crashed it); "
                         "try fewer --workers or a smaller --batch-size") from None

"""``bento-nb serve``: the server in the foreground, in one or several processes.

With ``--workers 1`` the server runs on the main thread until SIGINT/SIGTERM. With
``--workers N`` the bundle is loaded once, then N processes are forked, all accepting on
ONE listening socket (one accept queue). With a socket per worker (``SO_REUSEPORT``) the
kernel assigns each connection to a worker's queue when it arrives, and a worker that dies
(``kill -9``) takes the connections queued for it down with it; on one shared queue the
others simply accept them (measured: 1-7 connections lost per ``kill -9`` with
``SO_REUSEPORT``, none shared). The parent only supervises: it keeps its copy of the
socket to fork a replacement for a worker that dies, and on SIGINT/SIGTERM closes that
copy at once, then forwards the signal, after which every worker accepts what is queued,
closes its copy, drains and exits; when the last copy closes the port refuses new
connections instead of queueing ones nobody will serve.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import gc
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

from ..errors import UsageError
from . import registry
from .config import ServerConfig
from .address import is_loopback, url_for
from .runner import ModelServer, bind, new_event_loop, warn_if_public

_MAX_RESTARTS = 20


def run_cli(tag: str | list[str], config: ServerConfig, workers: int = 1) -> int:
    """Serve bundle ``tag`` (a tag or a bundle folder) with ``config`` until interrupted;
    returns the exit code. Several tags: versions of one bundle shared by
    ``config.weights`` (``--split``). ``config.follow`` (``--watch``): swap in each newer
    version of the name as it is packed; every worker follows on its own (each polls the
    store and swaps when its copy of the new version answered its example)."""
    from ..service import load
    from ..store import Tag, looks_like_path
    from .versions import check_members, check_weights

    if workers is None or int(workers) < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    tags = [tag] if isinstance(tag, str) else list(tag)
    weights = check_weights(config.weights, len(tags))
    if weights is not None and len(tags) == 1:
        raise UsageError("--split shares requests among several versions: give two or more "
                         "tags, e.g. bento-nb serve Iris:v1 Iris:v2 --split 90,10")
    follow = bool(config.follow)
    if follow and len(tags) > 1:
        raise UsageError("--watch follows one name; a split serves the versions it was given")
    if follow and (looks_like_path(tags[0]) or Tag.parse(tags[0]).version is not None):
        raise UsageError(f"--watch follows a bundle name: give {tags[0].split(':')[0]!r}, "
                         f"not {tags[0]!r} (a version or a folder is one version)")
    limit_model_threads(int(workers))
    services = [load(t) for t in tags]
    if len(services) > 1:
        check_members(services)
    service = services[0]
    sockets, bound, _ = bind(config)
    warn_if_public(config)
    url = url_for(config.host, bound)
    secret = registry.new_secret()  # shared by the workers: they answer for one record
    control = registry.new_secret()
    record = {"pid": os.getpid(), "host": config.host, "port": bound, "url": url,
              "tag": service.tag, "name": service.name, "apis": list(service.apis),
              "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "secret": secret, "control": control, **registry.owner()}
    where = "" if is_loopback(config.host) else f"; listening on {config.host or '*'}:{bound}"
    what = service.tag or service.name
    if len(services) > 1:
        total = sum(weights)
        what = " + ".join(f"{s.tag} ({100 * w / total:g}%)" for s, w in zip(services, weights))
    elif follow:
        what += f" (following new versions of {service.name})"
    print(f"bento-nb: serving {what} at {url} "
          f"(docs {url}/, {workers} worker{'s' if workers > 1 else ''}{where}; Ctrl-C to stop)",
          flush=True)
    registry.write_record(record)
    gc.collect()
    gc.freeze()  # see _SWITCH_INTERVAL's note: no collection walks the model and libraries
    try:
        served = services if len(services) > 1 else service
        if workers == 1:
            _run_worker(served, config, sockets, identity_secret=secret,
                        control_token=control, follow=follow, record=record)
        else:
            _supervise(served, config, sockets, secret, int(workers),
                       control_token=control, follow=follow, record=record)
    finally:
        registry.remove_record(record["pid"], bound)
    print("bento-nb: stopped", flush=True)
    return 0


# The event loop thread makes many short syscalls (each releases the GIL) while the model thread
# runs Python between numpy calls; with CPython's default 5 ms switch interval the loop
# can wait that long to get the GIL back. A shorter interval measured ~15 % more requests/s
# at 64 clients (bench/serve.py). Only set in processes bento-nb owns (not in a kernel).
# Likewise those processes move everything loaded before serving (the model, numpy, pandas,
# scikit-learn, uvicorn: ~130,000 objects) out of the garbage collector's reach with
# gc.freeze(): a full collection walked them all, ~70 ms with the event loop stopped, and ran
# every few seconds under load. Forked workers also keep those pages shared.
_SWITCH_INTERVAL = 0.001


def limit_model_threads(workers: int) -> None:
    """Give the OpenMP libraries (torch, xgboost, lightgbm) one thread per core left to the
    worker after its event loop's: ``cpu_count // workers - 1``, at least 1, unless the user
    set ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``. Set before the bundle (and so the
    framework) is loaded, when those libraries read it. Their default, a thread per core,
    spin-waits at every parallel region for threads the event loop and the other workers
    need: measured on 2 shared cores, a batch of 48 rows through a 4-256-256-3 torch MLP
    took 2.3 ms with 2 threads and 0.12 ms with 1, an xgboost predict 4.4 ms against 0.3 ms
    (bench/frameworks.py). Only in processes bento-nb owns (never in a notebook's kernel)."""
    from .. import config

    if config.model_threads_given():
        return
    threads = max(1, (os.cpu_count() or 1) // max(1, workers) - 1)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _report(message: str) -> None:
    """A hot swap or a refused version, as a log line of ``bento-nb serve --watch``."""
    print(f"bento-nb: [pid {os.getpid()}] {message}", file=sys.stderr, flush=True)


def _run_worker(service: Any, config: ServerConfig, sockets: list[socket.socket],
                metrics_dir: str | None = None, identity_secret: str | None = None,
                control_token: str | None = None, record_pid: int | None = None,
                follow: bool = False, record: dict | None = None) -> None:
    """Serve on the main thread until SIGINT/SIGTERM, then drain and return. ``POST
    /.bento/stop`` (the Jupyter panel) sends SIGTERM to ``record_pid``, the process of the
    registry record (this one, or the ``--workers`` supervisor): the same drain as Ctrl-C.
    ``record``: the server's registry record, rewritten with the new tag after a hot
    swap (by one worker only)."""
    sys.setswitchinterval(_SWITCH_INTERVAL)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = ModelServer(service, config, metrics_dir=metrics_dir,
                         identity_secret=identity_secret, control_token=control_token,
                         follow=follow, report=_report)
    stop_pid = record_pid or os.getpid()
    server.on_stop_request = lambda: os.kill(stop_pid, signal.SIGTERM)
    if record is not None:
        server.on_swap.append(lambda: registry.write_record(
            {**record, "tag": server.current_service().tag}))
    server.start(sockets)
    stopping: list = []

    def request_stop() -> None:
        if not stopping:
            busy = server.state.in_flight if server.state else 0
            print(f"bento-nb: stopping (pid {os.getpid()}): draining {busy} request(s) "
                  "in flight", flush=True)
            stopping.append(asyncio.ensure_future(server.shutdown()))
            stopping[0].add_done_callback(lambda _f: loop.stop())

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    try:
        loop.run_forever()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        loop.close()


def _supervise(service: Any, config: ServerConfig, sockets: list[socket.socket],
               identity_secret: str | None = None, workers: int = 2,
               control_token: str | None = None, follow: bool = False,
               record: dict | None = None) -> None:
    supervisor = os.getpid()
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False
    restarts = 0
    try:  # where the workers share their metrics, so /metrics counts all of them
        metrics_dir: str | None = tempfile.mkdtemp(prefix="bento-nb-metrics-")
    except OSError as e:
        metrics_dir = None
        print(f"bento-nb: warning: no writable temp folder ({e.strerror or e}): /metrics "
              "shows the figures of the worker that answers it", file=sys.stderr)

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _run_worker(service, config, sockets, metrics_dir, identity_secret,
                            control_token, record_pid=supervisor, follow=follow,
                            record=record if index == 0 else None)  # one writer
            except BaseException:  # noqa: BLE001 - report, then leave without cleanup
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    def close_listeners() -> None:
        for s in sockets:
            s.close()

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        close_listeners()  # the workers' copies are the last: the port closes with them
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for index in range(workers):
            spawn(index)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            index = children.pop(pid, None)
            if index is None or stopping:
                continue
            restarts += 1
            if restarts > _MAX_RESTARTS:
                print("bento-nb: error: workers keep dying; stopping", file=sys.stderr)
                forward(signal.SIGTERM, None)
                continue
            print(f"bento-nb: worker {pid} exited ({_describe(status)}); restarting",
                  file=sys.stderr, flush=True)
            spawn(index)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        close_listeners()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.WEXITSTATUS(status)}"

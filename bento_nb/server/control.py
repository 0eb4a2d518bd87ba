"""Control routes of a prediction server, for the Jupyter panel: stop it, read its figures.

    POST /.bento/stop    X-Bento-Control: <token>   202 {"stopping": true}, then drain and stop
    GET  /.bento/stats   X-Bento-Control: <token>   200 the live figures the widget shows

The token is the ``control`` field of the server's registry record (a user-only file, see
:mod:`.registry`), compared in constant time; without it both routes answer 403, and a
server that has no record (nor a stop action) answers 404. The Jupyter extension sends the
token only to a process that first proved the record's secret (:mod:`bento_nb.jupyter.identity`).

What "stop" does is the owner's choice, given as ``state.request_stop``: an in-kernel server
stops its :class:`~.runner.ServerHandle` from another thread (its widget then reads
"stopped"); ``bento-nb serve`` sends itself (or its ``--workers`` supervisor) SIGTERM,
which drains and exits 0 as Ctrl-C does. It runs after the answer is on its way: a draining
server waits for a quiet moment before it closes connections.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..errors import Forbidden, MethodNotAllowed, NotFound
from .registry import control_matches

STOP_PATH = "/.bento/stop"
STATS_PATH = "/.bento/stats"
PATHS = frozenset((STOP_PATH, STATS_PATH))
HEADER = "X-Bento-Control"
_HEADER = HEADER.lower().encode()
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


def answer(state: Any, scope: dict) -> tuple[int, bytes, list]:
    """``(status, body, headers)`` for a request to one of :data:`PATHS`; raises a
    :class:`~bento_nb.errors.BentoNbError` to refuse it. A granted stop is scheduled on the
    running loop (``state.request_stop`` then runs once the answer is sent)."""
    path, method = scope["path"], scope["method"]
    wanted = "POST" if path == STOP_PATH else "GET"
    if method != wanted and not (wanted == "GET" and method == "HEAD"):
        raise MethodNotAllowed(f"method {method} is not allowed on {path}; use {wanted}",
                               allow=[wanted])
    if not state.control_token or (path == STOP_PATH and state.request_stop is None):
        raise NotFound(f"this server has no registry record: {path} is not available")
    given = next((value for name, value in scope["headers"] if name == _HEADER), None)
    if not control_matches(state.control_token, given):
        raise Forbidden(f"{path} needs the {HEADER} token of this server's registry record")
    if path == STATS_PATH:
        return 200, json.dumps(_stats(state)).encode(), _JSON
    if not state.draining:
        asyncio.get_running_loop().call_soon(state.request_stop)
    return 202, b'{"stopping":true}', _JSON


def _stats(state: Any) -> dict:
    """:meth:`~.metrics.Metrics.summary` of this server; under ``--workers N`` the request
    and error counts are summed over every worker (at most a second old), the rate and
    latencies are those of the worker that answered (``"workers": "summed"`` says so)."""
    metrics = state.metrics
    stats = {**metrics.summary(), "in_flight": state.in_flight}
    if metrics.shared_dir is not None:
        stats["requests"], stats["errors"] = metrics.traffic_totals()
        stats["workers"] = "summed"
    return stats

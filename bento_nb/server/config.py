"""Every knob of the prediction server in one record.

``serve()``, the CLI and the notebook all build a :class:`ServerConfig`; nothing else in
``bento_nb.server`` reads options from anywhere else (environment variables come through
:mod:`bento_nb.config`)::

    config = ServerConfig(port=0, max_batch_size=32, max_latency_ms=50)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .. import config as _env
from ..errors import UsageError
from ..options import option
from .versions import check_weights, parse_split

DEFAULT_MAX_BATCH_SIZE = 100
DEFAULT_MAX_LATENCY_MS = 100.0
# Past a minute the client has usually given up: 60 s is the read timeout of nginx's
# proxy_pass and the idle timeout of AWS load balancers in front of a server.
DEFAULT_REQUEST_TIMEOUT = 60.0


@dataclass
class ServerConfig:
    """Options of one server.

    ``max_batch_size``   most requests one model call may take (batch APIs).
    ``max_latency_ms``   latency budget: a batch is never grown beyond what the fitted
                         batch-time model ``a*n + b`` says fits in this budget.
    ``max_queue``        requests waiting per API before new ones get 503 + Retry-After.
    ``max_body_bytes``   larger request bodies get 413.
    ``api_token``        when set, API routes, /metadata and /metrics need
                         ``Authorization: Bearer <token>``; defaults to $BENTO_NB_API_TOKEN.
    ``drain_timeout``    seconds ``stop()`` waits for in-flight requests.
    ``body_timeout``     seconds a client may take to send a request body; a client that
                         stalls longer is disconnected (no slowloris holding sockets).
    ``header_timeout``   seconds a client may take to send a request line and headers
                         (from its first byte; from the connection's opening for the
                         first request); a slower connection is closed (slowloris).
    ``max_connections``  most open client connections; at the cap the connection idle
                         longest is closed to make room, and when all are busy new ones
                         wait in the kernel's backlog. Lowered to what the open-file limit
                         leaves.
    ``follow``           swap in each newer version of the served bundle's name once it
                         loaded and answered its example (:mod:`.versions`); None: the
                         front end decides (on for ``serve("Iris")`` and ``%bento serve``
                         of a name or live object, off for ``bento-nb serve`` without
                         ``--watch``, never for a pinned ``Name:version``).
    ``weights``          the shares of the versions of a split (``--split 90,10``).
    ``request_timeout``  seconds a request may wait for the model (queue + model call): past
                         it the answer is 504 ``DeadlineExceeded`` and /readyz turns 503 while
                         one model call runs longer. A request that would not be answered
                         within it (queue ahead x fitted batch time) gets 503 + Retry-After
                         at once. Default 60 s: the read timeout of the proxies and load
                         balancers usually in front of a server (nginx, AWS), past which
                         the client has gone anyway.
    """

    host: str = option("127.0.0.1", "--host", "address to bind (0.0.0.0 for all interfaces)")
    port: int = option(5000, "--port", "port to listen on (0 picks a free one)")
    max_batch_size: int = option(DEFAULT_MAX_BATCH_SIZE, "--max-batch-size",
                                 "most requests one model call may take")
    max_latency_ms: float = option(DEFAULT_MAX_LATENCY_MS, "--max-latency-ms",
                                   "latency budget of one batch, in ms")
    max_queue: int = option(1024, "--max-queue",
                            "requests waiting per API before new ones get 503")
    max_body_bytes: int = option(20 * 1024 * 1024, "--max-body-bytes",
                                 "larger request bodies get 413")
    api_token: str | None = option(None, "--api-token",
                                   "require 'Authorization: Bearer TOKEN' on API routes "
                                   "(or $BENTO_NB_API_TOKEN)", type=str, metavar="TOKEN")
    port_fallback: bool = False
    drain_timeout: float = option(10.0, "--drain-timeout",
                                  "seconds stop waits for requests in flight", metavar="S")
    body_timeout: float = option(60.0, "--body-timeout",
                                 "seconds a client may take to send a body", metavar="S")
    header_timeout: float = option(10.0, "--header-timeout",
                                   "seconds a client may take to send its request headers",
                                   metavar="S")
    max_connections: int = option(1000, "--max-connections",
                                  "most open client connections (the idle longest is "
                                  "closed to make room)")
    retry_after_s: int = 1
    request_timeout: float = option(DEFAULT_REQUEST_TIMEOUT, "--request-timeout",
                                    "a request not answered by the model within it gets 504, "
                                    "one that would not be gets 503 at once", metavar="S")
    follow: bool | None = option(None, "--watch",
                                 "follow new versions of the bundle's name: each one packed "
                                 "is loaded, warmed with its example and swapped in without "
                                 "a failed request", type=bool)
    weights: tuple | None = option(None, "--split",
                                   "share requests among the versions given, e.g. --split "
                                   "90,10 for TAG:v1 TAG:v2 (the same X-Bento-Route-Key "
                                   "header always reaches the same version)",
                                   type=parse_split, metavar="W1,W2")

    def __post_init__(self) -> None:
        if self.max_batch_size is None:
            self.max_batch_size = DEFAULT_MAX_BATCH_SIZE
        if self.max_latency_ms is None:
            self.max_latency_ms = DEFAULT_MAX_LATENCY_MS
        if self.api_token is None:
            self.api_token = _env.api_token()
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise UsageError(f"invalid port {self.port!r}: use 0-65535 (0 picks a free port)")
        if int(self.max_batch_size) < 1:
            raise UsageError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if float(self.max_latency_ms) <= 0:
            raise UsageError(f"max_latency_ms must be positive, got {self.max_latency_ms}")
        if int(self.max_queue) < 1:
            raise UsageError(f"max_queue must be at least 1, got {self.max_queue}")
        if self.request_timeout is None:
            self.request_timeout = DEFAULT_REQUEST_TIMEOUT
        try:
            timeout = float(self.request_timeout)
        except (TypeError, ValueError):
            timeout = math.nan
        if not timeout > 0 or math.isinf(timeout):
            raise UsageError(f"request_timeout must be a positive number of seconds, got "
                             f"{self.request_timeout!r}")
        self.request_timeout = timeout
        if int(self.max_connections) < 1:
            raise UsageError(f"max_connections must be at least 1, got {self.max_connections}")
        self.max_connections = int(self.max_connections)
        for name in ("header_timeout", "body_timeout"):
            try:
                seconds = float(getattr(self, name))
            except (TypeError, ValueError):
                seconds = math.nan
            if not seconds > 0 or math.isinf(seconds):
                raise UsageError(f"{name} must be a positive number of seconds, got "
                                 f"{getattr(self, name)!r}")
            setattr(self, name, seconds)
        if int(self.max_body_bytes) < 1:
            raise UsageError(f"max_body_bytes must be at least 1, got {self.max_body_bytes}")
        self.max_batch_size = int(self.max_batch_size)
        self.max_latency_ms = float(self.max_latency_ms)
        self.max_queue = int(self.max_queue)
        self.max_body_bytes = int(self.max_body_bytes)
        self.api_token = self.api_token or None
        if self.weights is not None:  # one per version: checked where the versions are known
            self.weights = check_weights(self.weights)
        if self.follow is not None:
            self.follow = bool(self.follow)

    @property
    def public(self) -> dict:
        """The options safe to show (/metadata): everything but the token."""
        out = asdict(self)
        out["api_token"] = bool(self.api_token)
        return out

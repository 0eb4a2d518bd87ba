"""HTTP routes of the prediction server: one raw ASGI app, routed by a dict lookup.

    POST /<api route>   parse + validate the body with the API's adapter, then batch
    GET  /              Swagger UI, from the swagger-ui-bundle package (no CDN); with
                        ``@web_static_content``, that folder's index.html
    GET  /docs          Swagger UI (always)
    GET  /docs.json     OpenAPI 3 document
    GET  /<file>        with ``@web_static_content``: the folder's files (:mod:`.static`),
                        after every route above
    GET  /healthz       liveness            GET /readyz    readiness (503 while starting,
                                                           stopping, or an API's model
                                                           thread is gone or stuck)
    GET  /metrics       Prometheus text     GET /metadata  service, APIs, options, pid
    GET  /.bento/identity?nonce=N   proof of the registry record's secret (Jupyter proxy)
    POST /.bento/stop, GET /.bento/stats   the Jupyter panel's Stop and live figures, with
                        the record's control token (:mod:`.control`)
    /v2/...             the Open Inference Protocol (KServe v2), see :mod:`.oip`: its
                        infer takes the API call path (:meth:`App.oip_request`)

Every error, on every route, is JSON ``{"error": {"type", "message"}}`` rendered by
:func:`bento_nb.errors.render`, with the status of its :mod:`bento_nb.errors` class (under
``/v2`` the protocol's ``{"error": "message"}``, :func:`.oip.render_oip_error`). HEAD
is answered wherever GET is (uvicorn drops the body). The connection layer (uvicorn's
httptools protocol, limits, drain) is :mod:`.transport`.

The API route is the hot path: it reads the body, checks it (stopping, token, size),
parses and validates it on the event loop (in a helper process above
``_OFFLOAD_BYTES``, so that a large body does not hold the loop), queues it on the
dispatcher and, when the model thread replies, sends the JSON bytes the model thread
already serialized. A lone request on an idle server with a fast model is answered inline
(:meth:`.Dispatcher.run_inline`), without the two thread hand-offs.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import mimetypes
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .._version import __version__
from ..errors import (
    BadInput,
    BentoNbError,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ServerError,
    render,
    Unauthorized,
)
from . import control
from .batching import Dispatcher
from .config import ServerConfig
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .oip import HEADER_LENGTH, INFER_ROUTE_LABEL, OpenInference, render_oip_error
from .openapi import build_openapi
from .static import StaticFiles
from .versions import ServedVersion, VersionSet

_JSON = b"application/json"
_OIP_HEADERS = {b"content-encoding": "Content-Encoding",
                b"inference-header-content-length": HEADER_LENGTH}
_log = logging.getLogger("bento_nb.server")
# Bodies at least this large are parsed in a helper process: parsing JSON holds the GIL
# (a thread would not free the event loop), ~50 ms per MB on this machine's iris rows.
_OFFLOAD_BYTES = 256 * 1024


class ServerState:
    """Everything the routes of one server share (passed in, never global).

    ``versions``: the bundle versions served (:mod:`.versions`); ``service``, ``openapi``,
    ``metadata`` and ``oip`` describe the first of them (:meth:`describe`, again after a
    hot swap)."""

    def __init__(self, versions: VersionSet, config: ServerConfig, metrics: Metrics):
        self.versions = versions
        self.config = config
        self.metrics = metrics
        self.draining = False
        self.ready = False
        self.in_flight = 0
        self.last_request = 0.0  # perf_counter() of the last API request seen
        self.pid = os.getpid()
        self.identity_secret: str | None = None  # of this server's registry record
        self.control_token: str | None = None  # of the same record (see .control)
        self.request_stop: Any = None  # () -> None: how POST /.bento/stop stops this server
        token = config.api_token
        self.expected_auth = f"Bearer {token}".encode() if token else None
        self.describe()

    @property
    def dispatchers(self) -> dict[str, Dispatcher]:
        """Every served version's dispatchers (see :meth:`.VersionSet.dispatchers`)."""
        return self.versions.dispatchers()

    @property
    def oip(self) -> OpenInference:
        return self.versions.primary.oip

    def describe(self) -> None:
        """``service``, /docs.json and /metadata from the first served version."""
        service = self.service = self.versions.primary.service
        config = self.config
        self.openapi = json.dumps(build_openapi(service, bool(config.api_token)),
                                  indent=1).encode()
        self.metadata = {
            "name": service.name,
            "version": getattr(service, "version", None),
            "tag": getattr(service, "tag", None),
            "apis": [api.describe() for api in service.apis.values()],
            # svc.pack(name, obj, metadata={...}), as BentoML 0.x showed it
            "artifacts": getattr(service, "artifact_metadata", None) or {},
            "bento_nb_version": __version__,
            "config": config.public,
            "versions": [{"version": m.version, "tag": getattr(m.service, "tag", None),
                          "weight": w}
                         for m, w in zip(self.versions.members, self.versions.weights)],
        }


def swagger_ui_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


_SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="static/swagger-ui/swagger-ui.css">
  <link rel="icon" type="image/png" href="static/swagger-ui/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="static/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="static/swagger-ui/swagger-ui-standalone-preset.js"></script>
  <script src="static/swagger-ui/init.js"></script>
</body>
</html>
"""

_SWAGGER_INIT = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    // Reached through the Jupyter proxy with a cookie login, "Try it out" POSTs need
    // Jupyter's XSRF token; the bento_nb server itself ignores the header.
    requestInterceptor: function (request) {
      var match = document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]+)/);
      if (match) { request.headers["X-XSRFToken"] = match[1]; }
      return request;
    }
  });
};
"""

_STATIC_PREFIX = "/static/swagger-ui/"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_GET_ONLY = "GET, HEAD"


async def _send(send: Any, status: int, body: bytes, headers: list,
                close: bool = False) -> None:
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error_headers(error: BentoNbError) -> tuple[int, list, bytes]:
    status, headers, body = render(error)
    return status, _raw_headers(headers.items()), body


def _oip_error_headers(error: BentoNbError) -> tuple[int, list, bytes]:
    """:func:`_error_headers` with the Open Inference Protocol's body."""
    status, headers, body = render_oip_error(error)
    return status, _raw_headers(headers.items()), body


def _raw_headers(headers: Any) -> list:
    return [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers]


class ApiRoute:
    """What the hot path needs of one API of one served version, looked up once per
    server (and per hot swap), not per request."""

    def __init__(self, state: ServerState, api: Any, dispatcher: Dispatcher,
                 member: ServedVersion):
        self.state = state
        self.member = member
        self.version = member.version  # the version label in /metrics
        self.version_header = member.header  # X-Bento-Version
        self.oip = member.oip
        self.name = api.name
        self.route_label = f"/{api.route}"  # the route label in /metrics
        self.parse = api.input.parse
        self.dispatcher = dispatcher
        self.max_body = state.config.max_body_bytes
        self.max_linger = max(4 * self.max_body, 64 * 1024 * 1024)
        self.too_large = (f"request body is larger than the limit of {self.max_body} bytes; "
                          "send fewer rows per request")
        self.render_error = self._render_error  # the error body (OIP infer: the protocol's)

    def _render_error(self, error: BentoNbError) -> tuple[int, list, bytes]:
        status, headers, body = _error_headers(error)
        return status, [*headers, self.version_header], body

    def _render_oip_error(self, error: BentoNbError) -> tuple[int, list, bytes]:
        status, headers, body = _oip_error_headers(error)
        return status, [*headers, self.version_header], body


_TASKS: set = set()  # the tasks _spawn started, referenced until they end


def _spawn(coroutine: Any) -> None:
    task = asyncio.ensure_future(coroutine)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


class Call:
    """One API request, from its headers to its answer, whichever front reads it (the
    connection layer's own path, or ASGI :meth:`App.api_call`): counted in flight from
    its headers on, refused by its headers when it must be (:meth:`refusal`), its body
    taken (:meth:`take`, a too large one read and dropped up to ``max_linger`` so that
    the client can read its 413 instead of a reset), run (:meth:`App.run`) and answered
    once through ``respond(status, headers, body, close)``, counted in /metrics."""

    __slots__ = ("app", "route", "scope", "endpoint", "respond", "started", "pending",
                 "content_type", "declared", "expects_continue", "chunks", "size",
                 "answered")

    def __init__(self, app: App, route: ApiRoute, scope: dict, respond: Any,
                 endpoint: Any = None):
        self.app = app
        self.route = route
        self.scope = scope
        self.endpoint = endpoint
        self.respond = respond
        self.started = started = time.perf_counter()
        self.chunks: list = []
        self.size = 0
        self.answered = False
        state = app.state
        state.in_flight += 1
        route.member.in_flight += 1
        state.last_request = started
        self.pending = self.refusal()

    def refusal(self) -> BentoNbError | None:
        """What this request gets whatever its body: 413 by its Content-Length, 503 while
        the server stops, 401 without the token; None when it may be run."""
        route, state = self.route, self.app.state
        length = content_type = None
        auth = b""
        self.expects_continue = False
        for name, value in self.scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"authorization":
                auth = value
            elif name == b"expect":
                self.expects_continue = value.lower() == b"100-continue"
        self.content_type = content_type.decode("latin-1") if content_type else None
        self.declared = int(length) if length is not None and length.isdigit() else 0
        if self.declared > route.max_body:
            return PayloadTooLarge(route.too_large)
        if state.draining:
            return route.dispatcher.overloaded("the server is shutting down; retry shortly")
        if state.expected_auth is not None and not hmac.compare_digest(
                auth, state.expected_auth):
            return Unauthorized("missing or wrong token: send 'Authorization: Bearer <token>'")
        return None

    def admit(self) -> bool:
        """False when the request is answered already, by its headers alone: a declared
        body beyond ``max_linger`` (413, the connection closed, nothing read)."""
        if self.declared > self.route.max_linger:
            self.fail(self.pending, close=True)
        return not self.answered

    def take(self, chunk: bytes) -> bool:
        """A chunk of the body; False when the body has run past ``max_linger`` (then it
        is answered 413, and the connection closed: read no more)."""
        size = self.size = self.size + len(chunk)
        route = self.route
        if size > route.max_body:
            self.chunks = []
            if not isinstance(self.pending, PayloadTooLarge):
                self.pending = PayloadTooLarge(route.too_large)
            if size > route.max_linger:
                self.fail(self.pending, close=True)
                return False
        elif self.pending is None and chunk:
            self.chunks.append(chunk)
        return not self.answered

    def complete(self) -> None:
        """The whole body is here: answer the refusal, or run the request."""
        if self.answered:
            return
        pending = self.pending
        if pending is not None:
            return self.fail(pending, close=isinstance(pending, PayloadTooLarge))
        chunks = self.chunks
        self.chunks = []
        self.app.run(self, chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def refuse_unread(self) -> bool:
        """Answer the refusal before the body is sent (a client that waits for ``100
        Continue``), closing the connection after it; False when nothing is refused."""
        if self.pending is None:
            return False
        self.fail(self.pending, close=True)
        return True

    def answer(self, ok: bool, result: Any) -> None:
        """The dispatcher's reply: the JSON bytes of the result, or the error."""
        if not ok:
            return self.fail(result)
        self.finish(200, [(b"content-type", _JSON), self.route.version_header], result)

    def unreadable(self, error: Exception) -> None:
        """Reading or queueing the request raised ``error``: its own answer when it is a
        BentoNbError (400, 415, 503 ...), else a 500 that names it, logged with its
        traceback (a bug of the adapter)."""
        if not isinstance(error, BentoNbError):
            _log.error("reading a request for %s failed", self.route.name, exc_info=error)
            error = ServerError(f"internal error while reading the request: "
                                f"{type(error).__name__}: {error}")
        self.fail(error)

    def fail(self, error: BentoNbError, close: bool = False) -> None:
        status, headers, body = self.route.render_error(error)
        self.finish(status, headers, body, close)

    def finish(self, status: int, headers: list, body: bytes, close: bool = False) -> None:
        if self.answered:
            return
        self.drop()
        route = self.route
        self.app.metrics.observe_request(route.route_label, status,
                                         time.perf_counter() - self.started, route.version)
        self.respond(status, headers, body, close or self.app.state.draining)

    def drop(self) -> None:
        """No longer in flight (answered, or the client went away first)."""
        if not self.answered:
            self.answered = True
            state = self.app.state
            state.in_flight -= 1
            self.route.member.in_flight -= 1


class App:
    """The ASGI application of one server (``App(state)`` is what uvicorn runs)."""

    def __init__(self, state: ServerState):
        self.state = state
        self.metrics = state.metrics
        versions = state.versions
        for member in versions.members:
            self.attach(member)
            if versions.split:  # GET /v2/models/{name}: every version served
                member.oip.list_versions([m.version for m in versions.members])
        # path -> .versions.Choice: its ``only`` is the route while one version is served
        self.api_routes = {f"/{api.route}": versions.choice(f"/{api.route}", f"/{api.route}")
                           for api in state.service.apis.values()}
        self.get_routes = {
            "/": ("/", self.swagger_page),
            "/docs.json": ("/docs.json", self.docs_json),
            "/healthz": ("/healthz", self.healthz),
            "/readyz": ("/readyz", self.readyz),
            "/metrics": ("/metrics", self.metrics_page),
            "/metadata": ("/metadata", self.metadata),
            "/.bento/identity": ("/.bento/identity", self.identity),
            "/docs": ("/docs", self.swagger_page),
        }
        # @web_static_content: its index.html is /, its files come after every route
        self.web_static = StaticFiles.of(state.service)
        if self.web_static is not None and self.web_static.has_index:
            self.get_routes["/"] = ("/", self.web_static_file)
        self.protected = {"/metrics", "/metadata"}
        self._static_dir = swagger_ui_dir()
        self._static = {p.name for p in self._static_dir.iterdir() if p.is_file()}
        self._static_cache: dict[str, bytes] = {}
        self._pool: Any = None  # the parse helper process, made on first large body
        self._lone: list = []  # (call, payload) of lone requests, see _maybe_inline
        # True when the request asking is the only one the server has (set by the
        # connection layer, which sees requests whose bodies are still arriving too).
        self.alone = lambda: state.in_flight == 1

    def attach(self, member: ServedVersion) -> None:
        """Build the routes of a served version (on start, and for a hot swap before it
        is swapped in): its native API routes, its OIP endpoints, and the route of its OIP
        infer — the API call path of the default output's API (its body limit), counted
        under INFER_ROUTE_LABEL, with the protocol's error bodies."""
        state = self.state
        member.oip = OpenInference(member)
        service = member.service
        member.routes = {f"/{api.route}": ApiRoute(state, api, member.dispatchers[api.name],
                                                   member)
                         for api in service.apis.values()}
        oip_route = ApiRoute(state, service.apis[member.oip.default_output],
                             member.dispatchers[member.oip.default_output], member)
        oip_route.route_label = INFER_ROUTE_LABEL
        oip_route.render_error = oip_route._render_oip_error
        member.oip_route = oip_route

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = scope["method"]
        route = self.api_routes.get(path)
        if route is not None:
            if method == "POST":
                return await self.api_call(route.only or route.pick(scope), scope, receive,
                                           send)
            return await self.fail(send, route.route_label, time.perf_counter(),
                                   MethodNotAllowed(f"method {method} is not allowed on "
                                                    f"{path}; use POST", allow=["POST"]))
        started = time.perf_counter()
        entry = self.get_routes.get(path)
        if entry is None and path.startswith(_STATIC_PREFIX):
            entry = ("/static", self.static)
        if entry is None and path in control.PATHS:
            return await self.control(scope, send, started)
        if entry is None and (path == "/v2" or path.startswith("/v2/")):
            return await self.oip_request(scope, receive, send, started)
        if entry is None and self.web_static is not None and self.web_static.find(path):
            entry = ("/web_static_content", self.web_static_file)
        if entry is None:
            routes = ", ".join(f"POST /{api.route}" for api in self.state.service.apis.values())
            return await self.fail(send, "other", started, NotFound(
                f"no route {method} {path}; the APIs are {routes}; see /docs.json"))
        label, handler = entry
        if method not in ("GET", "HEAD"):
            return await self.fail(send, label, started, MethodNotAllowed(
                f"method {method} is not allowed on {path}", allow=["GET", "HEAD"]))
        try:
            if label in self.protected and self.state.expected_auth is not None:
                self.check_token(scope)
            status, body, headers = handler(scope)
        except BentoNbError as error:
            return await self.fail(send, label, started, error)
        except Exception as e:  # noqa: BLE001 - a bug: a JSON 500, the details logged
            _log.exception("%s %s failed", method, path)
            return await self.fail(send, label, started, ServerError(
                f"internal server error: {type(e).__name__}: {e}"))
        self.metrics.observe_request(label, status, time.perf_counter() - started)
        await _send(send, status, body, headers)

    async def control(self, scope: dict, send: Any, started: float) -> None:
        """The panel's routes (:mod:`.control`); not traffic, like /healthz."""
        path = scope["path"]
        try:
            status, body, headers = control.answer(self.state, scope)
        except BentoNbError as error:
            return await self.fail(send, path, started, error)
        self.metrics.observe_request(path, status, time.perf_counter() - started)
        await _send(send, status, body, headers)

    def check_token(self, scope: dict) -> None:
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self.state.expected_auth):
            raise Unauthorized("missing or wrong token: send 'Authorization: Bearer <token>'")

    async def fail(self, send: Any, label: str, started: float, error: BentoNbError,
                   close: bool = False, render_error: Any = _error_headers) -> None:
        """The error answer of a request that is not an API call (those answer through
        their :class:`Call`), counted under ``label``."""
        status, headers, body = render_error(error)
        self.metrics.observe_request(label, status, time.perf_counter() - started)
        await _send(send, status, body, headers, close or self.state.draining)

    # -- the hot path -----------------------------------------------------------------

    def open(self, scope: dict, respond: Any) -> Call | None:
        """For the connection layer (:mod:`.transport`): a :class:`Call` answering through
        ``respond`` when ``scope`` (its headers complete) is a POST to an API route, else
        None (the request goes to the ASGI app)."""
        if scope["method"] != "POST":
            return None
        path = scope["path"]
        choice = self.api_routes.get(path)
        if choice is not None:
            return Call(self, choice.only or choice.pick(scope), scope, respond)
        if path.startswith("/v2/"):
            endpoint, member, error = self._oip_target(scope)
            if endpoint is not None and error is None and endpoint.kind == "infer":
                return Call(self, member.oip_route, scope, respond, endpoint)
        return None

    async def api_call(self, route: ApiRoute, scope: dict, receive: Any, send: Any,
                       endpoint: Any = None) -> None:
        """``POST <api route>`` through ASGI (the connection layer answers most of them
        itself, see :meth:`open`), or with ``endpoint`` an Open Inference Protocol infer:
        the body read from ``receive`` into a :class:`Call`, its answer sent."""
        replied = asyncio.get_running_loop().create_future()

        def respond(status: int, headers: list, body: bytes, close: bool) -> None:
            replied.set_result((status, headers, body, close))

        call = Call(self, route, scope, respond, endpoint)
        try:
            reading = call.admit()
            while reading:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away before its body arrived
                # False: answered already (a body past max_linger)
                reading = call.take(message.get("body", b"")) and message.get("more_body")
            call.complete()
            status, headers, body, close = await replied
        finally:
            call.drop()
        await _send(send, status, body, headers, close)

    def run(self, call: Call, body: bytes) -> None:
        """Answer ``call`` (its whole body read, nothing refused): parse, then the model
        inline (a lone request, see :meth:`.Dispatcher.run_inline`) or through the
        dispatcher; or the OIP infer of :meth:`.OpenInference.infer`."""
        route = call.route
        if call.endpoint is not None:
            return self._oip_infer(call, body)
        try:
            if len(body) >= _OFFLOAD_BYTES:
                return _spawn(self._parse_elsewhere(call, body))
            payload = route.parse(body, call.content_type)
            if self.alone():
                return self._maybe_inline(call, payload)
            route.dispatcher.submit(payload, call.answer)
        except Exception as e:  # noqa: BLE001 - answered, the server keeps serving
            call.unreadable(e)

    def _maybe_inline(self, call: Call, payload: Any) -> None:
        """A request that is alone so far: decided once the event loop has read what else
        was ready (:meth:`_settle`), since requests read in the same turn are batched."""
        if not self._lone:
            asyncio.get_running_loop().call_soon(self._settle)
        self._lone.append((call, payload))

    def _settle(self) -> None:
        """Still alone: answered inline (:meth:`.Dispatcher.run_inline`) when the model
        may be; otherwise every request waiting here goes to its dispatcher."""
        lone, self._lone = self._lone, []
        if len(lone) == 1 and self.alone():
            call, payload = lone[0]
            outcome = call.route.dispatcher.run_inline(payload)
            if outcome is not None:
                return call.answer(*outcome)
        for call, payload in lone:
            try:
                call.route.dispatcher.submit(payload, call.answer)
            except Exception as e:  # noqa: BLE001 - answered, the others still queued
                call.unreadable(e)

    def _oip_infer(self, call: Call, body: bytes) -> None:
        """Hand the body to :meth:`.OpenInference.infer`, which replies once its outputs
        are back from the dispatchers (or at once for a refused request)."""
        route = call.route
        # the headers .oip reads, by their HTTP names (ASGI gives them lower-case)
        headers = {_OIP_HEADERS[name]: value.decode("latin-1")
                   for name, value in call.scope["headers"] if name in _OIP_HEADERS}

        def reply(status: int, out: list, data: bytes) -> None:
            call.finish(status, [*_raw_headers(out), route.version_header], data)

        try:
            route.oip.infer(call.endpoint, body, headers, reply)
        except Exception as e:  # noqa: BLE001 - answered, the server keeps serving
            call.unreadable(e)

    def _oip_target(self, scope: dict) -> tuple[Any, ServedVersion, BentoNbError | None]:
        """The OIP endpoint a ``/v2`` request names (None when no endpoint matches), the
        served version it reaches (the one its path names, else the split's pick) and
        the 404 when that version is not served."""
        raw = scope.get("raw_path")  # undecoded, as .oip.match expects (it unquotes names)
        versions = self.state.versions
        endpoint = self.state.oip.match(raw.decode("latin-1") if raw else scope["path"])
        member = versions.primary
        if endpoint is not None and versions.split:
            if endpoint.version is None:
                member = versions.pick(scope)
            elif (member := versions.find(endpoint.version)) is None:
                served = ", ".join(repr(m.version) for m in versions.members)
                return endpoint, versions.primary, NotFound(
                    f"unknown version {endpoint.version!r} of model {endpoint.model!r}: "
                    f"this server serves versions {served}")
        return endpoint, member, None

    async def oip_request(self, scope: dict, receive: Any, send: Any, started: float) -> None:
        """Every request under ``/v2`` (:mod:`.oip`): ``POST .../infer`` takes the API call
        path; the GET endpoints answer here; errors (404 for an unknown path or model, 405
        for the wrong method) have the protocol's body."""
        state = self.state
        method = scope["method"]
        endpoint, member, error = self._oip_target(scope)
        if error is not None:
            return await self.fail(send, endpoint.route_label, started, error,
                                   render_error=_oip_error_headers)
        if endpoint is not None and endpoint.kind == "infer" and method == "POST":
            return await self.api_call(member.oip_route, scope, receive, send, endpoint)
        label = "/v2" if endpoint is None else endpoint.route_label
        try:
            if endpoint is None:
                raise NotFound(f"no route {method} {scope['path']}; the Open Inference "
                               "Protocol routes are listed in /docs.json")
            if endpoint.protected and state.expected_auth is not None:
                self.check_token(scope)
            member.oip.check(endpoint, method)
            status, headers, body = member.oip.get(endpoint)
        except BentoNbError as error:
            return await self.fail(send, label, started, error, render_error=_oip_error_headers)
        except Exception as e:  # noqa: BLE001 - a bug: a JSON 500, the details logged
            _log.exception("%s %s failed", method, scope["path"])
            return await self.fail(send, label, started, ServerError(
                f"internal server error: {type(e).__name__}: {e}"),
                render_error=_oip_error_headers)
        self.metrics.observe_request(label, status, time.perf_counter() - started)
        await _send(send, status, body, _raw_headers(headers))

    async def _parse_elsewhere(self, call: Call, body: bytes) -> None:
        """Parse a large body in the helper process (JSON parsing holds the GIL, so a
        thread would still stop the event loop, and /healthz, for its whole duration),
        then go on as :meth:`run` does."""
        route, ctype = call.route, call.content_type
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("forkserver"))
        loop = asyncio.get_running_loop()
        try:
            try:
                payload = await loop.run_in_executor(self._pool, route.parse, body, ctype)
            except BentoNbError:
                raise
            except Exception:  # noqa: BLE001 - the pool broke (or cannot pickle): parse here
                _log.warning("parsing in the helper process failed; parsing on the event "
                             "loop", exc_info=True)
                payload = route.parse(body, ctype)
            route.dispatcher.submit(payload, call.answer)
        except Exception as e:  # noqa: BLE001 - answered, the server keeps serving
            call.unreadable(e)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- the other routes: (scope) -> (status, body, headers) ---------------------------

    def healthz(self, scope: dict) -> tuple:
        return 200, b'{"status":"ok"}', [(b"content-type", _JSON)]

    def readyz(self, scope: dict) -> tuple:
        state = self.state
        retry = state.config.retry_after_s
        if state.draining:
            raise Overloaded("the server is shutting down", retry_after=retry)
        if not state.ready:
            raise Overloaded("the server is starting", retry_after=retry)
        problems = {name: reason for name, dispatcher in state.dispatchers.items()
                    if (reason := dispatcher.health()) is not None}
        if problems:
            error = Overloaded("not ready: " + "; ".join(
                f"API {name!r}: {reason}" for name, reason in problems.items()),
                retry_after=retry)
            status, headers, _body = _error_headers(error)
            return status, json.dumps({**error.to_json(), "apis": problems}).encode(), headers
        return 200, b'{"status":"ready"}', [(b"content-type", _JSON)]

    def metadata(self, scope: dict) -> tuple:
        state = self.state
        body = {**state.metadata, "pid": state.pid, "in_flight": state.in_flight}
        return 200, json.dumps(body).encode(), [(b"content-type", _JSON)]

    def identity(self, scope: dict) -> tuple:
        """``{"proof": HMAC(record secret, nonce)}``, so the Jupyter proxy can tell this
        server from another process on the same port without the secret ever crossing the
        wire (see :mod:`.registry`)."""
        from .registry import identity_proof

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        nonce = (query.get("nonce") or [""])[-1]
        if not _NONCE.fullmatch(nonce):
            raise BadInput("nonce must be 16-128 characters of A-Z a-z 0-9 _ -")
        secret = self.state.identity_secret
        if secret is None:
            raise NotFound("this server has no registry record to prove")
        body = json.dumps({"proof": identity_proof(secret, nonce)}).encode()
        return 200, body, [(b"content-type", _JSON), (b"cache-control", b"no-store")]

    def metrics_page(self, scope: dict) -> tuple:
        return 200, self.metrics.render(), [(b"content-type", METRICS_CONTENT_TYPE.encode())]

    def docs_json(self, scope: dict) -> tuple:
        return 200, self.state.openapi, [(b"content-type", _JSON)]

    def swagger_page(self, scope: dict) -> tuple:
        title = html.escape(f"{self.state.service.name} - bento_nb")
        return 200, _SWAGGER_PAGE.format(title=title).encode(), [
            (b"content-type", b"text/html; charset=utf-8")]

    def web_static_file(self, scope: dict) -> tuple:
        return self.web_static.get(scope["path"])

    def static(self, scope: dict) -> tuple:
        """Swagger UI's files: only the names in its folder (no path is ever joined from
        the request, so nothing outside it can be reached)."""
        name = scope["path"][len(_STATIC_PREFIX):]
        if name == "init.js":
            return 200, _SWAGGER_INIT, [(b"content-type", b"application/javascript")]
        if name not in self._static:
            raise NotFound("no such static file")
        body = self._static_cache.get(name)
        if body is None:
            body = self._static_cache[name] = (self._static_dir / name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/javascript":
            kind += "; charset=utf-8"
        return 200, body, [(b"content-type", kind.encode()),
                           (b"cache-control", b"public, max-age=3600")]


def make_app(state: ServerState) -> App:
    """The ASGI application of one server."""
    return App(state)

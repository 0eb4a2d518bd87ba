"""HTTP routes of the prediction server (tornado).

    POST /<api route>   parse + validate the body with the API's adapter, then batch
    GET  /              Swagger UI, from the swagger-ui-bundle package (no CDN)
    GET  /docs.json     OpenAPI 3 document
    GET  /healthz       liveness            GET /readyz    readiness (503 while starting,
                                                           stopping, or an API's model
                                                           thread is gone or stuck)
    GET  /metrics       Prometheus text     GET /metadata  service, APIs, options, pid
    GET  /.bento/identity?nonce=N   proof of the registry record's secret (Jupyter proxy)
    /v2/...             the Open Inference Protocol (KServe v2), see :mod:`.oip`: its
                        infer takes the lean path as the API routes do (:class:`OipCall`)

Every error, on every route, is JSON ``{"error": {"type", "message"}}`` with the status of
its :mod:`bento_nb.errors` class (under ``/v2`` the protocol's ``{"error": "message"}``).
The API handler is the hot path: it does the per-request work (read body, parse, validate)
on the IOLoop, awaits the dispatcher, and writes bytes the model thread already
serialized; nothing in it is done twice per request.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from tornado import httputil, web

from .._version import __version__
from ..errors import (
    BadInput,
    BentoNbError,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ServerError,
    for_status,
    render,
    Unauthorized,
)
from .batching import Dispatcher
from .config import ServerConfig
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .oip import INFER_ROUTE_LABEL, OpenInference, render_oip_error
from .openapi import build_openapi

_JSON = "application/json"
_log = logging.getLogger("bento_nb.server")

class ServerState:
    """Everything the handlers of one server share (passed in, never global)."""

    def __init__(self, service: Any, config: ServerConfig, dispatchers: dict[str, Dispatcher],
                 metrics: Metrics):
        self.service = service
        self.config = config
        self.dispatchers = dispatchers
        self.metrics = metrics
        self.draining = False
        self.ready = False
        self.in_flight = 0
        self.last_request = 0.0  # perf_counter() of the last API request seen
        self.pid = os.getpid()
        self.identity_secret: str | None = None  # of this server's registry record
        token = config.api_token
        self.expected_auth = f"Bearer {token}".encode() if token else None
        self.openapi = json.dumps(build_openapi(service, bool(token)), indent=1).encode()
        self.metadata = {
            "name": service.name,
            "version": getattr(service, "version", None),
            "tag": getattr(service, "tag", None),
            "apis": [api.describe() for api in service.apis.values()],
            "bento_nb_version": __version__,
            "config": config.public,
        }
        self.oip = OpenInference(self)


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


# -- handlers -----------------------------------------------------------------------------

_ANY_METHOD = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


class BaseHandler(web.RequestHandler):
    """JSON errors, optional bearer auth, and a lean response path."""

    route_label = "other"
    protected = False

    def initialize(self, state: ServerState) -> None:
        self.state = state

    def set_default_headers(self) -> None:
        self._headers["Server"] = "bento_nb"

    def prepare(self) -> None:
        if self.protected and self.state.expected_auth is not None:
            self.check_token()

    def check_token(self) -> None:
        given = self.request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode("latin-1", "replace"), self.state.expected_auth):
            raise Unauthorized("missing or wrong token: send 'Authorization: Bearer <token>'")

    def send_json_error(self, error: BentoNbError, **extra: Any) -> None:
        """Answer ``error`` as :func:`~bento_nb.errors.render` says (``extra`` keys join
        its JSON body)."""
        if isinstance(error, MethodNotAllowed) and not error.allow:
            error.allow = self.allowed_methods()
        status, headers, body = render(error)
        self.set_status(status)
        for name, value in headers.items():
            self._headers[name] = value
        self.finish(json.dumps({**error.to_json(), **extra}).encode() if extra else body)

    def head(self, *args: Any) -> Any:
        """HEAD wherever GET is (health checks, monitors): tornado drops the body."""
        return self.get(*args)

    def allowed_methods(self) -> list[str]:
        """The methods this handler implements (the ``Allow`` header of a 405)."""
        return [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
                if getattr(type(self), "get" if m == "HEAD" else m.lower())
                is not getattr(web.RequestHandler, "get" if m == "HEAD" else m.lower())]

    def retry_after(self) -> int:
        return self.state.config.retry_after_s

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BentoNbError):
            error = exc
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message % exc.args if exc.log_message else (
                exc.reason or httputil.responses.get(exc.status_code, "error"))
            if exc.status_code == 405:
                message = f"method {self.request.method} is not allowed on {self.request.path}"
            error = for_status(exc.status_code, message)
        else:
            error = ServerError(f"internal server error: {type(exc).__name__}: {exc}"
                                if exc else "internal server error")
        self.clear()
        self.send_json_error(error)

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, (BentoNbError, web.HTTPError)):
            return  # expected: answered as JSON, counted in /metrics
        super().log_exception(typ, value, tb)

    def finish(self, chunk: Any = None) -> Any:
        # Count the request before its bytes leave, so a client that reads its answer and
        # then asks for stats() or /metrics always sees it counted.
        if not self._finished:
            self.state.metrics.observe_request(self.route_label, self._status_code,
                                               time.time() - self.request._start_time)
        return super().finish(chunk)

    def finish_json(self, body: bytes) -> None:
        self._headers["Content-Type"] = _JSON
        self.finish(body)


class ApiCall(httputil.HTTPMessageDelegate):
    """``POST /<route>``: the hot path, one object per request.

    A bare tornado message delegate instead of a ``RequestHandler``: no handler object with
    its header dictionaries, no coroutine, no output transforms. It checks the request as
    soon as the headers arrive (stopping, token, declared size), collects the body, parses
    and validates it, queues it on the dispatcher and, when the model thread replies,
    writes the status line, two headers and the JSON bytes the model thread already made.

    Errors found from the headers (401, 503 while stopping, 413) are answered once the body
    has been read (a too large body is read and dropped, up to a bound), so the client can
    always read its answer; 413s and answers given while the server stops say
    ``Connection: close`` and close the connection.
    """

    __slots__ = (
        "answered",
        "api",
        "chunks",
        "closed",
        "connection",
        "counted",
        "headers",
        "pending_error",
        "size",
        "started",
    )

    def __init__(self, api: ApiRoute, connection: httputil.HTTPConnection):
        self.api = api
        self.connection = connection
        self.chunks: list[bytes] = []
        self.size = 0
        self.answered = False
        self.closed = False
        self.counted = False
        self.pending_error: BentoNbError | None = None

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> None:
        self.started = time.perf_counter()
        self.headers = headers
        state = self.api.state
        state.in_flight += 1
        state.last_request = self.started
        self.counted = True
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.api.max_body:
            self.pending_error = PayloadTooLarge(self.api.too_large)
            if int(length) > self.api.max_linger:
                return self.fail(self.pending_error)
            return None  # read and drop the body, then answer (see data_received)
        if state.draining:
            self.pending_error = self.api.dispatcher.overloaded(
                "the server is shutting down; retry shortly")
        elif state.expected_auth is not None and not hmac.compare_digest(
                headers.get("Authorization", "").encode("latin-1", "replace"),
                state.expected_auth):
            self.pending_error = Unauthorized(
                "missing or wrong token: send 'Authorization: Bearer <token>'")
        return None

    def data_received(self, chunk: bytes) -> None:
        if self.answered:
            return
        self.size += len(chunk)
        if self.size > self.api.max_body:
            # Too large: drop what came, keep reading (up to max_linger) and answer 413 when
            # the body ends, so the client can read the answer instead of getting a reset
            # for the unread rest (a "lingering close"). Past max_linger, answer at once.
            self.chunks = []
            if not isinstance(self.pending_error, PayloadTooLarge):
                self.pending_error = PayloadTooLarge(self.api.too_large)
            if self.size > self.api.max_linger:
                self.fail(self.pending_error)
            return
        if self.pending_error is None:
            self.chunks.append(chunk)

    def finish(self) -> None:
        if self.answered:
            return
        if self.pending_error is not None:
            return self.fail(self.pending_error)
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        try:
            payload = self.api.parse(body, self.headers.get("Content-Type"))
            self.api.dispatcher.submit(payload, self.reply)
        except BentoNbError as error:
            self.fail(error)
        except Exception as e:  # noqa: BLE001 - an adapter bug: answer 500, keep serving
            _log.exception("parsing a request for %s failed", self.api.name)
            self.fail(ServerError(f"internal error while reading the request: "
                                  f"{type(e).__name__}: {e}"))
        return None

    def reply(self, ok: bool, body: Any) -> None:
        if ok:
            self.respond(200, body, _JSON_HEADERS)
        else:
            self.fail(body)

    def fail(self, error: BentoNbError) -> None:
        status, headers, body = render(error)
        self.respond(status, body, list(headers.items()))

    def respond(self, status: int, body: bytes, headers: list) -> None:
        if self.answered:
            return
        self.answered = True
        state = self.api.state
        if self.counted:
            state.in_flight -= 1
            self.counted = False
        state.metrics.observe_request(self.api.route_label, status,
                                      time.perf_counter() - self.started)
        if self.closed:
            return
        out = httputil.HTTPHeaders()
        for name, value in headers:
            out[name] = value
        out["Content-Length"] = str(len(body))
        if status == 413 or state.draining:
            # The body will not be read (413), or the server is going away: say so, and
            # make tornado close the connection after this answer.
            out["Connection"] = "close"
            _close_after_answer(self.connection)
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, httputil.responses.get(status, "")),
            out, body)
        self.connection.finish()

    def on_connection_close(self) -> None:
        self.closed = True
        if self.counted:
            self.api.state.in_flight -= 1
            self.counted = False


def _close_after_answer(connection: Any) -> None:
    """Ask tornado's HTTP1Connection to close once the answer is written (the flag its own
    ``finish()`` sets when a body was left unread; there is no public setter)."""
    if hasattr(connection, "_disconnect_on_finish"):
        connection._disconnect_on_finish = True


_JSON_HEADERS = [("Content-Type", _JSON)]


class ApiRoute:
    """What :class:`ApiCall` needs of one API, looked up once per server, not per request."""

    def __init__(self, state: ServerState, api: Any, dispatcher: Dispatcher):
        self.state = state
        self.name = api.name
        self.route_label = f"/{api.route}"  # the route label in /metrics
        self.parse = api.input.parse
        self.dispatcher = dispatcher
        self.max_body = state.config.max_body_bytes
        self.max_linger = max(4 * self.max_body, 64 * 1024 * 1024)
        self.too_large = (f"request body is larger than the limit of {self.max_body} bytes; "
                          "send fewer rows per request")


class OipCall(ApiCall):
    """``POST /v2/models/{name}[/versions/{v}]/infer``: an :class:`ApiCall` (same checks
    on the headers, body limit, metrics) whose body goes to :meth:`OpenInference.infer`
    and whose errors have the protocol's body (:func:`~.oip.render_oip_error`)."""

    __slots__ = ("endpoint",)

    def __init__(self, route: ApiRoute, connection: httputil.HTTPConnection, endpoint: Any):
        super().__init__(route, connection)
        self.endpoint = endpoint

    def finish(self) -> None:
        if self.answered:
            return
        if self.pending_error is not None:
            return self.fail(self.pending_error)
        body = b"".join(self.chunks)
        self.chunks = []
        try:
            self.api.state.oip.infer(self.endpoint, body, self.headers, self.answer)
        except BentoNbError as error:
            self.fail(error)
        except Exception as e:  # noqa: BLE001 - a bug: answer 500, keep serving
            _log.exception("an OIP infer request failed")
            self.fail(ServerError(f"internal error while reading the request: "
                                  f"{type(e).__name__}: {e}"))
        return None

    def answer(self, status: int, headers: list, body: bytes) -> None:
        self.respond(status, body, headers)

    def fail(self, error: BentoNbError) -> None:
        status, headers, body = render_oip_error(error)
        self.respond(status, body, list(headers.items()))


class OipHandler(BaseHandler):
    """Every other request under ``/v2``: the protocol's GET endpoints, and its errors
    (404 for an unknown path or model, 405 for the wrong method) in its error body."""

    SUPPORTED_METHODS = _ANY_METHOD
    route_label = "/v2"

    def prepare(self) -> None:
        oip = self.state.oip
        self.endpoint = oip.match(self.request.path)
        if self.endpoint is None:
            raise NotFound(f"no route {self.request.method} {self.request.path}; the Open "
                           "Inference Protocol routes are listed in /docs.json")
        self.route_label = self.endpoint.route_label
        if self.endpoint.protected and self.state.expected_auth is not None:
            self.check_token()
        oip.check(self.endpoint, self.request.method)

    def get(self) -> None:
        status, headers, body = self.state.oip.get(self.endpoint)
        self.set_status(status)
        for name, value in headers:
            self._headers[name] = value
        self.finish(body)

    def send_json_error(self, error: BentoNbError, **extra: Any) -> None:
        status, headers, body = render_oip_error(error)
        self.set_status(status)
        for name, value in headers.items():
            self._headers[name] = value
        self.finish(body)


class ApiMethodHandler(BaseHandler):
    """Every method but POST on an API route (POST goes to :class:`ApiCall`): 405."""

    SUPPORTED_METHODS = _ANY_METHOD

    def initialize(self, state: ServerState, route_label: str) -> None:
        self.state = state
        self.route_label = route_label

    def allowed_methods(self) -> list[str]:
        return ["POST"]

    def prepare(self) -> None:
        raise MethodNotAllowed(
            f"method {self.request.method} is not allowed on {self.request.path}; use POST")


class _Router(httputil.HTTPMessageDelegate):
    """Sends ``POST <api route>`` to :class:`ApiCall`, everything else to tornado's
    normal routing."""

    __slots__ = ("app", "connection", "delegate", "server_connection")

    def __init__(self, app: ServerApplication, server_connection: Any,
                 connection: httputil.HTTPConnection):
        self.app = app
        self.server_connection = server_connection
        self.connection = connection
        self.delegate: httputil.HTTPMessageDelegate | None = None

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        if start_line.method == "POST":
            path = start_line.path
            query = path.find("?")
            route = self.app.api_routes.get(path if query < 0 else path[:query])
            if route is not None:
                self.delegate = ApiCall(route, self.connection)
                return self.delegate.headers_received(start_line, headers)
            if path.startswith("/v2/"):
                endpoint = self.app.oip_route.state.oip.match(path if query < 0 else path[:query])
                if endpoint is not None and endpoint.kind == "infer":
                    self.delegate = OipCall(self.app.oip_route, self.connection, endpoint)
                    return self.delegate.headers_received(start_line, headers)
        self.delegate = web.Application.start_request(self.app, self.server_connection,
                                                      self.connection)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        if self.delegate is not None:
            self.delegate.on_connection_close()


class ServerApplication(web.Application):
    """tornado Application whose API routes take the lean :class:`ApiCall` path."""

    def __init__(self, handlers: list, api_routes: dict[str, ApiRoute], oip_route: ApiRoute,
                 **settings: Any):
        super().__init__(handlers, **settings)
        self.api_routes = api_routes
        self.oip_route = oip_route  # POST .../infer of the Open Inference Protocol

    def start_request(self, server_conn: object,
                      request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _Router(self, server_conn, request_conn)


class NotFoundHandler(BaseHandler):
    SUPPORTED_METHODS = _ANY_METHOD

    def prepare(self) -> None:
        routes = ", ".join(f"POST /{api.route}" for api in self.state.service.apis.values())
        raise NotFound(f"no route {self.request.method} {self.request.path}; "
                       f"the APIs are {routes}; see /docs.json")


class HealthHandler(BaseHandler):
    route_label = "/healthz"

    def get(self) -> None:
        self.finish_json(b'{"status":"ok"}')


class ReadyHandler(BaseHandler):
    route_label = "/readyz"

    def get(self) -> None:
        state = self.state
        if state.draining:
            raise Overloaded("the server is shutting down", retry_after=self.retry_after())
        if not state.ready:
            raise Overloaded("the server is starting", retry_after=self.retry_after())
        problems = {name: reason for name, dispatcher in state.dispatchers.items()
                    if (reason := dispatcher.health()) is not None}
        if problems:
            error = Overloaded("not ready: " + "; ".join(
                f"API {name!r}: {reason}" for name, reason in problems.items()),
                retry_after=self.retry_after())
            self.send_json_error(error, apis=problems)
            return
        self.finish_json(b'{"status":"ready"}')


class MetadataHandler(BaseHandler):
    route_label = "/metadata"
    protected = True

    def get(self) -> None:
        state = self.state
        body = {**state.metadata, "pid": state.pid, "in_flight": state.in_flight}
        self.finish_json(json.dumps(body).encode())


class IdentityHandler(BaseHandler):
    """``GET /.bento/identity?nonce=N``: ``{"proof": HMAC(record secret, N)}``, so the
    Jupyter proxy can tell this server from another process on the same port without the
    secret ever crossing the wire (see :mod:`.registry`)."""

    route_label = "/.bento/identity"
    _NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")

    def get(self) -> None:
        from .registry import identity_proof

        nonce = self.get_query_argument("nonce", "")
        if not self._NONCE.fullmatch(nonce):
            raise BadInput("nonce must be 16-128 characters of A-Z a-z 0-9 _ -")
        secret = self.state.identity_secret
        if secret is None:
            raise NotFound("this server has no registry record to prove")
        self._headers["Cache-Control"] = "no-store"
        self.finish_json(json.dumps({"proof": identity_proof(secret, nonce)}).encode())


class MetricsHandler(BaseHandler):
    route_label = "/metrics"
    protected = True

    def get(self) -> None:
        self._headers["Content-Type"] = METRICS_CONTENT_TYPE
        self.finish(self.state.metrics.render())


class DocsJsonHandler(BaseHandler):
    route_label = "/docs.json"

    def get(self) -> None:
        self.finish_json(self.state.openapi)


class SwaggerPageHandler(BaseHandler):
    route_label = "/"

    def get(self) -> None:
        title = html.escape(f"{self.state.service.name} - bento_nb")
        self._headers["Content-Type"] = "text/html; charset=utf-8"
        self.finish(_SWAGGER_PAGE.format(title=title))


class SwaggerInitHandler(BaseHandler):
    route_label = "/static"

    def get(self) -> None:
        self._headers["Content-Type"] = "application/javascript"
        self.finish(_SWAGGER_INIT)


class StaticHandler(web.StaticFileHandler):
    """Swagger UI's files; errors as JSON like everywhere else."""

    route_label = "/static"

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        # A path no file can have (a NUL byte, from %00) makes os.path raise ValueError,
        # which tornado would answer 500 with a logged traceback: it is simply not there.
        try:
            return super().validate_absolute_path(root, absolute_path)
        except ValueError:
            raise web.HTTPError(404) from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code in (403, 404):  # 403: a path outside the folder; say only "no"
            error: BentoNbError = NotFound("no such static file")
        else:
            error = for_status(status_code, f"static file error {status_code}")
        status, headers, body = render(error)
        self.clear()
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.finish(body)


def make_app(state: ServerState) -> web.Application:
    """The tornado application of one server."""
    handlers: list = []
    api_routes = {}
    for api in state.service.apis.values():
        api_routes[f"/{api.route}"] = ApiRoute(state, api, state.dispatchers[api.name])
        handlers.append((f"/{re.escape(api.route)}", ApiMethodHandler,
                         {"state": state, "route_label": f"/{api.route}"}))
    kwargs = {"state": state}
    handlers += [
        (r"/", SwaggerPageHandler, kwargs),
        (r"/docs\.json", DocsJsonHandler, kwargs),
        (r"/healthz", HealthHandler, kwargs),
        (r"/readyz", ReadyHandler, kwargs),
        (r"/metrics", MetricsHandler, kwargs),
        (r"/metadata", MetadataHandler, kwargs),
        (r"/\.bento/identity", IdentityHandler, kwargs),
        (r"/v2(?:/.*)?", OipHandler, kwargs),
        (r"/static/swagger-ui/init\.js", SwaggerInitHandler, kwargs),
        (r"/static/swagger-ui/(.*)", StaticHandler, {"path": str(swagger_ui_dir())}),
    ]
    metrics = state.metrics

    def log_request(handler: web.RequestHandler) -> None:
        if not isinstance(handler, BaseHandler):  # BaseHandler counted itself in finish()
            metrics.observe_request(getattr(handler, "route_label", "other"),
                                    handler.get_status(),
                                    time.time() - handler.request._start_time)

    oip = state.oip
    oip_route = ApiRoute(state, state.service.apis[oip.default_output],
                         state.dispatchers[oip.default_output])
    oip_route.route_label = INFER_ROUTE_LABEL
    return ServerApplication(
        handlers, api_routes, oip_route,
        default_handler_class=NotFoundHandler,
        default_handler_args=kwargs,
        log_function=log_request,
        compress_response=False,
        serve_traceback=False,
    )

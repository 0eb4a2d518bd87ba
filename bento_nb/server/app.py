"""HTTP routes of the prediction server (tornado).

    POST /<api route>   parse + validate the body with the API's adapter, then batch
    GET  /              Swagger UI, from the swagger-ui-bundle package (no CDN)
    GET  /docs.json     OpenAPI 3 document
    GET  /healthz       liveness            GET /readyz    readiness (503 while stopping)
    GET  /metrics       Prometheus text     GET /metadata  service, APIs, options, pid

Every error, on every route, is JSON ``{"error": {"type", "message"}}`` with the status of
its :mod:`bento_nb.errors` class. The API handler is the hot path: it does the per-request
work (read body, parse, validate) on the IOLoop, awaits the dispatcher, and writes bytes
the model thread already serialized; nothing in it is done twice per request.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

from tornado import httputil, web

from .. import __version__
from ..errors import (BadInput, BentoNbError, MethodNotAllowed, NotFound, Overloaded,
                      PayloadTooLarge, ServerError, Unauthorized)
from .batching import Dispatcher
from .config import ServerConfig
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .openapi import build_openapi

_JSON = "application/json"
_STATUS_ERRORS = {400: BadInput, 401: Unauthorized, 404: NotFound, 405: MethodNotAllowed,
                  413: PayloadTooLarge, 503: Overloaded}


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
        self.pid = os.getpid()
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
    layout: "BaseLayout"
  });
};
"""


# -- handlers -----------------------------------------------------------------------------


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

    def send_json_error(self, error: BentoNbError) -> None:
        self.set_status(error.http_status)
        self._headers["Content-Type"] = _JSON
        if error.http_status == 503:
            self._headers["Retry-After"] = str(self.retry_after())
        elif error.http_status == 401:
            self._headers["WWW-Authenticate"] = "Bearer"
        self.finish(json.dumps(error.to_json()).encode())

    def retry_after(self) -> int:
        return self.state.config.retry_after_s

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BentoNbError):
            error = exc
        elif isinstance(exc, web.HTTPError):
            cls = _STATUS_ERRORS.get(exc.status_code, ServerError)
            message = exc.log_message % exc.args if exc.log_message else (
                exc.reason or httputil.responses.get(exc.status_code, "error"))
            if exc.status_code == 405:
                message = f"method {self.request.method} is not allowed on {self.request.path}"
            error = cls(message)
            error.http_status = exc.status_code
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


@web.stream_request_body
class ApiHandler(BaseHandler):
    """``POST /<route>``: the hot path."""

    SUPPORTED_METHODS = ("POST",)
    protected = True

    def initialize(self, state: ServerState, api: Any, dispatcher: Dispatcher) -> None:
        self.state = state
        self.api = api
        self.dispatcher = dispatcher
        self.route_label = api.name
        self._chunks: list[bytes] = []
        self._size = 0
        self._counted = False

    def prepare(self) -> None:
        state = self.state
        state.in_flight += 1
        self._counted = True
        if state.draining:
            raise Overloaded("the server is shutting down; retry shortly")
        if state.expected_auth is not None:
            self.check_token()
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > state.config.max_body_bytes:
            raise PayloadTooLarge(self._too_large_message())

    def _too_large_message(self) -> str:
        return (f"request body is larger than the limit of {self.state.config.max_body_bytes} "
                "bytes; send fewer rows per request")

    def data_received(self, chunk: bytes) -> None:
        if self._finished:
            return
        self._size += len(chunk)
        if self._size > self.state.config.max_body_bytes:
            self._chunks = []
            self.send_json_error(PayloadTooLarge(self._too_large_message()))
            return
        self._chunks.append(chunk)

    async def post(self) -> None:
        if self._finished:
            return
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            payload = self.api.input.parse(body, self.request.headers.get("Content-Type"))
            ok, result = await self.dispatcher.submit(payload)
        except BentoNbError as error:
            self.send_json_error(error)
            return
        if ok:
            self._headers["Content-Type"] = _JSON
            self.finish(result)
        else:
            self.send_json_error(result)

    def retry_after(self) -> int:
        return max(self.state.config.retry_after_s, self.dispatcher.retry_after())

    def finish(self, chunk: Any = None) -> Any:
        self._uncount()
        return super().finish(chunk)

    def _uncount(self) -> None:
        if self._counted:
            self.state.in_flight -= 1
            self._counted = False

    def on_connection_close(self) -> None:
        self._uncount()


class NotFoundHandler(BaseHandler):
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
            raise Overloaded("the server is shutting down")
        if not state.ready:
            raise Overloaded("the server is starting")
        self.finish_json(b'{"status":"ready"}')


class MetadataHandler(BaseHandler):
    route_label = "/metadata"
    protected = True

    def get(self) -> None:
        state = self.state
        body = {**state.metadata, "pid": state.pid, "in_flight": state.in_flight}
        self.finish_json(json.dumps(body).encode())


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
        title = f"{self.state.service.name} - bento_nb"
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

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = (NotFound("no such static file") if status_code == 404
                 else ServerError(f"static file error {status_code}"))
        error.http_status = status_code
        self.clear()
        self.set_status(status_code)
        self.set_header("Content-Type", _JSON)
        self.finish(json.dumps(error.to_json()))


def make_app(state: ServerState) -> web.Application:
    """The tornado application of one server."""
    handlers: list = []
    for api in state.service.apis.values():
        handlers.append((f"/{api.route}", ApiHandler,
                         {"state": state, "api": api,
                          "dispatcher": state.dispatchers[api.name]}))
    kwargs = {"state": state}
    handlers += [
        (r"/", SwaggerPageHandler, kwargs),
        (r"/docs\.json", DocsJsonHandler, kwargs),
        (r"/healthz", HealthHandler, kwargs),
        (r"/readyz", ReadyHandler, kwargs),
        (r"/metrics", MetricsHandler, kwargs),
        (r"/metadata", MetadataHandler, kwargs),
        (r"/static/swagger-ui/init\.js", SwaggerInitHandler, kwargs),
        (r"/static/swagger-ui/(.*)", StaticHandler, {"path": str(swagger_ui_dir())}),
    ]
    metrics = state.metrics

    def log_request(handler: web.RequestHandler) -> None:
        if not isinstance(handler, BaseHandler):  # BaseHandler counted itself in finish()
            metrics.observe_request(getattr(handler, "route_label", "other"),
                                    handler.get_status(),
                                    time.time() - handler.request._start_time)

    return web.Application(
        handlers,
        default_handler_class=NotFoundHandler,
        default_handler_args=kwargs,
        log_function=log_request,
        compress_response=False,
        serve_traceback=False,
    )

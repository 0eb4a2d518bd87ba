"""The OpenAPI 3 document of a served service (``GET /docs.json``).

Derived from what the service already declares: one ``POST /<route>`` per API, its request
body schema and example from the API's input adapter, the JSON error shape of
:mod:`bento_nb.errors` for every failure status, and the operational routes::

    spec = build_openapi(service, token_required=False)
"""

from __future__ import annotations

from typing import Any

from .._version import __version__

_ERRORS = {
    "400": "Malformed JSON or CSV, or a body of the wrong shape",
    "401": "Missing or wrong `Authorization: Bearer` token",
    "413": "Body larger than the server's limit",
    "415": "Unsupported Content-Type",
    "500": "The model raised; the message says why",
    "503": "Overloaded (the request would not be answered within the server's "
           "`request_timeout`), or shutting down; retry after `Retry-After` seconds",
    "504": "No answer from the model within the server's `request_timeout`",
}


def _error_responses(codes: list[str]) -> dict:
    return {code: {"description": _ERRORS[code],
                   "content": {"application/json": {
                       "schema": {"$ref": "#/components/schemas/Error"}}}}
            for code in codes}


def _plain(description: str, schema: dict | None = None, media: str = "application/json") -> dict:
    return {"description": description,
            "content": {media: {"schema": schema or {"type": "object"}}}}


def build_openapi(service: Any, token_required: bool = False) -> dict:
    """The OpenAPI 3.0.3 document of ``service`` (a :class:`~bento_nb.service.BentoService`)."""
    tag = getattr(service, "tag", None)
    paths: dict[str, Any] = {}
    error_codes = (["400", "413", "415", "500", "503", "504"]
                   + (["401"] if token_required else []))
    example = getattr(service, "example", None) or {}
    shown_with = service.apis.get(example.get("api"))
    for api in service.apis.values():
        # the bundle's checked example, on every API that takes the same input as its own
        same_input = shown_with is not None and api.input.config() == shown_with.input.config()
        request = dict(api.input.openapi_request(example["body"] if same_input else None))
        request.setdefault("required", True)
        operation = {
            "tags": ["APIs"],
            "summary": f"{api.name} ({type(api.input).__name__}"
                       f"{', batched' if api.batch else ''})",
            "description": api.doc or f"Call the `{api.name}` API of {service.name}.",
            "operationId": api.name,
            "requestBody": request,
            "responses": {"200": {"description": "The API's result as JSON",
                                  "content": {"application/json": {"schema": {}}}},
                          **_error_responses(sorted(error_codes))},
        }
        if token_required:
            operation["security"] = [{"bearer": []}]
        paths[f"/{api.route}"] = {"post": operation}

    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    info_ops = {
        "/healthz": ("Liveness: the process answers", _plain("Alive", status), False),
        "/readyz": (("Readiness: the model is loaded, every API's model thread takes "
                     "requests and the server accepts them (503 names an API whose thread "
                     "is gone or stuck on one call past `request_timeout`)"),
                    _plain("Ready", status), False),
        "/metadata": ("The service: name, version, APIs, server options",
                      _plain("Service metadata"), token_required),
        "/metrics": ("Prometheus metrics", _plain("Prometheus text", {"type": "string"},
                                                  "text/plain"), token_required),
    }
    for route, (summary, ok, secured) in info_ops.items():
        responses = {"200": ok}
        if route == "/readyz":
            responses["503"] = _error_responses(["503"])["503"]
        if secured:
            responses["401"] = _error_responses(["401"])["401"]
        operation = {"tags": ["Server"], "summary": summary,
                     "operationId": route.strip("/"), "responses": responses}
        if secured:
            operation["security"] = [{"bearer": []}]
        paths[route] = {"get": operation}

    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": f"{service.name} prediction service",
            "version": str(getattr(service, "version", None) or "live"),
            "description": (f"Served by bento_nb {__version__}"
                            + (f" from bundle `{tag}`." if tag else " from a live object.")),
        },
        "servers": [{"url": "."}],
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["type", "message"],
                "properties": {"type": {"type": "string", "example": "BadInput"},
                               "message": {"type": "string"}}}}}}},
    }
    if token_required:
        spec["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}}
    return spec

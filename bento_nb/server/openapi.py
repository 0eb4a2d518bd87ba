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


# -- the Open Inference Protocol (KServe v2, see .oip) ---------------------------------------

_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
              "FP16", "FP32", "FP64", "BYTES"]
_PARAMETERS = {"type": "object", "description": "key/value parameters"}
_OIP_SCHEMAS: dict[str, Any] = {
    "OipError": {"type": "object", "required": ["error"],
                 "properties": {"error": {"type": "string"}}},
    "OipTensorMetadata": {"type": "object", "required": ["name", "datatype", "shape"],
                          "properties": {"name": {"type": "string"},
                                         "datatype": {"type": "string", "enum": _DATATYPES},
                                         "shape": {"type": "array",
                                                   "items": {"type": "integer"}}}},
    "OipInferRequest": {
        "type": "object", "required": ["inputs"],
        "description": "Tensors as JSON (flat row-major or nested `data`), or with the binary "
                       "tensor extension: the JSON header is the first "
                       "`Inference-Header-Content-Length` bytes of the body, each input with "
                       "`parameters.binary_data_size` instead of `data`, followed by the raw "
                       "little-endian bytes of those inputs in order (BYTES elements: a 4-byte "
                       "length, then the bytes). `parameters.content_type: \"pd\"`: the inputs "
                       "are the columns of one table.",
        "properties": {
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "inputs": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string"},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "datatype": {"type": "string", "enum": _DATATYPES},
                    "parameters": _PARAMETERS,
                    "data": {"description": "the values, flat row-major or nested"}}}},
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string",
                                        "description": "an API of the service"},
                               "parameters": _PARAMETERS}}}}},
    "OipInferResponse": {
        "type": "object", "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"}, "model_version": {"type": "string"},
            "id": {"type": "string"}, "parameters": _PARAMETERS,
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name", "datatype", "shape"],
                "properties": {"name": {"type": "string"},
                               "datatype": {"type": "string", "enum": _DATATYPES},
                               "shape": {"type": "array", "items": {"type": "integer"}},
                               "parameters": _PARAMETERS, "data": {"type": "array"}}}}}},
}
_OIP_ERRORS = {
    "400": "A malformed request: JSON, datatype, shape, binary sizes, an unknown output",
    "401": "Missing or wrong `Authorization: Bearer` token",
    "404": "Unknown model or version",
    "413": "Body larger than the server's limit",
    "500": "The model raised; the message says why",
    "503": "Overloaded, not ready or shutting down; retry after `Retry-After` seconds",
    "504": "No answer from the model within the server's `request_timeout`",
}


def _oip_responses(ok: dict, codes: list[str]) -> dict:
    out = {"200": ok}
    for code in codes:
        out[code] = {"description": _OIP_ERRORS[code], "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/OipError"}}}}
    return out


def _oip_paths(service: Any, token_required: bool) -> dict:
    """The OIP v2 REST routes (``/v2/...``), with ``{model_name}`` the bundle's name (any
    case, or its Kubernetes name) and ``{model_version}`` its version."""
    secured = ["401"] if token_required else []
    name_param = {"name": "model_name", "in": "path", "required": True,
                  "schema": {"type": "string"},
                  "description": f"`{service.name}` (any case, or its Kubernetes name)"}
    version_param = {"name": "model_version", "in": "path", "required": True,
                     "schema": {"type": "string"},
                     "description": f"`{getattr(service, 'version', None) or 'none'}`"}
    status = {"type": "object"}
    paths: dict[str, Any] = {}

    def add(path: str, method: str, summary: str, operation_id: str, responses: dict,
            protected: bool, parameters: list, body: dict | None = None) -> None:
        operation: dict[str, Any] = {"tags": ["Open Inference Protocol (KServe v2)"],
                                     "summary": summary, "operationId": operation_id,
                                     "responses": responses}
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            operation["requestBody"] = body
        if protected and token_required:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = operation

    add("/v2", "get", "Server metadata", "oip_server_metadata",
        _oip_responses(_plain("Name, version, extensions", status), secured), True, [])
    add("/v2/health/live", "get", "Server liveness", "oip_server_live",
        _oip_responses(_plain("Alive", status), []), False, [])
    add("/v2/health/ready", "get", "Server readiness", "oip_server_ready",
        _oip_responses(_plain("Ready", status), ["503"]), False, [])
    infer_body = {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/OipInferRequest"},
        "example": {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                "data": [5.1, 3.5, 1.4, 0.2]}]}}}}
    infer_ok = {"description": "The requested outputs (binary ones after the JSON header of "
                               "`Inference-Header-Content-Length` bytes)",
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/OipInferResponse"}},
                    "application/octet-stream": {"schema": {"type": "string",
                                                            "format": "binary"}}}}
    header = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
              "schema": {"type": "integer", "minimum": 0},
              "description": "binary tensor extension: the size of the JSON header"}
    for suffix, params, tag in (("", [name_param], ""),
                                ("/versions/{model_version}", [name_param, version_param],
                                 "_version")):
        base = f"/v2/models/{{model_name}}{suffix}"
        add(base, "get", "Model metadata: platform, inputs, outputs", f"oip_model_metadata{tag}",
            _oip_responses(_plain("Model metadata", status), ["404", *secured]), True, params)
        add(f"{base}/ready", "get", "Model readiness", f"oip_model_ready{tag}",
            _oip_responses(_plain("Ready", status), ["404", "503", *secured]), True, params)
        add(f"{base}/infer", "post", "Inference", f"oip_infer{tag}",
            _oip_responses(infer_ok, ["400", "404", "413", "500", "503", "504", *secured]),
            True, [*params, header], infer_body)
    return paths


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

    paths.update(_oip_paths(service, token_required))

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
    spec["components"]["schemas"].update(_OIP_SCHEMAS)
    if token_required:
        spec["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}}
    return spec

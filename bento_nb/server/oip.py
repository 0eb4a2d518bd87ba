"""The Open Inference Protocol (KServe v2, REST) for every served bundle, transport-free.

What KServe, Triton's ``tritonclient`` and MLServer speak, next to the native routes::

    GET  /v2                                     server metadata
    GET  /v2/health/live     /v2/health/ready    liveness, readiness
    GET  /v2/models/{name}[/versions/{v}]        model metadata (inputs, outputs, platform)
    GET  /v2/models/{name}[/versions/{v}]/ready  model readiness
    POST /v2/models/{name}[/versions/{v}]/infer  inference

The model name is the bundle's name, matched case-insensitively and also in its
Kubernetes form (``Iris_Classifier`` answers as ``iris_classifier`` and
``iris-classifier``, the name KServe's InferenceService gives it); the version is the
bundle's version. This module knows no HTTP library: a transport hands it the path, the
headers and the body and writes back the ``(status, headers, body)`` it gets::

    oip = OpenInference(state)                 # state: service, dispatchers, ready, draining
    endpoint = oip.match("/v2/models/iris/infer")
    oip.infer(endpoint, body, headers, reply)  # reply(status, headers, body), on the loop
    status, headers, body = oip.get(endpoint)  # every GET endpoint
    status, headers, body = render_oip_error(error)

``infer`` decodes the JSON tensors (flat or nested, every OIP datatype) or the binary tensor
extension (a JSON header of ``Inference-Header-Content-Length`` bytes, then each input's
raw little-endian bytes; BYTES elements as a 4-byte length and the bytes), checks each
tensor's datatype against its values and its shape against its data, turns the inputs into
the API's payload (one tensor: its rows; several, or ``parameters.content_type: "pd"`` as
MLServer's PandasCodec sends: a table with the input names as columns), validated by the
API's own adapter, and queues it on the same dispatcher (batching, queue limits,
``request_timeout``) as the native route. The requested ``outputs`` name APIs
(``predict``, ``predict_proba``); without any, the ``predict`` API (else the first) answers.
Each output is encoded on the model thread, as JSON or, when asked (``binary_data`` on the
output, ``binary_data_output`` on the request), as binary data after the JSON header.

Errors are the protocol's ``{"error": "message"}`` with the status of their
:mod:`bento_nb.errors` class (400 for a bad request, 404 for an unknown model or version):
:func:`render_oip_error` is the only place that differs from the native error body.

What stays with the transport, as for the native routes: the API token on every endpoint
whose :attr:`Endpoint.protected` is true, the body limit, ``503`` while draining, and the
``/metrics`` label :attr:`Endpoint.route_label`; then :meth:`OpenInference.check` (405,
404), :meth:`~OpenInference.get` or :meth:`~OpenInference.infer`. In the ASGI app
(:mod:`.app`) that is ``App.oip_request``: infer takes the API call path of the native
routes, the rest is answered there.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import struct
import zlib
from typing import Any, Callable, Mapping, NamedTuple
from urllib.parse import unquote

import numpy as np

from .._version import __version__
from ..adapters import Payload, dumps_json, loads_json
from ..errors import (BadInput, BentoNbError, MethodNotAllowed, ModelError, NotFound,
                      PayloadTooLarge, UnsupportedMediaType)
from ..errors import render as _render

HEADER_LENGTH = "Inference-Header-Content-Length"

# OIP datatype -> numpy dtype of its binary form (little-endian, as the extension says).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_BY_KIND_SIZE = {(dt.kind, dt.itemsize): name for name, dt in DATATYPES.items()
                 if name != "BYTES"}
_LENGTH = struct.Struct("<I")
_JSON_HEADERS = [("Content-Type", "application/json")]
# KServe names an InferenceService's Knative revisions <name>-predictor-00001, so its name
# (and the v2 model name clients use) is the bundle's k8s name cut to this length.
_KSERVE_NAME_LENGTH = 63 - len("-predictor-00001")

Reply = Callable[[int, list, bytes], None]
_compact = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def render_oip_error(error: BaseException) -> tuple[int, dict[str, str], bytes]:
    """The OIP answer to ``error``: the status and headers of :func:`bento_nb.errors.render`
    (``Retry-After``, ``WWW-Authenticate``, ``Allow``), the body ``{"error": "message"}``."""
    status, headers, _ = _render(error)
    message = (error.message if isinstance(error, BentoNbError)
               else "internal error; the details are in the server log")
    return status, headers, json.dumps({"error": message}).encode()


# -- routes -------------------------------------------------------------------------------


class Endpoint(NamedTuple):
    """One matched OIP path: ``kind`` is one of ``server_metadata``, ``live``, ``ready``,
    ``model_metadata``, ``model_ready``, ``infer``; ``model`` and ``version`` as sent
    (URL-decoded), None where the path has none."""

    kind: str
    model: str | None = None
    version: str | None = None

    @property
    def method(self) -> str:
        """The one method the endpoint takes (HEAD goes with GET)."""
        return "POST" if self.kind == "infer" else "GET"

    @property
    def protected(self) -> bool:
        """Whether it needs the API token when the server has one: all but the health
        probes (as /healthz and /readyz)."""
        return self.kind not in ("live", "ready")

    @property
    def route_label(self) -> str:
        """The route label in /metrics (the model's name is not in it: bounded)."""
        return _LABELS[self.kind]


# The /metrics label of infer: API traffic, counted in stats() as the native API routes are.
INFER_ROUTE_LABEL = "/v2/models/{model}/infer"
_LABELS = {"server_metadata": "/v2", "live": "/v2/health/live", "ready": "/v2/health/ready",
           "model_metadata": "/v2/models/{model}", "model_ready": "/v2/models/{model}/ready",
           "infer": INFER_ROUTE_LABEL}
_MODEL_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready|/infer)?/?")
_FIXED = {"/v2": "server_metadata", "/v2/": "server_metadata",
          "/v2/health/live": "live", "/v2/health/ready": "ready"}


def match(path: str) -> Endpoint | None:
    """The endpoint of ``path`` (no query string), or None when it is not an OIP path."""
    # asked per request: the answers for the last few short paths are kept
    return _match_kept(path) if len(path) <= 512 else _match(path)


def _match(path: str) -> Endpoint | None:
    kind = _FIXED.get(path)
    if kind is not None:
        return Endpoint(kind)
    found = _MODEL_PATH.fullmatch(path)
    if found is None:
        return None
    name, version, tail = found.groups()
    kind = {None: "model_metadata", "/ready": "model_ready", "/infer": "infer"}[tail]
    return Endpoint(kind, unquote(name), unquote(version) if version is not None else None)


_match_kept = functools.lru_cache(maxsize=256)(_match)


# -- tensors ------------------------------------------------------------------------------


class Tensor(NamedTuple):
    """One decoded input: its values as an array of its declared shape."""

    name: str
    datatype: str
    array: np.ndarray
    parameters: dict


class InferRequest(NamedTuple):
    id: str | None
    parameters: dict
    inputs: list[Tensor]
    outputs: list[tuple[str, dict]]  # (name, parameters) of each requested output


def _field(obj: dict, key: str, kind: type, where: str, default: Any = ...) -> Any:
    value = obj.get(key, default)
    if value is ...:
        raise BadInput(f"{where} has no {key!r}")
    if not isinstance(value, kind):
        raise BadInput(f"{where}: {key!r} must be a {_JSON_KINDS[kind]}")
    return value


_JSON_KINDS = {dict: "JSON object", list: "list", str: "string"}


def decode_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """An infer request body (JSON, or JSON header + binary tensors when
    ``header_length``, the ``Inference-Header-Content-Length`` header, is given) as named
    arrays. Raises BadInput (400) saying what is wrong: malformed JSON, an unknown
    datatype, values of another datatype, a shape that does not fit the data, binary
    sizes that do not add up to the body.

    The JSON is checked into a :class:`_Plan` first; a plan with every input binary is a
    function of the header's bytes alone, which a client sending one shape of request
    repeats byte for byte (tritonclient does), so the last few are kept (:data:`_PLANS`)
    and such a request costs one dict lookup and a ``frombuffer`` per input."""
    binary = b""
    if header_length is not None:
        text = header_length.strip()
        if not text.isdigit() or int(text) > len(body):
            raise BadInput(f"{HEADER_LENGTH} is {header_length!r}: it must be the size in "
                           f"bytes of the JSON header at the start of the body "
                           f"({len(body)} bytes)")
        size = int(text)
        body, binary = body[:size], memoryview(body)[size:]
        plan = _PLANS.get(body)
        if plan is not None:
            return plan.bind(binary)
    plan = _Plan(body)
    if plan.all_binary and header_length is not None and len(body) <= _PLAN_BYTES:
        if len(_PLANS) >= _PLAN_COUNT:
            try:  # the oldest (servers in other threads of this process share the dict)
                _PLANS.pop(next(iter(_PLANS)), None)
            except (StopIteration, RuntimeError):
                pass
        _PLANS[bytes(body)] = plan
    return plan.bind(binary)


# Plans of binary requests, by their JSON header's bytes: a few, of bounded size.
_PLANS: dict[bytes, _Plan] = {}
_PLAN_COUNT = 64
_PLAN_BYTES = 4096


class _Plan:
    """The checked JSON of an infer request: its id, parameters, outputs and, per input,
    what to decode (name, datatype, shape, parameters, and its binary size or its JSON
    data). :meth:`bind` decodes the inputs of one request's binary data by it."""

    __slots__ = ("all_binary", "inputs", "may_hold_bools", "outputs", "parameters",
                 "request_id")

    def __init__(self, header: bytes):
        request = loads_json(header)
        if not isinstance(request, dict):
            raise BadInput('an inference request is a JSON object {"inputs": [...]}')
        inputs = _field(request, "inputs", list, "the request")
        if not inputs:
            raise BadInput('"inputs" is empty: send at least one input tensor')
        self.parameters = _field(request, "parameters", dict, "the request", {})
        request_id = self.request_id = request.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise BadInput('"id" must be a string')
        self.may_hold_bools = b"true" in header or b"false" in header
        self.inputs, names = [], set()
        for index, item in enumerate(inputs):
            where = f"input {index}"
            if not isinstance(item, dict):
                raise BadInput(f"{where} must be a JSON object with name, shape, datatype, "
                               "data")
            name = _field(item, "name", str, where)
            where = f"input {name!r}"
            if name in names:
                raise BadInput(f"two inputs are named {name!r}")
            names.add(name)
            datatype = _field(item, "datatype", str, where)
            if datatype not in DATATYPES:
                raise BadInput(f"{where}: unknown datatype {datatype!r}; use one of "
                               f"{', '.join(DATATYPES)}")
            shape = _field(item, "shape", list, where)
            if not all(type(d) is int and d >= 0 for d in shape):
                raise BadInput(f"{where}: shape {shape} must be a list of non-negative "
                               "integers")
            params = _field(item, "parameters", dict, where, {})
            size = params.get("binary_data_size")
            data = None
            if size is not None:
                if type(size) is not int or size < 0:
                    raise BadInput(f"{where}: binary_data_size must be a non-negative "
                                   "integer")
                if "data" in item:
                    raise BadInput(f"{where} has both binary_data_size and data; send one")
            elif "data" not in item:
                raise BadInput(f"{where} has no data (nor binary_data_size)")
            else:
                data = item["data"]
            self.inputs.append((name, where, datatype, shape, params, size, data))
        self.all_binary = all(spec[5] is not None for spec in self.inputs)
        self.outputs = []
        for index, item in enumerate(_field(request, "outputs", list, "the request", [])):
            if not isinstance(item, dict):
                raise BadInput(f"output {index} must be a JSON object with a name")
            self.outputs.append((_field(item, "name", str, f"output {index}"),
                                 _field(item, "parameters", dict, f"output {index}", {})))

    def bind(self, binary: Any) -> InferRequest:
        """The request's tensors, from ``binary`` (the bytes after the JSON header) and
        the JSON data."""
        tensors, offset = [], 0
        for name, where, datatype, shape, params, size, data in self.inputs:
            if size is not None:
                if offset + size > len(binary):
                    raise BadInput(f"{where}: binary_data_size {size} runs past the "
                                   f"{len(binary)} bytes of binary data after the JSON "
                                   "header")
                array = _from_binary(where, datatype, shape, binary[offset:offset + size])
                offset += size
            else:
                array = _from_json(where, datatype, shape, data, self.may_hold_bools)
                if params.get("content_type") == "base64" and datatype == "BYTES":
                    array = _from_base64(where, array)
            tensors.append(Tensor(name, datatype, array, params))
        if offset != len(binary):
            raise BadInput(f"{len(binary)} bytes of binary data follow the JSON header, but "
                           f"the inputs' binary_data_size add up to {offset}")
        return InferRequest(self.request_id, self.parameters, tensors, self.outputs)


def _count(shape: list) -> int:
    return math.prod(shape)


def _from_json(where: str, datatype: str, shape: list, data: Any,
               may_hold_bools: bool) -> np.ndarray:
    """The JSON ``data`` of a tensor (flat or nested row-major), checked to hold values of
    ``datatype``, as an array of ``shape``."""
    count = _count(shape)
    if datatype == "BYTES":
        flat = []
        _flatten(data, flat)
        if not all(isinstance(v, str) for v in flat):
            raise BadInput(f"{where}: a BYTES tensor holds strings; got "
                           f"{_value_kind(next(v for v in flat if not isinstance(v, str)))}")
        _check_count(where, shape, count, len(flat))
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    try:
        values = np.asarray(data)
    except (ValueError, TypeError):
        raise BadInput(f"{where}: data is nested unevenly; send it flat, row-major") from None
    if values.dtype.kind in "fO" and DATATYPES[datatype].kind in "iu" and values.size:
        # numpy makes integers past int64 floats (or objects): keep them exact
        flat = []
        _flatten(data, flat)
        if all(type(v) is int for v in flat):
            values = np.empty(len(flat), dtype=object)
            values[:] = flat
    _check_count(where, shape, count, values.size)
    kind = values.dtype.kind
    target = DATATYPES[datatype]
    if values.size:
        if datatype == "BOOL":
            if kind != "b":
                raise BadInput(f"{where}: a BOOL tensor holds true/false; got "
                               f"{_array_kind(values)}")
        elif (kind not in "iuf" and not (kind == "O" and target.kind in "iu"
                                          and all(type(v) is int for v in values.flat))) \
                or (may_hold_bools and _holds_bool(data)):
            raise BadInput(f"{where}: a {datatype} tensor holds numbers; got "
                           f"{_array_kind(values) if kind not in 'iuf' else 'true/false'}")
        elif target.kind in "iu":
            if kind == "f":
                raise BadInput(f"{where}: a {datatype} tensor holds integers; got numbers "
                               "with a fraction or exponent")
            limits = np.iinfo(target)
            low, high = values.min(), values.max()
            if low < limits.min or high > limits.max:
                bad = low if low < limits.min else high
                raise BadInput(f"{where}: {bad} is out of the range of {datatype} "
                               f"({limits.min} to {limits.max})")
            return values.astype(target).reshape(shape)
        elif target.itemsize < 8:
            cast = values.astype(target)
            if not np.isfinite(cast).all():
                raise BadInput(f"{where}: a value is out of the range of {datatype}")
            return cast.reshape(shape)
    return values.astype(target, copy=False).reshape(shape)


def _flatten(data: Any, into: list) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten(item, into)
    else:
        into.append(data)


def _holds_bool(data: Any) -> bool:
    if type(data) is bool:
        return True
    if isinstance(data, list):
        return any(_holds_bool(item) for item in data)
    return False


def _check_count(where: str, shape: list, count: int, got: int) -> None:
    if got != count:
        raise BadInput(f"{where}: shape {shape} needs {count} value(s), data has {got}")


def _array_kind(values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind == "b":
        return "true/false"
    if kind in "iuf":
        return "numbers"
    if kind in "US":
        return "strings"
    return _value_kind(next((v for v in values.flat if not isinstance(v, (int, float))),
                            values.flat[0]))


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a JSON object"
    return type(value).__name__


def _from_base64(where: str, array: np.ndarray) -> np.ndarray:
    """MLServer's Base64Codec: BYTES elements sent as base64 text."""
    out = np.empty(array.size, dtype=object)
    try:
        out[:] = [base64.b64decode(v, validate=True) for v in array.flat]
    except ValueError:
        raise BadInput(f"{where}: content_type is base64 but an element is not base64") from None
    return out.reshape(array.shape)


def _from_binary(where: str, datatype: str, shape: list, raw: memoryview) -> np.ndarray:
    count = _count(shape)
    if datatype == "BYTES":
        items, offset, end = [], 0, len(raw)
        while offset < end:
            if offset + 4 > end:
                raise BadInput(f"{where}: BYTES data ends inside an element's 4-byte length")
            (length,) = _LENGTH.unpack_from(raw, offset)
            offset += 4
            if offset + length > end:
                raise BadInput(f"{where}: a BYTES element of {length} bytes runs past its "
                               f"binary_data_size")
            items.append(bytes(raw[offset:offset + length]))
            offset += length
        _check_count(where, shape, count, len(items))
        try:
            values: list = [item.decode("utf-8") for item in items]
        except UnicodeDecodeError:
            values = items  # not text: the model gets the bytes
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    dtype = DATATYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise BadInput(f"{where}: shape {shape} of {datatype} needs {count * dtype.itemsize} "
                       f"bytes, binary_data_size is {len(raw)}")
    if datatype == "BOOL":
        return (np.frombuffer(raw, dtype=np.uint8) != 0).reshape(shape)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


# -- outputs ------------------------------------------------------------------------------


def to_tensor(result: Any) -> tuple[str, np.ndarray] | None:
    """An API's result (for one request) as ``(datatype, array)``, or None when it is not
    a tensor (a dict, ragged lists, mixed values)."""
    if hasattr(result, "to_numpy") and not isinstance(result, np.ndarray):
        result = result.to_numpy()
    try:
        array = np.asarray(result)
    except (ValueError, TypeError):
        return None
    kind = array.dtype.kind
    if kind == "f" and array.dtype.itemsize > 8:
        array = array.astype(np.float64)
    name = _BY_KIND_SIZE.get((kind, array.dtype.itemsize))
    if name is not None:
        return name, array
    if kind in "US":
        return "BYTES", array.astype(object)
    if kind == "O" and array.size and all(isinstance(v, (str, bytes)) for v in array.flat):
        return "BYTES", array
    if kind == "O" and array.size and all(isinstance(v, (bool, np.bool_)) for v in array.flat):
        return "BOOL", array.astype(bool)
    if kind == "O" and array.size and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            and -2 ** 63 <= v < 2 ** 63 for v in array.flat):
        return "INT64", array.astype(np.int64)
    if kind == "O" and array.size and all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
            for v in array.flat):
        return "FP64", array.astype(np.float64)
    return None


_BINARY_OUTPUTS: dict[tuple, bytes] = {}  # encode_output: (name, datatype, shape) -> JSON


def encode_output(name: str, result: Any, binary: bool) -> tuple[bytes, bytes | None]:
    """One response output: its JSON object (bytes) and, when ``binary``, its raw data.
    A result that is no tensor is sent as one BYTES element of its JSON text, marked
    ``parameters.content_type: "json"``."""
    if type(result) is np.ndarray and (result.dtype.kind, result.dtype.itemsize) in _BY_KIND_SIZE:
        array = result  # the usual case, a slice of the batch's numpy result
        datatype = _BY_KIND_SIZE[array.dtype.kind, array.dtype.itemsize]
        if binary and datatype != "BOOL":
            # its JSON depends on the name, datatype and shape alone: made once
            raw = np.ascontiguousarray(array, dtype=DATATYPES[datatype]).tobytes()
            key = (name, datatype, array.shape)
            meta = _BINARY_OUTPUTS.get(key)
            if meta is None:
                meta = (f'{{"name":{_compact(name)},"datatype":"{datatype}","shape":'
                        f'{_compact(list(array.shape))},"parameters":{{"binary_data_size":'
                        f'{len(raw)}}}}}').encode()
                if len(_BINARY_OUTPUTS) < 256:
                    _BINARY_OUTPUTS[key] = meta
            return meta, raw
        tensor: tuple | None = (datatype, array)
    else:
        tensor = to_tensor(result)
    extra = ""
    if tensor is None:
        tensor = ("BYTES", np.array([dumps_json(result).decode()], dtype=object))
        extra = '"content_type":"json",'
    datatype, array = tensor
    shape = _compact(list(array.shape))
    head = f'{{"name":{_compact(name)},"datatype":"{datatype}","shape":{shape}'
    if binary:
        if datatype == "BYTES":
            parts = []
            for value in array.flat:
                item = value if isinstance(value, bytes) else str(value).encode("utf-8")
                parts += (_LENGTH.pack(len(item)), item)
            raw = b"".join(parts)
        elif datatype == "BOOL":
            raw = array.astype(np.uint8).tobytes()
        else:
            raw = np.ascontiguousarray(array, dtype=DATATYPES[datatype]).tobytes()
        return f'{head},"parameters":{{{extra}"binary_data_size":{len(raw)}}}}}'.encode(), raw
    if extra:
        head += f',"parameters":{{{extra[:-1]}}}'
    if datatype == "BYTES":
        data: Any = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                     for v in array.flat]
    else:
        data = array.ravel().tolist()
    try:
        text = _compact(data)
    except ValueError:  # NaN or infinity: dumps_json makes them null
        text = dumps_json(data).decode()
    return f'{head},"data":{text}}}'.encode(), None


class _OutputPayload(Payload):
    """A payload for one API of an OIP request: the model thread encodes its result with
    ``encode`` (see :class:`~bento_nb.server.batching.Dispatcher`) instead of as JSON."""

    __slots__ = ("encode",)

    def __init__(self, payload: Payload, encode: Callable[[Any], Any]):
        super().__init__(payload.value, payload.rows, payload.columns)
        self.encode = encode


# -- the protocol -------------------------------------------------------------------------


class OpenInference:
    """The OIP endpoints of one server. ``state`` is what the server's handlers share:
    ``service``, ``dispatchers`` (one per API), ``ready`` and ``draining``."""

    def __init__(self, state: Any):
        from ..containerize.k8s import k8s_name

        self.state = state
        service = state.service
        self.name = service.name
        self.version = getattr(service, "version", None)
        self.apis = service.apis
        self.default_output = "predict" if "predict" in self.apis else next(iter(self.apis))
        # APIs whose adapters are configured alike share one decoded payload
        self._input_keys = {name: json.dumps(api.input.config(), sort_keys=True)
                            for name, api in self.apis.items()}
        self._encoders = {(name, binary): _encoder(name, binary)
                          for name in self.apis for binary in (False, True)}
        self._names = {self.name.lower(), k8s_name(self.name),
                       k8s_name(self.name, max_length=_KSERVE_NAME_LENGTH)}
        head: dict = {"model_name": self.name}
        if self.version:
            head["model_version"] = self.version
        self._head = json.dumps(head, separators=(",", ":"))[:-1]
        self._metadata = json.dumps(model_metadata(service)).encode()
        self._server = json.dumps({"name": "bento_nb", "version": __version__,
                                   "extensions": ["binary_tensor_data"]}).encode()

    match = staticmethod(match)

    def list_versions(self, versions: list[str]) -> None:
        """The versions ``GET /v2/models/{name}`` lists: every one a split serves."""
        metadata = json.loads(self._metadata)
        metadata["versions"] = list(versions)
        self._metadata = json.dumps(metadata).encode()

    # -- GET ------------------------------------------------------------------------

    def check(self, endpoint: Endpoint, method: str) -> None:
        """Raise what the transport should answer before anything else: 405 for the wrong
        method, 404 for an unknown model or version."""
        if method != endpoint.method and not (method == "HEAD" and endpoint.method == "GET"):
            raise MethodNotAllowed(f"method {method} is not allowed here; use "
                                   f"{endpoint.method}", allow=[endpoint.method])
        if endpoint.model is not None:
            self.resolve(endpoint.model, endpoint.version)

    def resolve(self, model: str, version: str | None) -> None:
        """Raise NotFound (404) unless ``model`` (and ``version``) name this bundle."""
        if model != self.name and model.lower() not in self._names:
            raise NotFound(f"unknown model {model!r}: this server serves {self.name!r}")
        if version is not None and version != self.version:
            have = f"version {self.version!r}" if self.version else "no versions (a live object)"
            raise NotFound(f"unknown version {version!r} of model {self.name!r}: it has {have}")

    def get(self, endpoint: Endpoint) -> tuple[int, list, bytes]:
        """The answer to a GET endpoint (errors raised as BentoNbError)."""
        kind = endpoint.kind
        if kind == "live":
            return 200, _JSON_HEADERS, b'{"live":true}'
        if kind == "server_metadata":
            return 200, _JSON_HEADERS, self._server
        if kind == "ready":
            problem = self.problem()
            if problem is not None:
                return self._not_ready(problem, {"ready": False})
            return 200, _JSON_HEADERS, b'{"ready":true}'
        self.resolve(endpoint.model, endpoint.version)
        if kind == "model_metadata":
            return 200, _JSON_HEADERS, self._metadata
        if kind == "model_ready":
            problem = self.problem()
            if problem is not None:
                return self._not_ready(problem, {"name": self.name, "ready": False})
            return 200, _JSON_HEADERS, json.dumps({"name": self.name, "ready": True}).encode()
        raise MethodNotAllowed("inference takes POST", allow=["POST"])

    def problem(self) -> str | None:
        """Why the server cannot take inference requests now, or None."""
        state = self.state
        if state.draining:
            return "the server is shutting down"
        if not state.ready:
            return "the server is starting"
        for name, dispatcher in state.dispatchers.items():
            reason = dispatcher.health()
            if reason is not None:
                return f"API {name!r}: {reason}"
        return None

    def _not_ready(self, problem: str, body: dict) -> tuple[int, list, bytes]:
        retry = str(max(1, int(getattr(self.state.config, "retry_after_s", 1))))
        return (503, [*_JSON_HEADERS, ("Retry-After", retry)],
                json.dumps({**body, "error": f"not ready: {problem}"}).encode())

    # -- POST infer -----------------------------------------------------------------

    def infer(self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str],
              reply: Reply) -> None:
        """Decode, validate and queue one infer request; ``reply(status, headers, body)``
        is called once, on the loop the dispatchers answer on. Raises BentoNbError for a
        request refused at once (bad body: 400, unknown model: 404, queue full: 503)."""
        self.resolve(endpoint.model, endpoint.version)
        encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            body = self._decompress(body, encoding)
        request = decode_request(body, headers.get(HEADER_LENGTH))
        default_binary = request.parameters.get("binary_data_output") is True
        if "classification" in request.parameters:
            raise BadInput("the classification extension is not supported; ask for "
                           "predict_proba as an output instead")
        wanted = request.outputs or [(self.default_output, {})]
        if len({name for name, _ in wanted}) != len(wanted):
            raise BadInput("an output is requested twice")
        calls = []
        payloads: dict = {}
        for name, params in wanted:
            api = self.apis.get(name)
            if api is None:
                raise BadInput(f"unknown output {name!r}: model {self.name!r} has the outputs "
                               f"{', '.join(self.apis)} (one per API)")
            if "classification" in params:
                raise BadInput("the classification extension is not supported; ask for "
                               "predict_proba as an output instead")
            binary = params.get("binary_data", default_binary) is True
            key = self._input_keys[name]
            if key not in payloads:
                payloads[key] = to_payload(api, request)
            calls.append((api.name, binary, payloads[key]))
        _Answer(self, request.id, calls, reply).submit()


    def _decompress(self, body: bytes, encoding: str) -> bytes:
        """A gzip or deflate body (tritonclient's ``request_compression_algorithm``),
        inflated up to the server's body limit: past it, 413."""
        if encoding not in ("gzip", "deflate"):
            raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported: send "
                                       "gzip, deflate or an uncompressed body")
        limit = int(getattr(self.state.config, "max_body_bytes", 20 * 1024 * 1024))
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip"
                                      else zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as e:
            raise BadInput(f"the body is not valid {encoding} data: {e}") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"the request body inflates to more than the limit of "
                                  f"{limit} bytes; send fewer rows per request")
        return data


class _Answer:
    """The outputs of one infer request: submitted to each API's dispatcher, assembled
    when the last one is back; the first error answers alone."""

    __slots__ = ("calls", "done", "head", "oip", "parts", "remaining", "reply")

    def __init__(self, oip: OpenInference, request_id: str | None, calls: list, reply: Reply):
        self.head = oip._head + ("" if request_id is None
                                 else f',"id":{json.dumps(request_id)}')
        self.calls = calls
        self.parts: list = [None] * len(calls)
        self.remaining = len(calls)
        self.reply = reply
        self.done = False
        self.oip = oip

    def submit(self) -> None:
        dispatchers = self.oip.state.dispatchers
        encoders = self.oip._encoders
        for index, (name, binary, payload) in enumerate(self.calls):
            encode = encoders[name, binary]
            try:
                dispatchers[name].submit(_OutputPayload(payload, encode),
                                         lambda ok, body, _i=index: self.answered(_i, ok, body))
            except BentoNbError:
                # Refused at once (queue full, stopping): the transport answers it; results
                # of outputs queued before are dropped when they come.
                self.done = True
                raise

    def answered(self, index: int, ok: bool, body: Any) -> None:
        if self.done:
            return
        if not ok:
            self.done = True
            status, headers, data = render_oip_error(body)
            self.reply(status, list(headers.items()), data)
            return
        self.parts[index] = body
        self.remaining -= 1
        if self.remaining:
            return
        self.done = True
        outputs = b",".join(part[0] for part in self.parts)
        header = (self.head + ',"outputs":[').encode() + outputs + b"]}"
        raws = [part[1] for part in self.parts if part[1] is not None]
        if not raws:
            self.reply(200, _JSON_HEADERS, header)
            return
        self.reply(200, [("Content-Type", "application/octet-stream"),
                         (HEADER_LENGTH, str(len(header)))], header + b"".join(raws))


def _encoder(name: str, binary: bool) -> Callable[[Any], tuple]:
    def encode(result: Any) -> tuple[bytes, bytes | None]:
        try:
            return encode_output(name, result, binary)
        except BentoNbError:
            raise
        except Exception as e:  # noqa: BLE001 - the model's value: a 500 that says why
            raise ModelError(f"the result of API {name!r} cannot be sent as a tensor: "
                             f"{type(e).__name__}: {e}") from None
    return encode


# -- payloads and metadata ----------------------------------------------------------------


def to_payload(api: Any, request: InferRequest) -> Payload:
    """The inputs of ``request`` as a payload of ``api``'s adapter, validated by it.

    Table APIs (DataframeInput): one tensor of shape [rows, columns] (or [columns] for one
    row, [rows] for a one-column table) is its rows; several tensors, or
    ``parameters.content_type: "pd"``, are columns named by the inputs, each of shape
    [rows] or [rows, 1]. JSON APIs get the tensor as nested lists (several: an object of
    them by name); text and file APIs one BYTES element."""
    adapter = api.input
    inputs = request.inputs
    table = len(inputs) > 1 or request.parameters.get("content_type") == "pd"
    kind = adapter.kind
    if kind == "dataframe":
        if not table:
            tensor = inputs[0]
            array = tensor.array
            if array.ndim == 1:
                array = array.reshape(-1, 1) if adapter.n_columns == 1 else array.reshape(1, -1)
            elif array.ndim != 2:
                raise BadInput(f"input {tensor.name!r} has shape {list(tensor.array.shape)}: "
                               f"API {api.name!r} takes a table, [rows, columns]")
            return adapter.from_array(array)
        columns = {}
        rows = None
        for tensor in inputs:
            array = tensor.array
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != 1:
                raise BadInput(f"input {tensor.name!r} has shape {list(tensor.array.shape)}: "
                               "a column of a table is [rows] or [rows, 1]")
            if rows is not None and len(array) != rows:
                raise BadInput(f"input {tensor.name!r} has {len(array)} rows, the others {rows}")
            rows = len(array)
            columns[tensor.name] = array.tolist()
        return adapter.from_python(columns)
    if kind == "json":
        if not table:
            return adapter.from_python(inputs[0].array.tolist())
        return adapter.from_python({t.name: t.array.tolist() for t in inputs})
    if len(inputs) != 1 or inputs[0].array.size != 1 or inputs[0].datatype != "BYTES":
        raise BadInput(f"API {api.name!r} takes one BYTES input of one element "
                       f"({'text' if kind == 'string' else 'a file'})")
    value = inputs[0].array.flat[0]
    if kind == "string":
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput(f"input {inputs[0].name!r} is not UTF-8 text") from None
        return adapter.from_python(value)
    return adapter.from_python(value)


def _platform(service: Any) -> str:
    bundle = getattr(service, "bundle", None)
    records = (bundle.manifest.get("artifacts") or []) if bundle is not None else []
    if any(str(r.get("type", "")).startswith("Sklearn") for r in records):
        return "sklearn"
    artifacts = getattr(service, "artifacts", None)
    for _, obj in (artifacts.items() if artifacts is not None else ()):
        if type(obj).__module__.split(".")[0] == "sklearn":
            return "sklearn"
    return "bento_nb"


def _input_metadata(api: Any) -> list[dict]:
    adapter = api.input
    if adapter.kind == "dataframe":
        numeric = getattr(adapter, "numeric", None)
        datatype = "FP64" if numeric is not False else "BYTES"
        if adapter.columns:
            return [{"name": c, "datatype": datatype, "shape": [-1, 1]} for c in adapter.columns]
        width = adapter.n_columns if adapter.n_columns is not None else -1
        return [{"name": "input-0", "datatype": datatype, "shape": [-1, width]}]
    if adapter.kind == "json":
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1]}]
    return [{"name": "input-0", "datatype": "BYTES", "shape": [1]}]


def _output_metadata(service: Any) -> list[dict]:
    """The outputs whose datatype the model tells ahead (a scikit-learn estimator's
    ``classes_``); other APIs are outputs too, by name, of the type their results have."""
    model = None
    artifacts = getattr(service, "artifacts", None)
    for _, obj in (artifacts.items() if artifacts is not None else ()):
        model = obj
        break
    classes = getattr(model, "classes_", None)
    outputs = []
    for name in service.apis:
        if classes is not None and name == "predict":
            tensor = to_tensor(np.asarray(classes)[:1])
            if tensor is not None:
                outputs.append({"name": name, "datatype": tensor[0], "shape": [-1]})
        elif classes is not None and name in ("predict_proba", "predict_log_proba"):
            outputs.append({"name": name, "datatype": "FP64", "shape": [-1, len(classes)]})
        elif classes is None and name == "predict" and hasattr(model, "n_features_in_"):
            outputs.append({"name": name, "datatype": "FP64", "shape": [-1]})
    return outputs


def model_metadata(service: Any) -> dict:
    """``GET /v2/models/{name}``: platform, versions, inputs (from the first API's input
    adapter: a table's columns, its width) and the outputs known ahead."""
    apis = service.apis
    first = apis.get("predict") or next(iter(apis.values()))
    version = getattr(service, "version", None)
    out = {"name": service.name, "versions": [version] if version else [],
           "platform": _platform(service), "inputs": _input_metadata(first),
           "outputs": _output_metadata(service)}
    return out

"""The Open Inference Protocol (KServe v2 REST) on a real server on 127.0.0.1, through real
clients: Triton's ``tritonclient[http]`` (JSON and the binary tensor extension) and the
request shapes of MLServer's codecs (``PandasCodec``, ``NumpyRequestCodec``,
``StringRequestCodec``; KServe's own client pins pandas < 3 and protobuf < 7, so it does not
install beside this project). Answers are compared with the native routes'."""

from __future__ import annotations

import json
import struct
import time

import numpy as np
import pytest

from .conftest import metric_value, post_json, request

tritonclient_http = pytest.importorskip("tritonclient.http")

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 5.4, 2.1], [5.9, 3.0, 4.2, 1.5]]


class Doubler:
    """A tensor model: float32 in, float32 out (JSON input: nested lists)."""

    def predict(self, x):
        return np.asarray(x, dtype=np.float32) * 2


class Echo:
    """Returns its input as an array of the type the values have."""

    def predict(self, x):
        return np.asarray(x)


def client(handle):
    return tritonclient_http.InferenceServerClient(f"127.0.0.1:{handle.port}",
                                                   network_timeout=10, connection_timeout=10)


def infer_input(name, array, binary):
    from tritonclient.utils import np_to_triton_dtype

    tensor = tritonclient_http.InferInput(name, list(array.shape),
                                          np_to_triton_dtype(array.dtype))
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.fixture
def iris_oip(iris_clf, serve_model):
    import bento_nb

    bundle = bento_nb.pack(iris_clf, name="IrisClassifier", apis=["predict", "decision_function"])
    return serve_model(bundle.tag), bundle


def native(handle, rows, route="predict"):
    r = post_json(f"{handle.url}/{route}", rows)
    assert r.status == 200, r
    return r.json()


# -- tritonclient -------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_against_the_iris_svc_answers_as_the_native_route(iris_oip, binary):
    handle, bundle = iris_oip
    triton = client(handle)
    assert triton.is_server_live() and triton.is_server_ready()
    # the bundle's name, the lower-case name KServe's InferenceService has, with a version
    assert triton.is_model_ready("IrisClassifier")
    assert triton.is_model_ready("irisclassifier")
    assert triton.is_model_ready("IrisClassifier", model_version=bundle.version)
    assert not triton.is_model_ready("OtherModel")
    metadata = triton.get_model_metadata("irisclassifier")
    assert metadata["name"] == "IrisClassifier" and metadata["versions"] == [bundle.version]
    assert metadata["platform"] == "sklearn"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert {"name": "predict", "datatype": "INT64", "shape": [-1]} in metadata["outputs"]

    rows = np.array(ROWS)
    result = triton.infer("IrisClassifier", [infer_input("input-0", rows, binary)],
                          outputs=[tritonclient_http.InferRequestedOutput(
                              "predict", binary_data=binary)])
    assert result.as_numpy("predict").tolist() == native(handle, ROWS) == [0, 2, 1]
    response = result.get_response()
    assert response["model_name"] == "IrisClassifier"
    assert response["model_version"] == bundle.version
    assert response["outputs"][0]["datatype"] == "INT64"
    assert response["outputs"][0]["shape"] == [3]
    # without outputs tritonclient asks for every output in binary: the predict API answers
    result = triton.infer("IrisClassifier", [infer_input("x", rows, binary)],
                          model_version=bundle.version, request_id="r-1")
    assert result.as_numpy("predict").tolist() == [0, 2, 1]
    assert result.get_response()["id"] == "r-1"
    triton.close()


def test_requested_outputs_pick_the_apis(iris_oip):
    handle, _ = iris_oip
    triton = client(handle)
    result = triton.infer("IrisClassifier", [infer_input("input-0", np.array(ROWS), True)],
                          outputs=[tritonclient_http.InferRequestedOutput("decision_function"),
                                   tritonclient_http.InferRequestedOutput("predict",
                                                                          binary_data=False)])
    assert result.as_numpy("predict").tolist() == [0, 2, 1]
    scores = result.as_numpy("decision_function")
    assert scores.shape == (3, 3) and scores.dtype == np.float64
    assert np.allclose(scores, native(handle, ROWS, "decision_function"))
    names = [o["name"] for o in result.get_response()["outputs"]]
    assert names == ["decision_function", "predict"]
    triton.close()


def test_a_float32_tensor_model_through_tritonclient(serve_model):
    import bento_nb

    bundle = bento_nb.pack(Doubler(), name="Doubler", input="json", batch=False)
    handle = serve_model(bundle.tag)
    triton = client(handle)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for binary in (True, False):
        result = triton.infer("doubler", [infer_input("x", x, binary)],
                              outputs=[tritonclient_http.InferRequestedOutput(
                                  "predict", binary_data=binary)])
        out = result.as_numpy("predict")
        assert out.dtype == np.float32 and out.shape == (2, 3)
        assert out.tolist() == (x * 2).tolist() == native(handle, x.tolist())
        assert result.get_response()["outputs"][0]["datatype"] == "FP32"
    assert triton.get_model_metadata("Doubler")["platform"] == "bento_nb"
    triton.close()


# -- MLServer's codecs --------------------------------------------------------------------

# Exactly what mlserver 1.7.1's codecs send (model_dump_json(exclude_none=True)):
# PandasCodec.encode_request(pd.DataFrame({...four iris columns...}))
PANDAS_REQUEST = {"parameters": {"content_type": "pd"}, "inputs": [
    {"name": "sepal_length", "shape": [3, 1], "datatype": "FP64", "data": [5.1, 6.9, 5.9]},
    {"name": "sepal_width", "shape": [3, 1], "datatype": "FP64", "data": [3.5, 3.1, 3.0]},
    {"name": "petal_length", "shape": [3, 1], "datatype": "FP64", "data": [1.4, 5.4, 4.2]},
    {"name": "petal_width", "shape": [3, 1], "datatype": "FP64", "data": [0.2, 2.1, 1.5]}]}
# NumpyRequestCodec.encode_request(np.array(ROWS))
NUMPY_REQUEST = {"parameters": {"content_type": "np"}, "inputs": [
    {"name": "input-1", "shape": [3, 4], "datatype": "FP64",
     "parameters": {"content_type": "np"}, "data": [v for row in ROWS for v in row]}]}
# StringRequestCodec.encode_request(["hello"])
STRING_REQUEST = {"parameters": {"content_type": "str"}, "inputs": [
    {"name": "input-1", "shape": [1, 1], "datatype": "BYTES",
     "parameters": {"content_type": "str"}, "data": ["hello"]}]}


def test_mlserver_codec_requests_answer_as_the_native_route(iris, serve_model, iris_oip):
    import pandas as pd
    from sklearn import svm

    import bento_nb

    handle, _ = iris_oip
    for body in (PANDAS_REQUEST, NUMPY_REQUEST):
        r = post_json(handle.url + "/v2/models/IrisClassifier/infer", body)
        assert r.status == 200, r
        assert r.json()["outputs"] == [
            {"name": "predict", "datatype": "INT64", "shape": [3], "data": native(handle, ROWS)}]

    # a model fitted on named columns takes PandasCodec's columns by name, in any order
    X, y = iris
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    named = bento_nb.pack(svm.SVC().fit(pd.DataFrame(X, columns=names), y), name="Named")
    named_handle = serve_model(named.tag)
    shuffled = {**PANDAS_REQUEST, "inputs": PANDAS_REQUEST["inputs"][::-1]}
    r = post_json(named_handle.url + "/v2/models/named/infer", shuffled)
    assert (r.status, r.json()["outputs"][0]["data"]) == (200, [0, 2, 1])
    metadata = request(named_handle.url + "/v2/models/Named").json()
    assert [i["name"] for i in metadata["inputs"]] == names
    wrong = {**PANDAS_REQUEST, "inputs": [{**PANDAS_REQUEST["inputs"][0], "name": "other"},
                                          *PANDAS_REQUEST["inputs"][1:]]}
    r = post_json(named_handle.url + "/v2/models/named/infer", wrong)
    assert r.status == 400 and "do not match" in r.json()["error"]


def test_a_text_api_takes_mlservers_string_request(serve_model):
    import bento_nb

    bundle = bento_nb.pack(str.upper, name="Shout", input="string", batch=False)
    handle = serve_model(bundle.tag)
    r = post_json(handle.url + "/v2/models/shout/infer", STRING_REQUEST)
    assert r.status == 200, r
    assert r.json()["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [],
                                    "data": ["HELLO"]}]


# -- every datatype -----------------------------------------------------------------------

VALUES = {
    "BOOL": [True, False, True, True], "UINT8": [0, 1, 254, 255], "UINT16": [0, 1, 2, 65535],
    "UINT32": [0, 1, 2, 2 ** 32 - 1], "UINT64": [0, 1, 2, 2 ** 64 - 1],
    "INT8": [-128, -1, 0, 127], "INT16": [-32768, 0, 1, 32767],
    "INT32": [-2 ** 31, 0, 1, 2 ** 31 - 1], "INT64": [-2 ** 63, 0, 1, 2 ** 63 - 1],
    "FP16": [0.5, -1.5, 2.0, 65504.0], "FP32": [0.5, -1.5, 2.0, 3.25],
    "FP64": [0.1, -1.5, 2.0, 1e300], "BYTES": ["a", "", "héllo", "x y"],
}


def binary_of(datatype, values):
    from bento_nb.server.oip import DATATYPES

    if datatype == "BYTES":
        items = [v.encode() for v in values]
        return b"".join(struct.pack("<I", len(b)) + b for b in items)
    return np.array(values, dtype=DATATYPES[datatype]).tobytes()


@pytest.mark.parametrize("datatype", list(VALUES))
def test_every_datatype_decodes_from_json_flat_nested_and_binary(datatype):
    from bento_nb.server.oip import DATATYPES, decode_request

    values = VALUES[datatype]
    nested = [values[:2], values[2:]]
    expected = np.array(values, dtype=DATATYPES[datatype]).reshape(2, 2)
    for data in (values, nested):
        body = json.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": datatype,
                                       "data": data}]}).encode()
        (tensor,) = decode_request(body).inputs
        assert tensor.array.shape == (2, 2) and tensor.array.dtype == expected.dtype
        assert tensor.array.tolist() == expected.tolist()
    raw = binary_of(datatype, values)
    header = json.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": datatype,
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    (tensor,) = decode_request(header + raw, str(len(header))).inputs
    assert tensor.array.dtype == expected.dtype and tensor.array.tolist() == expected.tolist()


@pytest.mark.parametrize("datatype", list(VALUES))
def test_every_datatype_through_the_server_and_back(serve_model, datatype):
    """A JSON echo model: what tritonclient sends, JSON and binary, comes back equal."""
    import bento_nb
    from tritonclient.utils import triton_to_np_dtype

    bundle = bento_nb.pack(Echo(), name="Echo", input="json", batch=False)
    handle = serve_model(bundle.tag)
    triton = client(handle)
    dtype = triton_to_np_dtype(datatype)
    values = VALUES[datatype]
    if datatype == "UINT64":
        # a JSON API gets Python ints, which numpy (the echo) makes floats past int64
        values = [0, 1, 2, 2 ** 63 - 1]
    array = np.array(values, dtype=dtype).reshape(2, 2)
    if datatype == "BYTES":
        array = np.array([v.encode() for v in VALUES[datatype]], dtype=object).reshape(2, 2)
    for binary in (True, False):
        result = triton.infer("Echo", [infer_input("x", array, binary)],
                              outputs=[tritonclient_http.InferRequestedOutput(
                                  "predict", binary_data=binary)])
        back = result.as_numpy("predict")
        assert back.shape == (2, 2)
        if datatype == "BYTES":
            texts = [b.decode() if isinstance(b, bytes) else b for b in back.flat]
            assert texts == VALUES[datatype]
        else:
            assert back.astype(dtype).tolist() == array.tolist()
    triton.close()


# -- errors -------------------------------------------------------------------------------

GOOD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROWS[0]}]}


def one_input(**fields):
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROWS[0],
                        **fields}]}


ERRORS = [
    ("wrong datatype: text", "/v2/models/IrisClassifier/infer",
     one_input(data=["a", "b", "c", "d"]), 400, "FP64 tensor holds numbers"),
    ("wrong datatype: fraction in INT32", "/v2/models/IrisClassifier/infer",
     one_input(datatype="INT32"), 400, "holds integers"),
    ("wrong datatype: bool in FP64", "/v2/models/IrisClassifier/infer",
     one_input(data=[1.0, True, 2.0, 3.0]), 400, "true/false"),
    ("out of range", "/v2/models/IrisClassifier/infer",
     one_input(datatype="UINT8", data=[1, 2, 3, 256]), 400, "out of the range of UINT8"),
    ("unknown datatype", "/v2/models/IrisClassifier/infer",
     one_input(datatype="FLOAT"), 400, "unknown datatype"),
    ("shape/data length mismatch", "/v2/models/IrisClassifier/infer",
     one_input(shape=[2, 4]), 400, "needs 8 value(s), data has 4"),
    ("ragged nested data", "/v2/models/IrisClassifier/infer",
     one_input(data=[[1.0, 2.0], [3.0]]), 400, "nested unevenly"),
    ("wrong width for the model", "/v2/models/IrisClassifier/infer",
     one_input(shape=[1, 3], data=[1.0, 2.0, 3.0]), 400, "expected 4 columns"),
    ("no inputs", "/v2/models/IrisClassifier/infer", {"inputs": []}, 400, "empty"),
    ("not JSON", "/v2/models/IrisClassifier/infer", "{nope", 400, "malformed JSON"),
    ("unknown output", "/v2/models/IrisClassifier/infer",
     {**GOOD, "outputs": [{"name": "predict_proba"}]}, 400, "unknown output 'predict_proba'"),
    ("unknown model", "/v2/models/Nope/infer", GOOD, 404, "unknown model 'Nope'"),
    ("unknown version", "/v2/models/IrisClassifier/versions/7/infer", GOOD, 404,
     "unknown version '7'"),
    ("unknown model metadata", "/v2/models/Nope", None, 404, "unknown model"),
    ("unknown version ready", "/v2/models/IrisClassifier/versions/7/ready", None, 404,
     "unknown version"),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors_have_the_protocols_body_and_the_server_keeps_serving(iris_server, case):
    _, path, body, status, text = case
    if body is None:
        r = request(iris_server.url + path)
    else:
        r = request(iris_server.url + path, "POST",
                    body if isinstance(body, str) else json.dumps(body))
    assert r.status == status, r
    answer = r.json()
    assert list(answer) == ["error"] and isinstance(answer["error"], str)
    assert text in answer["error"], answer
    good = post_json(iris_server.url + "/v2/models/IrisClassifier/infer", GOOD)
    assert good.status == 200 and good.json()["outputs"][0]["data"] == [0]


BINARY_HEADER = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                                        "parameters": {"binary_data_size": 32}}]}).encode()
BINARY_DATA = np.array(ROWS[0]).tobytes()


@pytest.mark.parametrize("header_length,body,text", [
    ("abc", BINARY_HEADER + BINARY_DATA, "Inference-Header-Content-Length is 'abc'"),
    ("-5", BINARY_HEADER + BINARY_DATA, "Inference-Header-Content-Length is '-5'"),
    ("99999", BINARY_HEADER + BINARY_DATA, "Inference-Header-Content-Length is '99999'"),
    (str(len(BINARY_HEADER) - 3), BINARY_HEADER + BINARY_DATA, "malformed JSON"),
    (str(len(BINARY_HEADER)), BINARY_HEADER + BINARY_DATA[:20], "runs past"),
    (str(len(BINARY_HEADER)), BINARY_HEADER + BINARY_DATA + b"xx", "add up to 32"),
    (str(len(BINARY_HEADER)),
     BINARY_HEADER.replace(b"FP64", b"FP32") + BINARY_DATA,
     "needs 16 bytes, binary_data_size is 32"),
    (None, BINARY_HEADER + BINARY_DATA, "not UTF-8"),  # no header: all of it is JSON
])
def test_malformed_binary_requests_are_400(iris_server, header_length, body, text):
    headers = {} if header_length is None else {"Inference-Header-Content-Length": header_length}
    r = request(iris_server.url + "/v2/models/IrisClassifier/infer", "POST", body,
                "application/octet-stream", headers=headers)
    assert r.status == 400, r
    assert text in r.json()["error"], r
    r = request(iris_server.url + "/v2/models/IrisClassifier/infer", "POST",
                BINARY_HEADER + BINARY_DATA, "application/octet-stream",
                headers={"Inference-Header-Content-Length": str(len(BINARY_HEADER))})
    assert r.status == 200 and r.json()["outputs"][0]["data"] == [0]


def test_bytes_tensor_with_a_bad_length_prefix_is_400():
    from bento_nb.errors import BadInput
    from bento_nb.server.oip import decode_request

    raw = struct.pack("<I", 10) + b"abc"
    header = json.dumps({"inputs": [{"name": "s", "shape": [1], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    with pytest.raises(BadInput, match="runs past its binary_data_size"):
        decode_request(header + raw, str(len(header)))


def test_a_repeated_binary_header_decodes_each_requests_own_data():
    """The checked JSON header of a binary request is kept by its bytes: the next request
    with the same header still gets its own values, and its own size errors."""
    from bento_nb.errors import BadInput
    from bento_nb.server import oip

    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64",
                                     "parameters": {"binary_data_size": 16}}],
                         "outputs": [{"name": "predict"}]}).encode()
    for values in ([1.5, 2.5], [3.0, -4.0], [0.0, 1e300]):
        raw = np.array(values, dtype="<f8").tobytes()
        request = oip.decode_request(header + raw, str(len(header)))
        assert request.inputs[0].array.tolist() == [values]
        assert request.outputs == [("predict", {})]
    assert bytes(header) in oip._PLANS
    with pytest.raises(BadInput, match="runs past the 8 bytes"):
        oip.decode_request(header + b"\0" * 8, str(len(header)))
    with pytest.raises(BadInput, match="24 bytes of binary data follow"):
        oip.decode_request(header + b"\0" * 24, str(len(header)))
    # a header with JSON data is not kept: its values are in it
    inline = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64",
                                     "data": [7.0]}]}).encode()
    oip.decode_request(inline, str(len(inline)))
    assert bytes(inline) not in oip._PLANS


# -- the server's own rules apply ---------------------------------------------------------


def test_token_limits_metrics_and_docs_apply_to_the_protocol(iris_bundle, serve_model):
    handle = serve_model(iris_bundle.tag, api_token="s3cret", max_body_bytes=2000)
    url = handle.url
    r = post_json(url + "/v2/models/IrisClassifier/infer", GOOD)
    assert r.status == 401 and list(r.json()) == ["error"]
    assert request(url + "/v2/models/IrisClassifier").status == 401
    assert request(url + "/v2/health/live").status == 200  # probes stay open
    assert request(url + "/v2/health/ready").json() == {"ready": True}
    auth = {"Authorization": "Bearer s3cret"}
    triton = client(handle)
    result = triton.infer("IrisClassifier", [infer_input("x", np.array(ROWS), True)],
                          headers=auth)
    assert result.as_numpy("predict").tolist() == [0, 2, 1]
    big = {"inputs": [{"name": "x", "shape": [100, 4], "datatype": "FP64",
                       "data": [1.0] * 400}]}
    r = post_json(url + "/v2/models/IrisClassifier/infer", big, headers=auth)
    assert r.status == 413 and list(r.json()) == ["error"]
    metrics = request(url + "/metrics", headers=auth).body.decode()
    assert metric_value(metrics, "bento_nb_requests_total",
                        route="/v2/models/{model}/infer", code="200") == 1
    assert metric_value(metrics, "bento_nb_requests_total",
                        route="/v2/models/{model}/infer", code="413") == 1
    spec = request(url + "/docs.json").json()
    assert {"/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}",
            "/v2/models/{model_name}/ready", "/v2/models/{model_name}/infer",
            "/v2/models/{model_name}/versions/{model_version}/infer"} <= set(spec["paths"])
    assert spec["paths"]["/v2/models/{model_name}/infer"]["post"]["security"]
    triton.close()


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_from_tritonclient(iris_server, algorithm):
    triton = client(iris_server)
    result = triton.infer("IrisClassifier", [infer_input("x", np.array(ROWS), True)],
                          request_compression_algorithm=algorithm)
    assert result.as_numpy("predict").tolist() == [0, 2, 1]
    triton.close()
    r = request(iris_server.url + "/v2/models/IrisClassifier/infer", "POST", b"not gzip",
                headers={"Content-Encoding": algorithm})
    assert r.status == 400 and "not valid" in r.json()["error"]
    r = request(iris_server.url + "/v2/models/IrisClassifier/infer", "POST", b"{}",
                headers={"Content-Encoding": "br"})
    assert r.status == 415 and list(r.json()) == ["error"]


def test_a_body_inflating_past_the_limit_is_413(iris_bundle, serve_model):
    import gzip

    handle = serve_model(iris_bundle.tag, max_body_bytes=10_000)
    bomb = gzip.compress(b" " * 1_000_000)
    assert len(bomb) < 10_000
    r = request(handle.url + "/v2/models/IrisClassifier/infer", "POST", bomb,
                headers={"Content-Encoding": "gzip"})
    assert r.status == 413 and "inflates" in r.json()["error"]


def test_the_kubernetes_name_and_a_wrong_method(serve_model, iris_clf):
    import bento_nb

    bundle = bento_nb.pack(iris_clf, name="Iris_Classifier")
    handle = serve_model(bundle.tag)
    for name in ("Iris_Classifier", "iris_classifier", "iris-classifier"):
        r = post_json(f"{handle.url}/v2/models/{name}/infer", GOOD)
        assert r.status == 200, (name, r)
    r = request(handle.url + "/v2/models/iris-classifier/infer")
    assert r.status == 405 and r.headers["allow"] == "POST" and list(r.json()) == ["error"]
    r = request(handle.url + "/v2/nothing/here")
    assert r.status == 404 and list(r.json()) == ["error"]


def test_infer_requests_share_model_calls_with_native_ones(serve_model):
    """The protocol's requests go through the API's dispatcher: while the model is busy,
    OIP and native requests queue together and the next model call takes them all, each
    answered with its own rows."""
    import threading

    from .conftest import TIMEOUT, GateModel

    model = GateModel()
    handle = serve_model(model, name="Gate")
    dispatcher = handle._server.dispatchers["predict"]
    answers: dict = {}

    def oip(i):
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                            "data": [float(i), 1.0, 2.0, 3.0]}]}
        r = post_json(handle.url + "/v2/models/gate/infer", body)
        answers[i] = (r.status, r.json()["outputs"][0]["data"])

    def native_call(i):
        r = post_json(handle.url + "/predict", [[float(i), 1.0, 2.0, 3.0]])
        answers[i] = (r.status, r.json())

    first = threading.Thread(target=oip, args=(0,))
    first.start()
    assert model.entered.wait(TIMEOUT)  # the model is busy with request 0
    threads = [threading.Thread(target=oip if i % 2 else native_call, args=(i,))
               for i in range(1, 7)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIMEOUT
    while dispatcher.queue_depth < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dispatcher.queue_depth == 6
    model.gate.set()
    for thread in [first, *threads]:
        thread.join(TIMEOUT)
    assert model.sizes == [1, 6]
    assert answers == {0: (200, [0.0]), **{i: (200, [float(i)]) for i in range(1, 7)}}
    assert handle.stats()["requests"] == 7  # API traffic, as the native routes'
    request(handle.url + "/v2/health/ready")
    assert handle.stats()["requests"] == 7  # health checks are not


class Describe:
    def predict(self, x):
        return {"rows": len(x), "first": x[0]}


def test_a_result_that_is_no_tensor_comes_as_its_json_text(serve_model):
    import bento_nb

    bundle = bento_nb.pack(Describe(), name="Describe", input="json", batch=False)
    handle = serve_model(bundle.tag)
    body = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}]}
    r = post_json(handle.url + "/v2/models/describe/infer", body)
    assert r.status == 200, r
    (output,) = r.json()["outputs"]
    assert output["datatype"] == "BYTES" and output["parameters"] == {"content_type": "json"}
    assert json.loads(output["data"][0]) == {"rows": 2, "first": [1, 2]} == native(
        handle, [[1, 2], [3, 4]])


def test_not_ready_when_an_api_model_thread_is_gone(serve_model):
    """The protocol's readiness is the server's: 503 with the reason, and tritonclient's
    is_server_ready / is_model_ready say False; liveness stays true."""
    from .conftest import EchoModel

    handle = serve_model(EchoModel(), name="Echo")
    triton = client(handle)
    assert triton.is_server_ready() and triton.is_model_ready("echo")
    dispatcher = handle._server.dispatchers["predict"]
    dispatcher.close()
    assert dispatcher.join(5)
    r = request(handle.url + "/v2/health/ready")
    assert r.status == 503 and r.headers["retry-after"]
    assert r.json()["ready"] is False
    assert "its model thread is not running" in r.json()["error"]
    r = request(handle.url + "/v2/models/Echo/ready")
    assert (r.status, r.json()["name"], r.json()["ready"]) == (503, "Echo", False)
    assert not triton.is_server_ready() and not triton.is_model_ready("echo")
    assert triton.is_server_live()
    r = post_json(handle.url + "/v2/models/Echo/infer", GOOD)
    assert r.status == 503 and list(r.json()) == ["error"]  # answered at once
    triton.close()


# -- what the transport does for the protocol (tests/server/test_app.py for native routes) ---


def test_head_on_the_protocols_get_endpoints(iris_server):
    for path in ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/IrisClassifier",
                 "/v2/models/IrisClassifier/ready"]:
        head, get = request(iris_server.url + path, "HEAD"), request(iris_server.url + path)
        assert (head.status, head.body, get.status) == (200, b"", 200), path
        assert head.headers["content-type"] == get.headers["content-type"] == "application/json"


def test_a_percent_encoded_model_name_is_decoded_once(serve_model, iris_clf):
    import bento_nb

    bundle = bento_nb.pack(iris_clf, name="Iris_Classifier")
    handle = serve_model(bundle.tag)
    r = post_json(handle.url + "/v2/models/Iris%5FClassifier/infer", GOOD)
    assert r.status == 200 and r.json()["outputs"][0]["data"] == [0]
    # %255F is "%5F" once decoded: no model has that name (decoding twice would find one)
    r = request(handle.url + "/v2/models/Iris%255FClassifier/ready")
    assert r.status == 404 and r.json() == {
        "error": "unknown model 'Iris%5FClassifier': this server serves 'Iris_Classifier'"}


def test_an_infer_past_request_timeout_is_504_in_the_protocols_body(serve_model):
    from .conftest import TIMEOUT, GateModel

    model = GateModel()
    handle = serve_model(model, name="Gate", request_timeout=0.5)
    try:
        r = post_json(handle.url + "/v2/models/gate/infer", GOOD)
        assert r.status == 504, r
        assert list(r.json()) == ["error"] and "within request_timeout" in r.json()["error"]
    finally:
        model.gate.set()
    metrics = request(handle.url + "/metrics").body.decode()
    assert metric_value(metrics, "bento_nb_requests_total",
                        route="/v2/models/{model}/infer", code="504") == 1
    assert model.entered.wait(TIMEOUT)


def test_an_infer_while_the_server_stops_is_503_and_closes_the_connection(serve_model):
    """Draining: a keep-alive client's next infer gets the protocol's 503 with
    ``Connection: close``, while the request in the model is still answered."""
    import http.client
    import threading

    from .conftest import TIMEOUT, GateModel

    model = GateModel()
    handle = serve_model(model, name="Gate")
    model.gate.set()
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=TIMEOUT)
    headers = {"Content-Type": "application/json"}
    body = json.dumps(GOOD)
    conn.request("POST", "/v2/models/gate/infer", body=body, headers=headers)
    first = conn.getresponse()
    assert first.status == 200 and json.loads(first.read())["outputs"][0]["data"] == [5.1]
    model.gate.clear()
    model.entered.clear()
    held: dict = {}
    blocked = threading.Thread(target=lambda: held.update(
        r=post_json(handle.url + "/v2/models/gate/infer", GOOD)))
    blocked.start()
    stopper = threading.Thread(target=handle.stop, kwargs={"timeout": TIMEOUT})
    try:
        assert model.entered.wait(TIMEOUT)
        stopper.start()
        deadline = time.monotonic() + TIMEOUT
        while not handle._server.state.draining and time.monotonic() < deadline:
            time.sleep(0.01)
        conn.request("POST", "/v2/models/gate/infer", body=body, headers=headers)
        during = conn.getresponse()
        answer = json.loads(during.read())
        assert during.status == 503 and during.getheader("Retry-After")
        assert (during.getheader("Connection") or "").lower() == "close"
        assert list(answer) == ["error"] and "shutting down" in answer["error"]
    finally:
        model.gate.set()
        conn.close()
        blocked.join(TIMEOUT)
        stopper.join(TIMEOUT)
    assert held["r"].status == 200 and held["r"].json()["outputs"][0]["data"] == [5.1]

"""Routes of a real server on 127.0.0.1: predictions, docs, operations, errors, auth."""

from __future__ import annotations

import http.client
import json
import re
import socket

import pytest

from .conftest import EchoModel, metric_value, post_json, request

ROW = [[5.1, 3.5, 1.4, 0.2]]


def test_json_and_csv_predict(iris_server):
    # curl -d '[[5.1,3.5,1.4,0.2]]' -H 'Content-Type: application/json' URL/predict
    r = request(iris_server.url + "/predict", "POST", "[[5.1,3.5,1.4,0.2]]")
    assert (r.status, r.json()) == (200, [0])
    assert r.headers["content-type"] == "application/json"
    r = request(iris_server.url + "/predict", "POST", "5.1,3.5,1.4,0.2\n", "text/csv")
    assert (r.status, r.json()) == (200, [0])
    csv_with_header = ("sepal_length,sepal_width,petal_length,petal_width\n"
                       "5.1,3.5,1.4,0.2\n6.9,3.1,5.4,2.1\n")
    r = request(iris_server.url + "/predict", "POST", csv_with_header, "text/csv")
    assert (r.status, r.json()) == (200, [0, 2])
    r = post_json(iris_server.url + "/predict", {"columns": ["a", "b", "c", "d"], "data": ROW})
    assert (r.status, r.json()) == (200, [0])


def test_docs_json_is_valid_openapi(iris_server):
    from openapi_spec_validator import validate

    r = request(iris_server.url + "/docs.json")
    assert r.status == 200
    spec = r.json()
    validate(spec)
    operation = spec["paths"]["/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["example"]
    assert "text/csv" in operation["requestBody"]["content"]
    assert {"400", "413", "415", "500", "503", "504"} <= set(operation["responses"])
    assert {"/healthz", "/readyz", "/metrics", "/metadata"} <= set(spec["paths"])


def test_a_packed_example_is_the_documented_request_and_it_works(iris, serve_model):
    """pack(..., example=X[:2]): /docs.json shows it (JSON, and CSV with the header of a
    named model), and sending exactly that answers 200."""
    import pandas as pd
    from openapi_spec_validator import validate
    from sklearn import svm

    import bento_nb

    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    bundle = bento_nb.pack(svm.SVC().fit(frame, y), name="Named", example=frame[:2])
    handle = serve_model(bundle.tag)
    spec = request(handle.url + "/docs.json").json()
    validate(spec)
    content = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert content["application/json"]["example"] == [
        {"sl": 5.1, "sw": 3.5, "pl": 1.4, "pw": 0.2}, {"sl": 4.9, "sw": 3.0, "pl": 1.4, "pw": 0.2}]
    assert content["text/csv"]["example"] == "sl,sw,pl,pw\n5.1,3.5,1.4,0.2\n4.9,3.0,1.4,0.2\n"
    r = post_json(handle.url + "/predict", content["application/json"]["example"])
    assert (r.status, r.json()) == (200, [0, 0])
    r = request(handle.url + "/predict", "POST", content["text/csv"]["example"],
                content_type="text/csv")
    assert (r.status, r.json()) == (200, [0, 0])


def test_swagger_page_uses_only_local_assets(iris_server):
    r = request(iris_server.url + "/")
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    page = r.body.decode()
    assert "swagger-ui" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 3
    for asset in assets:
        assert not re.match(r"^(https?:)?//", asset), f"external asset {asset}"
        fetched = request(f"{iris_server.url}/{asset}")
        assert fetched.status == 200, asset
        assert len(fetched.body) > 0
    bundle_js = request(iris_server.url + "/static/swagger-ui/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle_js.body
    assert b"docs.json" in request(iris_server.url + "/static/swagger-ui/init.js").body


def test_operational_routes(iris_server, iris_bundle):
    assert request(iris_server.url + "/healthz").json() == {"status": "ok"}
    assert request(iris_server.url + "/readyz").json() == {"status": "ready"}
    meta = request(iris_server.url + "/metadata").json()
    assert meta["tag"] == iris_bundle.tag
    assert meta["apis"][0]["name"] == "predict"
    assert isinstance(meta["pid"], int)
    assert meta["config"]["api_token"] is False
    post_json(iris_server.url + "/predict", ROW)
    request(iris_server.url + "/predict", "POST", "[[1,2]]")
    metrics = request(iris_server.url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.body.decode()
    assert metric_value(text, "bento_nb_requests_total", route="/predict", code="200") == 1
    assert metric_value(text, "bento_nb_errors_total", route="/predict", code="400") == 1
    assert metric_value(text, "bento_nb_request_duration_seconds_count", route="/predict") == 2
    assert metric_value(text, "bento_nb_batch_size_count", api="predict") == 1


# The bad-input corpus: (name, method, path, body, content type, status, error type).
BAD_INPUTS = [
    ("malformed JSON", "POST", "/predict", "[[5.1, 3.5,", "application/json", 400, "BadInput"),
    ("wrong column count", "POST", "/predict", "[[5.1, 3.5, 1.4]]", "application/json", 400,
     "BadInput"),
    ("strings for numbers", "POST", "/predict", '[["a", "b", "c", "d"]]', "application/json",
     400, "BadInput"),
    ("empty body", "POST", "/predict", "", "application/json", 400, "BadInput"),
    ("empty list", "POST", "/predict", "[]", "application/json", 400, "BadInput"),
    ("nested junk", "POST", "/predict", '[[[1, 2], {"a": [3]}, null, 4]]', "application/json",
     400, "BadInput"),
    ("flat list", "POST", "/predict", "[5.1, 3.5, 1.4, 0.2]", "application/json", 400,
     "BadInput"),
    ("a number", "POST", "/predict", "42", "application/json", 400, "BadInput"),
    ("wrong content type", "POST", "/predict", "[[5.1, 3.5, 1.4, 0.2]]", "application/xml",
     415, "UnsupportedMediaType"),
    ("unknown route", "POST", "/nope", "[[5.1, 3.5, 1.4, 0.2]]", "application/json", 404,
     "NotFound"),
    ("GET on /predict", "GET", "/predict", None, None, 405, "MethodNotAllowed"),
    ("NaN", "POST", "/predict", "[[NaN, 3.5, 1.4, 0.2]]", "application/json", 400, "BadInput"),
    ("Infinity", "POST", "/predict", "[[Infinity, 3.5, 1.4, 0.2]]", "application/json", 400,
     "BadInput"),
    ("huge exponent", "POST", "/predict", "[[1e999, 3.5, 1.4, 0.2]]", "application/json", 400,
     "BadInput"),
    ("CSV with a missing column", "POST", "/predict", "5.1,3.5,1.4,0.2\n6.2,3.4,5.4\n",
     "text/csv", 400, "BadInput"),
    ("CSV too narrow", "POST", "/predict", "5.1,3.5,1.4\n", "text/csv", 400, "BadInput"),
    ("not UTF-8", "POST", "/predict", b"\xff\xfe[[1]]", "application/json", 400, "BadInput"),
    ("deep nesting", "POST", "/predict", "[" * 100000 + "]" * 100000, "application/json", 400,
     "BadInput"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_json_error_then_server_still_answers(iris_server, case):
    name, method, path, body, content_type, status, error_type = case
    r = request(iris_server.url + path, method, body, content_type)
    assert r.status == status, (name, r)
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["type"] == error_type
    assert error["message"]
    if status == 405:
        assert r.headers["allow"] == "POST"
    good = post_json(iris_server.url + "/predict", ROW)
    assert (good.status, good.json()) == (200, [0])


def test_405_says_which_methods_are_allowed(iris_server):
    for method, path, allowed in [("TRACE", "/predict", "POST"), ("PUT", "/predict", "POST"),
                                  ("DELETE", "/healthz", "GET, HEAD"),
                                  ("POST", "/metrics", "GET, HEAD"), ("HEAD", "/predict", "POST")]:
        r = request(iris_server.url + path, method)
        assert r.status == 405 and r.headers["allow"] == allowed, (method, path)
        if method != "HEAD":
            assert r.json()["error"]["type"] == "MethodNotAllowed"


def test_head_wherever_get_is(iris_server):
    """Monitors and load balancers probe with HEAD: the GET answer without its body."""
    for path in ["/healthz", "/readyz", "/", "/docs.json", "/metrics", "/metadata",
                 "/static/swagger-ui/swagger-ui.css"]:
        head, get = request(iris_server.url + path, "HEAD"), request(iris_server.url + path)
        assert (head.status, head.body) == (200, b""), path
        assert head.headers["content-type"] == get.headers["content-type"], path


def test_static_traversal_is_not_found(iris_server):
    for path in ["/static/swagger-ui/../../../../etc/passwd",
                 "/static/swagger-ui/%2e%2e/%2e%2e/%2e%2e/etc/passwd"]:
        r = request(iris_server.url + path)
        assert r.status == 404 and r.json()["error"]["type"] == "NotFound", path


def test_nul_byte_in_a_static_path_is_404_without_a_traceback(iris_server, caplog):
    for path in ["/static/swagger-ui/%00", "/static/swagger-ui/swagger-ui.css%00.js",
                 "/static/swagger-ui/%00/swagger-ui.css"]:
        r = request(iris_server.url + path)
        assert r.status == 404 and r.json()["error"]["type"] == "NotFound", path
    assert not [rec for rec in caplog.records if rec.levelno >= 40], caplog.text
    assert request(iris_server.url + "/static/swagger-ui/swagger-ui.css").status == 200


def test_oversize_body_gets_413(iris_bundle, serve_model):
    from bento_nb.server import ServerConfig

    handle = serve_model(iris_bundle.tag, config=ServerConfig(port=0, max_body_bytes=1000))
    big = json.dumps([[5.1, 3.5, 1.4, 0.2]] * 200)
    assert len(big) > 1000
    r = request(handle.url + "/predict", "POST", big)
    assert r.status == 413 and r.json()["error"]["type"] == "PayloadTooLarge"
    # the same without Content-Length (chunked upload)
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as s:
        chunk = big.encode()
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n"
                  + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or b"}}" not in answer:
            data = s.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert b'"PayloadTooLarge"' in answer
    good = post_json(handle.url + "/predict", ROW)
    assert (good.status, good.json()) == (200, [0])


def test_model_error_is_500_with_message(serve_model):
    class Broken:
        def predict(self, df):
            raise RuntimeError("the model is broken")

    handle = serve_model(Broken())
    r = post_json(handle.url + "/predict", [[1, 2]])
    assert r.status == 500
    assert r.json() == {"error": {"type": "ModelError",
                                  "message": "RuntimeError: the model is broken"}}
    assert request(handle.url + "/healthz").status == 200


class _Exits:
    """A model that raises what ``except Exception`` does not catch, on marker rows."""

    def predict(self, df):
        first = df.iloc[0, 0]
        if first == -1:
            raise SystemExit("the model called sys.exit")
        if first == -2:
            raise KeyboardInterrupt
        if first == -3:
            raise _Unprintable()
        return df.iloc[:, 0].to_numpy()


class _Unprintable(Exception):
    def __str__(self):
        raise SystemExit("not even its message")


@pytest.mark.parametrize("batch", [True, False])
def test_a_model_raising_systemexit_or_keyboardinterrupt_gets_500_and_the_api_lives(
        serve_model, batch):
    from netcheck import exchange

    handle = serve_model(_Exits(), batch=batch)

    def post(rows):  # bounded: a dead model thread shows as a timeout, not a hang
        return exchange("127.0.0.1", handle.port, "POST", "/predict", json.dumps(rows),
                        "application/json", None, 5)

    for marker, message in [(-1, "SystemExit: the model called sys.exit"),
                            (-2, "KeyboardInterrupt"),
                            (-3, "SystemExit: not even its message")]:  # from str(error)
        r = post([[marker, 0]])
        assert r.status == 500, (marker, r.body)
        assert r.json() == {"error": {"type": "ModelError", "message": message}}
        r = post([[7, 0]])
        assert (r.status, r.json()) == (200, [7])
    assert request(handle.url + "/readyz").json() == {"status": "ready"}


def test_readyz_names_an_api_whose_model_thread_is_gone(serve_model):
    from netcheck import exchange

    handle = serve_model(EchoModel(), name="Echo")
    dispatcher = handle._server.dispatchers["predict"]
    dispatcher.close()  # the only way to end a model thread now: it drains and returns
    assert dispatcher.join(5)
    r = request(handle.url + "/readyz")
    assert r.status == 503 and r.headers["retry-after"]
    assert r.json()["apis"] == {"predict": "its model thread is not running"}
    assert "API 'predict': its model thread is not running" in r.json()["error"]["message"]
    assert request(handle.url + "/healthz").status == 200  # alive, just not ready
    r = exchange("127.0.0.1", handle.port, "POST", "/predict", "[[1, 2]]", "application/json",
                 None, 5)
    assert r.status == 503  # answered at once, not left hanging


def test_non_batch_api_and_json_input(serve_model):
    class Upper:
        def predict(self, value):
            return {"text": value["text"].upper()}

    handle = serve_model(Upper(), input="json", batch=False)
    r = post_json(handle.url + "/predict", {"text": "hi"})
    assert (r.status, r.json()) == (200, {"text": "HI"})
    r = request(handle.url + "/predict", "POST", "{oops")
    assert r.status == 400


def test_token_auth(iris_bundle, serve_model):
    handle = serve_model(iris_bundle.tag, api_token="s3cret")
    url = handle.url + "/predict"
    r = post_json(url, ROW)
    assert r.status == 401 and r.json()["error"]["type"] == "Unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    assert post_json(url, ROW, headers={"Authorization": "Bearer wrong"}).status == 401
    r = post_json(url, ROW, headers={"Authorization": "Bearer s3cret"})
    assert (r.status, r.json()) == (200, [0])
    # a 401 leaves the keep-alive connection usable
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    try:
        assert post_json(url, ROW, conn=conn).status == 401
        r = post_json(url, ROW, conn=conn, headers={"Authorization": "Bearer s3cret"})
        assert (r.status, r.json()) == (200, [0])
    finally:
        conn.close()
    assert request(handle.url + "/metadata").status == 401
    assert request(handle.url + "/healthz").status == 200
    assert request(handle.url + "/readyz").status == 200
    spec = request(handle.url + "/docs.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_token_from_environment(iris_bundle, serve_model, monkeypatch):
    monkeypatch.setenv("BENTO_NB_API_TOKEN", "from-env")
    handle = serve_model(iris_bundle.tag)
    assert post_json(handle.url + "/predict", ROW).status == 401
    r = post_json(handle.url + "/predict", ROW, headers={"Authorization": "Bearer from-env"})
    assert r.status == 200


def test_public_host_prints_warning(serve_model, capsys):
    handle = serve_model(EchoModel(), host="0.0.0.0")
    assert "warning" in capsys.readouterr().err
    assert post_json(handle.url + "/predict", [[7, 1]]).json() == [7]


class Echo:
    def predict(self, value):
        return value


@pytest.mark.parametrize("input, content_type", [("dataframe", "application/json"),
                                                 ("dataframe", "text/csv"),
                                                 ("json", "application/json")])
def test_an_integer_too_long_for_python_is_a_400_then_the_server_answers(
        serve_model, input, content_type):
    handle = serve_model(Echo(), input=input, batch=False)
    url = handle.url + "/predict"
    for body in ["1" * 5000, f"[[{'7' * 5000}, 1]]"] if content_type != "text/csv" else [
            f"1,{'7' * 5000}\n"]:
        r = request(url, "POST", body, content_type)
        assert r.status == 400 and r.headers["content-type"] == "application/json", r
        assert r.json()["error"]["type"] == "BadInput"
        assert "digits" in r.json()["error"]["message"]
        good = request(url, "POST", "[[1, 2]]")
        assert good.status == 200, good


@pytest.mark.parametrize("input, content_type", [("string", "text/plain"),
                                                 ("file", "application/octet-stream")])
def test_a_long_integer_is_only_text_to_a_text_or_file_api(serve_model, input, content_type):
    handle = serve_model(len, input=input, batch=False)
    r = request(handle.url + "/predict", "POST", "1" * 5000, content_type)
    assert (r.status, r.json()) == (200, 5000)


@pytest.fixture
def named_iris_server(iris, serve_model):
    import pandas as pd
    from sklearn import svm

    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    return serve_model(svm.SVC().fit(frame, y))


@pytest.mark.parametrize("body, content_type, where", [
    ('[["x", 3.5, 1.4, 0.2]]', "application/json", "row 1, column 'sl' holds the text 'x'"),
    ('[{"sl": 5.1, "sw": null, "pl": 1.4, "pw": 0.2}]', "application/json",
     "row 1, column 'sw' holds null"),
    ('[[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, true, 0.2]]', "application/json",
     "row 2, column 'pl' holds true"),
    ("sl,sw,pl,pw\n5.1,3.5,1.4,\n", "text/csv", "row 1, column 'pw' holds an empty cell"),
    ("5.1,3.5,1.4,0.2\n5.1,,1.4,0.2\n", "text/csv", "row 2, column 'sw' holds an empty cell"),
    ("sl,sw,pl,pw\n5.1,3.5,1.4,false\n", "text/csv", "row 1, column 'pw' holds the text 'false'"),
])
def test_a_model_fitted_on_a_dataframe_refuses_what_is_not_a_number(
        named_iris_server, body, content_type, where):
    url = named_iris_server.url + "/predict"
    r = request(url, "POST", body, content_type)
    assert r.status == 400, r
    assert r.json() == {"error": {"type": "BadInput",
                                  "message": f"expected numbers in every column; {where}"}}
    good = post_json(url, [{"sl": 5.1, "sw": 3.5, "pl": 1.4, "pw": 0.2}])
    assert (good.status, good.json()) == (200, [0])
    assert request(named_iris_server.url + "/metadata").json()["apis"][0]["input"][
        "numeric"] is True


def test_a_json_echo_of_deep_nesting_is_a_400_and_up_to_the_limit_an_echo(serve_model):
    handle = serve_model(Echo(), input="json", batch=False)
    url = handle.url + "/predict"
    for depth in (101, 500, 5000):
        r = request(url, "POST", "[" * depth + "]" * depth)
        assert r.status == 400 and r.headers["content-type"] == "application/json", (depth, r)
        assert r.json()["error"] == {"type": "BadInput",
                                     "message": "JSON nested more than 100 levels deep"}
    deepest = {"a": [[{"b": [1]}]]}  # 5 levels, in 95 lists: 100
    for _ in range(95):
        deepest = [deepest]
    r = post_json(url, deepest)
    assert (r.status, r.json()) == (200, deepest)


def test_model_output_that_is_not_json_is_a_500_that_says_so(serve_model):
    class Deep:
        def predict(self, value):
            out = value
            for _ in range(5000):
                out = [out]
            return out

    handle = serve_model(Deep(), input="json", batch=False)
    r = post_json(handle.url + "/predict", 1)
    assert r.status == 500
    assert r.json()["error"] == {
        "type": "ModelError",
        "message": "the API returned a value nested too deeply for JSON, or one that "
                   "contains itself"}
    assert request(handle.url + "/healthz").status == 200

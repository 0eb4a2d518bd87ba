"""REST API of the Jupyter extension against a real ``jupyter server`` subprocess (base_url
``/jp/``): each route's happy path, authentication, XSRF, name validation, the proxy."""

from __future__ import annotations

import http.cookiejar
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from polling import wait_for

import bento_nb
from bento_nb.store import Store, Tag

pytestmark = pytest.mark.timeout(180)

ROW_SETOSA = [5.1, 3.5, 1.4, 0.2]
ROW_VIRGINICA = [6.7, 3.0, 5.2, 2.3]


# -- bundles ------------------------------------------------------------------------------


def broken_bundle(name: str, version: str) -> None:
    """A version in the store whose manifest is not YAML."""
    folder = Store().repository / name / version
    folder.mkdir(parents=True)
    (folder / "bento.yml").write_text("{not: [valid yaml")


def test_bundles_list_get_and_latest(jupyter, iris_clf):
    first = bento_nb.pack(iris_clf, name="ListMe")
    second = bento_nb.pack(iris_clf, name="ListMe", labels={"stage": "dev"})

    status, body = jupyter.json("bento/api/bundles")
    assert status == 200
    listed = {b["tag"]: b for b in body["bundles"]}
    assert first.tag in listed and second.tag in listed
    entry = listed[second.tag]
    assert entry["name"] == "ListMe" and entry["version"] == second.version
    assert entry["size"] == second.size > 0
    assert entry["created_at"] == second.created_at != ""
    assert [api["name"] for api in entry["apis"]] == ["predict"]
    assert entry["labels"] == {"stage": "dev"}

    status, one = jupyter.json(f"bento/api/bundles/ListMe/{first.version}")
    assert status == 200
    assert one["tag"] == first.tag
    assert one["manifest"]["name"] == "ListMe" and one["manifest"]["version"] == first.version
    assert one["servers"] == []

    status, latest = jupyter.json("bento/api/bundles/ListMe/latest")
    assert status == 200 and latest["tag"] == second.tag


def test_a_name_alone_lists_its_versions_like_the_bundles_list(jupyter, iris_clf):
    first = bento_nb.pack(iris_clf, name="Versions")
    second = bento_nb.pack(iris_clf, name="Versions")
    other = bento_nb.pack(iris_clf, name="VersionsNot")
    broken_bundle("Versions", "20000101_000000_000_abcdef")

    status, everything = jupyter.json("bento/api/bundles")
    assert status == 200
    for path in ("bento/api/bundles/Versions", "bento/api/bundles/Versions/"):
        status, body = jupyter.json(path)
        assert status == 200, body
        # the same entries as the full list, filtered to that name, oldest first
        assert body["bundles"] == [b for b in everything["bundles"] if b["name"] == "Versions"]
        assert [b["tag"] for b in body["bundles"]] == [
            "Versions:20000101_000000_000_abcdef", first.tag, second.tag]
        assert "not valid YAML" in body["bundles"][0]["error"]
        assert other.tag not in [b["tag"] for b in body["bundles"]]

    status, body = jupyter.json("bento/api/bundles/NoSuchModel")
    assert status == 404 and body["error"]["type"] == "BundleNotFound"
    assert "NoSuchModel" in body["error"]["message"]
    status, body = jupyter.json("bento/api/bundles/%2E%2E")
    assert status == 400 and body["error"]["type"] == "InvalidName"


def test_unreadable_bundle_is_listed_with_its_error_beside_the_others(jupyter, iris_clf):
    good = bento_nb.pack(iris_clf, name="GoodOne")
    broken_bundle("Broken", "20260101_000000_000_abcdef")

    status, body = jupyter.json("bento/api/bundles")
    assert status == 200
    by_name = {b["name"]: b for b in body["bundles"]}
    assert by_name["GoodOne"]["tag"] == good.tag
    assert "not valid YAML" in by_name["Broken"]["error"]


def test_missing_bundle_is_404_in_the_error_shape(jupyter):
    status, body = jupyter.json("bento/api/bundles/NoSuchModel/latest")
    assert status == 404
    assert body["error"]["type"] == "BundleNotFound"
    assert "NoSuchModel" in body["error"]["message"]


def test_delete_with_token_removes_exactly_that_version(jupyter, iris_clf):
    keep = bento_nb.pack(iris_clf, name="DeleteMe")
    doomed = bento_nb.pack(iris_clf, name="DeleteMe")

    status, body = jupyter.json(f"bento/api/bundles/DeleteMe/{doomed.version}", "DELETE")
    assert status == 200 and body == {"deleted": doomed.tag}
    assert [b.tag for b in Store().bundles("DeleteMe")] == [keep.tag]

    status, body = jupyter.json(f"bento/api/bundles/DeleteMe/{doomed.version}", "DELETE")
    assert status == 404 and body["error"]["type"] == "BundleNotFound"


@pytest.mark.parametrize("path", [
    "bento/api/bundles/../Keep",
    "bento/api/bundles/Keep/..",
    "bento/api/bundles/%2E%2E/latest",
    "bento/api/bundles/a%2Fb/latest",
    "bento/api/bundles/Keep/x%2F..%2F..",
    "bento/api/bundles/a/b/c",
    "bento/api/bundles/.hidden/latest",
])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_dots_and_slashes_in_names_are_refused(jupyter, iris_clf, path, method):
    keep = bento_nb.pack(iris_clf, name="Keep")
    status, _headers, raw = jupyter.api(path, method)
    assert status in (400, 404), raw
    if status == 400:
        assert json.loads(raw)["error"]["type"] == "InvalidName"
    assert keep.path.is_dir() and Store().get(keep.tag).verify() is None


@pytest.mark.parametrize("method, path", [
    ("GET", "bento/api/jobs/nope"),
    ("GET", "bento/api/jobs/nope/more"),
    ("GET", "bento/api/bundles/IrisClassifier/latest/extra"),
    ("DELETE", "bento/api/bundles/IrisClassifier/latest/extra"),
    ("GET", "bento/api/nothing"),
    ("POST", "bento/api/nothing"),
    ("HEAD", "bento/api/nothing"),
    ("GET", "bento/api"),
    ("GET", "bento/api/"),
])
def test_every_path_under_the_api_answers_json(jupyter, method, path):
    status, headers, raw = jupyter.api(path, method, b"{}" if method == "POST" else None)
    assert status == 404, raw
    assert headers["Content-Type"].startswith("application/json")
    if method != "HEAD":
        assert json.loads(raw)["error"]["type"] in ("NotFound", "BundleNotFound")


def test_a_method_a_route_lacks_is_a_json_405(jupyter):
    status, body = jupyter.json("bento/api/bundles", "POST", {})
    assert status == 405 and body["error"]["type"] == "MethodNotAllowed"


# -- authentication and XSRF --------------------------------------------------------------


def test_every_route_needs_jupyter_authentication(jupyter, iris_clf, recording_server,
                                                  register):
    bundle = bento_nb.pack(iris_clf, name="Guarded")
    register(recording_server.port)
    routes = [
        ("GET", "bento/api/bundles"),
        ("GET", f"bento/api/bundles/Guarded/{bundle.version}"),
        ("DELETE", f"bento/api/bundles/Guarded/{bundle.version}"),
        ("GET", "bento/api/servers"),
        ("POST", "bento/api/containerize"),
        ("GET", "bento/api/jobs"),
        ("GET", "bento/api/jobs/0123456789abcdef"),
        ("GET", "bento/api/jobs/nope"),
        ("GET", "bento/api/bundles/Guarded"),
        ("GET", "bento/api/nothing"),
        ("POST", "bento/api/nothing"),
        ("POST", f"bento/proxy/{recording_server.port}/predict"),
        ("DELETE", f"bento/proxy/{recording_server.port}/x"),
    ]
    for method, path in routes:
        body = b'{"tag": "Guarded"}' if method == "POST" else None
        status, _headers, _raw = jupyter.api(path, method, body, token=False)
        assert status == 403, (method, path, status)
        # a wrong token is no better
        status, _headers, _raw = jupyter.api(path, method, body, token=False,
                                             headers={"Authorization": "token wrong"})
        assert status == 403, (method, path, status)
    assert recording_server.requests == []
    assert Store().get(bundle.tag).tag == bundle.tag


def test_proxy_sends_browsers_without_a_session_to_login_and_refuses_their_writes(
        jupyter, recording_server, register):
    """What the README says: GET/HEAD without credentials -> 302 to Jupyter's login page
    (as for any Jupyter page); POST/PUT/PATCH/DELETE -> 403. Nothing reaches the server."""
    register(recording_server.port)
    path = f"bento/proxy/{recording_server.port}/predict"
    for method in ("GET", "HEAD"):
        for headers in ({}, {"Authorization": "token wrong"}):
            status, answer, _raw = jupyter.api(path, method, token=False, headers=headers)
            assert status == 302, (method, headers)
            assert answer["Location"] == "/jp/login?next=" + quote(f"/jp/{path}", safe="")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        status, _headers, _raw = jupyter.api(path, method, b"[[1]]", token=False)
        assert status == 403, method
    assert recording_server.requests == []


def _cookie_session(jupyter):
    """Log in the way a browser does (token in the URL once, then cookies only)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(jupyter.url + "login", timeout=20):  # renders a form: sets _xsrf
        pass
    with opener.open(jupyter.url + f"bento/api/bundles?token={jupyter.token}", timeout=20):
        pass
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    assert any(c.name.startswith("username-") for c in jar), "no login cookie"

    def call(path, method="GET", body=None, headers=None):
        request = urllib.request.Request(jupyter.url + path, data=body, method=method,
                                         headers=headers or {})
        try:
            with opener.open(request, timeout=20) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    return call, xsrf


def test_cookie_authenticated_writes_need_xsrf(jupyter, iris_clf):
    bundle = bento_nb.pack(iris_clf, name="XsrfTarget")
    call, xsrf = _cookie_session(jupyter)
    path = f"bento/api/bundles/XsrfTarget/{bundle.version}"

    status, _ = call("bento/api/bundles")  # reads work on the cookie alone
    assert status == 200

    status, raw = call(path, "DELETE")
    assert status == 403 and b"_xsrf" in raw
    assert bundle.path.is_dir()
    status, _ = call("bento/api/containerize", "POST", b'{"tag": "XsrfTarget"}',
                     {"Content-Type": "application/json"})
    assert status == 403

    status, raw = call(path, "DELETE", headers={"X-XSRFToken": xsrf})
    assert status == 200, raw
    assert not bundle.path.exists()


# -- servers and the proxy ----------------------------------------------------------------


def test_servers_lists_running_servers_with_health_and_proxy_path(jupyter, iris_clf, port,
                                                                  register):
    bundle = bento_nb.pack(iris_clf, name="Served")
    dead = subprocess.Popen(["true"])
    dead.wait()
    register(port + 1 if port < 65535 else port - 1, pid=dead.pid)  # a dead process's record
    handle = bento_nb.serve(bundle.tag, port=0)
    try:
        status, body = jupyter.json("bento/api/servers")
        assert status == 200
        ours = [s for s in body["servers"] if s["port"] == handle.port]
        assert len(ours) == 1
        server = ours[0]
        assert server["tag"] == bundle.tag and server["name"] == "Served"
        assert server["status"] == "running"
        assert server["proxy_url"] == f"/jp/bento/proxy/{handle.port}/"
        assert server["url"] == handle.url
        assert all(s["pid"] != dead.pid for s in body["servers"])

        # the bundle's detail lists the same entries (status, proxy_url) for its servers
        status, one = jupyter.json(f"bento/api/bundles/Served/{bundle.version}")
        assert one["servers"] == [server]
    finally:
        handle.stop()
    status, body = jupyter.json("bento/api/servers")
    assert all(s["port"] != handle.port for s in body["servers"])


def test_registered_but_silent_server_is_unreachable(jupyter, port, register):
    register(port)  # our pid is alive, but nothing listens on the port
    status, body = jupyter.json("bento/api/servers")
    assert status == 200
    assert [s["status"] for s in body["servers"] if s["port"] == port] == ["unreachable"]


def test_proxied_predict_reaches_a_real_server(jupyter, iris_clf):
    bundle = bento_nb.pack(iris_clf, name="Proxied")
    handle = bento_nb.serve(bundle.tag, port=0)
    try:
        base = f"bento/proxy/{handle.port}/"
        status, headers, raw = jupyter.api(
            base + "predict", "POST", json.dumps([ROW_SETOSA, ROW_VIRGINICA]).encode(),
            headers={"Content-Type": "application/json"})
        assert status == 200, raw
        assert json.loads(raw) == [0, 2]
        assert headers["Content-Type"].startswith("application/json")

        status, _, raw = jupyter.api(base + "predict", "POST", b"5.1,3.5,1.4,0.2\n",
                                     headers={"Content-Type": "text/csv"})
        assert status == 200 and json.loads(raw) == [0]

        # the model server's own errors come back unchanged
        status, _, raw = jupyter.api(base + "predict", "POST", b"[[1, 2",
                                     headers={"Content-Type": "application/json"})
        assert status == 400 and json.loads(raw)["error"]["type"] == "BadInput"

        status, _, raw = jupyter.api(base + "healthz")
        assert status == 200
        status, headers, raw = jupyter.api(base)
        assert status == 200 and headers["Content-Type"].startswith("text/html")

        status, headers, _ = jupyter.api(f"bento/proxy/{handle.port}")
        assert status == 302
        assert headers["Location"] == f"/jp/bento/proxy/{handle.port}/"
    finally:
        handle.stop()
    status, _, raw = jupyter.api(f"bento/proxy/{handle.port}/healthz")
    assert status == 403  # stopped: no longer registered


def test_proxy_refuses_ports_not_registered(jupyter, recording_server, register):
    path = f"bento/proxy/{recording_server.port}/predict"
    status, _, raw = jupyter.api(path, "POST", b"[[1]]")
    assert status == 403
    assert "not a running bento_nb server" in json.loads(raw)["error"]["message"]
    status, _, _ = jupyter.api(f"bento/proxy/{recording_server.port}/")
    assert status == 403
    assert recording_server.requests == []

    register(recording_server.port)  # the same port once registered: forwarded
    status, _, raw = jupyter.api(path, "POST", b"[[1]]")
    assert status == 200 and json.loads(raw)["path"] == "/predict"


def test_proxy_refuses_servers_not_on_loopback(jupyter, recording_server, register):
    register(recording_server.port, host="model.invalid")
    status, _, raw = jupyter.api(f"bento/proxy/{recording_server.port}/x")
    assert status == 403
    assert recording_server.requests == []


def test_proxy_never_hands_jupyter_credentials_to_the_model_server(jupyter, recording_server,
                                                                   register):
    register(recording_server.port)
    port = recording_server.port
    status, headers, raw = jupyter.api(
        f"bento/proxy/{port}/echo?a=1&token={jupyter.token}&q=%C3%A9t%C3%A9+x", "PUT",
        b"payload",
        headers={"Cookie": "secret=1", "X-Custom": "kept", "Content-Type": "text/plain"})
    assert status == 200, raw
    seen = json.loads(raw)
    assert seen["method"] == "PUT" and seen["path"] == "/echo" and seen["body"] == "payload"
    assert seen["query"] == "a=1&q=%C3%A9t%C3%A9%20x"  # re-encoded: the same parameters
    lowered = {k.lower(): v for k, v in seen["headers"].items()}
    assert "authorization" not in lowered and "cookie" not in lowered
    assert lowered["x-custom"] == "kept"
    assert lowered["x-forwarded-prefix"] == f"/jp/bento/proxy/{port}"
    assert headers["Content-Type"].startswith("application/json")
    # only the headers the proxy knows cross back (X-Accel-Redirect and the like would
    # instruct a web server in front of Jupyter)
    assert "X-Echo" not in headers
    assert "model_server" not in (headers.get("Set-Cookie") or "")

    # a model server's own bearer token (not Jupyter's) does cross
    status, _, raw = jupyter.api(f"bento/proxy/{port}/echo?token={jupyter.token}", token=False,
                                 headers={"Authorization": "Bearer model-secret"})
    assert status == 200
    lowered = {k.lower(): v for k, v in json.loads(raw)["headers"].items()}
    assert lowered["authorization"] == "Bearer model-secret"

    # redirects to the server's own root stay under the proxy
    status, headers, _ = jupyter.api(f"bento/proxy/{port}/redirect")
    assert status == 302
    assert headers["Location"] == f"/jp/bento/proxy/{port}/landing?x=1"


def test_proxy_refuses_a_process_that_cannot_prove_the_record(jupyter, impostor,
                                                              recording_server, register):
    """A stale record whose port another program took (or a forged one): the proxy asks the
    process for the record's secret proof, gets none, answers a JSON 502 and relays nothing
    of what that process would send; api/servers says "unverified" and offers no link."""
    port = impostor.port
    register(port)  # the record has a secret; the program on the port cannot prove it
    for method, body in (("GET", None), ("POST", b"[[1]]")):
        status, headers, raw = jupyter.api(f"bento/proxy/{port}/api/contents", method, body)
        assert status == 502, raw
        error = json.loads(raw)["error"]
        assert error["type"] == "BadGateway"
        assert f"port {port} is not the bento_nb server registered there" in error["message"]
        assert "X-Echo" not in headers and "model_server" not in str(headers)
    # it was asked for its proof, and nothing else was forwarded to it
    assert {r["path"] for r in impostor.requests} == {"/.bento/identity"}
    status, body = jupyter.json("bento/api/servers")
    server = next(s for s in body["servers"] if s["port"] == port)
    assert server["status"] == "unverified" and server["proxy_url"] is None
    assert "secret" not in server

    # a real backend whose record has the wrong secret, or none (an older bento_nb), too
    for secret in ("not-the-secret", None):
        path = register(recording_server.port, secret=secret)
        status, _, raw = jupyter.api(f"bento/proxy/{recording_server.port}/x")
        assert status == 502, raw
        path.unlink()
    assert recording_server.requests == []


def test_proxy_relays_no_header_that_acts_on_the_jupyter_origin(jupyter, recording_server,
                                                                register):
    register(recording_server.port)
    base = f"bento/proxy/{recording_server.port}/"
    prefix = f"/jp/{base}"
    for path in ("echo", "page", "redirect"):
        status, headers, _ = jupyter.api(base + path)
        assert status in (200, 302)
        names = {name.lower() for name in headers}
        assert not names & {"set-cookie2", "clear-site-data", "refresh", "link",
                            "strict-transport-security", "service-worker-allowed",
                            "access-control-allow-credentials"}, names
        # Jupyter's own login cookie and (empty) CORS header only, never the backend's
        assert not any("model_server" in c for c in headers.get_all("Set-Cookie") or [])
        assert headers.get_all("Access-Control-Allow-Origin") in (None, [""])
        assert headers["X-Content-Type-Options"] == "nosniff"
        # the proxy's own policy replaces the backend's: a sandbox, away from Jupyter's
        # cookies, _xsrf and /api/contents (only a bento_nb server's root page is exempt)
        assert headers.get_all("Content-Security-Policy") == [
            "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"]
    # a Location under the server's root stays under the proxy; elsewhere it is dropped
    cases = {
        "/landing?x=1": prefix + "landing?x=1",
        f"http://127.0.0.1:{recording_server.port}/a/b": prefix + "a/b",
        "next": prefix + "next",
        "../../../../api/contents": None,
        "http://127.0.0.1:1/other-server": None,
        "/../../api/contents": None,
        "https://evil.example/": None,
        "//evil.example/x": None,
        "javascript:alert(1)": None,
    }
    for target, expected in cases.items():
        status, headers, _ = jupyter.api(base + "redirect?to=" + quote(target, safe=""))
        assert status == 302
        assert headers.get("Location") == expected, target


def test_proxied_swagger_page_gets_a_policy_without_inline_script(jupyter, iris_clf):
    bundle = bento_nb.pack(iris_clf, name="Policed")
    handle = bento_nb.serve(bundle.tag, port=0)
    try:
        status, headers, _ = jupyter.api(f"bento/proxy/{handle.port}/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'self'" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        status, headers, _ = jupyter.api(f"bento/proxy/{handle.port}/docs.json")
        assert status == 200 and headers["Content-Security-Policy"].startswith("sandbox")
    finally:
        handle.stop()


def test_proxy_forwards_a_clean_re_encoded_request(jupyter, recording_server, register):
    """Referer, client-forged forwarding headers, headers named in Connection and the
    Jupyter token however it is encoded stay behind; the path arrives well-formed."""
    import http.client

    register(recording_server.port)
    port = recording_server.port
    connection = http.client.HTTPConnection("127.0.0.1", jupyter.port, timeout=20)
    connection.putrequest(
        "GET", f"/jp/bento/proxy/{port}/a%20b/c%2Fd/%7e/%zz"
               f"?%74oken={jupyter.token}&T%4FKEN=x&_xsrf=y&a=1&b=%2B+c",
        skip_accept_encoding=True)
    for name, value in (("Authorization", f"token {jupyter.token}"),
                        ("Referer", f"http://127.0.0.1:{jupyter.port}/jp/lab?token=t"),
                        ("X-Real-IP", "10.9.8.7"), ("Forwarded", "for=10.9.8.7"),
                        ("X-Forwarded-For", "10.9.8.7"), ("X-Forwarded-Port", "1"),
                        ("Connection", "keep-alive, X-Hop-Secret"),
                        ("X-Hop-Secret", "jupyter-only"), ("X-Custom", "kept")):
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    assert response.status == 200, raw
    seen = json.loads(raw)
    assert seen["path"] == "/a%20b/c%2Fd/~/%25zz"
    assert seen["query"] == "a=1&b=%2B%20c"
    lowered = {k.lower(): v for k, v in seen["headers"].items()}
    for name in ("referer", "x-real-ip", "forwarded", "x-forwarded-port", "x-hop-secret",
                 "authorization", "cookie"):
        assert name not in lowered, name
    assert lowered["x-forwarded-for"] == "127.0.0.1"  # the proxy's own view of the client
    assert lowered["x-custom"] == "kept"
    assert jupyter.token not in raw.decode()


def test_bad_registry_records_are_reported_not_fatal(jupyter, recording_server, register):
    """A record with "port": "abc" or null, a missing pid, a file that is not JSON: listed
    in bad_records (with why), while the good servers are listed and proxied as before."""
    from bento_nb.server import registry

    register(recording_server.port)
    folder = registry.servers_dir()
    bad = {
        "port-abc.json": {"pid": os.getpid(), "port": "abc", "host": "127.0.0.1"},
        "port-null.json": {"pid": os.getpid(), "port": None},
        "no-pid.json": {"port": 5000},
        "a-list.json": [1, 2],
    }
    written = []
    try:
        for name, record in bad.items():
            written.append(folder / name)
            (folder / name).write_text(json.dumps(record))
        written.append(folder / "garbled.json")
        (folder / "garbled.json").write_text("{not json")
        for path in written:
            path.chmod(0o600)
        status, body = jupyter.json("bento/api/servers")
        assert status == 200, body
        assert [s["port"] for s in body["servers"]] == [recording_server.port]
        reported = {Path(b["path"]).name: b["error"] for b in body["bad_records"]}
        assert set(reported) == {path.name for path in written}
        assert "'port' is \"abc\"" in reported["port-abc.json"]
        assert "missing 'pid'" in reported["no-pid.json"]
        assert "not JSON" in reported["garbled.json"]
        assert jupyter.api(f"bento/proxy/{recording_server.port}/x")[0] == 200
        assert jupyter.api("bento/proxy/5000/x")[0] == 403
        assert "skipping registry file" in jupyter.log.read_text()
    finally:
        for path in written:
            path.unlink(missing_ok=True)


@pytest.mark.parametrize("url, shown", [
    ("javascript:alert(document.domain)", None),
    (" javascript:alert(1)", None),
    ("data:text/html,<script>alert(1)</script>", None),
    ("http://evil.example:5000/", None),
    ("http://127.0.0.1@evil.example/", None),
    ("http://127.0.0.1:99999/", None),
    ("ftp://127.0.0.1/", None),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("https://127.8.9.10:5000/", "https://127.8.9.10:5000/"),
    ("http://[::1]:5000/", "http://[::1]:5000/"),
    ("http://localhost:5000/docs", "http://localhost:5000/docs"),
])
def test_servers_show_only_loopback_http_urls(jupyter, register, port, url, shown):
    register(port, url=url)
    status, body = jupyter.json("bento/api/servers")
    assert status == 200
    assert [s["url"] for s in body["servers"] if s["port"] == port] == [shown]


# -- containerize jobs --------------------------------------------------------------------


def test_containerize_refuses_bad_requests_before_making_a_job(jupyter, iris_clf):
    bento_nb.pack(iris_clf, name="Boxed")
    cases = [  # body, status, error type, part of the message
        (b"not json", 400, "BadInput", "not JSON"),
        (b"\xff\xfe{", 400, "BadInput", "not JSON"),
        (b"", 400, "BadInput", "JSON object"),
        (b"[]", 400, "BadInput", "JSON object"),
        (b'{"image": "x"}', 400, "BadInput", "missing 'tag'"),
        (b'{"tag": 1}', 400, "BadInput", "'tag' must be a string"),
        (b'{"tag": null}', 400, "BadInput", "'tag' must be a string"),
        (b'{"tag": "Boxed", "image": 5}', 400, "BadInput", "'image' must be a string"),
        (b'{"tag": "Boxed", "base_image": ["x"]}', 400, "BadInput", "'base_image'"),
        (b'{"tag": "Boxed", "image": "boxed:1", "extra": 1}', 400, "BadInput", "'extra'"),
        (b'{"tag": "../etc"}', 400, "InvalidName", "../etc"),
        (b'{"tag": "Boxed:"}', 400, "InvalidName", "empty version"),
        (b'{"tag": "Boxed", "image": "Iris:1"}', 400, "InvalidName", "lowercase"),
        (b'{"tag": "Boxed", "image": "iris::1"}', 400, "InvalidName", "iris::1"),
        (b'{"tag": "Boxed", "image": "-iris"}', 400, "InvalidName", "-iris"),
        (b'{"tag": "Boxed", "image": "bad image name"}', 400, "InvalidName", "whitespace"),
        (b'{"tag": "Boxed", "image": "x; rm -rf /"}', 400, "InvalidName", "image"),
        (b'{"tag": "Boxed", "image": "iris@sha256:' + b"a" * 64 + b'"}', 400,
         "InvalidName", "digest"),
        (b'{"tag": "Boxed", "base_image": "Python:3.11"}', 400, "InvalidName",
         "base_image"),
        (b'{"tag": "NoSuchModel"}', 404, "BundleNotFound", "NoSuchModel"),
        (b'{"tag": "Boxed:20000101_000000_000_abcdef"}', 404, "BundleNotFound", "Boxed"),
        # an invalid image wins over an unknown bundle: nothing is looked up before the check
        (b'{"tag": "NoSuchModel", "image": "Iris:1"}', 400, "InvalidName", "lowercase"),
    ]
    _, before = jupyter.json("bento/api/jobs")
    for body, expected, error_type, fragment in cases:
        status, _, raw = jupyter.api("bento/api/containerize", "POST", body,
                                     headers={"Content-Type": "application/json"})
        assert status == expected, (body, raw)
        error = json.loads(raw)["error"]
        assert error["type"] == error_type and fragment in error["message"], (body, error)
    status, after = jupyter.json("bento/api/jobs")
    assert status == 200 and after["jobs"] == before["jobs"] == []
    status, body = jupyter.json("bento/api/jobs/0123456789abcdef")
    assert status == 404 and body["error"]["type"] == "NotFound"


@pytest.mark.parametrize("body, expected", [
    (b'{"tag": "Boxed"}', (Tag("Boxed"), None, None)),
    (b'{"tag": "Boxed:latest", "image": null, "base_image": ""}', (Tag("Boxed"), None, None)),
    (b'{"tag": "Boxed:1", "image": "registry.example.org:5000/team/boxed:1.0", '
     b'"base_image": "python@sha256:' + b"a" * 64 + b'"}',
     (Tag("Boxed", "1"), "registry.example.org:5000/team/boxed:1.0",
      "python@sha256:" + "a" * 64)),
])
def test_containerize_accepts_what_the_panel_and_docker_accept(body, expected):
    from bento_nb.jupyter.handlers import _containerize_request

    assert _containerize_request(body) == expected


@pytest.mark.parametrize("body, fragment", [
    (b"[" * 100000 + b"]" * 100000, "nested more than 100 levels deep"),
    (b'{"tag": ' + b"1" * 5000 + b"}", "more than 4300 digits"),
])
def test_containerize_refuses_json_python_cannot_take_as_bad_input(body, fragment):
    from bento_nb.errors import BadInput
    from bento_nb.jupyter.handlers import _containerize_request

    with pytest.raises(BadInput, match=fragment) as info:
        _containerize_request(body)
    assert "not JSON" in info.value.message and info.value.http_status == 400


def wait_for_job(jupyter, job_id: str, timeout: float = 600) -> tuple[dict, list[str]]:
    """Poll a job like the panel does (``since`` = lines seen); returns (job, all lines)."""
    lines: list[str] = []
    seen: list[dict] = []

    def finished() -> bool:
        status, job = jupyter.json(f"bento/api/jobs/{job_id}?since={len(lines)}")
        assert status == 200
        assert job["log_start"] == len(lines) or not job["log"]
        lines.extend(job["log"])
        seen.append(job)
        return job["status"] in ("succeeded", "failed")

    assert wait_for(finished, timeout, 0.3), f"job still {seen[-1]['status']}: {lines[-5:]}"
    return seen[-1], lines


@pytest.fixture(scope="module")
def jupyter_without_docker(jupyter_factory, tmp_path_factory):
    dead = tmp_path_factory.mktemp("nodocker") / "docker.sock"
    return jupyter_factory("server", base_url="/jp/", env={"DOCKER_HOST": f"unix://{dead}"})


def test_containerize_job_without_docker_fails_with_the_command(
        jupyter_without_docker, iris_clf, monkeypatch, point_at):
    jupyter = point_at(jupyter_without_docker, monkeypatch)
    bundle = bento_nb.pack(iris_clf, name="NoDaemon")
    status, job = jupyter.json("bento/api/containerize", "POST",
                               {"tag": "NoDaemon", "image": "nodaemon:test",
                                "base_image": "python:3.11-slim"})
    assert status == 202
    assert job["status"] in ("queued", "running") and job["tag"] == bundle.tag
    assert job["base_image"] == "python:3.11-slim"
    job, lines = wait_for_job(jupyter, job["id"], timeout=120)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "DockerUnavailable"
    assert "docker build" in job["error"]["command"]
    assert any("docker build" in line for line in lines)
    status, listing = jupyter.json("bento/api/jobs")
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    assert "log" not in listing["jobs"][0]


@pytest.mark.docker
def test_containerize_job_builds_a_real_image(jupyter, iris_clf):
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no Docker engine reachable: {e}")
    bento_nb.pack(iris_clf, name="JupyterBuilt")
    image = f"bento-nb-test-jupyter:{int(time.time() * 1000)}"
    status, job = jupyter.json("bento/api/containerize", "POST",
                               {"tag": "JupyterBuilt", "image": image})
    assert status == 202, job
    try:
        job, lines = wait_for_job(jupyter, job["id"])
        assert job["status"] == "succeeded", lines[-20:]
        assert job["result"]["image"] == image
        assert job["result"]["image_id"].startswith("sha256:")
        assert any(line.startswith("Step ") for line in lines) or len(lines) > 5
        assert client.images.get(image).id == job["result"]["image_id"]
        # recorded beside the bundle, as every containerize path does: the panel shows it
        [built] = jupyter.json("bento/api/bundles/JupyterBuilt")[1]["bundles"][0]["images"]
        assert built["image"] == image and built["image_id"] == job["result"]["image_id"]
        assert built["run"] == f"docker run --rm -p 127.0.0.1:5000:5000 {image} --workers=2"
    finally:
        try:
            client.images.remove(image, force=True)
        except Exception:  # noqa: BLE001
            pass


# -- authorization ------------------------------------------------------------------------

READ_ONLY_AUTHORIZER = '''
from jupyter_server.auth import Authorizer


class ReadOnlyBento(Authorizer):
    """May read the "bento" resource, never write it."""

    def is_authorized(self, handler, user, action, resource):
        return not (resource == "bento" and action == "write")
'''


@pytest.fixture(scope="module")
def read_only_jupyter(jupyter_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("authorizer")
    (folder / "read_only_bento.py").write_text(READ_ONLY_AUTHORIZER)
    return jupyter_factory("server", base_url="/jp/", env={"PYTHONPATH": os.pathsep.join(
                               filter(None, [str(folder), os.environ.get("PYTHONPATH")]))},
                           args=["--ServerApp.authorizer_class=read_only_bento.ReadOnlyBento"])


def test_handlers_ask_the_jupyter_authorizer(read_only_jupyter, point_at, monkeypatch,
                                             iris_clf, recording_server, register):
    """Every route goes through jupyter-server's Authorizer with resource "bento": a
    deployment that grants only "read" can list but not delete, build or POST via the proxy."""
    jupyter = point_at(read_only_jupyter, monkeypatch)
    bundle = bento_nb.pack(iris_clf, name="ReadOnly")
    register(recording_server.port)
    assert jupyter.json("bento/api/bundles")[0] == 200
    assert jupyter.json("bento/api/servers")[0] == 200
    assert jupyter.api(f"bento/proxy/{recording_server.port}/x")[0] == 200
    assert jupyter.json(f"bento/api/bundles/ReadOnly/{bundle.version}", "DELETE")[0] == 403
    assert jupyter.json("bento/api/containerize", "POST", {"tag": "ReadOnly"})[0] == 403
    assert jupyter.api(f"bento/proxy/{recording_server.port}/predict", "POST", b"[]")[0] == 403
    # the catch-all too, for each method on its own (a read first must not let writes by)
    assert jupyter.json("bento/api/nothing")[0] == 404
    assert jupyter.json("bento/api/nothing", "POST", {})[0] == 403
    assert jupyter.json("bento/api/nothing", "DELETE")[0] == 403
    assert bundle.path.is_dir()
    # the recorder saw the proxied GET (after an identity check), never a write
    assert {(r["method"], r["path"]) for r in recording_server.requests} == {("GET", "/x")}
    assert recording_server.identity_checks >= 1

"""Issue 7 item 6: where servers listen, token auth, huge payloads, malformed HTTP.

All against the real CLI server (``python -m bento_nb serve``) as a user would run it;
clients talk to 127.0.0.1 only (the 0.0.0.0 test binds all interfaces for a moment to see
the warning, and is still reached through 127.0.0.1)."""

from __future__ import annotations

import http.client
import json
import socket

import requests
from polling import wait_for

from bento_nb.server import ServerConfig

from .conftest import Echo, call, cli_server, predict, raw_exchange, status_of

ROW = [[5.1, 3.5, 1.4, 0.2]]


def listen_addresses(port: int) -> set[str]:
    """Local addresses of the LISTEN sockets on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":
                if len(address) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
                else:
                    found.add("ipv6:" + address)
    return found


def test_cli_listens_on_loopback_by_default(iris_tag):
    with cli_server(iris_tag) as server:
        assert listen_addresses(server.port) == {"127.0.0.1"}
        assert "127.0.0.1" in server.banner
        assert predict(server.port, ROW).json() == [0]
        assert "warning" not in server.stderr_text()


def test_cli_on_all_interfaces_warns(iris_tag):
    with cli_server(iris_tag, "--host", "0.0.0.0") as server:
        assert listen_addresses(server.port) == {"0.0.0.0"}
        assert wait_for(lambda: "warning" in server.stderr_text(), 5)
        warning = server.stderr_text()
        assert "0.0.0.0" in warning and "anyone who can reach" in warning
        assert "--api-token" in warning  # suggests the token when none is set
        assert predict(server.port, ROW).json() == [0]  # reached through 127.0.0.1
    with cli_server(iris_tag, "--host", "0.0.0.0", "--api-token", "t0ken") as server:
        assert wait_for(lambda: "warning" in server.stderr_text(), 5)
        warning = server.stderr_text()
        assert "has the token" in warning and "consider --api-token" not in warning


def test_inprocess_serve_listens_on_loopback(serve_model):
    handle = serve_model(Echo())
    assert handle.host == "127.0.0.1"
    assert listen_addresses(handle.port) == {"127.0.0.1"}


def _check_token_protection(port: int, token: str) -> None:
    good = {"Authorization": f"Bearer {token}"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token},
                    {"Authorization": f"Basic {token}"}, {"Authorization": f"Bearer {token}x"}):
        reply = predict(port, ROW, headers=headers)
        assert reply.status == 401, (headers, reply)
        assert reply.json()["error"]["type"] == "Unauthorized"
        assert reply.headers.get("www-authenticate", "").startswith("Bearer")
        assert token not in reply.body.decode()
    assert predict(port, ROW, headers=good).json() == [0]
    csv = call(port, "POST", "/predict", "5.1,3.5,1.4,0.2\n", content_type="text/csv",
               headers=good)
    assert (csv.status, csv.json()) == (200, [0])
    for path in ("/metadata", "/metrics"):
        assert call(port, "GET", path).status == 401, path
        reply = call(port, "GET", path, headers=good)
        assert reply.status == 200 and token not in reply.body.decode(), path
    for path in ("/healthz", "/readyz", "/docs.json", "/"):  # open
        assert call(port, "GET", path).status == 200, path
    spec = call(port, "GET", "/docs.json").json()
    assert spec["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]


def test_cli_api_token_flag(iris_tag):
    with cli_server(iris_tag, "--api-token", "flag-s3cret") as server:
        _check_token_protection(server.port, "flag-s3cret")
        assert "flag-s3cret" not in server.stderr_text() + server.banner


def test_cli_api_token_from_environment(iris_tag):
    with cli_server(iris_tag, env={"BENTO_NB_API_TOKEN": "env-s3cret"}) as server:
        _check_token_protection(server.port, "env-s3cret")


def test_cli_huge_payloads_get_413_and_server_keeps_serving(iris_tag):
    """Default limit 20 MiB: a 25 MB body, a 1 TB Content-Length sent alone, and a chunked
    body growing past the limit all get a JSON 413; the server answers right after each."""
    with cli_server(iris_tag) as server:
        port = server.port
        row = b"[5.1, 3.5, 1.4, 0.2]"
        big = b"[" + b",".join([row] * (25_000_000 // len(row))) + b"]"
        url = server.url + "/predict"
        json_type = {"Content-Type": "application/json"}
        reply = requests.post(url, data=big, headers=json_type, timeout=30)
        assert reply.status_code == 413 and reply.json()["error"]["type"] == "PayloadTooLarge"
        assert predict(port, ROW).json() == [0]
        # the standard library's client, which reads nothing before it has sent everything,
        # gets the 413 too: the server reads and drops the oversize body (R6)
        reply = call(port, "POST", "/predict", big, timeout=30)
        assert reply.status == 413 and reply.json()["error"]["type"] == "PayloadTooLarge"
        assert predict(port, ROW).json() == [0]

        raw = raw_exchange(port, b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: "
                                 b"application/json\r\nContent-Length: 1000000000000\r\n\r\n")
        assert status_of(raw) == 413 and b"PayloadTooLarge" in raw
        assert predict(port, ROW).json() == [0]

        chunks = (b"[" + row if i == 0 else b"," + b",".join([row] * 50_000)
                  for i in range(30))  # ~30 MB, chunked, no Content-Length
        reply = requests.post(url, data=chunks, headers=json_type, timeout=30)
        assert reply.status_code == 413 and reply.json()["error"]["type"] == "PayloadTooLarge"
        assert predict(port, ROW).json() == [0]


# name, bytes, half-close after sending, acceptable statuses (None: closed, no response)
B = b"[[5.1, 3.5, 1.4, 0.2]]"
JSON_POST = b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
MALFORMED = [
    ("garbage request line", b"GARBAGE\r\n\r\n", False, {400}),
    ("binary junk", bytes(range(256)) * 4, True, {None, 400}),
    ("TLS ClientHello on plain HTTP", bytes.fromhex("160301020001000200030300") + bytes(100),
     True, {None, 400}),
    ("no HTTP version", b"GET /healthz\r\n\r\n", False, {400}),
    ("HTTP/9.9", b"GET /healthz HTTP/9.9\r\n\r\n", False, {400, 505}),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n", False, {400}),
    ("100 KB header", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
     False, {None, 400, 431}),
    ("5000 headers", b"GET /healthz HTTP/1.1\r\n"
     + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n", False, {None, 400, 431}),
    ("70 KB path", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", False, {None, 400, 414}),
    ("NUL in path", b"GET /he\x00althz HTTP/1.1\r\n\r\n", False, {None, 400}),
    ("non-ASCII path", "GET /prédict HTTP/1.1\r\n\r\n".encode(), False, {400, 404}),
    ("negative Content-Length", JSON_POST + b"Content-Length: -5\r\n\r\n" + B, False, {400}),
    ("non-numeric Content-Length", JSON_POST + b"Content-Length: abc\r\n\r\n" + B, False, {400}),
    ("Content-Length and chunked", JSON_POST + b"Content-Length: 22\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n16\r\n" + B + b"\r\n0\r\n\r\n", False, {400}),
    ("bad chunk size", JSON_POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + B
     + b"\r\n0\r\n\r\n", False, {400}),
    ("body shorter than Content-Length", JSON_POST + b"Content-Length: 100\r\n\r\n" + B,
     True, {None, 400}),
    ("Expect: 100-continue then nothing", JSON_POST + b"Expect: 100-continue\r\n"
     b"Content-Length: 22\r\n\r\n", True, {None, 100, 400}),
    ("absolute URI (proxy request)", b"GET http://evil.example/healthz HTTP/1.1\r\n"
     b"Host: evil.example\r\n\r\n", False, {404, 400}),
    ("CONNECT tunnel", b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example\r\n\r\n",
     False, {405, 400}),
    ("static path traversal", b"GET /static/swagger-ui/../../../../etc/passwd HTTP/1.1\r\n"
     b"Host: t\r\n\r\n", False, {403, 404}),
    ("encoded static traversal", b"GET /static/swagger-ui/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"
     b" HTTP/1.1\r\nHost: t\r\n\r\n", False, {403, 404}),
    ("empty connection", b"", True, {None}),
    ("blank lines only", b"\r\n\r\n\r\n", True, {None, 400}),
]


def test_cli_survives_malformed_http(iris_tag):
    with cli_server(iris_tag) as server:
        port = server.port
        seen = {}
        for name, data, half_close, allowed in MALFORMED:
            raw = raw_exchange(port, data, timeout=5, shut_write=half_close)
            status = status_of(raw)
            seen[name] = status
            assert status in allowed, (name, raw[:300])
            assert b"root:" not in raw, name  # nothing of /etc/passwd
            if status is not None and status >= 400 and b"Content-Length: 0" not in raw:
                head, _, body = raw.partition(b"\r\n\r\n")
                if body:  # our own errors are JSON; tornado's bare 400s have no body
                    assert json.loads(body)["error"]["message"], (name, raw[:300])
            # the server keeps answering after each one
            assert predict(port, ROW).json() == [0], name
        print(seen)
        assert call(port, "GET", "/healthz").status == 200
        metrics = call(port, "GET", "/metrics").body.decode()
        assert "Traceback" not in server.stderr_text()
        assert metrics  # /metrics still renders after all of it


def test_early_errors_announce_connection_close(serve_model):
    """401 (no token) and 413 (Content-Length over the limit) on a keep-alive connection:
    the next request on it is answered, or the error said ``Connection: close``."""
    handle = serve_model(Echo(), config=ServerConfig(port=0, api_token="tok",
                                                     max_body_bytes=1000))
    problems = []
    for name, body, headers in [("401", b"[[1, 2, 3, 4]]", {}),
                                ("413", b"[[1, 2, 3, 4]]" + b" " * 5000,
                                 {"Authorization": "Bearer tok"})]:
        conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
        try:
            conn.request("POST", "/predict", body=body,
                         headers={"Content-Type": "application/json", **headers})
            first = conn.getresponse()
            first.read()
            assert str(first.status) == name
            if (first.getheader("Connection") or "").lower() == "close":
                continue
            try:
                conn.request("POST", "/predict", body=b"[[5, 1, 2, 3]]",
                             headers={"Content-Type": "application/json",
                                      "Authorization": "Bearer tok"})
                second = conn.getresponse()
                if second.read() != b"[5]":
                    problems.append((name, second.status))
            except (ConnectionError, http.client.HTTPException) as e:
                problems.append((name, repr(e)))
        finally:
            conn.close()
    assert not problems, problems

"""The connection layer's own path for API POSTs (transport.Connection, app.Call): what
uvicorn's ASGI cycle did for them must still hold — pipelined requests answered in order
(whichever path each takes), ``Expect: 100-continue``, HTTP/1.0, chunked and trickled
bodies, clients that leave mid-body, malformed bodies — and nothing stays counted in
flight afterwards. Every read is bounded."""

from __future__ import annotations

import json
import socket

from polling import wait_for

from .conftest import Echo, GatedEcho, call, predict, read_until, status_of

POST = (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s")


def _post(rows, extra: bytes = b"") -> bytes:
    body = json.dumps(rows).encode()
    return POST % (len(body), extra, body)


def _split(received: bytes) -> list:
    """The whole responses (status, headers, body) at the start of ``received``."""
    out = []
    while True:
        head, sep, rest = received.partition(b"\r\n\r\n")
        if not sep:
            return out
        lines = head.split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(b":") for line in lines[1:])}
        length = int(headers.get(b"content-length", b"0"))
        if len(rest) < length:
            return out
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        received = rest[length:]


def _responses(sock: socket.socket, count: int, timeout: float = 10.0) -> list:
    """Read ``count`` whole responses (status, headers, body) off ``sock``, in order."""
    return _split(read_until(sock, lambda received: len(_split(received)) >= count,
                             timeout))[:count]


def _closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _in_flight(port: int, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return json.loads(call(port, path="/metadata", headers=headers).body)["in_flight"]


def test_pipelined_requests_are_answered_in_order(serve_model):
    """POST, POST, GET /healthz, a POST that closes: four answers, in request order."""
    handle = serve_model(Echo())
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(_post([[1.0, 0, 0, 0]]) + _post([[2.0, 0, 0, 0]])
                     + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                     + _post([[3.0, 0, 0, 0]], b"Connection: close\r\n"))
        answers = _responses(sock, 4)
        assert _closed(sock)
    assert [(status, json.loads(body)) for status, _h, body in answers] == [
        (200, [1.0]), (200, [2.0]), (200, {"status": "ok"}), (200, [3.0])]
    assert answers[3][1][b"connection"] == b"close"
    assert handle.stats()["requests"] == 3


def test_an_answer_pipelined_behind_a_slow_one_waits_for_it(serve_model):
    """/healthz (ASGI) pipelined behind a POST whose model is still running comes out
    after the POST's answer, not before it."""
    model = GatedEcho()
    handle = serve_model(model)
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(_post([[7.0, 0, 0, 0]]) + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert model.entered.wait(10)
        # /healthz is answered on another connection meanwhile: the server is not stuck
        assert call(handle.port, path="/healthz").status == 200
        model.gate.set()
        answers = _responses(sock, 2)
    assert [json.loads(body) for _s, _h, body in answers] == [[7.0], {"status": "ok"}]


def test_expect_100_continue(serve_model):
    handle = serve_model(Echo(), api_token="s3cret")
    body = json.dumps([[4.0, 0, 0, 0]]).encode()
    head = (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer s3cret\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(10)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        [(status, _h, answer)] = _responses(sock, 1)
    assert (status, json.loads(answer)) == (200, [4.0])
    # refused by its headers: the final answer at once (no 100), then the connection closes
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(head.replace(b"s3cret", b"wrong"))
        [(status, headers, answer)] = _responses(sock, 1)
        assert _closed(sock)
    assert status == 401 and headers[b"connection"] == b"close"
    assert json.loads(answer)["error"]["type"] == "Unauthorized"
    assert wait_for(lambda: _in_flight(handle.port, "s3cret") == 0, timeout=10), \
        "left in flight"


def test_http_1_0_is_answered_and_closed(serve_model):
    handle = serve_model(Echo())
    body = json.dumps([[5.0, 0, 0, 0]]).encode()
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.0\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        [(status, headers, answer)] = _responses(sock, 1)
        assert _closed(sock)
    assert (status, json.loads(answer), headers[b"connection"]) == (200, [5.0], b"close")


def test_chunked_and_trickled_bodies(serve_model):
    handle = serve_model(Echo())
    body = json.dumps([[6.0, 1, 2, 3], [8.0, 1, 2, 3]]).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 5]), body[i:i + 5])
                       for i in range(0, len(body), 5)) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        [(status, _h, answer)] = _responses(sock, 1)
        assert (status, json.loads(answer)) == (200, [6.0, 8.0])
        request = _post([[9.0, 0, 0, 0]])
        for i in range(0, len(request), 7):  # one small send() at a time, same connection
            sock.sendall(request[i:i + 7])
        [(status, _h, answer)] = _responses(sock, 1)
    assert (status, json.loads(answer)) == (200, [9.0])


def test_clients_leaving_mid_body_or_breaking_it_leave_nothing_in_flight(serve_model):
    handle = serve_model(Echo())
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
            sock.sendall(POST % (1000, b"", b"[[1.0,"))  # 6 of 1000 bytes, then gone
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n5\r\n[[1.0\r\nzz\r\n")  # a chunk size that is not hex
        [(status, _h, answer)] = _responses(sock, 1)
        assert _closed(sock)
    assert status == 400 and b"malformed HTTP request" in answer
    assert wait_for(lambda: _in_flight(handle.port) == 0, timeout=10), "left in flight"
    assert predict(handle.port, [[2.0, 0, 0, 0]]).json() == [2.0]


def test_a_declared_body_far_past_the_limit_is_refused_unread(serve_model):
    """Content-Length beyond what the server lingers for: 413 at once, connection closed,
    without the client sending a byte of it."""
    handle = serve_model(Echo(), max_body_bytes=1024)
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(POST % (10 ** 9, b"", b""))
        raw = sock.recv(65536)
        assert status_of(raw) == 413
        assert _closed(sock)
    assert wait_for(lambda: _in_flight(handle.port) == 0, timeout=10), "left in flight"

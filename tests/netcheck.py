"""Network helpers shared by the test packages (tests/ is on sys.path:
``from netcheck import ...``): a free port, port checks and one bounded HTTP exchange."""

from __future__ import annotations

import http.client
import json
import socket

TIMEOUT = 10.0


class Response:
    """Status, lower-cased headers and body of one HTTP answer."""

    def __init__(self, status: int, headers: dict, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


def exchange(host: str, port: int, method: str, target: str, body: bytes | str | None = None,
             content_type: str | None = "application/json", headers: dict | None = None,
             timeout: float = TIMEOUT,
             conn: http.client.HTTPConnection | None = None) -> Response:
    """One request, sent as is to ``target``, every read bounded by ``timeout``; on a new
    connection (closed afterwards) unless ``conn`` is given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    all_headers = dict(headers or {})
    if body is not None and content_type is not None:
        all_headers.setdefault("Content-Type", content_type)
    if isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, target, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        if own:
            conn.close()


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for a socket bound to 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` and a new server could listen there (SO_REUSEADDR, as
    servers bind: connections closed a moment ago may linger in TIME_WAIT)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        # a connection to itself (the kernel picked ``port`` as the probe's own ephemeral
        # port: TCP simultaneous open) is not a listener
        if probe.connect_ex(("127.0.0.1", port)) == 0 and \
                probe.getsockname() != probe.getpeername():
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True

"""The connection layer of the prediction server: uvicorn's httptools protocol behind an
accept loop of our own, with the limits a server facing the network needs.

uvicorn parses HTTP/1.1 (httptools) and runs the ASGI app of :mod:`.app`, except for the
API POSTs, which :class:`Connection` answers itself through the app's ``open`` (no ASGI
cycle per request, see the class); this module decides which connections exist and how
long they may take::

    server = HttpServer(asgi_app, config, loop)
    server.start(sockets)              # accept on the listening sockets
    ...
    server.stop_accepting()            # backlog accepted and answered, listeners closed
    await server.close_connections(deadline)

What it adds to uvicorn, all with public asyncio/uvicorn APIs (``loop.add_reader``,
``loop.connect_accepted_socket``, ``uvicorn.Config``, the protocol's own callbacks):

* **max_connections.** At the cap, the connection idle longest (no request being answered:
  keep-alive, or a request line/headers still arriving) is closed to make room; when every
  connection is busy, accepting pauses until one closes, and new clients wait in the
  kernel's backlog. Descriptors never run out because of clients.
* **A header timeout.** A request's line and headers must arrive within
  ``header_timeout`` seconds of its first byte (of the connection's opening for the first
  request), its body within ``body_timeout``; slower connections are closed (slowloris).
  A header block larger than ``_MAX_HEADER_BYTES`` gets 431.
* **EMFILE back-off.** When ``accept()`` fails for want of descriptors or memory, the
  listener is left alone for a growing pause (50 ms up to 1 s) and an idle connection is
  closed; the condition is logged at most once per ``_LOG_EVERY`` seconds with a count,
  never once per attempt.
* **Half-closed clients.** A client that sends its request and then shuts down its write
  side (``shutdown(SHUT_WR)``) still gets its answer; the connection closes after it.
* **Drain.** :meth:`stop_accepting` accepts what waits in the kernel's accept queue (each
  gets an answer instead of a reset) and closes the listeners at once.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState as UvicornState

from ..errors import for_status, render

_log = logging.getLogger("bento_nb.server")
_http_log = logging.getLogger("bento_nb.server.http")
if _http_log.level == logging.NOTSET:
    _http_log.setLevel(logging.ERROR)

_KEEP_ALIVE = 60.0  # seconds an idle keep-alive connection stays open
_MAX_HEADER_BYTES = 64 * 1024
_MAX_HEADERS = 100  # header fields per request (gunicorn's limit_request_fields)
_ACCEPT_BATCH = 64  # accepts per readiness event
_BACKLOG = 1024  # at most this many queued connections are accepted at stop
_LOG_EVERY = 10.0  # seconds between two log lines about running out of descriptors
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

# The phases of a connection, for the timeouts and for eviction.
_IDLE, _HEADERS, _BODY, _ANSWERING = range(4)


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SKIP = object()  # Connection.receiving: the rest of this body is read and dropped
_STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
                 for status in HTTPStatus}


class _Writer:
    """A connection's transport as its responses see it.

    * A response's head is held until its body is written, so that an answer leaves in
      one ``send()`` (uvicorn writes the two ASGI messages separately: two system calls
      and two TCP segments per answer).
    * While an answer of the connection's own path is owed (:meth:`hold`), whatever the
      ASGI app writes (a request pipelined behind it) is held, and a close deferred, until
      that answer is written (:meth:`release`): answers leave in request order.
    """

    __slots__ = ("transport", "head", "held", "close_after")

    def __init__(self, transport: Any):
        self.transport = transport
        self.head: bytes | None = None
        self.held: list | None = None
        self.close_after = False

    def write(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
            return
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head + data)
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":
            self.head = data  # a final response's head (never 100 Continue)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        head = self.head
        if head is not None:
            self.head = None
            self.transport.write(head)

    def close(self) -> None:
        if self.held is not None:
            self.close_after = True
            return
        self.flush()
        self.transport.close()

    def hold(self) -> None:
        self.held = []

    def release(self, answer: bytes) -> None:
        """Write the owed answer, then what was held behind it (and close, if asked)."""
        held, self.held = self.held, None
        transport = self.transport
        if transport.is_closing():
            return
        if held:
            answer = b"".join([answer, *held])
        if answer:
            transport.write(answer)
        if self.close_after:
            self.close_after = False
            transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class Connection(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus what :class:`HttpServer` needs to know: the phase
    of the request under way and since when, the size of its header block, and whether
    the client half-closed.

    A POST to an API route is answered without an ASGI cycle: at its headers the app's
    :meth:`~.app.App.open` gives a call object, which takes the body as it arrives and
    answers through :meth:`_answer` (written here, in one ``send()``). uvicorn's cycle
    per request (a task, an event, two ``send`` coroutines and their checks) cost more
    than the model; every other request goes through uvicorn's ASGI cycle as before.
    One such call is owed per connection at a time; a request pipelined behind it takes
    the ASGI path, its output held until the call's answer is written (:class:`_Writer`).
    """

    def __init__(self, server: HttpServer):
        super().__init__(config=server.uv_config, server_state=server.uv_state,
                         app_state={})
        self.owner = server
        self.open_call = getattr(server.app, "open", None)
        # uvicorn warns once per malformed request: on a flood of them that is a log
        # written at the attacker's pace. Only errors (a bug in the app) are logged.
        self.logger = _http_log
        self.phase = _HEADERS
        self.since = time.monotonic()
        self.header_bytes = 0
        self.eof = False
        self.refusal: tuple[int, str] | None = None
        self.asgi_open = 0  # requests handed to the ASGI app, not answered yet
        self.owed: Any = None  # the call of this connection's own path being answered
        self.receiving: Any = None  # that call while its body arrives, or _SKIP
        self.keep_alive = True  # of the owed call's request

    def connection_made(self, transport: Any) -> None:
        super().connection_made(_Writer(transport))
        self.owner.opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._abandon()
        super().connection_lost(exc)
        self.owner.closed(self)

    def data_received(self, data: bytes) -> None:
        if self.phase <= _HEADERS:
            seen = self.header_bytes
            self.header_bytes = seen + len(data)
            if self.header_bytes > _MAX_HEADER_BYTES:
                end = data.find(b"\r\n\r\n")
                if end < 0 or seen + end > _MAX_HEADER_BYTES:
                    if not self.headers and data.find(
                            b"\r\n", 0, max(_MAX_HEADER_BYTES - seen, 0)) < 0:
                        # no end of the request line within the limit
                        self._refuse(414, "the request line is longer than "
                                          f"{_MAX_HEADER_BYTES} bytes")
                    else:
                        self._refuse(431, "the request's header block is larger than "
                                          f"{_MAX_HEADER_BYTES} bytes")
                    return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.phase == _IDLE:
            self.phase, self.since, self.header_bytes = _HEADERS, time.monotonic(), 0

    def on_headers_complete(self) -> None:
        self.phase, self.since = _BODY, time.monotonic()
        if len(self.headers) > _MAX_HEADERS:
            # counted once here, not per field: the block's size is capped already
            self.refusal = (431, f"more than {_MAX_HEADERS} header fields")
            raise httptools.HttpParserError("too many header fields")
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            # No version at all ("GET /"), read by llhttp as HTTP/0.9, or a version
            # this server does not speak: refuse rather than guess.
            raise httptools.HttpParserError("unsupported HTTP version")
        url = self.url
        if not url.startswith(b"/"):
            # An absolute URI (a proxy request) or an authority (CONNECT): this is not a
            # proxy, and the path of such a target must not reach the routes.
            raise httptools.HttpParserError("the request target must be a path")
        if (self.open_call is not None and self.owed is None and not self.asgi_open
                and parser.get_method() == b"POST" and not parser.should_upgrade()
                and self._direct(url, version)):
            return
        self.asgi_open += 1
        super().on_headers_complete()

    def _direct(self, url: bytes, version: str) -> bool:
        """Take the request on this connection's own path when the app has a call for it
        (see the class docstring); False leaves it to uvicorn's ASGI cycle."""
        scope = self.scope
        parsed = httptools.parse_url(url)
        try:
            path = parsed.path.decode("ascii")
        except UnicodeDecodeError:
            return False  # uvicorn's cycle answers it as it does
        if "%" in path:
            path = unquote(path)
        scope.update(method="POST", path=path, raw_path=parsed.path,
                     query_string=parsed.query or b"")
        if version != "1.1":
            scope["http_version"] = version
        call = self.open_call(scope, self._answer)
        if call is None:
            return False
        self.owed = self.receiving = call
        self.keep_alive = self.parser.should_keep_alive()
        self.owner.direct += 1
        self.transport.hold()
        if not call.admit():
            self.receiving = _SKIP  # answered by its headers (and closed)
        elif call.expects_continue:
            if call.refuse_unread():
                self.receiving = _SKIP
            else:
                self.transport.transport.write(_CONTINUE)
        return True

    def on_body(self, body: bytes) -> None:
        call = self.receiving
        if call is None:
            return super().on_body(body)
        if call is not _SKIP and not call.take(body):
            self.receiving = _SKIP

    def on_message_complete(self) -> None:
        self.phase = _ANSWERING
        call = self.receiving
        if call is None:
            return super().on_message_complete()
        self.receiving = None
        if call is not _SKIP:
            call.complete()

    def _answer(self, status: int, headers: list, body: bytes, close: bool) -> None:
        """The owed call's answer (on the event loop, once): written with what was held
        behind it; then the connection is idle, or closed."""
        self.owner.direct -= 1
        self.owed = None
        keep = self.keep_alive and not close
        head = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status]
        for name, value in self.server_state.default_headers:
            head.append(b"%s: %s\r\n" % (name, value))
        for name, value in headers:
            head.append(b"%s: %s\r\n" % (name, value))
        head.append(b"content-length: %d\r\n" % len(body))
        if not keep:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        head.append(body)
        writer = self.transport
        writer.release(b"".join(head))
        if writer.is_closing():
            return
        if not keep or (self.eof and not self.asgi_open):
            writer.close()  # asked to, or the client said it sends nothing more
            return
        self.phase = _ANSWERING if self.asgi_open else _IDLE
        self.since, self.header_bytes = time.monotonic(), 0

    def _abandon(self) -> None:
        """The request whose body is arriving will never be complete (the connection is
        lost, or the rest is malformed): its call is no longer in flight, and what was
        held behind it goes out."""
        call = self.receiving
        self.receiving = None
        if call is not None and call is not _SKIP:
            call.drop()
            self.owner.direct -= 1
            self.owed = None
            self.transport.release(b"")

    def on_response_complete(self) -> None:
        self.transport.flush()
        self.asgi_open = max(self.asgi_open - 1, 0)
        # A pipelined request starts being answered now: not idle, not evictable.
        self.phase = _ANSWERING if self.pipeline or self.owed is not None else _IDLE
        self.since, self.header_bytes = time.monotonic(), 0
        super().on_response_complete()
        if (self.eof and not self.pipeline and self.owed is None
                and not self.transport.is_closing()):
            self.transport.close()  # the client said it sends nothing more

    def shutdown(self) -> None:
        """Close when idle; a connection answering closes after its answer."""
        if self.owed is not None:
            self.keep_alive = False
            self.transport.close()  # deferred by the writer until the answer is out
            return
        super().shutdown()

    def eof_received(self) -> bool | None:
        """The client shut down its write side. A request fully received is still answered
        (the transport stays half-open); otherwise the connection closes."""
        if self.phase == _ANSWERING or self.pipeline:
            self.eof = True
            return True
        return None

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse: a JSON 400 like every other error."""
        self._abandon()
        if self.refusal is not None:
            self._refuse(*self.refusal)
        else:
            self._refuse(400, f"malformed HTTP request: {msg}")

    def _refuse(self, status: int, message: str) -> None:
        status, headers, body = render(for_status(status, message))
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        for name, value in [*headers.items(), ("Content-Length", str(len(body))),
                            ("Connection", "close")]:
            head.append(f"{name}: {value}\r\n".encode())
        self.transport.write(b"".join(head) + b"\r\n" + body)
        self.transport.close()

    def close_now(self) -> None:
        """Close at once, whatever is held or owed (timeouts, eviction, the drain's end)."""
        self.transport.transport.close()

    @property
    def evictable(self) -> bool:
        """No request of this connection is being answered (closing it loses nothing)."""
        return self.phase in (_IDLE, _HEADERS) and not self.pipeline and self.owed is None


class HttpServer:
    """The listeners and connections of one server (see the module docstring)."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, *,
                 max_connections: int, header_timeout: float, body_timeout: float):
        self.loop = loop
        self.app = app
        self.uv_config = uvicorn.Config(
            app, http="httptools", ws="none", lifespan="off", interface="asgi3",
            loop="none", access_log=False, log_level="warning", server_header=False,
            proxy_headers=False,
            date_header=False, headers=[("Server", "bento_nb")],
            timeout_keep_alive=int(_KEEP_ALIVE))
        self.uv_config.load()
        self.uv_state = UvicornState()
        self.uv_state.default_headers = list(self.uv_config.encoded_headers)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.connections: set[Connection] = set()
        self.direct = 0  # requests on the connections' own path, not answered yet
        self.pending = 0  # accepted, protocol not attached yet
        self._sockets: list[socket.socket] = []
        self._reading = False
        self._accepting = False
        self._backoff = 0.0
        self._retry: asyncio.TimerHandle | None = None
        self._resource_errors = 0
        self._logged_at = -_LOG_EVERY
        self._sweeper: asyncio.TimerHandle | None = None
        self.evicted = 0
        self.timed_out = 0

    def alone(self) -> bool:
        """At most one request is being handled, counted from its headers on (uvicorn's
        tasks, and the connections' own calls): the caller's own."""
        return len(self.uv_state.tasks) + self.direct <= 1

    # -- listening --------------------------------------------------------------------

    def start(self, sockets: list[socket.socket]) -> None:
        for sock in sockets:
            sock.setblocking(False)
        self._sockets = list(sockets)
        self._accepting = True
        self._resume()
        self._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)

    def _resume(self) -> None:
        if self._accepting and not self._reading:
            for sock in self._sockets:
                self.loop.add_reader(sock.fileno(), self._accept, sock)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            for sock in self._sockets:
                self.loop.remove_reader(sock.fileno())
            self._reading = False

    def _accept(self, sock: socket.socket, limit: int = _ACCEPT_BATCH,
                ignore_cap: bool = False) -> int:
        taken = 0
        while taken < limit:
            full = len(self.connections) + self.pending >= self.max_connections
            if full and not ignore_cap and not self._evict_one():
                # Every connection is busy: resume when one closes, or when the ones
                # being set up have become idle (then one can be evicted).
                self._pause()
                if self.pending and self._retry is None:
                    self._retry = self.loop.call_later(0.01, self._retry_accept)
                return taken
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return taken
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if e.errno in _RESOURCE_ERRORS:
                    self._out_of_resources(e)
                else:
                    _log.warning("accept() failed: %s", e)
                return taken
            self._backoff = 0.0
            taken += 1
            self._attach(conn)
        return taken

    def _attach(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.pending += 1
        task = self.loop.create_task(
            self.loop.connect_accepted_socket(lambda: Connection(self), conn))
        task.add_done_callback(lambda t, c=conn: self._attached(t, c))

    def _attached(self, task: asyncio.Task, conn: socket.socket) -> None:
        self.pending -= 1
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or error is not None:
            conn.close()
            if isinstance(error, OSError) and error.errno in _RESOURCE_ERRORS:
                self._out_of_resources(error)  # uvloop dup()s the accepted descriptor
            else:
                self._maybe_resume()

    def _out_of_resources(self, error: OSError) -> None:
        """accept() failed for want of descriptors/memory: pause, free an idle
        connection, log rarely."""
        self._resource_errors += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY:
            _log.error("accept() failed %d time(s) in the last %.0f s: %s; closing idle "
                       "connections and retrying (lower max_connections or raise the "
                       "open-file limit)", self._resource_errors, min(now - self._logged_at,
                                                                       _LOG_EVERY),
                       error.strerror)
            self._logged_at, self._resource_errors = now, 0
        self._pause()
        # Free an eighth of the connections (the idle longest): the clients queued behind
        # them get descriptors soon. When nothing is idle, wait longer each time.
        if self._evict(max(1, len(self.connections) // 8)):
            self._backoff, delay = 0.0, 0.01
        else:
            self._backoff = delay = min(max(self._backoff * 2, 0.05), 1.0)
        if self._retry is None:
            self._retry = self.loop.call_later(delay, self._retry_accept)

    def _retry_accept(self) -> None:
        self._retry = None
        self._resume()

    def _evict_one(self) -> bool:
        """Close the connection idle longest; False when none is idle."""
        return self._evict(1) > 0

    def _evict(self, count: int) -> int:
        """Close the ``count`` connections idle longest; returns how many were closed."""
        idle = [c for c in self.connections
                if c.evictable and not c.transport.is_closing()]
        if count == 1 and idle:
            idle = [min(idle, key=lambda c: c.since)]
        else:
            idle.sort(key=lambda c: c.since)
        for connection in idle[:count]:
            connection.close_now()
        closed = min(count, len(idle))
        self.evicted += closed
        return closed

    def opened(self, connection: Connection) -> None:
        self.connections.add(connection)

    def closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._maybe_resume()

    def _maybe_resume(self) -> None:
        if (not self._reading and self._retry is None
                and len(self.connections) + self.pending < self.max_connections):
            self._resume()

    # -- timeouts ---------------------------------------------------------------------

    def _sweep_every(self) -> float:
        return max(0.05, min(1.0, self.header_timeout / 4, self.body_timeout / 4))

    def _sweep(self) -> None:
        """Close connections whose headers or body are late (slowloris), and those idle
        past the keep-alive time (uvicorn's own timer covers only its ASGI answers)."""
        now = time.monotonic()
        for connection in list(self.connections):
            phase = connection.phase
            late = ((phase == _HEADERS and now - connection.since > self.header_timeout)
                    or (phase == _BODY and now - connection.since > self.body_timeout))
            if late and not connection.transport.is_closing():
                self.timed_out += 1
                connection.close_now()
            elif phase == _IDLE and now - connection.since > _KEEP_ALIVE:
                connection.close_now()
        self._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)

    # -- stopping ---------------------------------------------------------------------

    def stop_accepting(self) -> int:
        """Accept what waits in the kernel's accept queue (those connections get answered,
        not reset), then close the listening sockets; returns how many were taken."""
        self._accepting = False
        self._pause()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        taken = 0
        for sock in self._sockets:
            taken += self._accept(sock, limit=_BACKLOG, ignore_cap=True)
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        return taken

    def close_idle(self) -> None:
        """Close connections with no request being answered; the others close after their
        answer (uvicorn's graceful shutdown of a connection)."""
        for connection in list(self.connections):
            connection.shutdown()

    async def close_connections(self, deadline: float) -> None:
        """Close every connection, waiting (until ``deadline``, time.monotonic()) for the
        answers under way; then close what is left."""
        self.close_idle()
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for connection in list(self.connections):
            connection.close_now()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

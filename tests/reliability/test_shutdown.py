"""Issue 7 item 4: stop() while requests are in flight.

Every in-flight request must get a response (its answer, or 503 while shutting down); none
may hang (every client read is bounded) or be dropped without a word."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time

from netcheck import port_is_free
from polling import wait_for

from .conftest import GatedEcho, SleepyEcho, predict


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


class Outcomes:
    """What each request of a load run ended as."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.examples: list[str] = []
        self.lock = threading.Lock()

    def add(self, kind: str, detail: str = "") -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if detail and len(self.examples) < 10:
                self.examples.append(f"{kind}: {detail}")

    def get(self, kind: str) -> int:
        return self.counts.get(kind, 0)


async def _one_request(port: int, value: float, out: Outcomes, timeout: float) -> bool:
    """One request on a new connection (``Connection: close``); False once the server
    refuses connections (it stopped)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (ConnectionRefusedError, ConnectionResetError):
        out.add("refused")
        return False
    except (OSError, asyncio.TimeoutError) as e:
        out.add("connect error", repr(e))
        return False
    body = json.dumps([[value, 1.0, 2.0, 3.0]]).encode()
    writer.write(b"POST /predict HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    try:
        raw = await asyncio.wait_for(reader.read(), timeout)  # until the server closes
    except asyncio.TimeoutError:
        out.add("hung", f"value {value}")
        return False
    except (ConnectionResetError, BrokenPipeError):
        out.add("reset without response")
        return True
    finally:
        writer.close()
    if not raw:
        out.add("closed without response")
        return True
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status == 200:
        if json.loads(payload) == [value]:
            out.add("200")
        else:
            out.add("wrong", f"sent {value}, got {payload[:100]!r}")
    elif status == 503:
        error = json.loads(payload)["error"]
        ok = error["type"] == "Overloaded" and b"retry-after:" in head.lower()
        out.add("503" if ok else "bad 503", payload[:200].decode())
    else:
        out.add(f"http {status}", payload[:200].decode())
    return True


def run_load(port: int, clients: int, seconds: float, out: Outcomes,
             timeout: float = 15.0) -> threading.Thread:
    """``clients`` clients sending back to back for at most ``seconds`` (or until refused),
    on a thread of their own."""

    async def client(index: int, stop_at: float) -> None:
        k = 0
        while time.monotonic() < stop_at:
            k += 1
            if not await _one_request(port, float(index * 100000 + k), out, timeout):
                return

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(client(i, stop_at) for i in range(clients)))

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    return thread


def test_stop_drains_every_in_flight_request(serve_model):
    """Deterministic: 20 requests are inside the server (the model is blocked), stop() is
    called, then the model is released: all 20 get their own answers, stop() returns, the
    port is free and new connections are refused."""
    model = GatedEcho()
    handle = serve_model(model)
    values = [float(i) for i in range(20)]
    replies: dict[float, object] = {}

    def client(v):
        try:
            replies[v] = predict(handle.port, [[v, 1, 2, 3]], timeout=20)
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            replies[v] = e

    threads = [threading.Thread(target=client, args=(v,), daemon=True) for v in values]
    for t in threads:
        t.start()
    assert wait_for(lambda: handle.stats()["in_flight"] == 20, 15), handle.stats()
    stopper = threading.Thread(target=handle.stop, kwargs={"timeout": 15}, daemon=True)
    stopper.start()
    assert wait_for(lambda: refuses(handle.port), 10)  # stopped accepting at once
    assert not replies  # ... while the 20 are still waiting for the model
    model.gate.set()
    for t in threads:
        t.join(20)
    stopper.join(20)
    assert not stopper.is_alive(), "stop() hung"
    answers = {v: (r.status, r.json()) if hasattr(r, "status") else repr(r)
               for v, r in replies.items()}
    assert answers == {v: (200, [v]) for v in values}
    assert not handle.running
    assert port_is_free(handle.port)


def test_stop_under_load_loses_nothing(serve_model):
    """64 clients, a new connection per request, stop() after 1 s of load: no client hangs,
    no answer is wrong, and every response the server counted reached its client."""
    handle = serve_model(SleepyEcho(0.01))
    out = Outcomes()
    load = run_load(handle.port, clients=64, seconds=10, out=out)
    assert wait_for(lambda: out.get("200") >= 200, 20), out.counts
    handle.stop(timeout=10)
    load.join(30)
    assert not load.is_alive(), f"clients still waiting: {out.counts}"
    stats = handle.stats()
    print(out.counts, out.examples, stats)
    assert out.get("hung") == 0
    assert out.get("wrong") == 0 and out.get("bad 503") == 0, out.examples
    # A request on a connection the server had accepted is always answered (R5): never a
    # close without response. Connections still in the kernel's accept queue are accepted
    # and answered at stop() (test above); one that completes its handshake in the instant
    # between that and the close of the listening socket is still reset by the kernel
    # ("reset without response": the request never reached the server).
    assert out.get("closed without response") == 0, out.counts
    assert set(out.counts) <= {"200", "503", "refused", "reset without response"}, out.examples
    assert out.get("200") + out.get("503") == stats["requests"]  # nothing counted was lost
    assert out.get("refused") >= 1  # the load really ran into the stop


def test_connections_queued_in_the_kernel_at_stop_are_answered(serve_model, monkeypatch):
    """Deterministic: the server's loop is kept busy while 16 clients connect and send a
    request (the kernel queues the connections; nobody accepts them), and stop() is called
    meanwhile. Each queued client must get an answer (503 "shutting down"), not a reset."""
    handle = serve_model(GatedEcho())
    busy, release, stop_scheduled = threading.Event(), threading.Event(), threading.Event()
    stopper = threading.Thread(target=handle.stop, kwargs={"timeout": 10}, daemon=True)
    schedule = handle._loop.call_soon_threadsafe

    def schedule_and_tell(*args, **kwargs):
        scheduled = schedule(*args, **kwargs)
        if threading.current_thread() is stopper:  # stop() has queued its shutdown
            stop_scheduled.set()
        return scheduled

    monkeypatch.setattr(handle._loop, "call_soon_threadsafe", schedule_and_tell)

    def keep_the_loop_busy() -> None:
        busy.set()
        release.wait(20)  # until stop() is queued behind this callback

    handle._loop.call_soon_threadsafe(keep_the_loop_busy)
    assert busy.wait(10)
    body = b"[[1, 1, 2, 3]]"
    clients = []
    for _ in range(16):
        sock = socket.create_connection(("127.0.0.1", handle.port), timeout=10)
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        clients.append(sock)
    stopper.start()  # runs on the loop once it is free, before it accepts anything
    assert stop_scheduled.wait(10)
    release.set()
    answers = []
    for sock in clients:
        try:
            raw = b""
            while chunk := sock.recv(65536):  # the server closes after answering
                raw += chunk
            answers.append(raw.split(b"\r\n", 1)[0].decode() if raw else "closed")
        except OSError as e:
            answers.append(type(e).__name__)
        finally:
            sock.close()
    stopper.join(20)
    assert answers == ["HTTP/1.1 503 Service Unavailable"] * 16, answers
    assert not stopper.is_alive() and port_is_free(handle.port)


def test_a_request_whose_body_arrives_after_stop_is_still_answered(serve_model):
    """Deterministic: the headers of a request are in when stop() is called, its body only
    after the listener has closed. It was admitted before the stop: it gets its answer."""
    model = GatedEcho()
    model.gate.set()
    handle = serve_model(model)
    body = b"[[7, 1, 2, 3]]"
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        assert wait_for(lambda: handle.stats()["in_flight"] == 1, 10)
        stopper = threading.Thread(target=handle.stop, kwargs={"timeout": 10}, daemon=True)
        stopper.start()
        assert wait_for(lambda: refuses(handle.port), 10)  # the stop is under way
        sock.sendall(body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    stopper.join(15)
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and json.loads(payload) == [7], raw[:300]
    assert not stopper.is_alive()


def test_drain_timeout_answers_503_not_silence(serve_model):
    """A model slower than stop()'s drain budget: the requests still waiting must get 503
    (shutting down), not a closed connection."""
    model = GatedEcho(limit=20)
    handle = serve_model(model)
    replies: dict[int, object] = {}

    def client(i):
        try:
            replies[i] = predict(handle.port, [[float(i), 1, 2, 3]], timeout=20)
        except Exception as e:  # noqa: BLE001
            replies[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(10)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: handle.stats()["in_flight"] == 10, 15)
        handle.stop(timeout=1)
        for t in threads:
            t.join(20)
        statuses = sorted(getattr(r, "status", type(r).__name__) for r in replies.values())
        assert statuses == [503] * 10, statuses
    finally:
        model.gate.set()


def test_draining_503_closes_keepalive_connection(serve_model):
    """A keep-alive client that gets a 'shutting down' 503 must be told the connection is
    closing (or be answered again on it), never have its next request swallowed."""
    model = GatedEcho()
    handle = serve_model(model)
    model.gate.set()
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    conn.request("POST", "/predict", body=b"[[7, 1, 2, 3]]", headers=headers)
    first = conn.getresponse()
    assert (first.status, first.read()) == (200, b"[7]")
    model.gate.clear()
    blocked = threading.Thread(target=lambda: predict(handle.port, [[1, 1, 2, 3]], timeout=20),
                               daemon=True)
    blocked.start()
    stopper = threading.Thread(target=handle.stop, kwargs={"timeout": 15}, daemon=True)
    try:
        assert wait_for(lambda: handle.stats()["in_flight"] == 1, 10)
        stopper.start()
        assert wait_for(lambda: refuses(handle.port), 10)
        conn.request("POST", "/predict", body=b"[[8, 1, 2, 3]]", headers=headers)
        during = conn.getresponse()
        during.read()
        assert during.status == 503
        if (during.getheader("Connection") or "").lower() != "close":
            conn.request("POST", "/predict", body=b"[[9, 1, 2, 3]]", headers=headers)
            again = conn.getresponse()  # raises if the server dropped the connection
            assert again.status in (200, 503)
    finally:
        model.gate.set()
        conn.close()
        blocked.join(20)
        stopper.join(20)


def test_cli_sigterm_under_load_drains(iris_tag, iris, iris_clf):
    """`bento-nb serve` gets SIGTERM while 32 clients hammer it: every answer is right,
    nothing hangs, the process exits 0."""
    from .conftest import cli_server

    X, _ = iris
    expected = iris_clf.predict(X).tolist()
    out = Outcomes()

    async def client(port: int, index: int, stop_at: float) -> None:
        k = 0
        while time.monotonic() < stop_at:
            row = (index * 7 + k) % len(X)
            k += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 5)
            except OSError:
                out.add("refused")
                return
            body = json.dumps([X[row].tolist()]).encode()
            writer.write(b"POST /predict HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
            try:
                raw = await asyncio.wait_for(reader.read(), 15)
            except asyncio.TimeoutError:
                out.add("hung")
                return
            except OSError:
                out.add("reset without response")
                continue
            finally:
                writer.close()
            if not raw:
                out.add("closed without response")
                continue
            head, _, payload = raw.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status == 200:
                if json.loads(payload) == [expected[row]]:
                    out.add("200")
                else:
                    out.add("wrong", f"row {row}: {payload[:100]!r}")
            else:
                out.add(str(status), payload[:200].decode())

    with cli_server(iris_tag) as server:
        async def main():
            stop_at = time.monotonic() + 15
            tasks = [asyncio.ensure_future(client(server.port, i, stop_at)) for i in range(32)]
            deadline = time.monotonic() + 10
            while out.get("200") < 300 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            server.proc.terminate()  # SIGTERM
            await asyncio.gather(*tasks)

        asyncio.run(main())
        code = server.proc.wait(20)
    print(out.counts, out.examples)
    assert code == 0, server.stderr_text()
    assert out.get("200") >= 300
    assert out.get("hung") == 0 and out.get("wrong") == 0, out.examples
    assert out.get("closed without response") == 0, out.counts  # R5
    assert set(out.counts) <= {"200", "503", "refused", "reset without response"}, out.examples

"""Helpers of the reliability tests: bounded HTTP over raw sockets, CLI servers, test models.

Everything talks to 127.0.0.1; every read has a timeout and every loop a bound."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from netcheck import Response, exchange, free_port

TIMEOUT = 10.0
REPO = Path(__file__).resolve().parents[2]


def call(port: int, method: str = "GET", path: str = "/", body: bytes | str | None = None,
         content_type: str | None = "application/json", headers: dict | None = None,
         timeout: float = TIMEOUT) -> Response:
    """One request on a new connection to 127.0.0.1:port, bounded by ``timeout``."""
    return exchange("127.0.0.1", port, method, path, body, content_type, headers, timeout)


def predict(port: int, rows, **kwargs) -> Response:
    return call(port, "POST", "/predict", json.dumps(rows), **kwargs)


def raw_exchange(port: int, data: bytes, timeout: float = TIMEOUT,
                 shut_write: bool = False) -> bytes:
    """Send ``data`` on a raw socket and read one whole response, or until the server
    closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        return read_until(s, _complete, timeout)


def read_until(sock: socket.socket, done=None, timeout: float = TIMEOUT) -> bytes:
    """What ``sock`` receives until ``done(received)`` is true, the peer closes or resets,
    or ``timeout`` seconds pass (without ``done``: until it closes)."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        received += chunk
        if done is not None and done(received):
            break
    return received


def _complete(data: bytes) -> bool:
    """True once ``data`` holds one whole HTTP response with a Content-Length."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def status_of(raw: bytes) -> int | None:
    """The status code of a raw HTTP response, None if there is none."""
    if not raw.startswith(b"HTTP/"):
        return None
    return int(raw.split(b" ", 2)[1])


def parallel(fn, args_list: list, timeout: float = 60.0) -> list:
    """Run ``fn(*args)`` for each args tuple in its own thread; results (or exceptions) in
    order. Threads are daemons and joined with a bound, so a hang shows as 'hung'."""
    results: list = ["hung"] * len(args_list)

    def run(i, args):
        try:
            results[i] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, a), daemon=True)
               for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return results


# -- models -------------------------------------------------------------------------------


class Echo:
    """predict(df) -> first column, so every client can check it got its own rows back."""

    def predict(self, df):
        return df.iloc[:, 0].to_numpy()


class GatedEcho(Echo):
    """A model that sleeps inside predict until ``gate`` opens (bounded by ``limit`` s);
    ``entered`` is set when the first call starts, ``calls`` counts calls."""

    def __init__(self, limit: float = 20.0):
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.limit = limit

    def predict(self, df):
        self.calls += 1
        self.entered.set()
        self.gate.wait(self.limit)
        return super().predict(df)


class SleepyEcho(Echo):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def predict(self, df):
        time.sleep(self.seconds)
        return super().predict(df)


# -- servers ------------------------------------------------------------------------------



class CliServer:
    def __init__(self, proc: subprocess.Popen, port: int, banner: str):
        self.proc = proc
        self.port = port
        self.banner = banner
        self.url = f"http://127.0.0.1:{port}"
        self.stderr_lines: list[str] = []

    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)


@contextmanager
def cli_server(tag: str, *args: str, env: dict | None = None, port: int | None = None,
               start_timeout: float = 60.0, preexec_fn=None):
    """``python -m bento_nb serve TAG --port P ARGS...`` until the block ends (SIGTERM, then
    SIGKILL after 15 s). Yields a CliServer once the banner line is printed."""
    port = port or free_port()
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "bento_nb", "serve", tag, "--port", str(port),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, cwd=str(REPO), preexec_fn=preexec_fn)
    server = CliServer(proc, port, "")
    lines: list[str] = []
    got_banner = threading.Event()

    def read_stdout():
        for line in proc.stdout:
            lines.append(line)
            got_banner.set()

    def read_stderr():
        for line in proc.stderr:
            server.stderr_lines.append(line)

    threading.Thread(target=read_stdout, daemon=True).start()
    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        if not got_banner.wait(start_timeout):
            raise AssertionError(f"CLI server did not start; stderr: {server.stderr_text()}")
        server.banner = lines[0]
        assert "serving" in server.banner, server.banner
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def iris_tag(iris_bundle):
    return iris_bundle.tag

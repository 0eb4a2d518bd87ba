"""``bento-nb serve`` as a real process, for every test package (tests/ is on sys.path:
``from servecli import spawn, wait_ready, terminate``)::

    proc = spawn("Iris", "--port", str(port))
    wait_ready(proc, port)            # GET /readyz answers 200, or the process's stderr
    ...
    terminate(proc)                   # SIGTERM (the drain of Ctrl-C), SIGKILL after grace
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys

from polling import wait_for


def spawn(*args: str, cwd=None, env: dict | None = None) -> subprocess.Popen:
    """``python -m bento_nb serve ARGS``, its output unbuffered into text pipes."""
    return subprocess.Popen([sys.executable, "-m", "bento_nb", "serve", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def _ready(port: int, host: str) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen, port: int, seconds: float = 60,
               host: str = "127.0.0.1") -> None:
    """Until the server on ``host``:``port`` is ready; an AssertionError with its stderr if
    the process exits first or ``seconds`` pass."""
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: "
                                 f"{proc.stderr.read()[-4000:]}")
        return _ready(port, host)

    assert wait_for(ready, seconds, 0.1, ignore=(OSError,)), "server did not become ready"


def terminate(proc: subprocess.Popen, grace: float = 20) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode

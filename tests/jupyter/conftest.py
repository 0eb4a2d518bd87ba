"""Fixtures for the Jupyter extension tests.

:func:`jupyter_factory` starts real ``jupyter server`` / ``jupyter lab`` subprocesses on
127.0.0.1 with a known token, the extension enabled by its installed config, and every
Jupyter directory (config, data, runtime, settings) plus its own ``BENTO_NB_HOME`` in a temp
dir. :func:`jupyter` hands one to a test and points the test process at the same store and
runtime dir, so bundles it packs and servers it starts are what the Jupyter server sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from netcheck import free_port
from polling import wait_for

from bento_nb.jupyter import discovery

TOKEN = "bento-test-token"


@pytest.fixture(autouse=True)
def _no_jupyter_advertised(monkeypatch):
    """Loading the extension in-process writes BENTO_NB_JUPYTER_* into os.environ; undo it
    after each test so other tests never think they run under Jupyter."""
    monkeypatch.delenv(discovery.PID_VAR, raising=False)
    monkeypatch.delenv(discovery.BASE_URL_VAR, raising=False)


@dataclass
class JupyterProcess:
    """A ``jupyter server`` or ``jupyter lab`` subprocess on 127.0.0.1."""

    process: subprocess.Popen
    port: int
    base_url: str
    token: str
    root: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    @property
    def home(self) -> Path:
        return self.root / "bento_home"

    @property
    def runtime_dir(self) -> Path:
        return self.root / "runtime"

    def api(self, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, token: bool = True, timeout: float = 20):
        """One HTTP request to ``<base_url><path>`` (redirects not followed);
        returns (status, headers, body bytes)."""
        request = urllib.request.Request(self.url + path.lstrip("/"), data=body,
                                         method=method, headers=dict(headers or {}))
        if token:
            request.add_header("Authorization", f"token {self.token}")
        try:
            with _NO_REDIRECT.open(request, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path: str, method: str = "GET", body=None, **kwargs):
        data = json.dumps(body).encode() if body is not None else None
        status, headers, raw = self.api(path, method, data, **kwargs)
        return status, (json.loads(raw) if raw else None)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_NO_REDIRECT = urllib.request.build_opener(_NoRedirect)


def _write_lab_settings(settings_dir: Path) -> None:
    # no "Jupyter news" prompt over the page in browser tests
    target = settings_dir / "@jupyterlab" / "apputils-extension"
    target.mkdir(parents=True, exist_ok=True)
    (target / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _use_built_labextension(data_dir: Path) -> None:
    """Make ``jupyter lab`` load the panel built beside the bento_nb under test
    (``bento_nb/labextension``, what ``npm run build`` in ``labextension/`` writes) rather
    than the copy an install put in ``share/``: the user data dir comes first in
    JupyterLab's labextensions path. Nothing to do when it was not built there."""
    import bento_nb

    built = Path(bento_nb.__file__).parent / "labextension"
    if (built / "package.json").is_file():
        (data_dir / "labextensions").mkdir(parents=True, exist_ok=True)
        (data_dir / "labextensions" / "bento-nb").symlink_to(built, target_is_directory=True)


@pytest.fixture(scope="module")
def jupyter_factory(tmp_path_factory):
    """Factory: ``jupyter_factory("lab")`` starts a server and waits until it answers."""
    started: list[JupyterProcess] = []

    def start(app: str = "server", base_url: str = "/", env: dict | None = None,
              args: list[str] | None = None) -> JupyterProcess:
        extra_env = env or {}
        root = tmp_path_factory.mktemp(f"jupyter-{app}")
        for sub in ("notebooks", "config", "data", "runtime", "ipython", "settings",
                    "workspaces", "bento_home"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        _write_lab_settings(root / "settings")
        _use_built_labextension(root / "data")
        env = dict(os.environ)
        env.update({
            "BENTO_NB_HOME": str(root / "bento_home"),
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "JUPYTER_DATA_DIR": str(root / "data"),
            "IPYTHONDIR": str(root / "ipython"),
            "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        })
        env.pop(discovery.PID_VAR, None)
        env.pop(discovery.BASE_URL_VAR, None)
        port = free_port()
        log = root / "jupyter.log"
        command = [
            sys.executable, "-m", "jupyterlab" if app == "lab" else "jupyter_server",
            "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
            "--port-retries=0",
            f"--ServerApp.root_dir={root / 'notebooks'}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.base_url={base_url}",
            "--FileContentsManager.delete_to_trash=False",
            *(args or []),
        ]
        process = subprocess.Popen(command, env=env, stdout=open(log, "wb"),
                                   stderr=subprocess.STDOUT, cwd=root / "notebooks")
        jp = JupyterProcess(process, port, base_url if base_url.endswith("/") else base_url + "/",
                            TOKEN, root, log)
        started.append(jp)
        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter {app} exited:\n{log.read_text()[-3000:]}")
            return jp.api("api/status", timeout=2)[0] == 200

        if not wait_for(answers, 60, 0.2, ignore=(OSError,)):
            raise RuntimeError(f"jupyter {app} did not start:\n{log.read_text()[-3000:]}")
        return jp

    yield start
    for jp in started:
        jp.process.terminate()
        try:
            jp.process.wait(15)
        except subprocess.TimeoutExpired:
            jp.process.kill()
            jp.process.wait(5)


def use_store_of(jp: JupyterProcess, monkeypatch) -> JupyterProcess:
    """Point this test process at the store and runtime dir of ``jp``."""
    monkeypatch.setenv("BENTO_NB_HOME", str(jp.home))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(jp.runtime_dir))
    return jp


@pytest.fixture(scope="module")
def jupyter_server(jupyter_factory):
    """One ``jupyter server`` per test module, under a non-root base_url."""
    return jupyter_factory("server", base_url="/jp/")


@pytest.fixture
def jupyter(jupyter_server, monkeypatch):
    return use_store_of(jupyter_server, monkeypatch)


RECORDER_SECRET = "recorder-secret-0123456789abcdef"

# what a careless or hostile backend may send to act on the origin that relays it
ORIGIN_HEADERS = {
    "Set-Cookie": "model_server=1; Path=/",
    "Set-Cookie2": "model_server2=1",
    "Clear-Site-Data": '"cookies", "storage"',
    "Refresh": "0; url=https://evil.example/",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Credentials": "true",
    "Content-Security-Policy": "default-src *",
    "Strict-Transport-Security": "max-age=31536000",
    "Service-Worker-Allowed": "/",
    "Link": "</jp/api/contents>; rel=prefetch",
}


class RecordingServer:
    """A tiny real tornado server on 127.0.0.1 in a thread: answers every request with
    JSON describing what it received (method, path, query, headers, body), with the
    headers of :data:`ORIGIN_HEADERS`. It speaks bento_nb's identity check
    (``GET /.bento/identity``) for ``secret`` like a real server would (``secret=None``:
    it does not, as an unrelated program on the port); those checks are counted in
    ``identity_checks``, not listed in ``requests``. ``/redirect?to=L`` answers 302 to L."""

    def __init__(self, secret: str | None = RECORDER_SECRET):
        import asyncio

        from tornado import httpserver, web

        from bento_nb.server.registry import IDENTITY_PATH, identity_proof

        self.requests: list[dict] = []
        self.identity_checks = 0
        outer = self

        class Echo(web.RequestHandler):
            SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

            def _answer(self):
                if self.request.path == IDENTITY_PATH and secret is not None:
                    outer.identity_checks += 1
                    nonce = self.get_query_argument("nonce", "")
                    self.finish({"proof": identity_proof(secret, nonce)})
                    return
                record = {"method": self.request.method, "path": self.request.path,
                          "query": self.request.query,
                          "headers": dict(self.request.headers.get_all()),
                          "body": self.request.body.decode("latin-1")}
                outer.requests.append(record)
                if self.request.path == "/redirect":
                    self.set_header("Location", self.get_query_argument("to", "/landing?x=1"))
                    self.set_status(302)
                for name, value in ORIGIN_HEADERS.items():
                    self.set_header(name, value)
                self.set_header("X-Echo", "yes")
                if self.request.path == "/page":
                    self.set_header("Content-Type", "text/html")
                    self.finish("<script>fetch('/jp/api/contents')</script>")
                    return
                self.finish(record)

            get = head = post = put = patch = delete = _answer

        self.port = free_port()
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            server = httpserver.HTTPServer(web.Application([(r"/.*", Echo)]))
            server.listen(self.port, "127.0.0.1")
            self._server = server
            ready.set()
            loop.run_forever()
            server.stop()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def recording_server():
    server = RecordingServer()
    yield server
    server.stop()


@pytest.fixture
def impostor():
    """A program on a port that does not know any record's secret."""
    server = RecordingServer(secret=None)
    yield server
    server.stop()


@pytest.fixture
def register():
    """``register(port, host=..., pid=...)`` writes a registry record by hand; the records
    are removed after the test."""
    written: list[Path] = []

    def write(*args, **kwargs) -> Path:
        path = register_record(*args, **kwargs)
        written.append(path)
        return path

    yield write
    for path in written:
        path.unlink(missing_ok=True)


@pytest.fixture
def point_at():
    """``point_at(jp)`` points this test at the store and runtime dir of another server."""
    return use_store_of


def register_record(port: int, host: str = "127.0.0.1", pid: int | None = None,
                    tag=None, secret: str | None = RECORDER_SECRET, **fields) -> Path:
    """Write a registry record by hand (what a bento_nb server writes on start); by default
    with the secret a :class:`RecordingServer` proves. ``fields`` override the others."""
    from bento_nb.server import registry

    record = {"pid": pid or os.getpid(), "host": host, "port": port,
              "url": f"http://{host}:{port}", "tag": tag, "name": "Recorder",
              "apis": ["predict"], "started_at": "2026-01-01T00:00:00+00:00",
              "secret": secret, **fields}
    return registry.write_record(record)


"""BentoML 0.x entry points that save or serve a service outside the store.

    svc.save_to_dir("/tmp/iris")                   # a bundle folder, not in the store
    svc2 = bento_nb.load_from_dir("/tmp/iris")     # bento_nb.service.load_from_dir
    svc.start_dev_server(port=5000)               # `bento-nb serve` of a saved copy
    svc.stop_dev_server()

The dev server runs the bundle as it would be deployed (saved, then loaded by a
``bento-nb serve`` child process), so what it answers is what the saved bundle answers;
it stops with ``stop_dev_server()`` or when this process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import ServerError, UsageError
from ..store import Store, validate_name

_READY_TIMEOUT_S = 120.0


def save_to_dir(svc: Any, path: str | os.PathLike, version: str | None = None) -> str:
    """Write ``svc`` as a bundle into folder ``path``; returns the path."""
    if version is not None:
        validate_name(version, "version")
    target = Path(path)
    with tempfile.TemporaryDirectory(prefix="bento_nb-save-") as scratch:
        bundle = svc.save_bundle(store=_ScratchStore(scratch, version))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bundle.path, target, dirs_exist_ok=True)
    svc.bundle = None  # the scratch store is gone; the folder is the bundle now
    return str(target)


class _ScratchStore(Store):
    """A throwaway store whose bundles carry ``version`` (when given) in their manifest."""

    def __init__(self, root: str, version: str | None):
        super().__init__(root)
        self._version = version

    def save(self, name: str, write: Any):
        if self._version is None:
            return super().save(name, write)
        return super().save(name, lambda folder, _generated: write(folder, self._version))


def save(svc: Any, base_path: str | os.PathLike | None = None, version: str | None = None,
         labels: dict | None = None) -> str:
    """``bento_nb.save(svc)`` (BentoML 0.x): ``svc.save()`` into the store (or the store
    at ``base_path``); returns the bundle path."""
    if version is not None:
        raise UsageError("bento_nb.save(..., version=...) is not supported: store versions "
                         "are generated; use svc.save_to_dir(path, version=...) for a fixed one")
    return svc.save(labels=labels, store=Store(base_path) if base_path is not None else None)


# -- the dev server ------------------------------------------------------------------------


def start_dev_server(svc: Any, port: int | None = None, enable_ngrok: bool = False,
                     **options: Any) -> str:
    """Save ``svc`` to a temporary folder and serve it with ``bento-nb serve`` on
    127.0.0.1:``port``; returns its URL once it answers /healthz."""
    if enable_ngrok:
        raise UsageError("enable_ngrok is not supported: bento_nb serves on 127.0.0.1 only")
    if getattr(svc, "_dev_server", None) is not None:
        raise UsageError("a dev server is already running for this service: "
                         "call svc.stop_dev_server() first")
    port = 5000 if port is None else int(port)
    folder = tempfile.mkdtemp(prefix="bento_nb-dev-")
    try:
        save_to_dir(svc, folder)
        command = [sys.executable, "-m", "bento_nb", "serve", folder, "--port", str(port)]
        for key, value in options.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        log = tempfile.TemporaryFile()  # the server's stderr, read if it fails to start
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    url = f"http://127.0.0.1:{port}"
    svc._dev_server = (process, folder, url, log)
    atexit.register(stop_dev_server, svc)
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            error = log.read().decode(errors="replace").strip().splitlines()
            stop_dev_server(svc)
            raise ServerError(f"the dev server did not start: "
                              f"{error[-1] if error else f'exit code {process.returncode}'}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return url
        except OSError:
            time.sleep(0.1)
    stop_dev_server(svc)
    raise ServerError(f"the dev server did not answer on {url} within {_READY_TIMEOUT_S:.0f} s")


def stop_dev_server(svc: Any) -> None:
    running = getattr(svc, "_dev_server", None)
    if running is None:
        return
    process, folder, _, log = running
    svc._dev_server = None
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.close()
    shutil.rmtree(folder, ignore_errors=True)

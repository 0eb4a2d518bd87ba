"""BentoML 0.x entry points that save or serve a service outside the store.

    svc.save_to_dir("/tmp/iris")                   # a bundle folder, not in the store
    svc2 = bento_nb.load_from_dir("/tmp/iris")     # bento_nb.service.load_from_dir
    svc.start_dev_server(port=5000)               # a server thread in this process
    svc.stop_dev_server()

The dev server serves the live service, as BentoML 0.x's did from a notebook, with the
thread-hosted server of ``bento_nb.serve`` (reached through :mod:`bento_nb.hooks`: this
layer may not import the server); it stops with ``stop_dev_server()``, like any server of
this process when the process ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ServerError, UsageError
from ..store import Store, validate_name


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
                     debug: bool = False, **options: Any) -> str:
    """Serve ``svc`` as it is now (not saved) on 127.0.0.1:``port`` (default 5000) from a
    thread of this process, the server ``bento_nb.serve`` starts; returns its URL once it
    accepts connections. ``options``: ``bento_nb.serve``'s server options."""
    from .. import hooks

    if enable_ngrok:
        raise UsageError("enable_ngrok is not supported: bento_nb serves on 127.0.0.1 only")
    if debug:
        raise UsageError("debug is not supported: the dev server logs through Python's "
                         "logging ('bento_nb.server'); set its level instead")
    if getattr(svc, "_dev_server", None) is not None:
        raise UsageError("a dev server is already running for this service: "
                         "call svc.stop_dev_server() first")
    if hooks.serve_in_process is None:  # only if bento_nb's root was never imported
        raise ServerError("no server to start: import bento_nb first")
    handle = hooks.serve_in_process(svc, port=5000 if port is None else int(port),
                                    host="127.0.0.1", **options)
    svc._dev_server = handle
    return handle.url


def stop_dev_server(svc: Any, timeout: float = 30) -> None:
    """Stop the server :func:`start_dev_server` started for ``svc``; nothing if none."""
    handle = getattr(svc, "_dev_server", None)
    if handle is None:
        return
    svc._dev_server = None
    handle.stop(timeout=timeout)

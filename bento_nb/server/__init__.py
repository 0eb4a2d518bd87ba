"""The prediction server: ASGI routes on uvicorn, adaptive micro-batching, lifecycle.

    from bento_nb.server import serve, running_servers, stop_all
    handle = serve("IrisClassifier:latest", port=0)     # background thread, own loop
    handle.url, handle.stats()
    handle.stop()

Modules: :mod:`.app` (the ASGI routes), :mod:`.transport` (connections on uvicorn: limits,
timeouts, drain), :mod:`.batching` (the dispatcher and its
algorithm), :mod:`.openapi`, :mod:`.metrics`, :mod:`.config` (``ServerConfig``),
:mod:`.registry` (running servers), :mod:`.runner` (threads, sockets, stop) and
:mod:`.process` (``bento-nb serve``, ``--workers``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ServerConfig
    from .process import run_cli
    from .registry import list_servers
    from .runner import ServerHandle, running_servers, serve, stop_all

__all__ = ["ServerConfig", "ServerHandle", "list_servers", "run_cli", "running_servers",
           "serve", "stop_all"]

# Loaded on first use (PEP 562), so the Jupyter extension can read the registry
# (:mod:`.registry`, :mod:`.address`) without loading the HTTP app, numpy or the service.
_LAZY = {"ServerConfig": ".config", "run_cli": ".process", "list_servers": ".registry",
         "ServerHandle": ".runner", "running_servers": ".runner", "serve": ".runner",
         "stop_all": ".runner"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'bento_nb.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

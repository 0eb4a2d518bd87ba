"""The prediction server: tornado routes, adaptive micro-batching, lifecycle.

    from bento_nb.server import serve, running_servers, stop_all
    handle = serve("IrisClassifier:latest", port=0)     # background thread, own IOLoop
    handle.url, handle.stats()
    handle.stop()

Modules: :mod:`.app` (routes and handlers), :mod:`.batching` (the dispatcher and its
algorithm), :mod:`.openapi`, :mod:`.metrics`, :mod:`.config` (``ServerConfig``),
:mod:`.registry` (running servers), :mod:`.runner` (threads, sockets, stop) and
:mod:`.process` (``bento-nb serve``, ``--workers``).
"""

from __future__ import annotations

from .config import ServerConfig
from .process import run_cli
from .registry import list_servers
from .runner import ServerHandle, running_servers, serve, stop_all

__all__ = [
           "ServerConfig",
           "ServerHandle",
           "list_servers",
           "run_cli",
           "running_servers",
           "serve",
           "stop_all",
]

"""The Jupyter side of bento_nb: a jupyter-server 2 extension and the JupyterLab panel's API.

Enabled on install (``jupyter-config/jupyter_server_config.d/bento_nb.json``), it serves
under ``<base_url>/bento/``::

    GET    api/bundles                    every bundle in the store
    GET    api/bundles/<name>             that name's versions
    GET    api/bundles/<name>/<version>   one bundle (``latest`` allowed)
    DELETE api/bundles/<name>/<version>   remove it (XSRF or token needed, like every write)
    GET    api/servers                    running bento_nb servers (the registry) + health,
                                          owner (notebook or process), live stats
    DELETE api/servers/<pid>-<port>       stop that server (drains; see handlers.ServerHandler)
    POST   api/containerize               {"tag", "image"?, "base_image"?} -> 202 {"id", ...}
    GET    api/jobs, api/jobs/<id>        containerize jobs: status, log (``?since=N``)
    *      proxy/<port>/<path>            forwards to a *registered* bento_nb server on loopback

Kernels started by such a server can ask for the proxied address of their servers::

    from bento_nb.jupyter import proxy_url_for
    proxy_url_for(5000)        # '/user/me/bento/proxy/5000/' or None outside Jupyter

This module imports nothing heavy: kernels import it to call :func:`proxy_url_for`.
"""

from __future__ import annotations

from .discovery import proxy_url_for

__all__ = ["proxy_url_for"]


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "bento_nb.jupyter"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Called by jupyter-server at start-up: register the handlers and tell kernels."""
    from .extension import load

    load(serverapp)

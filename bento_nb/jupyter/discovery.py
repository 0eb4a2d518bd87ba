"""How a kernel learns that a Jupyter server with the bento_nb extension is serving it.

When the extension loads, it puts two variables into the Jupyter server's environment;
jupyter-server starts every kernel (and terminal) with a copy of that environment::

    BENTO_NB_JUPYTER_PID       pid of the Jupyter server process
    BENTO_NB_JUPYTER_BASE_URL  its base_url, e.g. "/" or "/user/alice/" on JupyterHub

:func:`proxy_url_for` answers only while that process is alive, so a kernel that outlived
its server (or a stray copy of the variables) gets ``None``. The default answer is a path
on the Jupyter origin (``/user/alice/bento/proxy/5000/``): the browser showing the notebook
resolves it against the address it already uses, which is right on JupyterHub, behind
SSH tunnels and on remote hosts where the server's own idea of its hostname is not.
``absolute=True`` joins it with the URL the server recorded in its
``jpserver-<pid>.json`` info file (runtime dir) for programs outside the browser.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._processes import pid_alive

PID_VAR = "BENTO_NB_JUPYTER_PID"
BASE_URL_VAR = "BENTO_NB_JUPYTER_BASE_URL"


def advertise(base_url: str, pid: int | None = None) -> None:
    """Record in this (Jupyter server) process's environment that the extension is on;
    kernels started afterwards inherit it."""
    os.environ[PID_VAR] = str(os.getpid() if pid is None else pid)
    os.environ[BASE_URL_VAR] = normalize_base_url(base_url)


def proxy_path(base_url: str, port: int) -> str:
    """``<base_url>bento/proxy/<port>/``, the proxied root of a local server."""
    return f"{normalize_base_url(base_url)}bento/proxy/{int(port)}/"


def proxy_url_for(port: int, absolute: bool = False) -> str | None:
    """The address of local server ``port`` through the Jupyter server running this
    kernel, or None when no Jupyter server with the bento_nb extension runs it.

    The proxy forwards only to ports of registered bento_nb servers, so the answer is
    useful for servers started with :func:`bento_nb.serve` / ``%bento serve``.
    With ``absolute=True`` the answer is a full ``http(s)://host:port/...`` URL taken from
    the server's info file; None when that file cannot be read.
    """
    try:
        port = int(port)
    except (TypeError, ValueError):
        return None
    if not 0 < port < 65536:
        return None
    pid = _server_pid()
    base_url = os.environ.get(BASE_URL_VAR)
    if pid is None or base_url is None or not pid_alive(pid):
        return None
    path = proxy_path(base_url, port)
    if not absolute:
        return path
    info = _server_info(pid)
    if not info or not info.get("url"):
        return None
    root = str(info["url"]).rstrip("/")
    server_base = normalize_base_url(info.get("base_url") or "/")
    # info["url"] already ends with the base_url; add only what follows it
    return root + "/" + path[len(server_base):]


def _server_pid() -> int | None:
    try:
        return int(os.environ[PID_VAR])
    except (KeyError, ValueError):
        return None


def _server_info(pid: int) -> dict | None:
    from jupyter_core.paths import jupyter_runtime_dir

    file = Path(jupyter_runtime_dir()) / f"jpserver-{pid}.json"
    try:
        with open(file, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def normalize_base_url(base_url: str) -> str:
    base_url = "/" + (base_url or "").strip("/")
    return base_url if base_url.endswith("/") else base_url + "/"

"""Server addresses: the one place that says what URL a server has and what is loopback.

    url_for("127.0.0.1", 5000)     # 'http://127.0.0.1:5000'
    url_for("::1", 5000)           # 'http://[::1]:5000'
    url_for("0.0.0.0", 5000)       # 'http://127.0.0.1:5000'  (where a local client connects)
    is_loopback("::1"), is_loopback("10.0.0.7")          # True, False
    is_loopback_url("javascript:alert(1)")               # False

Every front end (the in-kernel handle, ``bento-nb serve``, the Jupyter proxy and panel
API, the widgets) asks these functions; none builds a server URL by hand. This module
imports only the standard library.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})


def is_wildcard(host: str | None) -> bool:
    """``host`` binds every interface (``0.0.0.0``, ``::``, empty)."""
    return host is None or str(host).strip("[]") in WILDCARD_HOSTS


def is_loopback(host: str | None) -> bool:
    """``host`` is this machine only: ``localhost``, 127.0.0.0/8 or ``::1``."""
    if host is None:
        return False
    text = str(host).strip("[]").lower()
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def connect_host(host: str | None) -> str:
    """The host a client on this machine connects to for a server bound to ``host``:
    loopback for a wildcard bind, else ``host`` itself (IPv6 without brackets)."""
    if is_wildcard(host):
        return "::1" if str(host).strip("[]") == "::" else "127.0.0.1"
    return str(host).strip("[]")


def url_for(host: str | None, port: int, scheme: str = "http") -> str:
    """The base URL of a server bound to ``host``:``port``, as a client on this machine
    uses it (a wildcard bind is shown as ``127.0.0.1``; IPv6 addresses in brackets)."""
    shown = connect_host(host)
    if shown == "::1" and is_wildcard(host):
        shown = "127.0.0.1"  # a dual-stack wildcard bind answers on IPv4 loopback too
    if ":" in shown:
        shown = f"[{shown}]"
    return f"{scheme}://{shown}:{int(port)}"


def is_loopback_url(url: object) -> bool:
    """``url`` is an ``http(s)://`` URL on a loopback host (safe to link or to call from
    this machine): printable, no spaces or backslashes, no user info, a valid port.
    ``javascript:``, ``file:`` and every other host are not."""
    if not isinstance(url, str) or not url.isprintable() or " " in url or "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (parts.scheme.lower() in ("http", "https") and parts.username is None
            and is_loopback(parts.hostname))

"""``<base_url>/bento/proxy/<port>/<path>``: reach an in-kernel bento_nb server through Jupyter.

On JupyterHub or a remote Jupyter the browser cannot open ``http://127.0.0.1:5000``; it can
open ``https://hub.example.org/user/me/bento/proxy/5000/``. The proxy forwards there only
when ``<port>`` belongs to a bento_nb server in the registry (``bento_nb.server.registry``)
listening on loopback; anything else is refused with 403 before a connection is made, so
the Jupyter server cannot be used to reach arbitrary ports or hosts.

What crosses: method, path, query (minus Jupyter's ``token``), body and end-to-end headers.
What does not: Jupyter's cookies, an ``Authorization`` header carrying the Jupyter token,
hop-by-hop headers, and ``Set-Cookie`` from the model server. A ``Location`` that points to
the server's own root is rewritten under the proxy prefix. Requests need Jupyter's
authentication like any other page; writes (POST...) from a browser also need XSRF, as
everywhere in Jupyter (token-authenticated clients such as ``curl -H 'Authorization: token
...'`` do not).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, web
from tornado.simple_httpclient import HTTPTimeoutError

from ..errors import BentoNbError
from . import discovery
from .handlers import AUTH_RESOURCE, JSONErrors

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
}
_NOT_FORWARDED_UP = _HOP_BY_HOP | {"cookie", "x-xsrftoken", "x-xsrf-token"}
_NOT_FORWARDED_DOWN = _HOP_BY_HOP | {"set-cookie", "server", "date"}


def loopback_target(host: str | None) -> str | None:
    """Where to connect for a server registered with ``host``: a loopback address, or
    None when the server does not listen on loopback (then it is not proxied)."""
    if host in (None, "", "0.0.0.0", "localhost", "*"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        address = ipaddress.ip_address(str(host).strip("[]"))
    except ValueError:
        return None
    if not address.is_loopback:
        return None
    return f"[{address}]" if address.version == 6 else str(address)


class ProxyHandler(JSONErrors, JupyterHandler):
    """Forward one request to a registered local bento_nb server."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, settings, runner=None) -> None:
        self.bento_settings = settings

    @web.authenticated
    @authorized
    async def get(self, port: str, path: str | None) -> None:
        if not path:
            # the Swagger UI page uses relative asset paths: it must live under a "/"
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(f"{self.request.path}/{query}")
            return
        await self._forward(int(port), path)

    @web.authenticated
    @authorized
    async def head(self, port: str, path: str | None) -> None:
        await self._forward(int(port), path or "/")

    @web.authenticated
    @authorized
    async def post(self, port: str, path: str | None) -> None:
        await self._forward(int(port), path or "/")

    @web.authenticated
    @authorized
    async def put(self, port: str, path: str | None) -> None:
        await self._forward(int(port), path or "/")

    @web.authenticated
    @authorized
    async def patch(self, port: str, path: str | None) -> None:
        await self._forward(int(port), path or "/")

    @web.authenticated
    @authorized
    async def delete(self, port: str, path: str | None) -> None:
        await self._forward(int(port), path or "/")

    # --

    def _client(self) -> httpclient.AsyncHTTPClient:
        # one client per extension, with our response size limit (a per-client setting)
        client = getattr(self.bento_settings, "_proxy_client", None)
        if client is None:
            client = httpclient.AsyncHTTPClient(
                force_instance=True, max_clients=64,
                max_body_size=self.bento_settings.proxy_max_body_bytes)
            self.bento_settings._proxy_client = client
        return client

    def _refuse(self, status: int, type_: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error": {"type": type_, "message": message}})

    def _target(self, port: int) -> str | None:
        from ..server.registry import list_servers

        for server in list_servers():
            try:
                if int(server.get("port")) == port:
                    return loopback_target(server.get("host"))
            except (TypeError, ValueError):
                continue
        return None

    async def _forward(self, port: int, path: str) -> None:
        try:
            host = self._target(port)
        except BentoNbError as e:
            self._refuse(e.http_status, e.type, e.message)
            return
        if host is None:
            self._refuse(403, "Forbidden", f"port {port} is not a running bento_nb server on "
                                           "this machine; only registered servers are proxied")
            return
        url = f"http://{host}:{port}{path}"
        # the query as sent (encoding untouched), minus Jupyter's own token parameter
        query = "&".join(part for part in self.request.query.split("&")
                         if part and part.split("=", 1)[0] != "token")
        if query:
            url += "?" + query
        request = httpclient.HTTPRequest(
            url,
            method=self.request.method,
            headers=self._upstream_headers(port),
            body=self.request.body if self.request.method in ("POST", "PUT", "PATCH")
            else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            decompress_response=False,
            connect_timeout=min(10.0, self.bento_settings.proxy_timeout),
            request_timeout=self.bento_settings.proxy_timeout,
        )
        try:
            response = await self._client().fetch(request, raise_error=False)
        except HTTPTimeoutError:
            self._refuse(504, "GatewayTimeout", f"bento_nb server on port {port} did not "
                                                f"answer in {request.request_timeout:g} s")
            return
        except (OSError, httpclient.HTTPClientError) as e:  # refused, reset, too large
            self._refuse(502, "BadGateway", f"bento_nb server on port {port}: {e}")
            return
        self.set_status(response.code, response.reason)
        self.clear_header("Content-Type")
        for name, value in response.headers.get_all():
            lower = name.lower()
            if lower in _NOT_FORWARDED_DOWN:
                continue
            if lower == "location":
                value = self._rewrite_location(value, port)
            if lower == "content-type":
                self.set_header(name, value)
            else:
                self.add_header(name, value)
        if self.request.method != "HEAD" and response.body:
            self.write(response.body)
        await self.finish()

    def _upstream_headers(self, port: int) -> dict[str, str]:
        headers = {}
        token = getattr(self.identity_provider, "token", None)
        for name, value in self.request.headers.get_all():
            lower = name.lower()
            if lower in _NOT_FORWARDED_UP:
                continue
            if lower == "authorization" and token and token in value:
                continue  # Jupyter's own credential: never hand it to the model server
            headers[name] = value
        headers["Host"] = f"127.0.0.1:{port}"
        headers["X-Forwarded-Proto"] = self.request.protocol
        headers["X-Forwarded-Host"] = self.request.host
        headers["X-Forwarded-Prefix"] = discovery.proxy_path(self.settings["base_url"],
                                                             port).rstrip("/")
        if self.request.remote_ip:
            headers["X-Forwarded-For"] = self.request.remote_ip
        return headers

    def _rewrite_location(self, value: str, port: int) -> str:
        parts = urlsplit(value)
        if parts.netloc and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            return value
        if not parts.path.startswith("/"):
            return value  # relative: already resolves under the proxy prefix
        prefix = discovery.proxy_path(self.settings["base_url"], port).rstrip("/")
        rewritten = prefix + parts.path
        return rewritten + (f"?{parts.query}" if parts.query else "")

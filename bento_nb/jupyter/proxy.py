"""``<base_url>/bento/proxy/<port>/<path>``: reach an in-kernel bento_nb server through Jupyter.

On JupyterHub or a remote Jupyter the browser cannot open ``http://127.0.0.1:5000``; it can
open ``https://hub.example.org/user/me/bento/proxy/5000/``. The proxy forwards there only
when ``<port>`` belongs to a bento_nb server in the registry (``bento_nb.server.registry``)
listening on loopback, and only once the process on that port has proved it is the server
that wrote the record: the proxy sends a random nonce to ``GET /.bento/identity`` and checks
the HMAC of the record's secret over it (:mod:`.identity`). A port not
registered or not on loopback is refused with 403 before a connection is made; a process
that cannot prove the record (a stale record whose port or pid another program took) with
502, and nothing it sends is relayed. So the Jupyter server cannot be used to reach
arbitrary ports or hosts, nor to hand the Jupyter origin to another user's process.

What crosses up: method, path and query re-encoded (minus Jupyter's ``token`` and
``_xsrf`` parameters, however they are encoded), body and end-to-end headers. Not Jupyter's
cookies, an ``Authorization`` header carrying the Jupyter token, ``Referer``, ``Forwarded``
/ ``X-Real-IP`` / client ``X-Forwarded-*`` (the proxy sets its own), hop-by-hop headers and
those named in ``Connection``. What crosses down: only the headers of
:data:`_FORWARDED_DOWN` (content type and encoding, caching, ``Retry-After``, ...), never
``Set-Cookie``, ``Clear-Site-Data``, ``Refresh``, CORS or the server's own CSP. A
``Location`` is rewritten under the proxy prefix, or dropped when it points elsewhere.
Every answer gets ``X-Content-Type-Options: nosniff`` and a Content-Security-Policy:
``sandbox`` (no access to the Jupyter origin at all) except for the Swagger UI page at the
server's root, which runs with ``script-src 'self'`` and no inline script.

Requests need Jupyter's authentication like any other page; writes (POST...) from a browser
also need XSRF, as everywhere in Jupyter (token-authenticated clients such as ``curl -H
'Authorization: token ...'`` do not).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, web
from tornado.simple_httpclient import HTTPTimeoutError

from ..errors import BadGateway, BentoNbError, Forbidden, GatewayTimeout
from ..server.registry import read_records
from .base import AUTH_RESOURCE, JSONErrors, send_error
from .discovery import normalize_base_url, proxy_path
from .identity import NotVerified, loopback_target, loopback_url, verify


_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
}
_NOT_FORWARDED_UP = _HOP_BY_HOP | {
    "cookie", "x-xsrftoken", "x-xsrf-token", "referer", "forwarded", "x-real-ip", "via",
}
_NOT_FORWARDED_QUERY = {"token", "_xsrf"}
# Response headers relayed to the browser; everything else (Set-Cookie, Set-Cookie2,
# Clear-Site-Data, Refresh, Access-Control-*, Content-Security-Policy, Strict-Transport-
# Security, Service-Worker-Allowed, Link, ...) would act on the Jupyter origin.
_FORWARDED_DOWN = {
    "content-type", "content-encoding", "content-language", "content-disposition",
    "content-range", "accept-ranges", "cache-control", "expires", "etag", "last-modified",
    "vary", "retry-after", "www-authenticate", "allow", "location",
}
_SANDBOX_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
# The Swagger UI page: its own scripts and styles only (no inline or remote script), its
# requests to the proxy, never framed by another site, no form posts elsewhere.
_PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-src 'none'; "
             "base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
_SEGMENT_SAFE = "!$&'()*+,;=:@"  # kept as-is in a path segment (RFC 3986 pchar)


def response_headers(headers, location: Callable[[str], str | None],
                     html_page: bool) -> list[tuple[str, str]]:
    """The headers of a backend answer to relay: only :data:`_FORWARDED_DOWN`, with
    ``Location`` passed through ``location`` (dropped when it returns None), plus
    ``nosniff`` and the proxy's own Content-Security-Policy (``html_page``: the Swagger
    UI page policy, else ``sandbox``)."""
    out = []
    for name, value in headers.get_all():
        lower = name.lower()
        if lower not in _FORWARDED_DOWN:
            continue
        if lower == "location":
            value = location(value)
            if value is None:
                continue
        out.append((name, value))
    out.append(("X-Content-Type-Options", "nosniff"))
    out.append(("Content-Security-Policy", _PAGE_CSP if html_page else _SANDBOX_CSP))
    return out


def upstream_query(query: str) -> str:
    """``query`` decoded and re-encoded, minus Jupyter's ``token`` and ``_xsrf``
    parameters however they are spelled (``%74oken=`` is ``token=``)."""
    pairs = parse_qsl(query, keep_blank_values=True, errors="surrogateescape")
    kept = [(k, v) for k, v in pairs if k.strip().lower() not in _NOT_FORWARDED_QUERY]
    return urlencode(kept, quote_via=quote, safe="", errors="surrogateescape")


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

    def _refuse(self, error: BentoNbError) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        send_error(self, error)

    def _record(self, port: int) -> tuple[dict, str] | None:
        """The registry record of ``port`` and the loopback address to reach it, or None."""
        records, _bad = read_records()  # bad records are reported by api/servers
        for record in records:
            if record["port"] == port:
                host = loopback_target(record.get("host"))
                return (record, host) if host else None
        return None

    async def _forward(self, port: int, path: str) -> None:
        try:
            found = self._record(port)
        except BentoNbError as e:
            self._refuse(e)
            return
        if found is None:
            self._refuse(Forbidden(f"port {port} is not a running bento_nb server on this "
                                   "machine; only registered servers are proxied"))
            return
        record, host = found
        try:
            await verify(self._client(), record, host, self.bento_settings,
                         min(10.0, self.bento_settings.proxy_timeout))
        except NotVerified as e:
            self.log.warning("bento_nb proxy: refused port %s: %s", port, e)
            self._refuse(BadGateway(f"the process on port {port} is not the bento_nb server "
                                    f"registered there ({e}); restart the server "
                                    "(bento_nb.serve / bento-nb serve)"))
            return
        url = f"http://{host}:{port}{self._upstream_path(port, path)}"
        query = upstream_query(self.request.query)
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
            self._refuse(GatewayTimeout(f"bento_nb server on port {port} did not answer in "
                                        f"{request.request_timeout:g} s"))
            return
        except (OSError, httpclient.HTTPClientError) as e:  # refused, reset, too large
            self._refuse(BadGateway(f"bento_nb server on port {port}: {e}"))
            return
        self.set_status(response.code, response.reason)
        self.clear_header("Content-Type")
        content_type = response.headers.get("Content-Type", "")
        html_page = path == "/" and content_type.split(";")[0].strip().lower() == "text/html"
        for name, value in response_headers(
                response.headers, lambda v: self._rewrite_location(v, port), html_page):
            if name.lower() in ("content-type", "content-security-policy",
                                "x-content-type-options"):
                self.set_header(name, value)
            else:
                self.add_header(name, value)
        if self.request.method != "HEAD" and response.body:
            self.write(response.body)
        await self.finish()

    def _upstream_path(self, port: int, path: str) -> str:
        """The path to request upstream: the request's own (still encoded) path after the
        proxy prefix, each segment decoded and re-encoded, so what reaches the server is a
        well-formed request line (no spaces, control characters or stray ``%``) that
        means what the browser asked for (``%2F`` stays inside its segment)."""
        raw = self.request.path
        prefix = f"{normalize_base_url(self.settings['base_url'])}bento/proxy/"
        rest = raw[len(prefix):].lstrip("0123456789") if raw.startswith(prefix) else None
        if rest is None or not rest.startswith("/"):
            rest = quote(path, safe="/")  # tornado's decoded path: encode it again
        return "/".join(quote(unquote(segment, errors="surrogateescape"), safe=_SEGMENT_SAFE,
                              errors="surrogateescape") for segment in rest.split("/")) or "/"

    def _upstream_headers(self, port: int) -> dict[str, str]:
        headers = {}
        token = getattr(self.identity_provider, "token", None)
        named = {part.strip().lower()
                 for value in self.request.headers.get_list("Connection")
                 for part in value.split(",")}
        for name, value in self.request.headers.get_all():
            lower = name.lower()
            if lower in _NOT_FORWARDED_UP or lower in named or lower.startswith("x-forwarded-"):
                continue
            if lower == "authorization" and token and token in value:
                continue  # Jupyter's own credential: never hand it to the model server
            headers[name] = value
        headers["Host"] = f"127.0.0.1:{port}"
        headers["X-Forwarded-Proto"] = self.request.protocol
        headers["X-Forwarded-Host"] = self.request.host
        headers["X-Forwarded-Prefix"] = proxy_path(self.settings["base_url"],
                                                             port).rstrip("/")
        if self.request.remote_ip:
            headers["X-Forwarded-For"] = self.request.remote_ip
        return headers

    def _rewrite_location(self, value: str, port: int) -> str | None:
        """A backend ``Location`` as the browser must see it: under the proxy prefix, dot
        segments resolved and re-encoded; None (dropped) when it leads anywhere else (another
        host, a scheme-relative ``//host``, ``../`` out of the prefix)."""
        prefix = proxy_path(self.settings["base_url"], port)
        parts = urlsplit(value.strip())
        if parts.scheme or parts.netloc:
            if loopback_url(value) is None or parts.port not in (None, port):
                return None  # another host, scheme or local port: not this proxy's to show
            target = prefix.rstrip("/") + (parts.path or "/")
        elif parts.path.startswith("/"):
            target = prefix.rstrip("/") + parts.path
        else:  # relative to the request, which is under the prefix
            target = self.request.path.rsplit("/", 1)[0] + "/" + parts.path
        resolved = urlsplit(urljoin("http://proxy.invalid/", target)).path
        if not (resolved + "/").startswith(prefix):
            return None
        resolved = quote(unquote(resolved, errors="surrogateescape"), safe="/" + _SEGMENT_SAFE,
                         errors="surrogateescape")
        return resolved + (f"?{parts.query}" if parts.query else "")

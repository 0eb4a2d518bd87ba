"""Is the process on a registered port the bento_nb server its record describes?

Every running server writes a registry record with a random secret (user-only file, see
:mod:`bento_nb.server.registry`). :func:`verify` sends a random nonce to the port's
``GET /.bento/identity`` and checks the HMAC of the secret over it, so the secret never
crosses the wire and a process that merely took over the port (a stale record, a reused
pid, another user's program) cannot answer for the record. The proxy and ``api/servers``
both ask here; so do the addresses they may use (:func:`loopback_target`,
:func:`loopback_url`).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time

from tornado import httpclient

from ..server.address import connect_host, is_loopback, is_loopback_url, is_wildcard

VERIFIED_FOR = 3.0  # seconds a successful identity check of (pid, port, secret) is trusted


def loopback_target(host: str | None) -> str | None:
    """Where to connect for a server registered with ``host``: a loopback address, or
    None when the server does not listen on loopback (then it is not proxied)."""
    if not (is_wildcard(host) or is_loopback(host)):
        return None
    address = connect_host(host)
    if address.lower() == "localhost":
        return "127.0.0.1"  # the address a "localhost" bind has; never a resolver's guess
    return f"[{address}]" if ":" in address else address


def loopback_url(url: object) -> str | None:
    """``url`` when it is an ``http(s)://`` URL on this machine's loopback, else None (see
    :func:`bento_nb.server.address.is_loopback_url`): every ``url`` shown to a browser
    passes it, so a record cannot put ``javascript:`` or a remote site behind a link."""
    return url if is_loopback_url(url) else None  # type: ignore[return-value]


class NotVerified(Exception):
    """The process on a registered port did not prove the record's secret; ``reachable``
    says whether anything answered there at all."""

    def __init__(self, message: str, reachable: bool = True):
        super().__init__(message)
        self.reachable = reachable


async def verify(client: httpclient.AsyncHTTPClient, record: dict, host: str,
                 settings, timeout: float) -> None:
    """Check that the process on ``record``'s port holds the record's secret (see
    :mod:`bento_nb.server.registry`); raises :class:`NotVerified` saying why not. Successes
    are remembered for :data:`VERIFIED_FOR` seconds per (pid, port, secret) on ``settings``
    (one cache per extension), so a page and its assets cost one check, not one each."""
    from ..server.registry import IDENTITY_PATH, identity_proof

    secret = record.get("secret")
    if not secret:
        raise NotVerified("its registry record has no secret: it was written by an older "
                          "bento_nb")
    key = (record["pid"], record["port"], secret)
    cache: dict = settings.__dict__.setdefault("_verified", {})
    now = time.monotonic()
    if cache.get(key, 0) > now:
        return
    nonce = secrets.token_urlsafe(24)
    request = httpclient.HTTPRequest(
        f"http://{host}:{record['port']}{IDENTITY_PATH}?nonce={nonce}",
        follow_redirects=False, connect_timeout=timeout, request_timeout=timeout)
    try:
        response = await client.fetch(request, raise_error=False)
    except (OSError, httpclient.HTTPClientError) as e:
        raise NotVerified(f"the identity check failed: {e}", reachable=False) from None
    proof = None
    if response.code == 200:
        try:
            proof = json.loads(response.body).get("proof")
        except (ValueError, AttributeError):
            proof = None
    if not isinstance(proof, str) or not hmac.compare_digest(
            proof.encode("ascii", "replace"), identity_proof(secret, nonce).encode()):
        raise NotVerified(f"it answered the identity check with HTTP {response.code} and "
                          "no valid proof")
    for old in [k for k, until in cache.items() if until <= now]:
        del cache[old]
    cache[key] = now + VERIFIED_FOR

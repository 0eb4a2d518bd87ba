"""The one error hierarchy of bento_nb.

Every error a user can cause is a :class:`BentoNbError` subclass. Each class knows the HTTP
status the server answers with and the exit code the CLI returns, so the mapping lives here
and nowhere else. Messages say what went wrong and, where it helps, what to do::

    raise BundleNotFound("no bundle 'Iris:latest' in /home/me/bento_nb", see="list")

How an error reaches a person is decided here too, once for every front end:
:func:`render` gives the HTTP answer (status, headers such as ``Retry-After``, and the body
``{"error": {"type": <class name>, "message": ...}}``), :func:`one_line` the text the CLI
and the magics print, and :func:`from_answer` turns an error body some server sent back
into the same class again (``%bento predict`` through a running server)::

    status, headers, body = render(Overloaded("queue full", retry_after=2))
    # 503, {"Content-Type": "application/json", "Retry-After": "2"}, b'{"error": ...}'
"""

from __future__ import annotations

import json
import math
from typing import Iterable


class BentoNbError(Exception):
    """Base class: a problem the user can understand and fix.

    ``see`` names the command that helps next (``"list"``): each front end says it in its
    own words (:meth:`hint`: ``see `bento-nb list``` in a terminal, ``see %bento list`` in
    a notebook), so no message names a front end the user is not in."""

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, *args: object, see: str | None = None):
        super().__init__(*args)
        self.see = see

    def hint(self, front_end: str | None) -> str:
        """The message, with "see <command>" in the words of ``front_end`` (``"bento-nb"``,
        ``"%bento"``; None: the message alone)."""
        if not self.see or front_end is None:
            return self.message
        command = f"{front_end} {self.see}"
        return f"{self.message}; see " + (f"`{command}`" if front_end == "bento-nb" else command)

    @property
    def type(self) -> str:
        return type(self).__name__

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.type

    def http_headers(self) -> dict[str, str]:
        """Headers the HTTP answer to this error carries besides ``Content-Type``."""
        return {}

    def to_json(self) -> dict:
        return {"error": {"type": self.type, "message": self.message}}


# -- store --------------------------------------------------------------------------------


class InvalidName(BentoNbError, ValueError):
    """A bundle name, version or tag does not follow the naming rules."""

    http_status = 400
    exit_code = 2


class NotFound(BentoNbError, LookupError):
    """No such thing: a route, a job, a server, a bundle (:class:`BundleNotFound`)."""

    http_status = 404
    exit_code = 3


class BundleNotFound(NotFound):
    """No bundle matches the tag or path."""


class AlreadyExists(BentoNbError):
    """Something with that name is there already (a bundle version on import, ...)."""

    http_status = 409
    exit_code = 2


class BundleCorrupted(BentoNbError):
    """A bundle on disk is incomplete or fails its checksums."""

    http_status = 500
    exit_code = 4


class UnsafeArchive(BentoNbError):
    """An archive holds members that would escape the target directory, or links."""

    http_status = 400
    exit_code = 4


class StoreError(BentoNbError):
    """The store on disk cannot be used as it is: a symbolic link where bento_nb expects
    its own folder (it never follows links inside the store)."""

    http_status = 500
    exit_code = 9


class DiskFull(StoreError):
    """A bundle or archive could not be written: no space left (or a quota or file-size
    limit hit). Nothing half-written is left behind."""

    http_status = 507
    exit_code = 9


class PackError(BentoNbError):
    """An object could not be packed (not picklable, missing method, ...)."""

    http_status = 400
    exit_code = 2


# -- requests -----------------------------------------------------------------------------


class BadInput(BentoNbError, ValueError):
    """A request body or CLI input cannot be parsed into what the API expects."""

    http_status = 400
    exit_code = 2


class PayloadTooLarge(BentoNbError):
    http_status = 413
    exit_code = 2


class UnsupportedMediaType(BentoNbError):
    http_status = 415
    exit_code = 2


class MethodNotAllowed(BentoNbError):
    """The route exists but not for this method; ``allow`` lists the methods it takes."""

    http_status = 405
    exit_code = 2

    def __init__(self, message: str = "", allow: Iterable[str] = ()):
        super().__init__(message)
        self.allow = list(allow)

    def http_headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)} if self.allow else {}


class Unauthorized(BentoNbError):
    """A missing or wrong API token."""

    http_status = 401
    exit_code = 2

    def http_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(BentoNbError):
    """Authenticated, but not allowed here (a missing XSRF token, a port that is not a
    registered bento_nb server)."""

    http_status = 403
    exit_code = 2


class ModelError(BentoNbError):
    """The user's model or API function raised while predicting."""

    http_status = 500
    exit_code = 5


class Overloaded(BentoNbError):
    """The request queue is full or the server is shutting down; retry after
    ``retry_after`` seconds (the ``Retry-After`` header)."""

    http_status = 503
    exit_code = 6

    def __init__(self, message: str = "", retry_after: float = 1):
        super().__init__(message)
        self.retry_after = retry_after

    def http_headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class DeadlineExceeded(BentoNbError):
    """A request waited longer than the server's ``request_timeout`` for the model (it is
    hung or far slower than the load needs); the request was dropped, retry later."""

    http_status = 504
    exit_code = 6


# -- serving, containers ------------------------------------------------------------------


class ServerError(BentoNbError):
    """A server could not start (port busy, bad configuration)."""

    http_status = 500
    exit_code = 7


class StaleServer(BentoNbError):
    """A registry record that cannot be acted on: nothing on its port proves it wrote the
    record (stale, or the port taken by another program), or its server cannot be reached
    from here. Nothing was done to it."""

    http_status = 409
    exit_code = 7


class DockerUnavailable(BentoNbError):
    """No Docker daemon can be reached. ``context`` is the build context left on disk and
    ``command`` the exact ``docker build`` command that builds it later (None if unknown)."""

    http_status = 503
    exit_code = 8

    def __init__(self, message: str, context=None, command: str | None = None):
        super().__init__(message)
        self.context = context
        self.command = command


class BuildError(BentoNbError):
    """`docker build` failed."""

    http_status = 500
    exit_code = 8


class UsageError(BentoNbError):
    """Bad arguments to a CLI command or a magic."""

    http_status = 400
    exit_code = 2


class BadGateway(BentoNbError):
    """A proxy reached a process that is not (or cannot prove it is) the server it wants."""

    http_status = 502
    exit_code = 7


class GatewayTimeout(BentoNbError):
    """A proxy's backend did not answer in time."""

    http_status = 504
    exit_code = 7


class InternalError(BentoNbError):
    """A bug in bento_nb, not the user's doing: the message says where the details are."""

    http_status = 500
    exit_code = 1


# -- rendering ----------------------------------------------------------------------------

_BY_STATUS: dict[int, type[BentoNbError]] = {
    400: BadInput, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    409: AlreadyExists, 413: PayloadTooLarge, 415: UnsupportedMediaType, 503: Overloaded,
    502: BadGateway, 504: DeadlineExceeded, 507: DiskFull,
}


def render(error: BaseException) -> tuple[int, dict[str, str], bytes]:
    """The HTTP answer to ``error``: status, headers (``Content-Type`` and the error's own,
    e.g. ``Retry-After``) and the JSON body. Anything that is not a :class:`BentoNbError`
    is a bug: a 500 ``InternalError`` whose message does not leak its details."""
    if not isinstance(error, BentoNbError):
        error = InternalError("internal error; the details are in the server log")
    body = json.dumps(error.to_json()).encode()
    return error.http_status, {"Content-Type": "application/json", **error.http_headers()}, body


def for_status(status: int, message: str) -> BentoNbError:
    """The error of an HTTP status another layer chose (a 404/405 of the HTTP layer, a proxy's 502):
    the class of that status, answering with exactly that status."""
    cls = _BY_STATUS.get(status)
    error = (cls or BentoNbError)(message)
    if cls is None:
        error.http_status = status
    return error


def from_answer(status: int, body: bytes, where: str = "") -> BentoNbError:
    """The error a bento_nb server answered (``{"error": {"type", "message"}}``), as its
    class again; a body of another shape becomes the class of its status."""
    try:
        detail = json.loads(body)["error"]
        kind, message = str(detail.get("type", "")), str(detail.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        kind, message = "", body.decode("utf-8", "replace")[:200]
    if where:
        message = f"{where} answered {status}: {message}"
    cls = globals().get(kind)
    if isinstance(cls, type) and issubclass(cls, BentoNbError):
        error = cls(message)  # every class takes a message alone
        if cls.http_status != status:
            error.http_status = status
        return error
    return for_status(status, message)


def one_line(text: object) -> str:
    """``text`` with each run of whitespace, newlines included, as one space: how the CLI
    and the magics print an error."""
    return " ".join(str(text).split())

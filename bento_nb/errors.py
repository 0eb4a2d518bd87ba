"""The one error hierarchy of bento_nb.

Every error a user can cause is a :class:`BentoNbError` subclass. Each class knows the HTTP
status the server answers with and the exit code the CLI returns, so the mapping lives here
and nowhere else. Messages say what went wrong and, where it helps, what to do::

    raise BundleNotFound("no bundle 'Iris:latest' in /home/me/bento_nb; see `bento-nb list`")

The server renders any of them as ``{"error": {"type": <class name>, "message": ...}}``.
"""

from __future__ import annotations


class BentoNbError(Exception):
    """Base class: a problem the user can understand and fix."""

    http_status: int = 500
    exit_code: int = 1

    @property
    def type(self) -> str:
        return type(self).__name__

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.type

    def to_json(self) -> dict:
        return {"error": {"type": self.type, "message": self.message}}


# -- store --------------------------------------------------------------------------------


class InvalidName(BentoNbError, ValueError):
    """A bundle name, version or tag does not follow the naming rules."""

    http_status = 400
    exit_code = 2


class BundleNotFound(BentoNbError, LookupError):
    """No bundle matches the tag or path."""

    http_status = 404
    exit_code = 3


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


class NotFound(BentoNbError):
    http_status = 404
    exit_code = 3


class MethodNotAllowed(BentoNbError):
    http_status = 405
    exit_code = 2


class Unauthorized(BentoNbError):
    http_status = 401
    exit_code = 2


class ModelError(BentoNbError):
    """The user's model or API function raised while predicting."""

    http_status = 500
    exit_code = 5


class Overloaded(BentoNbError):
    """The request queue is full or the server is shutting down; retry later."""

    http_status = 503
    exit_code = 6


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

"""What every handler of the extension shares: its authorization resource and how an
error is answered (:func:`bento_nb.errors.render`, the same body as the prediction server's).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from tornado import web

from ..errors import BentoNbError, for_status, render

AUTH_RESOURCE = "bento"


def send_error(handler: web.RequestHandler, error: BaseException) -> None:
    """Answer ``error`` on ``handler``: its status, its headers, its JSON body."""
    status, headers, body = render(error)
    handler.set_status(status)
    for name, value in headers.items():
        handler.set_header(name, value)
    handler.finish(body)


def bento_errors(method):
    """Answer a BentoNbError raised by ``method`` with :func:`send_error`."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            result = method(self, *args, **kwargs)
            if inspect.isawaitable(result):
                await result
        except BentoNbError as e:
            send_error(self, e)

    return wrapper


class JSONErrors:
    """Mixin: tornado's own errors (403, 404, 405, XSRF, 500) in the bento_nb error shape
    instead of Jupyter's HTML or ``{"message", "reason"}``."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc = (kwargs.get("exc_info") or (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        send_error(self, for_status(status_code, message))

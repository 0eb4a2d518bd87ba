"""What every input adapter is: :class:`Payload`, one parsed request, and the
:class:`InputAdapter` base class that parses requests, assembles batches and describes its
request body for OpenAPI.

A subclass sets ``kind`` and ``media_types`` and implements :meth:`InputAdapter.parse`;
the rest has defaults that suit one JSON value per request::

    class UpperInput(InputAdapter):
        kind = "upper"

        def parse(self, body, content_type=None):
            return Payload(body.decode().upper())
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from ..errors import BadInput
from .encoding import to_jsonable

# Media types whose bodies are read as JSON (a client that names none, or plain text).
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "")


class Payload:
    """One parsed request: ``value`` is adapter-specific, ``rows`` its batch size."""

    __slots__ = ("value", "rows", "columns")

    def __init__(self, value: Any, rows: int = 1, columns: tuple | None = None):
        self.value = value
        self.rows = rows
        self.columns = columns


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


class InputAdapter:
    """Base class. Subclasses set ``kind`` and implement :meth:`parse`."""

    kind = "base"
    media_types: tuple[str, ...] = ("application/json",)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        raise NotImplementedError

    def from_python(self, value: Any) -> Payload:
        """An in-process argument (already Python) as a payload."""
        return Payload(value)

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        """The API argument for a batch of payloads (``batch=True`` APIs)."""
        return [p.value for p in payloads]

    def make_single(self, payload: Payload) -> Any:
        """The API argument for one payload (``batch=False`` APIs)."""
        return payload.value

    def configure(self, model: Any) -> None:
        """Learn the expected input from a packed model, when the user did not say."""

    def example_body(self, value: Any) -> Any:
        """An in-process input (what the API is called with) as a request body, for the
        documented example of a bundle (``pack(..., example=...)``)."""
        return to_jsonable(value)

    def encode_example(self, body: Any) -> tuple[bytes, str]:
        """``body`` (from :meth:`example_body`) as the bytes and content type a client
        sends; raises BadInput when it cannot be sent."""
        try:
            return json.dumps(body, allow_nan=False).encode(), "application/json"
        except (TypeError, ValueError) as e:
            raise BadInput(f"not JSON: {e}") from None

    def config(self) -> dict:
        """What the manifest records about this adapter."""
        return {"type": type(self).__name__}

    def openapi_request(self, example: Any = None) -> dict:
        """The OpenAPI ``requestBody``; ``example``: a body from :meth:`example_body`."""
        return {"content": {"application/json": {"schema": {},
                                                  "example": {} if example is None else example}}}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({options})"

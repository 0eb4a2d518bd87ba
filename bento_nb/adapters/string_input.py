"""StringInput: a UTF-8 text body → ``str``::

    StringInput().parse(b"hello", "text/plain").value    # 'hello'
"""

from __future__ import annotations

from typing import Any

from ..errors import BadInput, UnsupportedMediaType
from .base import InputAdapter, Payload, _media_type


class StringInput(InputAdapter):
    """A UTF-8 text body → ``str``."""

    kind = "string"
    media_types = ("text/plain",)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media and not (media.startswith("text/") or media in ("application/json",
                                                               "application/x-www-form-urlencoded")):
            raise UnsupportedMediaType(f"content type {media!r} is not supported: send text/plain")
        try:
            return Payload(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadInput("body is not UTF-8 text") from None

    def example_body(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise BadInput(f"the example of a text API is a str, not {type(value).__name__}")
        return value

    def encode_example(self, body: Any) -> tuple[bytes, str]:
        return body.encode("utf-8"), "text/plain"

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {"text/plain": {
            "schema": {"type": "string"}, "example": "hello" if example is None else example}}}

"""FileInput: raw bytes, from the body itself or from a ``multipart/form-data`` upload::

    FileInput().parse(b"\\x89PNG...", "image/png").value       # b'\\x89PNG...'
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from ..errors import BadInput
from .base import InputAdapter, Payload, _media_type


class FileInput(InputAdapter):
    """Raw bytes: the body itself, or the first file of a ``multipart/form-data`` body."""

    kind = "file"
    media_types = ("application/octet-stream", "multipart/form-data")

    def example_body(self, value: Any) -> Any:
        raise BadInput("a file API takes no documented example (examples are JSON or text)")

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media == "multipart/form-data":
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + (content_type or "").encode("latin-1", "replace")
                + b"\r\n\r\n" + body)
            for part in message.iter_parts() if message.is_multipart() else ():
                data = part.get_payload(decode=True)
                if data is not None:
                    return Payload(data)
            raise BadInput("multipart body holds no file part")
        return Payload(bytes(body))

    def from_python(self, value: Any) -> Payload:
        if isinstance(value, str):
            value = value.encode()
        return Payload(bytes(value))

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}},
        }}

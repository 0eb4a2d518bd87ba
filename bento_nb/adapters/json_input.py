"""JsonInput: any JSON document → the parsed Python value, one per request::

    JsonInput().parse(b'{"text": "hello"}', "application/json").value   # {'text': 'hello'}
"""

from __future__ import annotations

from typing import Any

from ..errors import UnsupportedMediaType
from .base import _JSON_TYPES, InputAdapter, Payload, _media_type
from .decoding import MAX_JSON_DEPTH, loads_json


class JsonInput(InputAdapter):
    """Any JSON document → the parsed Python value (one per request in a batch). Documents
    nested more than :data:`MAX_JSON_DEPTH` levels deep are refused (400), so that what the
    API returns of its input can always be written back as JSON."""

    kind = "json"
    media_types = ("application/json",)

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media not in _JSON_TYPES:
            raise UnsupportedMediaType(f"content type {media!r} is not supported: send application/json")
        return Payload(loads_json(body))

    def openapi_request(self, example: Any = None) -> dict:
        return {"required": True, "content": {"application/json": {
            "schema": {"description": f"any JSON document nested at most {MAX_JSON_DEPTH} "
                                      "levels deep, integers of at most 4300 digits"},
            "example": {"text": "hello"} if example is None else example}}}

"""A small HTTP client for a running bento_nb server (the widgets' Try it, ``%bento
predict`` through a server). Standard library only; errors come back as the server's own
error classes (:func:`bento_nb.errors.from_answer`)::

    answer, url = predict("http://127.0.0.1:5000", "predict", [[5.1, 3.5, 1.4, 0.2]])
    status, body = post_json("http://127.0.0.1:5000/predict", "[[5.1, 3.5, 1.4, 0.2]]")
    status, body = post_bytes("http://127.0.0.1:5000/classify", png, "image/png")

``predict`` sends ``bytes`` as they are (an image or file API's body), with the media type
their first bytes tell (``image/png``, ``image/jpeg``...; else ``application/octet-stream``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .errors import from_answer

TIMEOUT_SECONDS = 30.0


# First bytes of the image formats a browser would upload -> their media type.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"BM", "image/bmp"),
          (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))


def media_type_of(data: bytes) -> str:
    """The media type ``data``'s first bytes tell (images), else application/octet-stream."""
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)),
                "application/octet-stream")


def post_json(url: str, text: str, api_token: str | None = None,
              timeout: float = TIMEOUT_SECONDS) -> tuple[int, bytes]:
    """POST ``text`` as JSON; returns (status, body) for 2xx and HTTP errors alike, and
    (0, an error body) when the server cannot be reached."""
    return post_bytes(url, text.encode("utf-8"), "application/json", api_token, timeout)


def post_bytes(url: str, data: bytes, content_type: str, api_token: str | None = None,
               timeout: float = TIMEOUT_SECONDS) -> tuple[int, bytes]:
    """POST ``data`` as ``content_type``; answers as :func:`post_json`."""
    headers = {"Content-Type": content_type}
    if api_token:
        headers["Authorization"] = f"Bearer {api_token}"
    request = urllib.request.Request(url, data=bytes(data), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return 0, json.dumps({"error": {"type": "ConnectionError",
                                        "message": f"cannot reach {url}: {reason}"}}).encode()


def predict(base_url: str, api: str, data: Any, api_token: str | None = None,
            timeout: float = TIMEOUT_SECONDS) -> tuple[Any, str]:
    """Send ``data`` (a JSON-able value, or JSON text) to ``POST base_url/api``; returns
    (the decoded answer, the URL). A non-2xx answer raises its error class."""
    from .adapters import dumps_json

    url = f"{base_url}/{api}"
    if isinstance(data, (bytes, bytearray, memoryview)):
        status, answer = post_bytes(url, data, media_type_of(data), api_token, timeout)
    else:
        body = data if isinstance(data, str) else dumps_json(data).decode()
        status, answer = post_json(url, body, api_token=api_token, timeout=timeout)
    if not 200 <= status < 300:
        raise from_answer(status, answer, url)
    return json.loads(answer), url

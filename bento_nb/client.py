"""A small HTTP client for a running bento_nb server (the widgets' Try it, ``%bento
predict`` through a server). Standard library only; errors come back as the server's own
error classes (:func:`bento_nb.errors.from_answer`)::

    answer, url = predict("http://127.0.0.1:5000", "predict", [[5.1, 3.5, 1.4, 0.2]])
    status, body = post_json("http://127.0.0.1:5000/predict", "[[5.1, 3.5, 1.4, 0.2]]")
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .errors import from_answer

TIMEOUT_SECONDS = 30.0


def post_json(url: str, text: str, api_token: str | None = None,
              timeout: float = TIMEOUT_SECONDS) -> tuple[int, bytes]:
    """POST ``text`` as JSON; returns (status, body) for 2xx and HTTP errors alike, and
    (0, an error body) when the server cannot be reached."""
    headers = {"Content-Type": "application/json"}
    if api_token:
        headers["Authorization"] = f"Bearer {api_token}"
    request = urllib.request.Request(url, data=text.encode("utf-8"), method="POST",
                                     headers=headers)
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
    body = data if isinstance(data, str) else dumps_json(data).decode()
    status, answer = post_json(url, body, api_token=api_token, timeout=timeout)
    if not 200 <= status < 300:
        raise from_answer(status, answer, url)
    return json.loads(answer), url

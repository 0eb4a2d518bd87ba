"""Client JSON → Python, strictly: :func:`loads_json` and the nesting limit.

Every way a body can fail to decode is a :class:`~bento_nb.errors.BadInput` (HTTP 400)
that says why; whatever is accepted can be handed to an API and its echo encoded back::

    loads_json(b'{"text": "hello"}')    # {'text': 'hello'}
    loads_json(b"[NaN]")                # BadInput: NaN is not allowed in JSON input; ...
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import numpy as np
from orjson import JSONDecodeError as _FastDecodeError
from orjson import loads as _fast_loads

from ..errors import BadInput

# How deep client JSON may nest lists and objects (``[[1]]`` is 2 levels): deeper documents
# are refused with a 400, well before Python's recursion limit, so that an API that returns
# what it was given (a JsonInput echo) can always be answered.
MAX_JSON_DEPTH = 100


_slow = object()  # loads_json: orjson did not decode the body
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _reject_constant(name: str) -> None:
    raise BadInput(f"{name} is not allowed in JSON input; send null-free finite numbers")


def loads_json(body: bytes | str) -> Any:
    """Client JSON → Python, strictly: every way a body can fail to decode is a BadInput
    (400) that says why, never another exception. NaN/Infinity are refused, integers longer
    than Python converts (``sys.get_int_max_str_digits()``, 4300 digits) are refused rather
    than rounded, and documents nested more than :data:`MAX_JSON_DEPTH` levels deep are
    refused, so whatever is accepted can be handed to the API and its echo encoded back."""
    if not body or not body.strip():
        raise BadInput("empty body: expected JSON")
    value = _slow
    if type(body) is bytes and _LONG_DIGITS.search(body) is None:
        try:
            # orjson first (several times faster, and as strict: no NaN, the same floats);
            # what it refuses (other encodings, a BOM, lone surrogates, bad JSON) is
            # decoded by json, whose errors say what is wrong. Not a body with 19 digits in
            # a row: orjson makes integers past 64 bits floats, json keeps them exact.
            value = _fast_loads(body)
        except _FastDecodeError:
            pass
    try:
        if value is _slow:
            value = _decode(body)
    except BadInput:
        raise
    except UnicodeDecodeError:
        raise BadInput("body is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError:  # the only other ValueError of json.loads: int() of too many digits
        raise BadInput(f"an integer in the JSON has more than {sys.get_int_max_str_digits()} "
                       "digits; send it as a string, or round it to a float") from None
    except RecursionError:
        raise BadInput(f"JSON nested more than {MAX_JSON_DEPTH} levels deep") from None
    if _nesting_exceeds(body, value, MAX_JSON_DEPTH):
        raise BadInput(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


# One decoder for every body: json.loads(body, parse_constant=...) builds a new one per call,
# which cost more than decoding a one-row table.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode(body: bytes | str) -> Any:
    """``json.loads(body, parse_constant=_reject_constant)``, step for step (the encoding
    of bytes detected as json.loads detects it, a str's BOM refused as it refuses it)."""
    if isinstance(body, str):
        if body.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
        return _DECODER.decode(body)
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


# Opening brackets and braces, and their depth steps, for :func:`_nesting_exceeds`.
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = np.zeros(256, dtype=np.int32)
_BRACKET_STEPS[list(b"[{")] = 1
_BRACKET_STEPS[list(b"]}")] = -1


def _nesting_exceeds(body: bytes | str, value: Any, limit: int) -> bool:
    """Whether the decoded ``value`` of ``body`` nests lists and objects deeper than
    ``limit``. Cheap first: a body with at most ``limit`` brackets cannot be too deep (most
    requests), nor can one whose brackets, when no string could hide any (a table of
    numbers), never open more than ``limit`` deep; only other bodies are walked."""
    raw = body.encode() if isinstance(body, str) else body
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    if b'"' not in raw:
        brackets = np.frombuffer(raw.translate(None, _NOT_BRACKETS), dtype=np.uint8)
        return int(_BRACKET_STEPS[brackets].cumsum().max()) > limit
    stack = [(value, 1)] if type(value) is list or type(value) is dict else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is list or type(child) is dict:
                stack.append((child, depth + 1))
    return False

"""Results → JSON: numpy and pandas values made plain, and a batch's results cut per request.

:func:`dumps_json` never writes invalid JSON (NaN and infinities become ``null``) and
turns what cannot be written into a :class:`~bento_nb.errors.ModelError` (HTTP 500) that
says why::

    dumps_json(np.array([1.5, np.nan]))          # b'[1.5,null]'
    split_results(model.predict(df), [1, 2])     # [results[0:1], results[1:3]]
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

from ..errors import ModelError


def to_jsonable(obj: Any) -> Any:
    """numpy and pandas values → plain JSON-able Python."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    module = type(obj).__module__
    if module.startswith("pandas"):
        if hasattr(obj, "to_dict") and hasattr(obj, "columns"):
            return to_jsonable(obj.to_dict(orient="records"))
        if hasattr(obj, "tolist"):
            return to_jsonable(obj.tolist())
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return obj


def dumps_json(obj: Any, compact: bool = True) -> bytes:
    """JSON bytes of a result; NaN/Infinity become null so the output is valid JSON.
    ``compact=False`` puts a space after separators, for people (the CLI)."""
    separators = (",", ":") if compact else (", ", ": ")
    try:
        obj = to_jsonable(obj)
        try:
            return json.dumps(obj, allow_nan=False, separators=separators).encode()
        except ValueError:  # NaN or infinity; any other ValueError is raised again below
            return json.dumps(_finite(obj), separators=separators).encode()
    except RecursionError:
        raise ModelError("the API returned a value nested too deeply for JSON, or one that "
                         "contains itself") from None
    except TypeError as e:
        raise ModelError(f"the API returned a value that is not JSON-serializable: {e}") from None
    except ValueError as e:  # a circular reference, an integer too long to write out
        raise ModelError(f"the API returned a value that cannot be written as JSON: {e}") from None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


def split_results(results: Any, sizes: Sequence[int]) -> list[Any]:
    """Cut a batch API's results into one slice per request, in order."""
    total = sum(sizes)
    if hasattr(results, "iloc"):  # pandas: keep rows as records
        rows = results.iloc
    elif isinstance(results, (list, tuple, np.ndarray)):
        rows = results
    elif hasattr(results, "__len__") and hasattr(results, "__getitem__"):
        rows = results
    else:
        raise ModelError(
            f"a batch API must return one result per input row; got {type(results).__name__}")
    if len(results) != total:
        raise ModelError(
            f"a batch API must return one result per input row: got {len(results)} for {total} rows")
    out, start = [], 0
    for n in sizes:
        out.append(rows[start:start + n])
        start += n
    return out

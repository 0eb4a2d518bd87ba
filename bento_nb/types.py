"""BentoML 0.13's ``bentoml.types`` names that user code imports in annotations.

    from bento_nb.types import JsonSerializable

The 0.13 request/response classes (``InferenceTask``, ``InferenceResult``,
``InferenceError``, ``HTTPRequest``...) belong to its adapter protocol, which bento_nb
does not have: importing one is an ImportError that names it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Union

JsonSerializable = Union[bool, None, Dict, List, int, float, str]

_REFUSED = {"FileLike", "HTTPHeaders", "HTTPRequest", "HTTPResponse", "InferenceTask",
            "InferenceResult", "InferenceError", "AwsLambdaEvent"}

__all__ = ["JsonSerializable"]


def __getattr__(name: str) -> Any:
    if name in _REFUSED:
        raise ImportError(f"bento_nb.types.{name} is not supported: bento_nb APIs take and "
                          "return plain Python values (see bento_nb.adapters)", name=__name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Helpers the framework artifacts share: importing a framework with a clear error, and
the servable wrappers' input conversion (a DataFrame, rows or an array → numbers)."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

from ..errors import BadInput, PackError


def require(module: str, artifact: str, pip_name: str | None = None) -> Any:
    """Import ``module`` or raise PackError naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise PackError(f"{artifact} needs {module}, which cannot be imported ({e}): "
                        f"pip install {pip_name or module}") from None


def is_instance(obj: Any, module: str, qualname: str) -> bool:
    """``isinstance(obj, module.qualname)`` without importing ``module`` (if obj is one, the
    module is imported already)."""
    mod = sys.modules.get(module)
    if mod is None:
        return False
    cls: Any = mod
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            return False
    return isinstance(obj, cls)


def to_array(data: Any, dtype: Any = np.float32) -> np.ndarray:
    """A DataFrame, a list of rows or an array as a numpy array of ``dtype``; BadInput
    (HTTP 400) naming the problem when the values are not numbers."""
    if hasattr(data, "to_numpy"):
        data = data.to_numpy()
    try:
        return np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise BadInput(f"expected numbers the model can read as {np.dtype(dtype).name}: {e}") from None


def type_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"

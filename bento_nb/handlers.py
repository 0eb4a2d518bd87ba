"""BentoML 0.x's ``bentoml.handlers``: the old names of the input adapters.

    from bento_nb.handlers import DataframeHandler     # = bento_nb.adapters.DataframeInput

A 0.x handler with no bento_nb adapter behind it is an ImportError that names it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .adapters import DataframeInput, InputAdapter, JsonInput

BentoHandler = InputAdapter
DataframeHandler = DataframeInput
JsonHandler = JsonInput

# old name -> the adapter that replaced it in BentoML 0.13 (bento_nb.adapters.<name>)
_LATER = {"ImageHandler": "MultiImageInput", "TensorflowTensorHandler": "TfTensorInput",
          "ClipperBytesHandler": "ClipperBytesInput", "ClipperDoublesHandler": "ClipperDoublesInput",
          "ClipperFloatsHandler": "ClipperFloatsInput", "ClipperIntsHandler": "ClipperIntsInput",
          "ClipperStringsHandler": "ClipperStringsInput"}

__all__ = ["BentoHandler", "DataframeHandler", "JsonHandler"]


def __getattr__(name: str) -> Any:
    adapter = _LATER.get(name)
    if adapter is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".adapters", __package__), adapter, None)
    if value is None:
        raise ImportError(f"{name} (BentoML 0.13: {adapter}) is not supported by bento_nb; "
                          f"its handlers: {', '.join(__all__)}", name=__name__)
    globals()[name] = value
    return value

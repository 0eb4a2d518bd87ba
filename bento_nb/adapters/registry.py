"""The adapters by kind, and an adapter rebuilt from what a manifest recorded::

    adapter_from_config("dataframe")                              # DataframeInput()
    adapter_from_config({"type": "DataframeInput", "n_columns": 4})
"""

from __future__ import annotations

from ..errors import BadInput
from .base import InputAdapter
from .dataframe_input import DataframeInput
from .file_input import FileInput
from .json_input import JsonInput
from .string_input import StringInput

ADAPTERS = {cls.kind: cls for cls in (DataframeInput, JsonInput, StringInput, FileInput)}


def adapter_from_config(config: dict | str) -> InputAdapter:
    """Rebuild an adapter from :meth:`InputAdapter.config` or from a kind name."""
    if isinstance(config, str):
        kind = config.lower()
        if kind not in ADAPTERS:
            raise BadInput(f"unknown input kind {config!r}: use one of {sorted(ADAPTERS)}")
        return ADAPTERS[kind]()
    options = dict(config)
    name = options.pop("type")
    by_class = {cls.__name__: cls for cls in ADAPTERS.values()}
    if name not in by_class:
        raise BadInput(f"unknown input adapter {name!r}")
    return by_class[name](**options)

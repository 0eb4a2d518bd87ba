"""CatBoost models: ``CatBoostModelArtifact('model')`` (new: BentoML 0.x had none).

Packs a ``CatBoost``, ``CatBoostClassifier`` or ``CatBoostRegressor``, saved with
CatBoost's ``save_model`` in its binary format as ``artifacts/<name>.cbm`` and loaded with
``load_model`` into the same class; ``predict`` takes a DataFrame, rows or an array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..service.artifacts import NativeArtifact
from ..errors import PackError
from ._common import require, type_name

_CLASSES = ("CatBoost", "CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker")


class CatBoostModelArtifact(NativeArtifact):
    """A fitted CatBoost model, saved in CatBoost's binary ``.cbm`` format."""

    framework_modules = ("catboost",)

    def __init__(self, name: str, model_extension: str = ".cbm"):
        super().__init__(name)
        if not model_extension.startswith(".") or "/" in model_extension:
            raise ValueError(f"model_extension must look like '.cbm', got {model_extension!r}")
        self.model_extension = model_extension

    def check(self, obj: Any) -> Any:
        catboost = require("catboost", type(self).__name__)
        if not isinstance(obj, catboost.CatBoost):
            raise PackError(f"CatBoostModelArtifact expects a catboost.CatBoost model "
                            f"(CatBoostClassifier, CatBoostRegressor...), got {type_name(obj)}")
        if not obj.is_fitted():
            raise PackError("CatBoostModelArtifact: the model is not fitted; call fit() first")
        return obj

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        path = folder / f"{self.name}{self.model_extension}"
        obj.save_model(str(path), format="cbm")
        kind = next((c.__name__ for c in type(obj).__mro__  # a user's subclass: its base
                     if c.__name__ in _CLASSES and c.__module__.startswith("catboost")), "CatBoost")
        return [path], {"format": "catboost", "class": kind}

    def read(self, folder: Path, record: dict) -> Any:
        catboost = require("catboost", type(self).__name__)
        kind = record.get("class", "CatBoost")
        model = getattr(catboost, kind if kind in _CLASSES else "CatBoost")()
        model.load_model(str(folder / f"{self.name}{self.model_extension}"), format="cbm")
        return model

"""LightGBM models: ``LightGBMModelArtifact('model')``, as in BentoML 0.x.

Packs a ``lightgbm.Booster`` (``lightgbm.train``, or ``LGBMClassifier(...).booster_``),
saved as LightGBM's text model ``artifacts/<name>.txt`` and loaded with
``lightgbm.Booster(model_file=...)``. ``predict`` takes a DataFrame, rows or an array. The
scikit-learn wrappers (``LGBMClassifier``) are refused, as in 0.x: pack their
``booster_`` (raw scores/probabilities), or use ``SklearnModelArtifact`` to keep the wrapper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..service.artifacts import NativeArtifact
from ..errors import PackError
from ._common import require, type_name


class LightGBMModelArtifact(NativeArtifact):
    """A LightGBM Booster, saved in LightGBM's text format."""

    framework_modules = ("lightgbm",)

    def check(self, obj: Any) -> Any:
        lgb = require("lightgbm", type(self).__name__)
        if isinstance(obj, LightGBMBooster):
            return obj
        if isinstance(obj, lgb.Booster):
            return LightGBMBooster(obj)
        hint = (": pack its .booster_, or use SklearnModelArtifact for the scikit-learn wrapper"
                if isinstance(obj, lgb.LGBMModel) else "")
        raise PackError(f"LightGBMModelArtifact expects a lightgbm.Booster, got {type_name(obj)}{hint}")

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        path = folder / f"{self.name}.txt"
        obj.booster.save_model(str(path))
        return [path], {"format": "lightgbm"}

    def read(self, folder: Path, record: dict) -> Any:
        lgb = require("lightgbm", type(self).__name__)
        return LightGBMBooster(lgb.Booster(model_file=str(folder / f"{self.name}.txt")))


class LightGBMBooster:
    """A Booster that tells the DataFrame adapter its width (``n_features_in_``); every
    attribute, ``predict`` included, is the Booster's."""

    def __init__(self, booster: Any):
        self.booster = booster
        self.n_features_in_ = int(booster.num_feature())
        names = booster.feature_name()
        if names and not all(n.startswith("Column_") for n in names):
            self.feature_names_in_ = list(names)

    def predict(self, data: Any, **options: Any) -> Any:
        return self.booster.predict(data, **options)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["booster"], attr)

    def __repr__(self) -> str:
        return f"<LightGBMBooster {self.n_features_in_} features>"

"""XGBoost models: ``XgboostModelArtifact('model')``, as in BentoML 0.x.

Packs an ``xgboost.Booster`` (``xgboost.train``) or a scikit-learn style ``XGBModel``
(``XGBClassifier``, ``XGBRegressor``, ...), saved with xgboost's own ``save_model`` as
``artifacts/<name>.model`` (UBJSON; ``model_extension=".json"`` writes JSON) and loaded
with ``load_model`` into the same class. A Booster is served through a thin wrapper whose
``predict`` also takes a DataFrame, rows or an array (a Booster alone wants a ``DMatrix``)::

    @artifacts([XgboostModelArtifact("model")])
    class Scorer(BentoService):
        @api(input=DataframeInput(), batch=True)
        def predict(self, df):
            return self.artifacts.model.predict(df)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..service.artifacts import NativeArtifact
from ..errors import PackError
from ._common import require, type_name


class XgboostModelArtifact(NativeArtifact):
    """An xgboost Booster or XGBModel, saved in xgboost's format."""

    framework_modules = ("xgboost",)

    def __init__(self, name: str, model_extension: str = ".model"):
        super().__init__(name)
        if not model_extension.startswith(".") or "/" in model_extension:
            raise ValueError(f"model_extension must look like '.model', got {model_extension!r}")
        self.model_extension = model_extension

    def check(self, obj: Any) -> Any:
        xgb = require("xgboost", type(self).__name__)
        if isinstance(obj, XgboostBooster):
            return obj
        if isinstance(obj, xgb.Booster):
            return XgboostBooster(obj)
        if isinstance(obj, xgb.XGBModel):
            return obj
        raise PackError(f"XgboostModelArtifact expects an xgboost.Booster or XGBModel, "
                        f"got {type_name(obj)}")

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        path = folder / f"{self.name}{self.model_extension}"
        model = obj.booster if isinstance(obj, XgboostBooster) else obj
        with warnings.catch_warnings():  # ".model": xgboost warns it guesses UBJSON
            warnings.simplefilter("ignore")
            model.save_model(str(path))
        kind = "Booster" if isinstance(obj, XgboostBooster) else type(obj).__name__
        record = {"format": "xgboost", "class": kind}
        if kind != "Booster":  # xgboost's scikit-learn wrappers import sklearn to load
            record["modules"] = ["xgboost", "sklearn"]
        return [path], record

    def read(self, folder: Path, record: dict) -> Any:
        xgb = require("xgboost", type(self).__name__)
        kind = record.get("class", "Booster")
        cls = getattr(xgb, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, (xgb.Booster, xgb.XGBModel))):
            raise PackError(f"this xgboost has no model class {kind!r}")
        model = cls()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_model(str(folder / f"{self.name}{self.model_extension}"))
        return XgboostBooster(model) if kind == "Booster" else model


class XgboostBooster:
    """A Booster whose ``predict`` takes what an API receives (DataFrame, rows, array) as
    well as a ``DMatrix``; every other attribute is the Booster's."""

    def __init__(self, booster: Any):
        self.booster = booster
        names = booster.feature_names
        if names:
            self.feature_names_in_ = list(names)
        self.n_features_in_ = int(booster.num_features())

    def predict(self, data: Any, **options: Any) -> Any:
        import xgboost as xgb

        if not isinstance(data, xgb.DMatrix):
            if hasattr(data, "columns") and not self.booster.feature_names:
                data = data.to_numpy()  # names the Booster was not trained with
            data = xgb.DMatrix(data)
        return self.booster.predict(data, **options)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["booster"], attr)

    def __repr__(self) -> str:
        return f"<XgboostBooster {self.n_features_in_} features>"

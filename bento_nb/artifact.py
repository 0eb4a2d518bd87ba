"""BentoML 0.7's ``bentoml.artifact``: every artifact class under one module, as old user
code imports them (``from bento_nb.artifact import SklearnModelArtifact``). The framework
artifacts load on first use, so importing this module imports no framework.

A 0.x artifact bento_nb does not have (``CoreMLModelArtifact``, ``H2oModelArtifact``...)
is an ImportError naming it and the artifacts that exist.
"""

from __future__ import annotations

import importlib
from typing import Any

from .service.artifacts import (Artifact, ArtifactCollection, JSONArtifact, PickleArtifact,
                                TextFileArtifact)

BentoServiceArtifact = Artifact  # the 0.x name of the base class

# name -> module of bento_nb.frameworks
_FRAMEWORKS = {
    "CatBoostModelArtifact": "catboost", "KerasModelArtifact": "keras",
    "LightGBMModelArtifact": "lightgbm", "OnnxModelArtifact": "onnx",
    "PytorchModelArtifact": "pytorch", "PytorchLightningModelArtifact": "pytorch",
    "SklearnModelArtifact": "sklearn", "TensorflowSavedModelArtifact": "tensorflow",
    "TransformersModelArtifact": "transformers", "XgboostModelArtifact": "xgboost",
}

__all__ = ["Artifact", "ArtifactCollection", "BentoServiceArtifact", "JSONArtifact",
           "PickleArtifact", "TextFileArtifact", *_FRAMEWORKS]


def __getattr__(name: str) -> Any:
    module = _FRAMEWORKS.get(name)
    if module is None:
        if name.endswith("Artifact"):  # `from bento_nb.artifact import CoreMLModelArtifact`
            raise ImportError(f"{name} is not supported by bento_nb; its artifacts: "
                              f"{', '.join(sorted(__all__))}", name=__name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".frameworks.{module}", __package__), name)
    globals()[name] = value
    return value

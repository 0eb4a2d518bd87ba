"""Which framework a live model object belongs to, told from its type alone (module names
of its classes: a framework that is not imported yet cannot have made the object, and is
never imported here), and what :func:`bento_nb.pack` does with it::

    framework_of(xgb.XGBClassifier())
    # Framework(name='xgboost', artifact='bento_nb.frameworks.xgboost:XgboostModelArtifact',
    #           input='dataframe', module='xgboost')

``input`` is the default input kind of its APIs: ``dataframe`` (JSON or CSV tables) for
table models, ``tensor`` (``{"instances": [...]}``, any shape, the model's dtype) for
tensor models, ``json`` for transformers pipelines (text in).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Framework:
    name: str       # as the manifest records it
    artifact: str   # "module:Class" of its artifact
    input: str      # default input kind (bento_nb.adapters.ADAPTERS)
    module: str     # the top-level module whose version is recorded
    key: str = ""   # how a service's definition names it (default: ``name``)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.name)

    def artifact_class(self) -> type:
        module, _, cls = self.artifact.partition(":")
        return getattr(importlib.import_module(module), cls)

    def version(self) -> str | None:
        module = sys.modules.get(self.module)
        version = getattr(module, "__version__", None) if module is not None else None
        return None if version is None else str(version)  # torch's is a str subclass


_P = "bento_nb.frameworks."
# (module prefix of a class in the object's MRO, framework); the first match wins, so the
# more specific come first (a transformers model is a torch module too).
_RULES = (
    ("transformers", Framework("transformers", _P + "transformers:TransformersModelArtifact",
                               "json", "transformers")),
    ("lightning.pytorch", Framework("pytorch_lightning", _P + "pytorch:PytorchLightningModelArtifact",
                            "tensor", "torch")),
    ("pytorch_lightning", Framework("pytorch_lightning",
                                    _P + "pytorch:PytorchLightningModelArtifact", "tensor", "torch")),
    ("torch", Framework("pytorch", _P + "pytorch:PytorchModelArtifact", "tensor", "torch")),
    ("keras", Framework("keras", _P + "keras:KerasModelArtifact", "tensor", "keras")),
    ("tf_keras", Framework("keras", _P + "keras:KerasModelArtifact", "tensor", "keras")),
    ("tensorflow", Framework("tensorflow", _P + "tensorflow:TensorflowSavedModelArtifact",
                             "tensor", "tensorflow")),
    ("xgboost", Framework("xgboost", _P + "xgboost:XgboostModelArtifact", "dataframe", "xgboost")),
    # LightGBM's scikit-learn wrappers (LGBMClassifier, ...) keep their scikit-learn API
    # (predict_proba, classes_) only as the estimator itself: pickled like scikit-learn.
    ("lightgbm.sklearn", Framework("lightgbm", _P + "sklearn:SklearnModelArtifact", "dataframe",
                                   "lightgbm", "lightgbm_sklearn")),
    ("lightgbm", Framework("lightgbm", _P + "lightgbm:LightGBMModelArtifact", "dataframe",
                           "lightgbm")),
    ("catboost", Framework("catboost", _P + "catboost:CatBoostModelArtifact", "dataframe",
                           "catboost")),
    ("onnx", Framework("onnx", _P + "onnx:OnnxModelArtifact", "tensor", "onnx")),
    ("sklearn", Framework("sklearn", _P + "sklearn:SklearnModelArtifact", "dataframe", "sklearn")),
)

# TensorFlow objects saved as a SavedModel: trackables (tf.Module and its subclasses);
# Keras models, which are trackables too, match the keras rule first.
_TENSORFLOW_TRACKABLES = ("tensorflow.python.trackable", "tensorflow.python.module")


def framework_of(model: Any) -> Framework | None:
    """The framework whose classes ``model`` is an instance of, or None (pickled as is)."""
    modules = [getattr(cls, "__module__", "") or "" for cls in type(model).__mro__]
    for prefix, framework in _RULES:
        for module in modules:
            if module != prefix and not module.startswith(prefix + "."):
                continue
            if prefix == "tensorflow" and not module.startswith(_TENSORFLOW_TRACKABLES):
                continue
            return framework
    return None

# Each framework by the name the manifest and a service's definition record.
FRAMEWORKS = {framework.key: framework for _, framework in _RULES}
_TORCH = ("pytorch", "pytorch_lightning")
_TENSORFLOW = ("keras", "tensorflow")


def resolve_device(framework: str, device: str | None) -> str | None:
    """The device a torch / tensorflow model runs on: ``device`` ("cpu", "cuda", "cuda:1")
    checked against what is there, or CUDA when available, else the CPU. None for other
    frameworks (they run where their library puts them)."""
    from ..errors import PackError

    framework = FRAMEWORKS[framework].name if framework in FRAMEWORKS else framework
    if framework in _TORCH:
        import torch

        if device is None:
            return "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise PackError(f"device {device!r}: CUDA is not available to torch here; "
                            "use device='cpu' (or leave device unset)")
        try:
            return str(torch.device(device))
        except (RuntimeError, TypeError) as e:
            raise PackError(f"device {device!r} is not a torch device: {e}") from None
    if framework in _TENSORFLOW:
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if device is None:
            return "/GPU:0" if gpus else "/CPU:0"
        name = str(device).lower()
        if name == "cpu":
            return "/CPU:0"
        if name.startswith(("cuda", "gpu", "/gpu")):
            index = name.rsplit(":", 1)[1] if ":" in name else "0"
            if not index.isdigit() or int(index) >= len(gpus):
                raise PackError(f"device {device!r}: tensorflow sees {len(gpus)} GPU(s) here; "
                                "use device='cpu' (or leave device unset)")
            return f"/GPU:{index}"
        if name.startswith("/cpu"):
            return device
        raise PackError(f"device {device!r} is not a tensorflow device: use 'cpu' or 'cuda[:N]'")
    if device is not None:
        raise PackError(f"device= applies to torch and tensorflow models, not {framework}")
    return None


def place_on_device(model: Any, framework: str, device: str | None) -> None:
    """Run the servable ``model`` (a TorchModule, KerasModel or TensorflowModel) on
    ``device`` (see :func:`resolve_device`)."""
    where = resolve_device(framework, device)
    if where is not None and hasattr(model, "to_device"):
        model.to_device(where)


def input_schema(model: Any, example: Any = None) -> dict | None:
    """The input a model takes, as the manifest records it: ``{"columns": [...]}`` (with
    ``dtypes`` from a DataFrame example) or ``{"shape": [null, 4], "dtype": "float32"}``;
    from ``example`` when given, else from what the model tells; None when unknown."""
    import numpy as np

    if example is not None:
        if hasattr(example, "columns") and hasattr(example, "dtypes"):
            return {"columns": [str(c) for c in example.columns],
                    "dtypes": {str(c): str(t) for c, t in example.dtypes.items()}}
        if hasattr(example, "numpy"):
            example = example.numpy()
        try:
            array = np.asarray(example)
        except (TypeError, ValueError):
            array = None
        if array is not None and array.dtype != object and array.ndim >= 1:
            return {"shape": [None, *array.shape[1:]], "dtype": array.dtype.name}
        return {"type": type(example).__name__}
    names = _feature_names(model)
    if names:
        return {"columns": names}
    dtype = getattr(model, "input_dtype", None) or getattr(model, "dtype", None)
    dtype = str(dtype).replace("torch.", "") if dtype is not None else None
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, (tuple, list)) and shape and all(s is None or isinstance(s, int)
                                                          for s in shape):
        return {"shape": [None, *shape[1:]], "dtype": dtype}
    width = getattr(model, "n_features_in_", None)
    if isinstance(width, (int, np.integer)):
        return {"shape": [None, int(width)], "dtype": dtype}
    return None


def _feature_names(model: Any) -> list[str] | None:
    for attr in ("feature_names_in_", "feature_names_"):
        names = getattr(model, attr, None)
        if names is not None and len(names):
            return [str(n) for n in names]
    feature_name = getattr(model, "feature_name", None)  # a LightGBM Booster
    if callable(feature_name):
        try:
            names = feature_name()
        except Exception:  # noqa: BLE001 - another library's method of that name
            return None
        if names and not all(str(n).startswith("Column_") for n in names):
            return [str(n) for n in names]
    return None

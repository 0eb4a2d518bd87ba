"""TensorFlow SavedModels: ``TensorflowSavedModelArtifact('model')``, as in BentoML 0.x.

Packs anything ``tf.saved_model.save`` accepts (a ``tf.Module`` with ``@tf.function``
methods, ...) or the path of a SavedModel folder. At pack time the object is saved to a
temporary SavedModel and loaded back, so the service in the notebook behaves as the served
one will; the folder is copied to ``artifacts/<name>_saved_model/`` and loaded with
``tf.saved_model.load``. Only ``@tf.function`` methods and signatures survive a SavedModel.

The API sees a :class:`TensorflowModel`: calling it (or any restored function) converts a
DataFrame, rows or an array to a tensor of the function's input dtype and returns numpy
(tensors out, nested in lists or dicts, are converted, so results are JSON-able).
``predict(data)`` calls the model, or its ``serving_default`` signature.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

from ..service.artifacts import NativeArtifact
from ..errors import PackError
from ._common import require, to_array, type_name


class TensorflowSavedModelArtifact(NativeArtifact):
    """A TensorFlow SavedModel."""

    framework_modules = ("tensorflow",)

    def check(self, obj: Any) -> Any:
        if isinstance(obj, TensorflowModel):
            return obj
        tf = require("tensorflow", type(self).__name__, "tensorflow-cpu")
        if isinstance(obj, (str, os.PathLike)):
            if not (Path(obj) / "saved_model.pb").is_file():
                raise PackError(f"TensorflowSavedModelArtifact: {obj} is not a SavedModel folder "
                                "(no saved_model.pb)")
            return TensorflowModel(Path(obj))
        folder = tempfile.mkdtemp(prefix="bento-nb-savedmodel-")
        try:
            tf.saved_model.save(obj, folder)
        except (ValueError, TypeError, AttributeError) as e:
            shutil.rmtree(folder, ignore_errors=True)
            raise PackError(f"TensorflowSavedModelArtifact expects a trackable TensorFlow object "
                            f"(e.g. a tf.Module) or a SavedModel path, got {type_name(obj)}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        model = TensorflowModel(Path(folder))
        weakref.finalize(model, shutil.rmtree, folder, True)
        return model

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        target = folder / f"{self.name}_saved_model"
        shutil.copytree(obj.path, target)
        return [target], {"format": "saved_model"}

    def read(self, folder: Path, record: dict) -> Any:
        require("tensorflow", type(self).__name__, "tensorflow-cpu")
        return TensorflowModel(folder / f"{self.name}_saved_model")


class TensorflowModel:
    """A loaded SavedModel whose functions take arrays and give numpy back."""

    def __init__(self, path: Path):
        import tensorflow as tf

        self.path = Path(path)
        self.loaded = tf.saved_model.load(str(self.path))
        spec = _first_input_spec(self.loaded)
        if spec is not None and spec.shape.rank == 2 and spec.shape[1] is not None:
            self.n_features_in_ = int(spec.shape[1])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not callable(self.loaded):
            raise TypeError("this SavedModel has no __call__; use .predict() or a signature")
        return _Function(self.loaded)(*args, **kwargs)

    def predict(self, data: Any) -> Any:
        """The model called on ``data``, or its ``serving_default`` signature's output (the
        only one, or a dict of them)."""
        if callable(self.loaded):
            return self(data)
        signature = self.loaded.signatures["serving_default"]
        (name, spec), = signature.structured_input_signature[1].items()
        out = _to_numpy(signature(**{name: _as_tensor(data, spec)}))
        return next(iter(out.values())) if len(out) == 1 else out

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self.__dict__["loaded"], attr)
        return _Function(value) if callable(value) and hasattr(value, "concrete_functions") else value

    def __repr__(self) -> str:
        return f"<TensorflowModel {self.path.name}>"


class _Function:
    """A restored tf.function: array-like arguments cast to its input specs, numpy out."""

    def __init__(self, function: Any):
        self.function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        specs = _input_specs(self.function)
        args = tuple(_as_tensor(a, specs[i] if i < len(specs) else None) for i, a in enumerate(args))
        return _to_numpy(self.function(*args, **kwargs))


def _input_specs(function: Any) -> list:
    signature = getattr(function, "input_signature", None)
    if signature:
        return list(signature)
    concrete = list(getattr(function, "concrete_functions", None) or [])
    if concrete:
        positional = concrete[0].structured_input_signature[0]
        return list(positional)
    return []


def _first_input_spec(loaded: Any) -> Any:
    import tensorflow as tf

    specs = _input_specs(loaded.__call__) if callable(loaded) else []
    if not specs and "serving_default" in getattr(loaded, "signatures", {}):
        specs = list(loaded.signatures["serving_default"].structured_input_signature[1].values())
    return specs[0] if specs and isinstance(specs[0], tf.TensorSpec) else None


def _as_tensor(value: Any, spec: Any) -> Any:
    import tensorflow as tf

    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value
    if spec is not None and isinstance(spec, tf.TensorSpec):
        return tf.convert_to_tensor(to_array(value, spec.dtype.as_numpy_dtype))
    if hasattr(value, "to_numpy") or isinstance(value, list):
        return tf.convert_to_tensor(to_array(value))
    return value


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "numpy") and callable(value.numpy):
        return value.numpy()
    if isinstance(value, (list, tuple)):
        return [_to_numpy(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value

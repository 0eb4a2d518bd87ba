"""Keras 3 models: ``KerasModelArtifact('model')``, as in BentoML 0.x.

Saved in Keras' own ``.keras`` format (``model.save``; ``artifacts/<name>.keras``), or with
``store_as_json_and_weights=True`` as ``<name>.json`` (``to_json()``) plus
``<name>.weights.h5``. Classes the model needs that live in the notebook or a local file
(a subclassed ``keras.Model``, custom layers) and ``default_custom_objects`` are pickled by
value into ``<name>.custom_objects.pkl`` and handed to Keras as ``custom_objects`` on load,
so a subclassed model loads without its training code (it needs ``get_config`` when its
``__init__`` takes arguments, as Keras requires). The bundle's requirements pin keras and
its backend (e.g. tensorflow), and the serving process uses the same backend.

The API sees a :class:`KerasModel`: ``model.predict(df)`` (or ``model(df)``) runs the model
with ``training=False`` on a DataFrame, rows or an array and returns numpy; every other
attribute is the Keras model's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import cloudpickle

from .. import _pickling
from ..service.artifacts import NativeArtifact
from ..errors import PackError
from ._common import require, to_array, type_name

_BACKEND_MODULES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}


class KerasModelArtifact(NativeArtifact):
    """A Keras 3 model (Sequential, functional or subclassed)."""

    framework_modules = ("keras",)

    def __init__(self, name: str, default_custom_objects: dict | None = None,
                 store_as_json_and_weights: bool = False):
        super().__init__(name)
        if default_custom_objects is not None and not isinstance(default_custom_objects, dict):
            raise TypeError("default_custom_objects must be a dict of name -> class or function")
        self.default_custom_objects = default_custom_objects
        self.store_as_json_and_weights = bool(store_as_json_and_weights)

    def check(self, obj: Any) -> Any:
        if isinstance(obj, KerasModel):
            return obj
        keras = require("keras", type(self).__name__)
        if not isinstance(obj, keras.Model):
            raise PackError(f"KerasModelArtifact expects a keras.Model, got {type_name(obj)}")
        return KerasModel(obj)

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        import keras

        model = obj.model
        paths = []
        if self.store_as_json_and_weights:
            json_path = folder / f"{self.name}.json"
            json_path.write_text(model.to_json(), encoding="utf-8")
            weights = folder / f"{self.name}.weights.h5"
            model.save_weights(str(weights))
            paths += [json_path, weights]
        else:
            path = folder / f"{self.name}.keras"
            model.save(str(path))
            paths.append(path)
        custom = _local_custom_objects(model, keras)
        custom.update(self.default_custom_objects or {})
        if custom:
            custom_path = folder / f"{self.name}.custom_objects.pkl"
            with _pickling.pickle_by_value(_pickling.local_modules(*custom.values())), \
                    open(custom_path, "wb") as f:
                cloudpickle.dump(custom, f)
            paths.append(custom_path)
        backend = keras.backend.backend()
        return paths, {"format": "json+weights" if self.store_as_json_and_weights else "keras",
                       "backend": backend,
                       "modules": ["keras", _BACKEND_MODULES.get(backend, backend)]}

    def read(self, folder: Path, record: dict) -> Any:
        if "keras" not in sys.modules and record.get("backend"):
            # the backend the model was saved with, unless the user chose one already
            os.environ.setdefault("KERAS_BACKEND", record["backend"])
        keras = require("keras", type(self).__name__)
        custom = dict(self.default_custom_objects or {})
        custom_path = folder / f"{self.name}.custom_objects.pkl"
        if custom_path.exists():
            with open(custom_path, "rb") as f:
                custom.update(cloudpickle.load(f))
        if record.get("format") == "json+weights":
            text = (folder / f"{self.name}.json").read_text(encoding="utf-8")
            model = keras.models.model_from_json(text, custom_objects=custom)
            model.load_weights(str(folder / f"{self.name}.weights.h5"))
        else:
            # safe_mode=False: a bundle is trusted code (it holds pickles); Lambda layers load
            model = keras.saving.load_model(str(folder / f"{self.name}.keras"),
                                            custom_objects=custom, compile=False, safe_mode=False)
        return KerasModel(model)


def _local_custom_objects(model: Any, keras: Any) -> dict:
    """The classes of the model and its layers that are defined outside installed packages,
    by the names Keras looks them up with."""
    found: dict[str, Any] = {}
    objects = [model, *getattr(model, "_flatten_layers", lambda: [])()]
    for cls in {type(o) for o in objects}:
        if _pickling.local_modules(cls):
            found[cls.__name__] = cls
            found[keras.saving.get_registered_name(cls)] = cls
    return found


class KerasModel:
    """What an API sees: ``predict(data)`` / ``model(data)`` on a DataFrame, rows or array
    (cast to the model's input dtype), ``training=False``, numpy out; every other
    attribute is the Keras model's (``.model`` is the model itself)."""

    def __init__(self, model: Any):
        self.model = model
        self.dtype = "float32"
        try:
            spec = model.inputs[0]
            self.dtype = str(getattr(spec, "dtype", "float32")).replace("tf.", "")
            shape = tuple(spec.shape)
        except (AttributeError, IndexError, TypeError, ValueError):
            shape = ()
        if len(shape) == 2 and isinstance(shape[1], int):
            self.n_features_in_ = shape[1]

    def predict(self, data: Any, **_ignored: Any) -> Any:
        import keras

        return keras.ops.convert_to_numpy(self.model(to_array(data, self.dtype), training=False))

    def __call__(self, data: Any, **kwargs: Any) -> Any:
        if hasattr(data, "to_numpy") or isinstance(data, list) or type(data).__module__ == "numpy":
            return self.predict(data)
        return self.model(data, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["model"], attr)

    def __repr__(self) -> str:
        return f"<KerasModel {type(self.model).__name__}>"

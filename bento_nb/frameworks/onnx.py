"""ONNX models: ``OnnxModelArtifact('model', backend='onnxruntime')``, as in BentoML 0.x.

Packs an ``onnx.ModelProto``, the model's bytes, or the path of a ``.onnx`` file; saves the
bytes as ``artifacts/<name>.onnx`` and opens an ``onnxruntime.InferenceSession`` on load
(serving needs onnxruntime only, not onnx). The API sees an :class:`OnnxSession`: the
session's own ``run(output_names, {input_name: array})``, ``get_inputs()``... and
``predict(df)``, which feeds a DataFrame, rows or an array to the first input (cast to its
element type) and returns the first output::

    @artifacts([OnnxModelArtifact("model")])
    class Scorer(BentoService):
        @api(input=DataframeInput(), batch=True)
        def predict(self, df):
            return self.artifacts.model.predict(df)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..service.artifacts import NativeArtifact
from ..errors import PackError
from ._common import is_instance, require, to_array, type_name

SUPPORTED_BACKENDS = ("onnxruntime", "onnxruntime-gpu")
_ELEMENT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64",
                  "tensor(float16)": "float16", "tensor(int64)": "int64",
                  "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(uint8)": "uint8"}


class OnnxModelArtifact(NativeArtifact):
    """An ONNX model, saved as its ``.onnx`` bytes, served by onnxruntime."""

    framework_modules = ("onnxruntime",)

    def __init__(self, name: str, backend: str = "onnxruntime"):
        super().__init__(name)
        if backend not in SUPPORTED_BACKENDS:
            raise ValueError(f"OnnxModelArtifact backend {backend!r} is not supported; "
                             f"use one of {', '.join(SUPPORTED_BACKENDS)}")
        self.backend = backend

    def check(self, obj: Any) -> Any:
        if isinstance(obj, OnnxSession):
            return obj
        if isinstance(obj, (str, os.PathLike)):
            path = Path(obj)
            if not path.is_file():
                raise PackError(f"OnnxModelArtifact: no ONNX file at {path}")
            data = path.read_bytes()
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            data = bytes(obj)
        elif is_instance(obj, "onnx", "ModelProto"):
            data = obj.SerializeToString()
        else:
            raise PackError(f"OnnxModelArtifact expects an onnx.ModelProto, the model's bytes or "
                            f"the path of a .onnx file, got {type_name(obj)}")
        ort = require("onnxruntime", type(self).__name__, self.backend)
        try:
            return OnnxSession(data, ort)
        except Exception as e:  # onnxruntime raises its own classes for an invalid model
            raise PackError(f"OnnxModelArtifact: onnxruntime cannot open the model: "
                            f"{type(e).__name__}: {e}") from None

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        path = folder / f"{self.name}.onnx"
        path.write_bytes(obj.model_bytes)
        return [path], {"format": "onnx", "backend": self.backend}

    def read(self, folder: Path, record: dict) -> Any:
        ort = require("onnxruntime", type(self).__name__, self.backend)
        return OnnxSession((folder / f"{self.name}.onnx").read_bytes(), ort)


class OnnxSession:
    """An ``onnxruntime.InferenceSession`` (every attribute is the session's) plus
    ``predict(data)``: the first input fed with ``data``, the first output returned."""

    def __init__(self, model_bytes: bytes, ort: Any):
        self.model_bytes = model_bytes
        self.session = ort.InferenceSession(model_bytes, providers=ort.get_available_providers())
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = _ELEMENT_TYPES.get(first.type, "float32")
        shape = first.shape
        if len(shape) == 2 and isinstance(shape[1], int):
            self.n_features_in_ = shape[1]

    def predict(self, data: Any) -> Any:
        return self.session.run(None, {self.input_name: to_array(data, self.input_dtype)})[0]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["session"], attr)

    def __repr__(self) -> str:
        return f"<OnnxSession input {self.input_name!r}>"

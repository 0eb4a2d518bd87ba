"""TensorInput and TfTensorInput: JSON in TensorFlow Serving's row format
(``{"instances": [...]}``, or a bare nested list) → an array of the model's dtype::

    TensorInput(dtype="float32").parse(b'{"instances": [[1, 2], [3, 4]]}').value
    # array([[1., 2.], [3., 4.]], dtype=float32): 2 rows
    TensorInput(shape=(4,)).parse(b"[[1, 2, 3]]")
    # BadInput: each instance must have shape (4,), got (3,)

Each instance is one row: a ``batch=True`` API receives the rows of many requests
concatenated on axis 0 and its results are split back by rows. Only requests whose
instances have the same shape and dtype share a call. When packed with a model, the
dtype and instance shape are learned from it (``configure``) unless given.
:class:`TfTensorInput` hands the batch to the API as a ``tf.Tensor``, as in BentoML 0.x.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from ..errors import BadInput, UnsupportedMediaType
from .base import _JSON_TYPES, InputAdapter, Payload, _media_type
from .decoding import loads_json


def _dtype_of(value: Any) -> np.dtype | None:
    if value is None:
        return None
    try:
        return np.dtype(str(value).replace("torch.", "").replace("tf.", ""))
    except TypeError:
        return None


class TensorInput(InputAdapter):
    """``{"instances": [...]}`` (or ``[...]``) → a numpy array, one row per instance."""

    kind = "tensor"
    media_types = ("application/json",)
    rows_per_request = True

    def __init__(self, dtype: Any = None, shape: Sequence[int | None] | None = None):
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.shape = None if shape is None else tuple(None if s is None else int(s) for s in shape)

    def configure(self, model: Any) -> None:
        if self.dtype is None:
            self.dtype = _dtype_of(getattr(model, "input_dtype", None) or getattr(model, "dtype", None))
        if self.shape is None:
            shape = getattr(model, "input_shape", None)
            if isinstance(shape, (tuple, list)) and len(shape) > 1 and all(
                    s is None or isinstance(s, int) for s in shape):
                self.shape = tuple(shape[1:])
            elif isinstance(getattr(model, "n_features_in_", None), (int, np.integer)):
                self.shape = (int(model.n_features_in_),)

    def _array(self, instances: Any) -> Payload:
        if not isinstance(instances, list):
            raise BadInput('expected {"instances": [...]}: a list with one entry per row')
        if not instances:
            raise BadInput('"instances" is empty: send at least one row')
        try:
            array = np.asarray(instances, dtype=self.dtype)
        except (TypeError, ValueError) as e:
            want = f"numbers of dtype {self.dtype.name}" if self.dtype is not None else "numbers"
            reason = ("rows of different lengths" if "inhomogeneous" in str(e) else str(e))
            raise BadInput(f"instances are not an array of {want}: {reason}") from None
        if array.dtype == object:
            raise BadInput("instances are not a rectangular array: rows of different lengths")
        if self.dtype is None and array.dtype.kind not in "biufc":
            # no dtype declared or learned: a model takes numbers (declare dtype="str" else)
            raise BadInput(f"instances are not an array of numbers: got {array.dtype.kind!r} "
                           f"values such as {str(array.flat[0])[:40]!r}")
        if self.shape is not None:
            got = array.shape[1:]
            if len(got) != len(self.shape) or any(w is not None and w != g
                                                  for w, g in zip(self.shape, got)):
                shown = tuple("n" if w is None else w for w in self.shape)
                raise BadInput(f"each instance must have shape {shown}, got {got}")
        return Payload(array, rows=len(array), columns=("tensor", array.dtype.str, *array.shape[1:]))

    def parse(self, body: bytes, content_type: str | None = None) -> Payload:
        media = _media_type(content_type)
        if media not in _JSON_TYPES:
            raise UnsupportedMediaType(f"content type {media!r} is not supported: send "
                                       'application/json {"instances": [...]}')
        value = loads_json(body)
        if isinstance(value, dict):
            if "instances" not in value:
                raise BadInput('expected a JSON object with "instances": a list of rows '
                               f"(got keys {sorted(value)[:5]})")
            value = value["instances"]
        return self._array(value)

    def from_python(self, value: Any) -> Payload:
        if hasattr(value, "numpy"):  # a framework tensor
            value = value.numpy()
        if hasattr(value, "to_numpy"):
            value = value.to_numpy()
        if isinstance(value, dict):
            value = value.get("instances")
        return self._array(value.tolist() if isinstance(value, np.ndarray) else value)

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        if len(payloads) == 1:
            return payloads[0].value
        return np.concatenate([p.value for p in payloads])

    def example_body(self, value: Any) -> Any:
        return {"instances": self.from_python(value).value.tolist()}

    def encode_example(self, body: Any) -> tuple[bytes, str]:
        return json.dumps(body).encode(), "application/json"

    def config(self) -> dict:
        return {"type": type(self).__name__,
                "dtype": None if self.dtype is None else self.dtype.name,
                "shape": None if self.shape is None else list(self.shape)}

    def openapi_request(self, example: Any = None) -> dict:
        item: dict = {"type": "array"}
        return {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "required": ["instances"],
                       "properties": {"instances": {"type": "array", "items": item}}},
            "example": {"instances": [[0.0] * ((self.shape or (4,))[0] or 4)]}
            if example is None else example}}}


class TfTensorInput(TensorInput):
    """As :class:`TensorInput`, the batch handed to the API as a ``tf.Tensor`` (BentoML
    0.x's TfTensorInput; ``method="predict"``, the only one 0.x implemented)."""

    kind = "tf_tensor"

    def __init__(self, method: str = "predict", dtype: Any = None,
                 shape: Sequence[int | None] | None = None):
        if method != "predict":
            raise ValueError(f"TfTensorInput method {method!r} is not supported: use 'predict'")
        super().__init__(dtype=dtype, shape=shape)
        self.method = method

    def _tensor(self, array: np.ndarray) -> Any:
        import tensorflow as tf

        return tf.constant(array)

    def make_batch(self, payloads: Sequence[Payload]) -> Any:
        return self._tensor(super().make_batch(payloads))

    def make_single(self, payload: Payload) -> Any:
        return self._tensor(payload.value)

    def config(self) -> dict:
        return {**super().config(), "method": self.method}

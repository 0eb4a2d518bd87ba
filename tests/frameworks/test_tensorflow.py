"""KerasModelArtifact (Keras 3 ``.keras``, or JSON + weights; a subclassed model defined
only in the training script) and TensorflowSavedModelArtifact (a tf.Module), served from a
fresh process. One module: importing tensorflow is slow."""

from __future__ import annotations

import pytest

from .conftest import artifact_files, assert_pins, check_served, pack_in_subprocess

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

KERAS = """
import keras
from bento_nb.frameworks.keras import KerasModelArtifact

class Doubler(keras.Model):  # defined here only: the server never sees this file
    def __init__(self, units=2, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units)

    def call(self, x):
        return self.dense(x) * 2.0

    def get_config(self):
        return {{**super().get_config(), "units": self.units}}

keras.utils.set_random_seed(0)
KIND = "{kind}"
X = np.random.default_rng(0).random((64, 4)).astype("float32")
if KIND == "subclassed":
    inputs = keras.Input((4,))
    model = Doubler()
    model(X[:1])
else:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.5), keras.layers.Dense(2)])
expected = model.predict(X, verbose=0)

@env(infer_pip_packages=True)
@artifacts([KerasModelArtifact("model", store_as_json_and_weights=KIND == "json")])
class KerasService(BentoService):
    @api(input=DataframeInput({columns}), batch=True)
    def predict(self, df):
        return self.artifacts.model.predict(df)

svc = KerasService()
svc.pack("model", model)
done(svc, X, expected)
"""

SAVED_MODEL = """
import tensorflow as tf
from bento_nb.frameworks.tensorflow import TensorflowSavedModelArtifact

class Linear(tf.Module):  # defined here only
    def __init__(self):
        self.w = tf.Variable(tf.random.stateless_normal((4, 2), seed=(1, 2)))
        self.b = tf.Variable([0.5, -0.5])

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return tf.matmul(x, self.w) + self.b

module = Linear()
X = np.random.default_rng(0).random((64, 4)).astype("float32")
expected = module(X).numpy()

@env(infer_pip_packages=True)
@artifacts([TensorflowSavedModelArtifact("model")])
class TfService(BentoService):
    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.model(df)  # tensors out become numpy

svc = TfService()
svc.pack("model", module)
done(svc, X, expected)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sequential", "json", "subclassed"])
def test_keras_round_trip(tmp_path, served, kind):
    # a subclassed model does not know its input width: the adapter is told it
    columns = "n_columns=4" if kind == "subclassed" else ""
    packed = pack_in_subprocess(tmp_path, KERAS.format(kind=kind, columns=columns))
    files = sorted(artifact_files(packed))
    expected = {"sequential": ["artifacts/model.keras"],
                "json": ["artifacts/model.json", "artifacts/model.weights.h5"],
                "subclassed": ["artifacts/model.custom_objects.pkl", "artifacts/model.keras"]}
    assert files == expected[kind]
    check_served(served, packed, rtol=1e-4)
    assert_pins(packed, "keras", _tensorflow_distribution())


@pytest.mark.slow
def test_tensorflow_saved_model_round_trip(tmp_path, served):
    packed = pack_in_subprocess(tmp_path, SAVED_MODEL)
    files = artifact_files(packed)
    assert "artifacts/model_saved_model/saved_model.pb" in files
    assert any(f.startswith("artifacts/model_saved_model/variables/") for f in files)
    check_served(served, packed, rtol=1e-4)
    assert_pins(packed, _tensorflow_distribution())


def test_keras_and_tensorflow_refuse_other_objects():
    from bento_nb.errors import PackError
    from bento_nb.frameworks.keras import KerasModelArtifact
    from bento_nb.frameworks.tensorflow import TensorflowSavedModelArtifact

    with pytest.raises(PackError, match="KerasModelArtifact expects a keras.Model, got dict"):
        KerasModelArtifact("model").check({})
    with pytest.raises(PackError, match="expects a trackable TensorFlow object .*got dict"):
        TensorflowSavedModelArtifact("model").check({})
    with pytest.raises(PackError, match="not a SavedModel folder"):
        TensorflowSavedModelArtifact("model").check("/nonexistent")


def _tensorflow_distribution() -> str:
    from bento_nb.requirements import distribution_of

    return distribution_of("tensorflow")

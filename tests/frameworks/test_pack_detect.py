"""``bento_nb.pack(model)`` tells the framework from the model's type: each framework's
model is saved with its native artifact, the manifest records framework, version, format
and input schema, and a fresh ``bento-nb serve`` process (which never imported the training
code) answers 64 concurrent distinct requests with the live model's predictions, and bad
input (wrong width, values that are no numbers) with a 400 naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import check_concurrent, pack_in_subprocess

TRAIN = """
rng = np.random.default_rng(0)
X = rng.random((200, 4)).astype("float32")
y = X @ np.array([1.0, -2.0, 3.0, 0.5], dtype="float32")
labels = (y > y.mean()).astype(int)
{body}
bundle = bento_nb.pack(model, name="Detected", example=X[:2]{options})
print("RESULT " + json.dumps({{"tag": bundle.tag, "path": str(bundle.path),
                               "rows": X[:64].tolist(), "expected": np.asarray(expected).tolist(),
                               "model": bundle.manifest["model"],
                               "artifact": bundle.manifest["artifacts"][0]["type"],
                               "apis": [a["name"] for a in bundle.manifest["apis"]],
                               "proba": np.asarray(proba).tolist() if proba is not None else None}}))
"""

CASES = {
    "xgboost": ("xgboost", "xgboost", "XgboostModelArtifact", "xgboost", """
import xgboost as xgb
model = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, labels)
expected, proba = model.predict(X[:64]), model.predict_proba(X[:64])
"""),
    "xgboost_booster": ("xgboost", "xgboost", "XgboostModelArtifact", "xgboost", """
import xgboost as xgb
model = xgb.train({"max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=10)
expected, proba = model.predict(xgb.DMatrix(X[:64])), None
"""),
    "lightgbm": ("lightgbm", "lightgbm", "LightGBMModelArtifact", "lightgbm", """
import lightgbm as lgb
model = lgb.train({"min_data_in_leaf": 5, "verbose": -1}, lgb.Dataset(X, label=y), 10)
expected, proba = model.predict(X[:64]), None
"""),
    "lightgbm_sklearn": ("lightgbm", "lightgbm", "SklearnModelArtifact", "cloudpickle", """
import lightgbm as lgb
model = lgb.LGBMClassifier(n_estimators=10, min_child_samples=5, verbose=-1).fit(X, labels)
expected, proba = model.predict(X[:64]), model.predict_proba(X[:64])
"""),
    "catboost": ("catboost", "catboost", "CatBoostModelArtifact", "catboost", """
import catboost
model = catboost.CatBoostClassifier(iterations=10, depth=3, verbose=False).fit(X, labels)
expected, proba = model.predict(X[:64]), model.predict_proba(X[:64])
"""),
    "sklearn": ("sklearn", "sklearn", "SklearnModelArtifact", "cloudpickle", """
from sklearn.linear_model import LogisticRegression
model = LogisticRegression().fit(X, labels)
expected, proba = model.predict(X[:64]), model.predict_proba(X[:64])
"""),
    "pytorch": ("torch", "pytorch", "PytorchModelArtifact", "state_dict", """
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
with torch.no_grad():
    expected = model(torch.from_numpy(X[:64])).numpy()
proba = None
"""),
    "keras": ("keras", "keras", "KerasModelArtifact", "keras", """
import keras
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
expected, proba = model(X[:64]).numpy(), None
"""),
    "tensorflow": ("tensorflow", "tensorflow", "TensorflowSavedModelArtifact", "saved_model", """
import tensorflow as tf

class Linear(tf.Module):
    def __init__(self):
        self.w = tf.Variable(np.arange(8, dtype="float32").reshape(4, 2))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def __call__(self, x):
        return tf.matmul(x, self.w)

model = Linear()
expected, proba = model(X[:64]).numpy(), None
"""),
    "onnx": ("onnx", "onnx", "OnnxModelArtifact", "onnx", """
import onnx
from onnx import TensorProto, helper, numpy_helper
w = np.arange(8, dtype="float32").reshape(4, 2)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    [numpy_helper.from_array(w, "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
expected, proba = X[:64] @ w, None
"""),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_pack_detects_the_framework_and_serves_it_fresh(tmp_path, served, case):
    module, framework, artifact, file_format, body = CASES[case]
    library = pytest.importorskip(module)
    if case == "onnx":
        pytest.importorskip("onnxruntime")
    packed = pack_in_subprocess(tmp_path, TRAIN.format(body=body, options=""))
    assert packed["artifact"] == artifact
    record = packed["model"]
    assert record["framework"] == framework
    assert record["framework_version"] == str(library.__version__)
    assert record["format"] == file_format
    assert record["input"] == {"shape": [None, 4], "dtype": "float32"}  # from example=
    assert packed["apis"] == (["predict", "predict_proba"] if packed["proba"] else ["predict"])

    server = served(packed["tag"])
    check_concurrent(server, packed, rtol=1e-5)
    if packed["proba"]:
        proba = json.loads(server.post("predict_proba", packed["rows"][:3]).body)
        np.testing.assert_allclose(proba, packed["proba"][:3], rtol=1e-5, atol=1e-6)

    wide = server.post("predict", [[0.5] * 5])
    assert wide.status == 400, wide.body
    message = json.loads(wide.body)["error"]["message"]
    assert "expected 4 columns" in message or "shape (4,), got (5,)" in message, message
    words = server.post("predict", [["a", "b", "c", "d"]])
    assert words.status == 400, words.body
    assert json.loads(words.body)["error"]["message"]


def test_pack_picks_the_native_artifact_and_input_in_process():
    torch = pytest.importorskip("torch")
    import bento_nb
    from bento_nb.adapters import DataframeInput, TensorInput
    from bento_nb.frameworks.pytorch import TorchModule
    from bento_nb.service import service_from_model

    svc = service_from_model(torch.nn.Linear(3, 1))
    assert isinstance(svc.artifacts.model, TorchModule)
    assert isinstance(svc.apis["predict"].input, TensorInput)
    assert svc.apis["predict"].input.shape == (3,)
    assert svc.artifacts.model.device == "cpu"  # CUDA is not available on this machine
    assert np.asarray(svc.predict([[1.0, 2.0, 3.0]])).shape == (1, 1)
    # a plain object is pickled and keeps the table input
    plain = service_from_model(lambda df: df.sum(axis=1).to_numpy())
    assert isinstance(plain.apis["predict"].input, DataframeInput)
    with pytest.raises(bento_nb.errors.PackError, match="CUDA is not available"):
        if torch.cuda.is_available():
            raise bento_nb.errors.PackError("CUDA is not available (skipped: a GPU is here)")
        service_from_model(torch.nn.Linear(3, 1), device="cuda")


def test_detection_never_imports_a_framework():
    import subprocess
    import sys

    code = ("import sys, bento_nb; from bento_nb.frameworks.detect import framework_of;"
            "framework_of(object()); framework_of(lambda x: x);"
            "print(sorted(m for m in ('torch', 'tensorflow', 'xgboost', 'lightgbm', 'catboost',"
            " 'keras', 'onnx', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_device_is_kept_by_the_bundle_and_refused_where_it_does_not_apply():
    torch = pytest.importorskip("torch")
    import bento_nb
    from bento_nb.errors import PackError

    bundle = bento_nb.pack(torch.nn.Linear(3, 2), name="OnCpu", device="cpu")
    loaded = bento_nb.load(bundle.tag)
    assert loaded.artifacts.model.device == "cpu"
    assert next(loaded.artifacts.model.module.parameters()).device.type == "cpu"
    assert np.asarray(loaded.predict([[1.0, 2.0, 3.0]])).shape == (1, 2)
    with pytest.raises(PackError, match="device= applies to torch and tensorflow"):
        bento_nb.pack(lambda rows: rows, name="Plain", device="cpu")

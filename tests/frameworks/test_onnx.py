"""OnnxModelArtifact: a scikit-learn model converted with skl2onnx, packed as a ModelProto,
bytes or a path, saved as .onnx and served by onnxruntime from a fresh process."""

from __future__ import annotations

import pytest

from .conftest import artifact_files, assert_pins, check_served, pack_in_subprocess

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

TRAIN = """
from sklearn.linear_model import LinearRegression
from skl2onnx import to_onnx
from bento_nb.frameworks.onnx import OnnxModelArtifact

rng = np.random.default_rng(0)
X = rng.random((100, 4)).astype("float32")
reg = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 3.0, 0.5]))
proto = to_onnx(reg, X[:1])
KIND = "{kind}"
if KIND == "path":
    with open("model.onnx", "wb") as f:
        f.write(proto.SerializeToString())
model = {{"proto": proto, "bytes": proto.SerializeToString(), "path": "model.onnx"}}[KIND]

@env(infer_pip_packages=True)
@artifacts([OnnxModelArtifact("model", backend="onnxruntime")])
class OnnxService(BentoService):
    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.model.predict(df)

svc = OnnxService()
svc.pack("model", model)
done(svc, X[:64], reg.predict(X[:64]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["proto", "bytes", "path"])
def test_onnx_round_trip(tmp_path, served, kind):
    packed = pack_in_subprocess(tmp_path, TRAIN.format(kind=kind))
    assert artifact_files(packed) == ["artifacts/model.onnx"]
    check_served(served, packed, rtol=1e-4)
    assert_pins(packed, "onnxruntime")


def test_onnx_refuses_other_objects_and_backends(tmp_path):
    from bento_nb.errors import PackError
    from bento_nb.frameworks.onnx import OnnxModelArtifact

    with pytest.raises(PackError, match="expects an onnx.ModelProto, the model's bytes .*got dict"):
        OnnxModelArtifact("model").check({})
    with pytest.raises(PackError, match="onnxruntime cannot open the model"):
        OnnxModelArtifact("model").check(b"not a model")
    with pytest.raises(PackError, match="no ONNX file at"):
        OnnxModelArtifact("model").check(str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="backend 'tensorrt' is not supported"):
        OnnxModelArtifact("model", backend="tensorrt")

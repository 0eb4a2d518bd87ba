"""XgboostModelArtifact: a Booster and an XGBClassifier saved with xgboost's save_model,
served from a fresh process."""

from __future__ import annotations

import pytest

from .conftest import artifact_files, assert_pins, check_served, pack_in_subprocess

xgb = pytest.importorskip("xgboost")

TRAIN = """
import xgboost as xgb
from bento_nb.frameworks.xgboost import XgboostModelArtifact

rng = np.random.default_rng(0)
X = rng.random((200, 4)).astype("float32")
y = X @ np.array([1.0, -2.0, 3.0, 0.5], dtype="float32")
KIND = "{kind}"
if KIND == "booster":
    model = xgb.train({{"max_depth": 3}}, xgb.DMatrix(X, label=y), num_boost_round=20)
    expected = model.predict(xgb.DMatrix(X[:64]))
else:
    model = xgb.XGBRegressor(n_estimators=20, max_depth=3).fit(X, y)
    expected = model.predict(X[:64])

@env(infer_pip_packages=True)
@artifacts([XgboostModelArtifact("model")])
class XgbService(BentoService):
    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.model.predict(df)

svc = XgbService()
svc.pack("model", model)
done(svc, X[:64], expected)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["booster", "sklearn"])
def test_xgboost_round_trip(tmp_path, served, kind):
    packed = pack_in_subprocess(tmp_path, TRAIN.format(kind=kind))
    assert artifact_files(packed) == ["artifacts/model.model"]
    check_served(served, packed)
    # an XGBRegressor loads only with scikit-learn (its wrappers import it): an image
    # pinning xgboost alone failed its build-time load
    assert_pins(packed, "xgboost", *(["scikit-learn"] if kind == "sklearn" else []))


def test_xgboost_pack_refuses_other_objects():
    from bento_nb import BentoService, artifacts
    from bento_nb.errors import PackError
    from bento_nb.frameworks.xgboost import XgboostModelArtifact

    @artifacts([XgboostModelArtifact("model")])
    class Svc(BentoService):
        pass

    with pytest.raises(PackError, match="XgboostModelArtifact expects an xgboost.Booster or XGBModel, got dict"):
        Svc().pack("model", {})

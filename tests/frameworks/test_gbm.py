"""LightGBMModelArtifact and CatBoostModelArtifact: each model saved in its framework's
own file, served from a fresh process."""

from __future__ import annotations

import pytest

from .conftest import artifact_files, assert_pins, check_served, pack_in_subprocess

SERVICE = """
@env(infer_pip_packages=True)
@artifacts([{artifact}("model")])
class GbmService(BentoService):
    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.model.predict(df)

svc = GbmService()
svc.pack("model", model)
done(svc, X[:64], expected)
"""

DATA = """
rng = np.random.default_rng(0)
X = rng.random((300, 4))
y = X @ np.array([1.0, -2.0, 3.0, 0.5])
"""


@pytest.mark.slow
def test_lightgbm_round_trip(tmp_path, served):
    pytest.importorskip("lightgbm")
    packed = pack_in_subprocess(tmp_path, DATA + """
import lightgbm as lgb
from bento_nb.frameworks.lightgbm import LightGBMModelArtifact
model = lgb.train({"verbose": -1, "num_leaves": 7}, lgb.Dataset(X, y), num_boost_round=20)
expected = model.predict(X[:64])
""" + SERVICE.format(artifact="LightGBMModelArtifact"))
    assert artifact_files(packed) == ["artifacts/model.txt"]
    check_served(served, packed)
    assert_pins(packed, "lightgbm")


@pytest.mark.slow
def test_catboost_round_trip(tmp_path, served):
    pytest.importorskip("catboost")
    packed = pack_in_subprocess(tmp_path, DATA + """
import catboost
from bento_nb.frameworks.catboost import CatBoostModelArtifact
model = catboost.CatBoostRegressor(iterations=20, depth=3, verbose=0, allow_writing_files=False).fit(X, y)
expected = model.predict(X[:64])
""" + SERVICE.format(artifact="CatBoostModelArtifact"))
    assert artifact_files(packed) == ["artifacts/model.cbm"]
    check_served(served, packed)
    assert_pins(packed, "catboost")


def test_lightgbm_sklearn_wrapper_bundle_pins_scikit_learn():
    """``LGBMRegressor`` is pickled (SklearnModelArtifact) and names only lightgbm in its
    pickle, but it needs scikit-learn to load and predict: an image without it fails."""
    lgb = pytest.importorskip("lightgbm")
    import numpy as np
    from importlib import metadata

    import bento_nb

    rng = np.random.default_rng(0)
    X = rng.random((100, 4))
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, X.sum(axis=1))
    bundle = bento_nb.pack(model, name="LgbmWrapper")
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in bundle.requirements
    assert f"lightgbm=={metadata.version('lightgbm')}" in bundle.requirements


def _service(artifact):
    from bento_nb import BentoService, artifacts

    @artifacts([artifact])
    class Svc(BentoService):
        pass

    return Svc()


def test_lightgbm_refuses_the_sklearn_wrapper_with_what_to_do():
    lgb = pytest.importorskip("lightgbm")
    from bento_nb.errors import PackError
    from bento_nb.frameworks.lightgbm import LightGBMModelArtifact

    with pytest.raises(PackError, match=r"expects a lightgbm.Booster, got .*LGBMRegressor: pack its .booster_"):
        _service(LightGBMModelArtifact("model")).pack("model", lgb.LGBMRegressor())


def test_catboost_refuses_unfitted_and_other_models():
    catboost = pytest.importorskip("catboost")
    from bento_nb.errors import PackError
    from bento_nb.frameworks.catboost import CatBoostModelArtifact

    svc = _service(CatBoostModelArtifact("model"))
    with pytest.raises(PackError, match="expects a catboost.CatBoost model .*got list"):
        svc.pack("model", [])
    with pytest.raises(PackError, match="not fitted"):
        svc.pack("model", catboost.CatBoostClassifier())

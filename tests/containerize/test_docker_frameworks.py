"""Real Docker engine: an xgboost and a lightgbm bundle built into images that serve the
model's own answers, carry the framework's pin and nothing of the notebook side.

The engine and the local ``python:3.11-slim`` base are those of test_docker.py (CI starts
them with ``bash ../shared/ci/docker-engine.sh``); without an engine these tests skip,
saying so, unless ``BENTO_NB_REQUIRE_DOCKER=1``. The images install their pinned wheels
from PyPI inside the build; the dependency layers are cached by Docker, so a second run
rebuilds only the bundle's. Every image and container made here is removed afterwards.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from importlib import metadata

import numpy as np
import pytest
from packaging.utils import canonicalize_name
from test_docker import _docker, _http, _remove_image, _wait_ready, docker_client  # noqa: F401

import bento_nb
from bento_nb.containerize import build
from bento_nb.requirements import public_version

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# What a notebook needs and a serving image must not carry (bento_nb's own notebook-side
# dependencies, and what Jupyter brings with them).
NOTEBOOK_SIDE = {canonicalize_name(n) for n in (
    "ipython", "ipykernel", "ipywidgets", "widgetsnbextension", "jupyterlab-widgets",
    "jupyter-server", "jupyter-client", "jupyterlab", "notebook", "nbformat", "nbclient",
    "nbconvert", "tornado", "docker", "tqdm", "matplotlib")}
OTHER_FRAMEWORKS = {"xgboost", "lightgbm", "catboost", "torch", "tensorflow", "tensorflow-cpu",
                    "keras", "onnxruntime", "transformers"}


def _train(framework: str):
    """A small regressor on 4 columns and 16 distinct rows to ask it about."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 4))
    y = X @ np.array([1.0, -2.0, 3.0, 0.5])
    if framework == "xgboost":
        import xgboost

        model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    else:
        import lightgbm

        model = lightgbm.train({"verbose": -1, "num_leaves": 7}, lightgbm.Dataset(X, y),
                               num_boost_round=20)
    return model, X[:16]


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_framework_image_serves_the_models_answers_with_its_pin_and_no_notebook_side(
        framework, docker_client, port):  # noqa: F811 - the fixture imported above
    pytest.importorskip(framework)
    model, rows = _train(framework)
    expected = model.predict(rows)
    bundle = bento_nb.pack(model, name=f"{framework.title()}Regressor")
    assert bundle.manifest["model"]["framework"] == framework
    image = f"bento-nb-test/{framework}:{secrets.token_hex(4)}"
    container = None
    try:
        result = build(bundle.tag, image=image)
        pin = f"{framework}=={public_version(metadata.version(framework))}"
        requirements = (result.context / "requirements.txt").read_text().split()
        assert pin in requirements

        container = _docker("run", "-d", "-p", f"127.0.0.1:{port}:5000", image)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(docker_client, container, f"{url}/readyz")
        status, body = _http("POST", f"{url}/predict", json.dumps(rows.tolist()).encode())
        assert status == 200, body
        np.testing.assert_allclose(json.loads(body), expected, rtol=1e-5, atol=1e-6)
        status, body = _http("POST", f"{url}/predict", json.dumps([[0.5] * 5]).encode())
        assert status == 400 and "expected 4 columns" in json.loads(body)["error"]["message"]

        # what the image holds: the framework at the pinned version, no notebook side, no
        # other framework
        listing = json.loads(_docker("exec", container, "pip", "list", "--format=json"))
        installed = {canonicalize_name(d["name"]): d["version"] for d in listing}
        assert installed[framework] == pin.split("==")[1]
        assert not NOTEBOOK_SIDE & set(installed), NOTEBOOK_SIDE & set(installed)
        assert not (OTHER_FRAMEWORKS - {framework}) & set(installed)
        assert "bento-nb" in installed
        # an XGBRegressor needs scikit-learn to load (xgboost's wrappers import it); a
        # LightGBM Booster does not, and scikit-learn is no serving dependency of bento_nb
        assert ("scikit-learn" in installed) == (framework == "xgboost")
    finally:
        if container:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
        _remove_image(docker_client, image)

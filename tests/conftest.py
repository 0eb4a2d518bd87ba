"""Shared fixtures: every test gets its own store (BENTO_NB_HOME) and Jupyter runtime dir,
so nothing touches the user's files and running-server records never leak between tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from netcheck import free_port

# Property tests (Hypothesis, Schemathesis) explore new random cases on every run. In CI
# (HYPOTHESIS_PROFILE=ci, set by .ci/run) they run a fixed, reproducible set instead, so a
# red CI run always means a change broke something, never that a new case was drawn;
# explore locally with the default profile.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def bento_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("bento_home")
    monkeypatch.setenv("BENTO_NB_HOME", str(home))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(home / "jupyter_runtime"))
    monkeypatch.delenv("BENTO_NB_API_TOKEN", raising=False)
    return home


@pytest.fixture(scope="session")
def iris():
    from sklearn import datasets

    data = datasets.load_iris()
    return data.data, data.target


@pytest.fixture(scope="session")
def iris_clf(iris):
    from sklearn import svm

    X, y = iris
    return svm.SVC(gamma="scale").fit(X, y)


@pytest.fixture
def iris_bundle(iris_clf):
    import bento_nb

    return bento_nb.pack(iris_clf, name="IrisClassifier")


@pytest.fixture
def serve_model():
    """serve_model(model, **options) -> an in-process server handle (port 0 unless a
    ``config`` says otherwise); every handle is stopped afterwards."""
    from bento_nb.server import serve

    handles = []

    def start(model, **options):
        if "config" not in options:
            options.setdefault("port", 0)
        handle = serve(model, **options)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop(timeout=5)


@pytest.fixture
def port() -> int:
    return free_port()

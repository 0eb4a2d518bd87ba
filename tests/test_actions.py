"""The actions layer: one answer to "what does this word name?" for every front end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import bento_nb
from bento_nb.actions import Target, predict, resolve
from bento_nb.errors import BundleNotFound, InvalidName, UsageError
from bento_nb.store import looks_like_path

ROW = [[5.1, 3.5, 1.4, 0.2]]


class Doubler:
    def predict(self, rows):
        import numpy as np

        return np.asarray(rows).sum(axis=1) * 2


@pytest.fixture
def decoy_folder(iris_clf, tmp_path, monkeypatch):
    """A store bundle ``Iris`` and, in the working directory, a folder ``./Iris`` that
    holds a *different* bundle (``Decoy``): the word ``Iris`` must mean the tag."""
    iris = bento_nb.pack(iris_clf, name="Iris")
    decoy = bento_nb.pack(Doubler(), name="Decoy")
    shutil.copytree(decoy.path, tmp_path / "Iris")
    monkeypatch.chdir(tmp_path)
    return iris


@pytest.mark.parametrize("text, path", [
    ("Iris", False), ("Iris:latest", False), ("Iris:20261201_1", False),
    ("./Iris", True), ("../x", True), ("/abs/Iris", True), ("~/Iris", True), ("a/b", True),
    (".hidden", True), ("Iris:../../etc", False), ("./Iris:1", True),
])
def test_tag_or_path_has_one_rule(text, path):
    assert looks_like_path(text) is path


def test_a_word_is_a_tag_even_beside_a_folder_of_that_name(decoy_folder):
    target = resolve("Iris")
    assert target.tag == decoy_folder.tag and target.key == "bundle:Iris"
    folder = resolve("./Iris")
    assert folder.bundle.name == "Decoy" and folder.key.startswith("path:")
    assert bento_nb.load("Iris").tag == decoy_folder.tag
    assert bento_nb.load("./Iris").name == "Decoy"


def test_the_cli_reads_the_word_as_the_tag_too(decoy_folder):
    out = subprocess.run([sys.executable, "-m", "bento_nb", "run", "Iris", "predict",
                          "--input", json.dumps(ROW)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [0]  # the iris SVC, not the decoy's 2 * sum
    out = subprocess.run([sys.executable, "-m", "bento_nb", "get", "./Iris", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout)["name"] == "Decoy"


def test_pinned_versions_get_their_own_server_key(iris_bundle):
    assert resolve(iris_bundle.tag).key == f"bundle:{iris_bundle.tag}"
    assert resolve(f"{iris_bundle.name}:latest").key == f"bundle:{iris_bundle.name}"
    assert resolve(iris_bundle).key == f"bundle:{iris_bundle.name}"


def test_notebook_variables(iris_bundle, iris_clf):
    class Service:  # a class defined in the notebook is not what the word means
        pass

    variables = {"clf": iris_clf, "tag": iris_bundle.tag, "bundle": iris_bundle,
                 "IrisClassifier": Service, "text": "some text"}
    live = resolve("clf", variables=variables)
    assert live.bundle is None and live.obj is iris_clf and live.key == "var:clf"
    assert resolve("tag", variables=variables).tag == iris_bundle.tag
    assert resolve("bundle", variables=variables).tag == iris_bundle.tag
    assert resolve("IrisClassifier", variables=variables).tag == iris_bundle.tag
    with pytest.raises(UsageError, match="variable 'text' holds the text 'some text'"):
        resolve("text", variables=variables)
    with pytest.raises(BundleNotFound, match="neither a variable of this notebook nor a bundle"):
        resolve("nope", variables=variables)


def test_a_packed_variable_means_its_bundle(iris_bundle, iris_clf):
    def packed(name, value):
        return iris_bundle.tag if (name, value) == ("clf", iris_clf) else None

    target = resolve("clf", variables={"clf": iris_clf}, packed_tag=packed)
    assert target.tag == iris_bundle.tag and target.key == f"bundle:{iris_bundle.name}"


def test_nothing_named_means_the_last_packed(iris_bundle):
    assert resolve(None, last_packed=iris_bundle.tag).tag == iris_bundle.tag
    with pytest.raises(UsageError, match="nothing packed yet"):
        resolve(None)


def test_bad_words_are_clear_errors(iris_bundle):
    with pytest.raises(InvalidName):
        resolve("bad name!")
    with pytest.raises(BundleNotFound, match="no bundle at"):
        resolve("./missing")


def test_predict_in_process_on_a_bundle_and_a_live_object(iris_bundle):
    assert predict(resolve(iris_bundle.tag), ROW) == [0]
    assert predict(resolve(Doubler()), [[1, 2]]) == [6]
    assert isinstance(resolve(Doubler()), Target)


def test_a_deleted_last_packed_bundle_falls_back_to_the_newest_left_and_says_so(iris_clf):
    from bento_nb.store import Store

    older = bento_nb.pack(iris_clf, name="Kept")
    newer = bento_nb.pack(iris_clf, name="Kept")
    Store().delete(newer.tag)
    target = resolve(None, last_packed=newer.tag)
    assert target.tag == older.tag
    assert target.note == f"{newer.tag} was deleted: using {older.tag}, the newest Kept left"
    Store().delete(older.tag)
    with pytest.raises(BundleNotFound, match="no other version of Kept is left"):
        resolve(None, last_packed=newer.tag)

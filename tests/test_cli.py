"""The store commands of the CLI, and how user errors look."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import bento_nb


def cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "bento_nb", *args], capture_output=True,
                          text=True, timeout=120, input=input)


def test_list_get_delete(iris_bundle):
    out = cli("list")
    assert out.returncode == 0 and iris_bundle.tag in out.stdout and "predict" in out.stdout
    listed = json.loads(cli("list", "--json").stdout)
    assert listed[0]["tag"] == iris_bundle.tag and listed[0]["size"] > 0
    got = json.loads(cli("get", "IrisClassifier", "--json").stdout)
    assert got["manifest"]["apis"][0]["route"] == "/predict"
    assert "name: IrisClassifier" in cli("get", iris_bundle.tag).stdout
    refused = cli("delete", iris_bundle.tag)  # no tty, no -y
    assert refused.returncode != 0 and "-y" in refused.stderr
    assert cli("delete", iris_bundle.tag, "-y").returncode == 0
    assert json.loads(cli("list", "--json").stdout) == []


def test_run_json_and_csv_and_stdin(iris_bundle, tmp_path):
    assert cli("run", "IrisClassifier", "predict", "--input", "[[5.1,3.5,1.4,0.2]]").stdout.strip() == "[0]"
    out = cli("run", "IrisClassifier", "predict", "--input", "5.1,3.5,1.4,0.2\n6.2,3.4,5.4,2.3", "--format", "csv")
    assert out.stdout.strip() == "[0, 2]"
    out = cli("run", "IrisClassifier", "predict", "--input-file", "-", input='[{"a":5.1,"b":3.5,"c":1.4,"d":0.2}]')
    assert out.stdout.strip() == "[0]", out.stderr


def test_export_import(iris_bundle, tmp_path, monkeypatch):
    archive = tmp_path / "iris.tar.gz"
    assert cli("export", iris_bundle.tag, str(archive)).returncode == 0
    monkeypatch.setenv("BENTO_NB_HOME", str(tmp_path / "other"))
    out = cli("import", str(archive))
    assert out.returncode == 0 and iris_bundle.tag in out.stdout
    assert cli("run", iris_bundle.tag, "predict", "--input", "[[5.1,3.5,1.4,0.2]]").stdout.strip() == "[0]"


@pytest.mark.parametrize("args, message", [
    (["run", "NoSuch", "predict", "--input", "[[1]]"], "no bundle named 'NoSuch'"),
    (["run", "../x", "predict", "--input", "[[1]]"], "no bundle at"),
    (["run", "a b", "predict", "--input", "[[1]]"], "invalid name"),
    (["run", "IrisClassifier", "nope", "--input", "[[1]]"], "has no API 'nope'"),
    (["run", "IrisClassifier", "predict", "--input", "[[1,2]]"], "expected 4 columns"),
    (["run", "IrisClassifier", "predict", "--input", "{oops"], "malformed JSON"),
    (["run", "IrisClassifier", "predict", "--input-file", "/nonexistent.csv"], "cannot read"),
    (["run", "IrisClassifier", "predict"], "one of the arguments --input --input-file is required"),
    (["get", "Iris:../../etc"], "invalid version"),
    (["import", "/nonexistent.tar.gz"], "not a bento_nb archive"),
    (["frobnicate"], "invalid choice"),
    (["serve", "IrisClassifier", "--port", "notaport"], "invalid int value"),
])
def test_user_errors_are_one_line_without_traceback(args, message, iris_bundle):
    out = cli(*args)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("bento-nb: error:") and message in lines[0]
    assert "Traceback" not in out.stderr


def test_corrupted_bundle_error_names_the_file(iris_bundle):
    model = iris_bundle.path / "artifacts" / "model.pkl"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    out = cli("run", iris_bundle.tag, "predict", "--input", "[[5.1,3.5,1.4,0.2]]")
    assert out.returncode == 4 and "artifacts/model.pkl" in out.stderr


def test_list_shows_unreadable_bundles_beside_good_ones(iris_bundle, iris_clf):
    broken = bento_nb.pack(iris_clf, name="Broken")
    (broken.path / "bento.yml").write_text(":\n  - [")
    out = cli("list")
    assert out.returncode == 0
    assert iris_bundle.tag in out.stdout and "unreadable" in out.stdout


def test_quickstart_trains_packs_serves_and_predicts(port):
    out = cli("quickstart", "--port", str(port))
    assert out.returncode == 0, out.stderr
    assert "serving IrisClassifier:" in out.stdout and f"http://127.0.0.1:{port}" in out.stdout
    assert "predictions: [0, 2]" in out.stdout
    assert json.loads(cli("list", "--json").stdout)[0]["name"] == "IrisClassifier"

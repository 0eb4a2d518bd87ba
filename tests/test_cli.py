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


def test_run_hands_a_file_api_the_file_whatever_its_suffix(tmp_path):
    from bento_nb.adapters import FileInput, StringInput

    bento_nb.pack(len, name="FileLen", input=FileInput(), batch=False)
    bento_nb.pack(str.upper, name="Upper", input=StringInput(), batch=False)
    table = tmp_path / "table.csv"
    table.write_bytes(b"a,b\n1,2\n")
    assert cli("run", "FileLen", "predict", "--input-file", str(table)).stdout.strip() == "8"
    out = cli("run", "Upper", "predict", "--input-file", str(table))
    assert json.loads(out.stdout) == "A,B\n1,2\n", out.stderr
    refused = cli("run", "FileLen", "predict", "--input-file", str(table), "--format", "csv")
    assert refused.returncode == 2 and "takes file input, not CSV" in refused.stderr


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
    (["import", "/nonexistent.tar.gz"], "no such file: /nonexistent.tar.gz"),
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


def test_run_refuses_json_python_cannot_take_in_one_line(iris_bundle, iris):
    import copy

    import pandas as pd
    from sklearn import svm

    from bento_nb.adapters import JsonInput

    bento_nb.pack(copy.copy, name="Echo", input=JsonInput(), batch=False)
    X, y = iris
    bento_nb.pack(svm.SVC().fit(pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"]), y),
                  name="Named")
    for args, message in [
        (["IrisClassifier", "predict", "--input", "1" * 5000], "more than 4300 digits"),
        (["Echo", "predict", "--input", f"[{'9' * 5000}]"], "more than 4300 digits"),
        (["Echo", "predict", "--input", "[" * 500 + "]" * 500],
         "JSON nested more than 100 levels deep"),
        (["Named", "predict", "--input", '[[5.1, 3.5, "wide", 0.2]]'],
         "row 1, column 'pl' holds the text 'wide'"),
        (["Named", "predict", "--input", "5.1,3.5,,0.2", "--format", "csv"],
         "row 1, column 'pl' holds an empty cell"),
    ]:
        out = cli("run", *args)
        assert out.returncode == 2, out.stderr
        assert out.stderr.splitlines() == [out.stderr.strip()], out.stderr
        assert out.stderr.startswith("bento-nb: error: ") and message in out.stderr
    out = cli("run", "Echo", "predict", "--input", "[" * 100 + "]" * 100)
    assert out.returncode == 0 and json.loads(out.stdout) == json.loads("[" * 100 + "]" * 100)


@pytest.mark.parametrize("args, exit_code, message", [
    (["export", "IrisClassifier", "{tmp}/missing/x.tar.gz"], 2, "{tmp}/missing does not exist"),
    (["export", "IrisClassifier", "{tmp}/file.txt/x.tar.gz"], 2, "{tmp}/file.txt is not a folder"),
    (["export", "IrisClassifier", "{tmp}"], 2, "{tmp}: it is a directory"),
    (["export", "IrisClassifier", "{tmp}/out.zip"], 2, "must end in .tar.gz, .tgz or .bento"),
    (["containerize", "IrisClassifier", "--context-only", "{tmp}/file.txt/ctx"], 2,
     "cannot create the build context folder {tmp}/file.txt/ctx: Not a directory"),
    (["k8s", "IrisClassifier", "--image", "iris:1", "-o", "{tmp}/file.txt/k8s"], 2,
     "cannot create the output folder {tmp}/file.txt/k8s: Not a directory"),
    (["import", "{tmp}/missing.tar.gz"], 3, "no such file: {tmp}/missing.tar.gz"),
    (["import", "{tmp}/file.txt"], 4, "not a bento_nb archive (not a gzip'd tar file)"),
    (["import", "{tmp}"], 2, "{tmp}: Is a directory"),  # an OSError no module turned into an error
    (["get", "IrisClassifier:"], 2, "use IrisClassifier or IrisClassifier:latest"),
])
def test_bad_paths_and_tags_are_one_line_with_their_exit_code(args, exit_code, message,
                                                              iris_bundle, tmp_path):
    (tmp_path / "file.txt").write_text("not an archive\nnor a folder\n")
    before = sorted(tmp_path.rglob("*"))
    out = cli(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert out.returncode == exit_code, out.stderr
    assert out.stderr.splitlines() == [out.stderr.strip()], out.stderr
    assert out.stderr.startswith("bento-nb: error: ")
    assert message.replace("{tmp}", str(tmp_path)) in out.stderr
    assert sorted(tmp_path.rglob("*")) == before  # refused before writing anything


def test_os_errors_are_one_line_but_other_exceptions_keep_their_traceback(monkeypatch, capsys):
    from bento_nb import cli as cli_module
    from bento_nb.errors import BadInput

    def fails(error):
        def command(args):
            raise error
        return command

    monkeypatch.setitem(cli_module._COMMANDS, "list", fails(BadInput("two\n  lines")))
    assert cli_module.main(["list"]) == 2
    assert capsys.readouterr().err == "bento-nb: error: two lines\n"
    monkeypatch.setitem(cli_module._COMMANDS, "list", fails(PermissionError(13, "Permission denied", "/x/y")))
    assert cli_module.main(["list"]) == 2
    assert capsys.readouterr().err == "bento-nb: error: /x/y: Permission denied\n"
    monkeypatch.setitem(cli_module._COMMANDS, "list", fails(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli_module.main(["list"])


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
    assert len(out.stdout.splitlines()) == 3  # header and one line per bundle
    assert "not valid YAML (expected <block end>, but found ':' at line 1, column 1)" in out.stdout
    got = cli("get", broken.tag)
    assert got.returncode == 4 and len(got.stderr.splitlines()) == 1, got.stderr
    assert "at line 1, column 1" in got.stderr and "Traceback" not in got.stderr


def test_list_of_an_unknown_name_says_so(iris_bundle, tmp_path, monkeypatch):
    out = cli("list", "Nope")
    assert out.returncode == 0 and out.stdout.strip() == "no bundle named 'Nope'; see `bento-nb list`"
    monkeypatch.setenv("BENTO_NB_HOME", str(tmp_path / "empty"))
    assert cli("list", "Nope").stdout.startswith("no bundles yet")


def test_quickstart_trains_packs_serves_and_predicts(port):
    out = cli("quickstart", "--port", str(port))
    assert out.returncode == 0, out.stderr
    assert "serving IrisClassifier:" in out.stdout and f"http://127.0.0.1:{port}" in out.stdout
    assert "predictions: [0, 2]" in out.stdout
    assert json.loads(cli("list", "--json").stdout)[0]["name"] == "IrisClassifier"

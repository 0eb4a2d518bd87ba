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


# -- BentoML 0.x command lines (bento_nb.cli_compat) --------------------------------------


def _two_versions(iris_clf):
    first = bento_nb.pack(iris_clf, name="IrisClassifier", labels={"stage": "dev"})
    second = bento_nb.pack(iris_clf, name="IrisClassifier")
    return first, second


def test_list_output_formats_as_0x(iris_bundle):
    import yaml

    table = cli("list", "-o", "table").stdout
    assert table.splitlines()[0].split() == ["TAG", "APIS", "SIZE", "CREATED"]
    wide = cli("list", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["TAG", "APIS", "SIZE", "CREATED", "ARTIFACTS", "LABELS", "PATH"]
    assert "model<SklearnModelArtifact>" in wide[1] and str(iris_bundle.path) in wide[1]
    assert json.loads(cli("list", "-o", "json").stdout)[0]["tag"] == iris_bundle.tag
    assert yaml.safe_load(cli("list", "-o", "yaml").stdout)[0]["tag"] == iris_bundle.tag
    bad = cli("list", "-o", "xml")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_get_print_location_output_and_quiet(iris_bundle):
    out = cli("get", "IrisClassifier", "--print-location")
    assert out.returncode == 0 and out.stdout == f"{iris_bundle.path}\n"
    assert json.loads(cli("get", iris_bundle.tag, "-o", "json").stdout)["tag"] == iris_bundle.tag
    assert cli("get", iris_bundle.tag).stdout.startswith("# ")
    quiet = cli("get", iris_bundle.tag, "--quiet").stdout
    assert quiet.startswith("name: IrisClassifier")


def test_get_names_the_images_built_from_the_bundle_with_their_run_command(iris_bundle):
    from bento_nb.containerize import images
    from bento_nb.containerize.builder import BuildResult

    images.record(iris_bundle.name, iris_bundle.version, BuildResult(
        image="iris-cli:1", image_id="sha256:" + "c" * 64, context=iris_bundle.path,
        seconds=1.0, cached_steps=0))
    out = cli("get", iris_bundle.tag)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("# image iris-cli:1"))
    assert line.endswith(": docker run --rm -p 127.0.0.1:5000:5000 iris-cli:1 --workers=2")


def test_delete_name_deletes_every_version_after_asking(iris_clf):
    first, second = _two_versions(iris_clf)
    other = bento_nb.pack(iris_clf, name="Other")
    refused = cli("delete", "IrisClassifier")  # no tty: nothing deleted without -y
    assert refused.returncode == 2 and first.tag in refused.stderr and second.tag in refused.stderr
    assert len(bento_nb.list_bundles("IrisClassifier")) == 2
    done = cli("delete", "IrisClassifier", "-y")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["deleted", first.tag, "deleted", second.tag]
    assert [b.tag for b in bento_nb.list_bundles()] == [other.tag]


def test_delete_one_version_latest_and_comma_lists(iris_clf):
    first, second = _two_versions(iris_clf)
    assert cli("delete", "IrisClassifier:latest", "--assume-yes").returncode == 0
    assert [b.tag for b in bento_nb.list_bundles()] == [first.tag]
    other = bento_nb.pack(iris_clf, name="Other")
    missing = cli("delete", f"{first.tag},Nope", "-y")  # all found first, or none deleted
    assert missing.returncode != 0 and "Nope" in missing.stderr
    assert len(bento_nb.list_bundles()) == 2
    assert cli("delete", f"{first.tag},{other.tag}", "-y").returncode == 0
    assert bento_nb.list_bundles() == []


def test_retrieve_copies_the_bundle_folder(iris_bundle, tmp_path):
    target = tmp_path / "got"
    out = cli("retrieve", "IrisClassifier", "--target_dir", str(target))
    assert out.returncode == 0, out.stderr
    assert bento_nb.load(str(target)).predict([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]
    again = cli("retrieve", "IrisClassifier", "--target_dir", str(target))
    assert again.returncode == 2 and "not an empty folder" in again.stderr


def test_open_api_spec_and_info(iris_bundle):
    spec = json.loads(cli("open-api-spec", iris_bundle.tag).stdout)
    assert spec["openapi"].startswith("3.") and "/predict" in spec["paths"]
    info = json.loads(cli("info", "IrisClassifier").stdout)
    assert info["name"] == "IrisClassifier" and info["version"] == iris_bundle.version
    assert info["apis"][0]["name"] == "predict"
    assert info["artifacts"] == [{"name": "model", "artifact_type": "SklearnModelArtifact"}]


def _serve_config(args, port, workers=1):
    """The server options a `bento-nb serve ...` command line starts a server with (once
    ``workers`` processes answer: a worker still forking when SIGTERM comes is missed)."""
    import time
    import urllib.request

    process = subprocess.Popen([sys.executable, "-m", "bento_nb", *args, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        pids = set()
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=2) as r:
                    metadata = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
                continue
            pids.add(metadata["pid"])
            if len(pids) >= workers:
                return metadata["config"]
        raise AssertionError(f"{workers} server process(es) did not start: {pids}")
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stderr.close()


def test_serve_microbatch_flags_are_aliases(iris_bundle, port):
    config = _serve_config(["serve", iris_bundle.tag, "--enable-microbatch",
                            "--mb-max-batch-size", "7", "--mb-max-latency", "20"], port)
    assert config["max_batch_size"] == 7 and config["max_latency_ms"] == 20.0
    assert _serve_config(["serve", iris_bundle.tag, "--disable-microbatch"],
                         port)["max_batch_size"] == 1
    both = cli("serve", iris_bundle.tag, "--disable-microbatch", "--max-batch-size", "4")
    assert both.returncode == 2 and "--disable-microbatch" in both.stderr


def test_serve_gunicorn_is_serve_with_workers(iris_bundle, port):
    config = _serve_config(["serve-gunicorn", iris_bundle.tag, "-w", "2", "--timeout", "5",
                            "--mb-max-batch-size", "3"], port, workers=2)
    assert config["request_timeout"] == 5.0 and config["max_batch_size"] == 3

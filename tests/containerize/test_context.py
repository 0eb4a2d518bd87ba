"""The build context: what `docker build` gets, without needing Docker."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bento_nb
from bento_nb.containerize import build, write_context
from bento_nb.containerize.wheel import running_wheel
from bento_nb.errors import DockerUnavailable, InvalidName, UsageError

DEAD_SOCKET = "unix:///nonexistent.sock"


def _instructions(dockerfile: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _index(instructions: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(instructions) if line.startswith(prefix))


def test_context_has_everything_docker_build_needs(iris_bundle, tmp_path):
    context = write_context(iris_bundle.tag, tmp_path / "ctx")
    names = {p.name for p in context.iterdir()}
    assert {"Dockerfile", "bundle", "requirements.txt", "wheels", ".dockerignore", "README.md"} <= names
    assert (context / "bundle" / "bento.yml").is_file()
    assert sorted(p.name for p in (context / "bundle").rglob("*")) == \
        sorted(p.name for p in iris_bundle.path.rglob("*"))
    wheels = list((context / "wheels").glob("bento_nb-*.whl"))
    assert [w.name for w in wheels] == [f"bento_nb-{bento_nb.__version__}-py3-none-any.whl"]
    readme = (context / "README.md").read_text()
    assert f"docker build -t irisclassifier:{iris_bundle.version.lower()} {context}" in readme
    assert "--workers=2" in readme
    ignored = (context / ".dockerignore").read_text().split()
    assert "build.log" in ignored and "README.md" in ignored


def test_dockerfile_follows_the_spec_and_orders_layers_for_the_cache(iris_bundle, tmp_path):
    context = write_context(iris_bundle.tag, tmp_path / "ctx")
    steps = _instructions((context / "Dockerfile").read_text())
    assert steps[0] == "FROM python:3.11-slim"  # the packing Python (tests run on 3.11)
    assert any("python3 -m venv /opt/venv" in s for s in steps)
    user = next(s for s in steps if s.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert user.split()[1].split(":")[0].isdigit()  # numeric, so Kubernetes can check runAsNonRoot
    assert "EXPOSE 5000" in steps
    health = next(s for s in steps if s.startswith("HEALTHCHECK"))
    assert "/healthz" in health
    assert steps[_index(steps, "ENTRYPOINT")] == (
        'ENTRYPOINT ["bento-nb", "serve", "/home/bento/bundle", "--host", "0.0.0.0", "--port", "5000"]')
    assert not any(s.startswith("CMD ") for s in steps)  # docker run args go to serve
    # dependency layers strictly before the model
    assert _index(steps, "COPY requirements.txt") < _index(steps, "RUN pip install -r") \
        < _index(steps, "COPY wheels/") < _index(steps, "RUN pip install --no-deps") \
        < _index(steps, "COPY bundle/")
    assert "PIP_NO_CACHE_DIR=1" in steps[_index(steps, "ENV")]


def test_base_image_override(iris_bundle, tmp_path):
    context = write_context(iris_bundle.tag, tmp_path / "ctx", base_image="python:3.11-bookworm")
    assert "FROM python:3.11-bookworm\n" in (context / "Dockerfile").read_text()


def test_requirements_pin_bundle_and_server_only(iris_bundle, tmp_path):
    from importlib.metadata import version

    context = write_context(iris_bundle.tag, tmp_path / "ctx")
    lines = [line for line in (context / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    names = {re.split(r"[=<>!~\[]", line)[0].lower().replace("_", "-") for line in lines}
    assert all("==" in line for line in lines), lines
    for req in iris_bundle.requirements:            # the bundle's own pins, as written
        assert req in lines
    for served_by in ("uvicorn", "uvloop", "httptools"):  # the server's HTTP stack
        assert f"{served_by}=={version(served_by)}" in lines
    assert {"pandas", "prometheus-client", "cloudpickle", "pyyaml"} <= names
    assert not names & {"ipywidgets", "jupyter-server", "ipython", "docker", "tqdm",
                        "bento-nb", "ipykernel", "pytest", "tornado"}


def test_wheel_is_the_running_code_and_installs(tmp_path):
    wheel = running_wheel(tmp_path / "cache")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        package = Path(bento_nb.__file__).parent
        for source in package.rglob("*.py"):
            if "__pycache__" not in source.parts:
                arcname = "bento_nb/" + source.relative_to(package).as_posix()
                assert zf.read(arcname) == source.read_bytes()
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        dist_info = f"bento_nb-{bento_nb.__version__}.dist-info"
        record = zf.read(f"{dist_info}/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if digest:
                data = zf.read(name)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                assert digest == "sha256=" + expected.decode() and int(size) == len(data)
        assert "bento-nb = bento_nb.cli:main" in zf.read(f"{dist_info}/entry_points.txt").decode()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(target), str(wheel)], check=True)
    out = subprocess.run([sys.executable, "-c", "import bento_nb; print(bento_nb.__file__)"],
                         env={**os.environ, "PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.strip().startswith(str(target))


def test_wheel_is_reproducible_and_cached(tmp_path):
    first = running_wheel(tmp_path / "a")
    second = running_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()  # same bytes: Docker reuses the layer
    mtime = first.stat().st_mtime_ns
    assert running_wheel(tmp_path / "a") == first and first.stat().st_mtime_ns == mtime


def test_existing_folder_is_never_clobbered(iris_bundle, tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        write_context(iris_bundle.tag, precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    # a context written before is replaced
    context = write_context(iris_bundle.tag, tmp_path / "ctx")
    (context / "stale.txt").write_text("old")
    assert write_context(iris_bundle.tag, context) == context
    assert not (context / "stale.txt").exists()


def test_unreadable_bundle_files_are_copied_readable(iris_bundle, tmp_path):
    artifact = next((iris_bundle.path / "artifacts").iterdir())
    artifact.chmod(0o600)
    context = write_context(iris_bundle.tag, tmp_path / "ctx")
    copied = context / "bundle" / "artifacts" / artifact.name
    assert copied.stat().st_mode & 0o004  # the uid-1000 server can read it
    assert artifact.stat().st_mode & 0o777 == 0o600  # the store's file is untouched


def test_context_only_cli(iris_bundle, tmp_path):
    out = tmp_path / "ctx"
    proc = subprocess.run([sys.executable, "-m", "bento_nb", "containerize", iris_bundle.tag,
                           "-t", "iris-container", "--context-only", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"docker build -t iris-container {out}" in proc.stdout.splitlines()
    assert (out / "Dockerfile").is_file() and "replacing" not in proc.stdout
    again = subprocess.run([sys.executable, "-m", "bento_nb", "containerize", iris_bundle.tag,
                            "--context-only", str(out)], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert "(replacing the one bento-nb wrote there before)" in again.stdout  # said, not silent


def test_no_daemon_cli_prints_one_line_and_the_command(iris_bundle, tmp_path, bento_home):
    env = {**os.environ, "DOCKER_HOST": DEAD_SOCKET}
    proc = subprocess.run([sys.executable, "-m", "bento_nb", "containerize", iris_bundle.tag,
                           "-t", "iris:1"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == DockerUnavailable.exit_code != 0
    error_lines = proc.stderr.strip().splitlines()
    assert len(error_lines) == 1 and "Traceback" not in proc.stderr
    assert "no Docker daemon reachable at unix:///nonexistent.sock" in error_lines[0]
    context = bento_home / "build" / "IrisClassifier" / iris_bundle.version
    command = f"docker build -t iris:1 {context}"
    assert command in proc.stdout.splitlines()
    assert command in error_lines[0]
    assert (context / "Dockerfile").is_file() and (context / "bundle" / "bento.yml").is_file()


def test_no_daemon_api_error_carries_context_and_command(iris_bundle, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", DEAD_SOCKET)
    lines = []
    with pytest.raises(DockerUnavailable) as info:
        build(iris_bundle.tag, image="iris:2", progress=lines.append)
    error = info.value
    assert isinstance(error.context, Path) and (error.context / "Dockerfile").is_file()
    assert error.command == f"docker build -t iris:2 {error.context}"
    assert "\n" not in error.message
    assert lines == []  # nothing was built


def test_bad_image_name_is_refused_before_anything_is_written(iris_bundle, bento_home):
    proc = subprocess.run([sys.executable, "-m", "bento_nb", "containerize", iris_bundle.tag,
                           "-t", "Iris Classifier:1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DOCKER_HOST": DEAD_SOCKET})
    assert proc.returncode == InvalidName.exit_code
    assert len(proc.stderr.strip().splitlines()) == 1 and "invalid image name" in proc.stderr
    assert not (bento_home / "build").exists()


def test_unknown_bundle_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bento_nb", "containerize", "NoSuchModel",
                           "--context-only", str(tmp_path / "ctx")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "NoSuchModel" in proc.stderr
    assert not (tmp_path / "ctx").exists()


def test_concurrent_builds_of_one_bundle_do_not_trample_the_context(iris_bundle, monkeypatch):
    """Two Containerize clicks at once: each gets the no-daemon error with a complete
    context, neither fails on the other rewriting the directory."""
    import threading

    monkeypatch.setenv("DOCKER_HOST", DEAD_SOCKET)
    errors: list[BaseException] = []

    def click():
        try:
            build(iris_bundle.tag, image="iris:1")
        except BaseException as e:  # collected and checked below
            errors.append(e)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(errors) == 4 and all(isinstance(e, DockerUnavailable) for e in errors), errors
    context = errors[0].context
    assert (context / "Dockerfile").is_file() and (context / "bundle" / "bento.yml").is_file()


def test_only_the_files_the_manifest_lists_enter_the_context(iris_bundle, tmp_path):
    """A stray file or a symbolic link left in a bundle folder (by hand, by another tool)
    is never copied into the build context, so it never reaches the Docker daemon."""
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ship me")
    (iris_bundle.path / "notes.txt").write_text("stray")
    (iris_bundle.path / "artifacts" / "leak").symlink_to(secret)
    context = write_context(iris_bundle.tag, tmp_path / "ctx")
    shipped = {p.relative_to(context / "bundle").as_posix()
               for p in (context / "bundle").rglob("*") if not p.is_dir()}
    assert shipped == set(iris_bundle.files())
    assert not any("do not ship me" in p.read_text(errors="replace")
                   for p in context.rglob("*") if p.is_file() and p.stat().st_size < 1 << 20)


def test_run_hints_publish_on_loopback_and_show_a_curl_line(iris_clf, tmp_path):
    """Every "run it" hint is the same two lines: a docker run published on 127.0.0.1
    only, and a curl request (the bundle's example when it has one)."""
    import bento_nb
    from bento_nb.containerize.context import run_hint

    bundle = bento_nb.pack(iris_clf, name="Hinted", example=[[5.1, 3.5, 1.4, 0.2]])
    run, curl = run_hint("hinted:1", bundle.manifest)
    assert run == "docker run --rm -p 127.0.0.1:5000:5000 hinted:1 --workers=2"
    assert curl.startswith("curl -H 'Content-Type: ") and curl.endswith(
        "http://127.0.0.1:5000/predict") and "5.1" in curl
    readme = (write_context(bundle.tag, tmp_path / "ctx", image="hinted:1") / "README.md").read_text()
    assert run in readme and curl in readme


def test_a_lightgbm_image_installs_the_openmp_runtime_its_wheel_loads(tmp_path):
    """LightGBM's wheel links the system libgomp.so.1, absent from slim images: the build's
    load step failed with ``OSError: libgomp.so.1``. Other bundles get no apt step."""
    lgb = pytest.importorskip("lightgbm")
    import numpy as np

    X = np.random.default_rng(0).random((100, 4))
    booster = lgb.train({"verbose": -1}, lgb.Dataset(X, X.sum(axis=1)), num_boost_round=3)
    context = write_context(bento_nb.pack(booster, name="Gbm").tag, tmp_path / "lgb")
    steps = _instructions((context / "Dockerfile").read_text())
    system = _index(steps, "RUN if command -v apt-get")
    assert "apt-get install -y -qq --no-install-recommends libgomp1" in steps[system]
    assert "apk add --no-cache libgomp" in steps[system]
    assert system < _index(steps, "RUN pip install -r") and system < _index(steps, "USER ")

    from sklearn.svm import SVC

    plain = write_context(bento_nb.pack(SVC().fit(X, X[:, 0] > 0.5), name="Svc").tag,
                          tmp_path / "svc")
    assert "apt-get" not in (plain / "Dockerfile").read_text()

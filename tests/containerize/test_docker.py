"""Real Docker engine: build the iris bundle into an image, run it, query it.

CI starts an engine first (``bash ../shared/ci/docker-engine.sh``, which also provides a
local ``python:3.11-slim``). Without a reachable engine these tests are skipped, saying so,
unless ``BENTO_NB_REQUIRE_DOCKER=1`` (then they fail: CI sets it).
Every image and container made here is removed afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from polling import wait_for

import bento_nb
from bento_nb.containerize import build
from bento_nb.containerize.builder import connect
from bento_nb.errors import DockerUnavailable

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IRIS_ROW = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def docker_client():
    try:
        client = connect()
    except DockerUnavailable as e:
        if os.environ.get("BENTO_NB_REQUIRE_DOCKER"):
            pytest.fail(f"BENTO_NB_REQUIRE_DOCKER is set but {e.message}")
        pytest.skip(f"no Docker engine reachable ({e.message}); start one with "
                    "`bash ../shared/ci/docker-engine.sh`")
    yield client
    client.close()


@pytest.fixture(scope="module")
def iris_image(docker_client, tmp_path_factory, iris_clf):
    """The iris SVC bundle built into an image once for this module."""
    image = f"bento-nb-test/iris:{secrets.token_hex(4)}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTO_NB_HOME", str(tmp_path_factory.mktemp("docker_home")))
        bundle = bento_nb.pack(iris_clf, name="IrisClassifier")
        lines: list[str] = []
        result = build(bundle.tag, image=image, progress=lines.append)
    try:
        yield result, lines
    finally:
        _remove_image(docker_client, image)


def _remove_image(client, image: str) -> None:
    import docker

    try:
        client.remove_image(image, force=True, noprune=True)  # keep cached layers
    except docker.errors.NotFound:
        pass


def _docker(*args: str, timeout: float = 60) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr.strip()}"
    return proc.stdout.strip()


def _http(method: str, url: str, body: bytes | None = None, timeout: float = 10):
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait_ready(client, container: str, url: str, deadline_s: float = 120) -> None:
    """Poll ``url`` until it answers 200; fail early, with the logs, if the container dies."""
    def ready() -> bool:
        state = client.inspect_container(container)["State"]
        if not state["Running"]:
            logs = client.logs(container).decode(errors="replace")[-3000:]
            pytest.fail(f"container exited with {state['ExitCode']}:\n{logs}")
        return _http("GET", url, timeout=2)[0] == 200

    # OSError / URLError: not listening yet (docker-proxy resets the connection)
    if not wait_for(ready, deadline_s, 0.5, ignore=(OSError, urllib.error.URLError)):
        logs = client.logs(container).decode(errors="replace")[-3000:]
        pytest.fail(f"{url} not ready after {deadline_s} s:\n{logs}")


def _wait_health(client, container: str, deadline_s: float = 90) -> str:
    """The container's health once it leaves "starting" (or when the deadline passes)."""
    def health() -> str:
        return client.inspect_container(container)["State"]["Health"]["Status"]

    wait_for(lambda: health() in ("healthy", "unhealthy"), deadline_s, 1)
    return health()


def test_build_streams_progress(iris_image):
    result, lines = iris_image
    assert result.image_id.startswith("sha256:")
    assert result.steps > 0 and result.size > 0
    assert lines[1:] == result.log  # every log line went to progress(), in order
    assert any(line.startswith(f"Step {result.steps}/{result.steps} :") for line in lines)
    assert (result.context / "build.log").read_text().splitlines() == result.log


def test_container_serves_predictions_as_non_root_and_turns_healthy(iris_image, docker_client, port):
    result, _ = iris_image
    container = _docker("run", "-d", "-p", f"127.0.0.1:{port}:5000", result.image, "--workers=2")
    try:
        _wait_ready(docker_client, container, f"http://127.0.0.1:{port}/healthz")
        status, body = _http("POST", f"http://127.0.0.1:{port}/predict", json.dumps(IRIS_ROW).encode())
        assert (status, json.loads(body)) == (200, [0])

        top = docker_client.top(container, ps_args="-o pid,uid,args")
        uid_col, args_col = top["Titles"].index("UID"), top["Titles"].index("COMMAND")
        assert top["Processes"], "no process in the container"
        assert all(p[uid_col] not in ("0", "root") for p in top["Processes"]), top
        assert any("--workers=2" in p[args_col] for p in top["Processes"]), top
        assert len(top["Processes"]) >= 2  # --workers=2 reached bento-nb serve
        assert _docker("exec", container, "id", "-u") == "1000"

        assert _wait_health(docker_client, container) == "healthy"

        _docker("stop", "-t", "20", container, timeout=60)
        state = docker_client.inspect_container(container)["State"]
        assert state["ExitCode"] != 137, "the server ignored SIGTERM and was killed"
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True,
                              timeout=60)
        assert "bento-nb: serving" in logs.stdout + logs.stderr
        # 0.0.0.0 is the container's own namespace: no "anyone can call the model" warning
        assert "warning: listening on" not in logs.stdout + logs.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)


def test_container_runs_under_the_kubernetes_security_settings(iris_image, docker_client, port):
    """What bento-nb k8s asks of a pod: read-only root, /tmp writable, no capabilities, and
    `--port` passed as args when it is not 5000 (the health check follows it)."""
    result, _ = iris_image
    container = _docker(
        "run", "-d", "-p", f"127.0.0.1:{port}:8080", "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "-e", "BENTO_NB_HOME=/tmp/bento_nb", "-e", "JUPYTER_RUNTIME_DIR=/tmp/jupyter-runtime",
        result.image, "--port", "8080")
    try:
        _wait_ready(docker_client, container, f"http://127.0.0.1:{port}/readyz")
        status, body = _http("POST", f"http://127.0.0.1:{port}/predict", json.dumps(IRIS_ROW).encode())
        assert (status, json.loads(body)) == (200, [0])
        assert _wait_health(docker_client, container) == "healthy"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)


def test_new_model_reuses_dependency_layers(iris_image, docker_client, iris):
    """A second bundle with another model but the same requirements: the pip layers come
    from the cache, only the bundle is copied anew. Built through the CLI (log lines on a
    non-terminal stdout)."""
    from sklearn.svm import SVC

    X, y = iris
    bundle = bento_nb.pack(SVC(C=0.5, gamma="scale").fit(X, y), name="IrisClassifier")
    image = f"bento-nb-test/iris-changed:{secrets.token_hex(4)}"
    try:
        proc = subprocess.run([sys.executable, "-m", "bento_nb", "containerize", bundle.tag,
                               "-t", image], capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
        steps = _steps(proc.stdout.splitlines())
        cached = {text.split(" ", 1)[0] + " " + text.split(" ", 1)[1][:40]
                  for text, lines in steps.items() if "---> Using cache" in lines}
        for dependency_step in ("COPY requirements.txt", "RUN pip install -r", "COPY wheels/",
                                "RUN pip install --no-deps"):
            assert any(c.startswith(dependency_step) for c in cached), (dependency_step, cached)
        bundle_step = next(t for t in steps if t.startswith("COPY bundle/"))
        assert "---> Using cache" not in steps[bundle_step]
        lines = proc.stdout.strip().splitlines()
        summary = next(line for line in reversed(lines) if line.startswith("built "))
        assert summary.startswith(f"built {image}") and "steps from cache" in summary
        assert f"run it:  docker run --rm -p 127.0.0.1:5000:5000 {image} --workers=2" in lines
        assert lines[-1].strip().startswith("curl ")
    finally:
        _remove_image(docker_client, image)


def _steps(lines: list[str]) -> dict[str, list[str]]:
    """``{"RUN pip install ...": [its output lines]}`` from a classic-builder log."""
    steps: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith("Step ") and " : " in line:
            current = line.split(" : ", 1)[1]
            steps[current] = []
        elif current is not None:
            steps[current].append(line.strip())
    return steps


def test_failing_build_is_one_line_naming_the_step(iris_bundle, docker_client, bento_home):
    """`scratch` has no shell, so the first RUN fails: BuildError names the step, the log
    stays in the context, the CLI prints one line and exits non-zero."""
    from bento_nb.errors import BuildError

    image = f"bento-nb-test/broken:{secrets.token_hex(4)}"
    lines: list[str] = []
    try:
        with pytest.raises(BuildError) as info:
            build(iris_bundle.tag, image=image, base_image="scratch", progress=lines.append)
        message = info.value.message
        assert "\n" not in message
        assert f"docker build of {image} failed at step 3/" in message and "RUN python3 -m venv" in message
        log = bento_home / "build" / "IrisClassifier" / iris_bundle.version / "build.log"
        assert f"full log in {log}" in message and log.read_text().splitlines() == lines[1:]

        proc = subprocess.run([sys.executable, "-m", "bento_nb", "containerize", iris_bundle.tag,
                               "-t", image, "--base-image", "scratch"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == BuildError.exit_code
        assert len(proc.stderr.strip().splitlines()) == 1 and "failed at step 3/" in proc.stderr
    finally:
        _remove_image(docker_client, image)

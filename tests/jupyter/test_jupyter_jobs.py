"""The containerize job runner of the Jupyter extension, with builder functions of our own:
statuses, incremental logs, errors that carry the manual command, bounded memory."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from polling import wait_for

from bento_nb.errors import DockerUnavailable
from bento_nb.jupyter.jobs import JobRunner

pytestmark = pytest.mark.timeout(60)


def wait_done(runner: JobRunner, job_id: str) -> dict:
    assert wait_for(lambda: runner.get(job_id).done, 20), runner.get(job_id).to_json()
    return runner.get(job_id).to_json()


def test_job_runs_off_thread_and_streams_its_log_incrementally():
    gate = threading.Event()
    calls = []

    def build(tag, image=None, base_image=None, progress=None):
        calls.append((tag, image, base_image, threading.current_thread().name))
        progress("Step 1/2 : FROM python\n")
        progress("line a\nline b")
        gate.wait(10)
        progress("Step 2/2 : done")
        return SimpleNamespace(image=image, image_id="sha256:abc", context="/ctx",
                               seconds=1.5, cached_steps=3)

    runner = JobRunner(builder=build)
    job = runner.submit("Iris:1", image="iris:1", base_image="python:3.11-slim")
    assert job.status in ("queued", "running")
    assert wait_for(lambda: job.to_json()["log_total"] >= 5, 10), job.to_json()
    first = job.to_json(since=0)
    assert first["status"] == "running"
    assert first["log"][-3:] == ["Step 1/2 : FROM python", "line a", "line b"]
    seen = first["log_total"]
    gate.set()
    final = wait_done(runner, job.id)
    assert final["status"] == "succeeded"
    assert final["result"] == {"image": "iris:1", "image_id": "sha256:abc", "context": "/ctx",
                               "seconds": 1.5, "cached_steps": 3}
    rest = job.to_json(since=seen)
    assert rest["log_start"] == seen and rest["log"][0] == "Step 2/2 : done"
    assert job.to_json(since=rest["log_total"])["log"] == []
    assert calls == [("Iris:1", "iris:1", "python:3.11-slim", "bento-nb-containerize")]


def test_no_daemon_error_keeps_the_command_and_context():
    def build(tag, image=None, base_image=None, progress=None):
        error = DockerUnavailable("cannot reach the Docker daemon at unix:///nope")
        error.context = "/tmp/ctx"
        error.command = "docker build -t iris:1 /tmp/ctx"
        raise error

    runner = JobRunner(builder=build)
    final = wait_done(runner, runner.submit("Iris:1", image="iris:1").id)
    assert final["status"] == "failed"
    assert final["error"] == {"type": "DockerUnavailable",
                              "message": "cannot reach the Docker daemon at unix:///nope",
                              "command": "docker build -t iris:1 /tmp/ctx",
                              "context": "/tmp/ctx"}
    assert final["log"][-1] == "build it by hand with: docker build -t iris:1 /tmp/ctx"


def test_unexpected_errors_end_the_job_and_the_runner_keeps_working():
    def build(tag, image=None, base_image=None, progress=None):
        if tag == "Bad:1":
            raise RuntimeError("boom")
        return SimpleNamespace(image="ok:1")

    runner = JobRunner(builder=build)
    bad = runner.submit("Bad:1")
    good = runner.submit("Good:1")
    assert wait_done(runner, bad.id)["error"] == {"type": "RuntimeError", "message": "boom"}
    assert wait_done(runner, good.id)["status"] == "succeeded"
    assert runner.get(good.id).image == "ok:1"
    assert [j.id for j in runner.jobs()] == [good.id, bad.id]


def test_log_and_job_list_are_bounded():
    def build(tag, image=None, base_image=None, progress=None):
        for i in range(1000):
            progress(f"line {i}")
        return SimpleNamespace(image="x:1")

    runner = JobRunner(builder=build, max_jobs=3, max_log_lines=100)
    ids = []
    for i in range(5):
        ids.append(runner.submit(f"M:{i}").id)
        wait_done(runner, ids[-1])
    assert [j.id for j in runner.jobs()] == ids[:-4:-1]
    assert runner.get(ids[0]) is None
    final = runner.get(ids[-1]).to_json(since=0)
    assert len(final["log"]) == 100
    assert final["log_start"] == final["log_total"] - 100
    assert final["log"][-1] == "built x:1"

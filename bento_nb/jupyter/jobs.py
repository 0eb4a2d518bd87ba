"""Containerize jobs of the Jupyter extension: one Docker build at a time, off the IOLoop.

A :class:`JobRunner` owns a queue and one daemon worker thread; ``submit`` returns a
:class:`Job` at once (status ``queued``) and the worker runs
``bento_nb.containerize.build(tag, image, base_image, progress=job.append)``::

    runner = JobRunner()
    job = runner.submit("IrisClassifier:20261124_143000_123_9f3a1c", image="iris:1")
    runner.get(job.id).to_json(since=0)    # {"status": "running", "log": [...], ...}

Statuses: ``queued`` -> ``running`` -> ``succeeded`` | ``failed``. A failed job carries
``error`` = ``{"type", "message"}`` (plus ``command`` and ``context`` when no Docker daemon
could be reached, so the user can build by hand). The log keeps the last ``max_log_lines``
lines; line numbers are absolute, so a client polling with ``since=<log_total>`` never sees
a line twice. Finished jobs beyond ``max_jobs`` are forgotten, oldest first. The worker is a
daemon thread: shutting Jupyter down never waits for a build.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import deque
from typing import Any, Callable

from ..errors import BentoNbError

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
Builder = Callable[..., Any]


class Job:
    """One containerize request; every method is thread-safe."""

    def __init__(self, tag: str, image: str | None, base_image: str | None,
                 max_log_lines: int = 5000):
        self.id = secrets.token_hex(8)
        self.tag = tag
        self.image = image
        self.base_image = base_image
        self.status = QUEUED
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.error: dict | None = None
        self.result: dict | None = None
        self._log: deque[str] = deque(maxlen=max(1, max_log_lines))
        self._log_total = 0
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)

    def append(self, line: str) -> None:
        """Add log line(s); the ``progress`` callback handed to the builder."""
        text = str(line).rstrip("\r\n")
        with self._lock:
            for part in text.splitlines() or [""]:
                self._log.append(part)
                self._log_total += 1

    def to_json(self, since: int = 0) -> dict:
        """Status and the log lines numbered ``since`` and later (those still kept)."""
        with self._lock:
            first_kept = self._log_total - len(self._log)
            start = max(int(since), first_kept)
            lines = list(self._log)[start - first_kept:] if start < self._log_total else []
            return {
                "id": self.id,
                "tag": self.tag,
                "image": self.image,
                "base_image": self.base_image,
                "status": self.status,
                "created_at": self.created_at,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "error": self.error,
                "result": self.result,
                "log": lines,
                "log_start": start if lines else self._log_total,
                "log_total": self._log_total,
            }

    def summary(self) -> dict:
        out = self.to_json(since=1 << 62)
        del out["log"], out["log_start"]
        return out

    # transitions, called by the worker

    def _start(self) -> None:
        with self._lock:
            self.status = RUNNING
            self.started_at = time.time()

    def _finish(self, result: dict | None = None, error: dict | None = None) -> None:
        with self._lock:
            self.result, self.error = result, error
            self.status = FAILED if error else SUCCEEDED
            self.finished_at = time.time()


class JobRunner:
    """Runs containerize jobs one after another on a daemon thread."""

    def __init__(self, builder: Builder | None = None, max_jobs: int = 50,
                 max_log_lines: int = 5000):
        self._builder = builder
        self.max_jobs = max_jobs
        self.max_log_lines = max_log_lines
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def submit(self, tag: str, image: str | None = None, base_image: str | None = None) -> Job:
        job = Job(tag, image, base_image, self.max_log_lines)
        job.append(f"queued: containerize {tag}" + (f" -t {image}" if image else ""))
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._work, name="bento-nb-containerize", daemon=True)
                self._worker.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every remembered job, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created_at, reverse=True)

    def _forget_old(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.done), key=lambda j: j.created_at)
        for job in finished[: max(0, len(self._jobs) - self.max_jobs)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                self._run(job)
            finally:
                self._queue.task_done()

    def _run(self, job: Job) -> None:
        job._start()
        job.append("started")
        try:
            build = self._builder or _default_builder()
            result = build(job.tag, image=job.image, base_image=job.base_image,
                           progress=job.append)
        except BentoNbError as e:
            error = e.to_json()["error"]
            for attr in ("command", "context"):
                if getattr(e, attr, None) is not None:
                    error[attr] = str(getattr(e, attr))
            job.append(f"error: {e.message}")
            if "command" in error:
                job.append(f"build it by hand with: {error['command']}")
            job._finish(error=error)
        except Exception as e:  # noqa: BLE001 - a job must end, and say why
            log.exception("bento_nb containerize job %s failed", job.id)
            job.append(f"error: {type(e).__name__}: {e}")
            job._finish(error={"type": type(e).__name__, "message": str(e) or type(e).__name__})
        else:
            summary = _result_json(result)
            if summary.get("image"):
                job.image = summary["image"]
            job.append(f"built {summary.get('image') or ''}".rstrip())
            job._finish(result=summary)


def _default_builder() -> Builder:
    from ..containerize import build

    return build


def _result_json(result: Any) -> dict:
    out = {}
    for key in ("image", "image_id", "context", "seconds", "cached_steps"):
        value = getattr(result, key, None)
        if value is not None:
            out[key] = value if isinstance(value, (int, float, bool)) else str(value)
    return out

"""Build a context into an image with the Docker SDK, streaming the build log.

    client = connect()                                  # DockerUnavailable if no daemon
    result = build_image(client, context, "iris:1", progress=print)
    result.image_id, result.cached_steps, result.seconds, result.size

The low-level ``APIClient.build(decode=True)`` yields the daemon's JSON messages; each log
line goes to ``progress(line)`` as it arrives (the CLI's progress bar, the notebook widget,
a Jupyter job). The classic builder's ``Step N/M`` and ``Using cache`` lines give the step
count and how many steps the layer cache served. The whole log is kept in
``<context>/build.log``.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import BuildError, DockerUnavailable, one_line

Progress = Callable[[str], None]
CONNECT_TIMEOUT = 10
BUILD_TIMEOUT = 3600  # longest silence tolerated between two build messages
# The daemon's builds see these as predefined build args: a proxy set here reaches pip.
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
               "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")
_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")
_BUILT = re.compile(r"Successfully built ([0-9a-f]{12,64})")


@dataclass
class BuildResult:
    """What one build produced."""

    image: str                 # the name:tag built
    image_id: str              # sha256:...
    context: Path              # the build context directory (left on disk)
    seconds: float             # wall time of the docker build
    cached_steps: int          # steps the layer cache served ("Using cache")
    steps: int = 0             # steps in the Dockerfile
    size: int = 0              # image size in bytes
    log: list[str] = field(default_factory=list, repr=False)


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: float = CONNECT_TIMEOUT):
    """A ``docker.APIClient`` for the daemon of ``DOCKER_HOST`` (or the default socket),
    checked with a ping. Raises DockerUnavailable with a one-line reason otherwise."""
    try:
        import docker
        from docker.utils import kwargs_from_env
    except ImportError:
        raise DockerUnavailable("the 'docker' Python package is not installed (pip install docker)") from None
    try:
        client = docker.APIClient(timeout=timeout, **kwargs_from_env())
        client.ping()
    except Exception as e:  # the SDK raises DockerException, requests or OSError errors
        raise DockerUnavailable(f"no Docker daemon reachable at {docker_host()} ({_reason(e)})") from None
    return client


def build_image(client, context: Path, image: str, progress: Progress | None = None,
                no_cache: bool = False) -> BuildResult:
    """Build ``context`` as ``image``; raise BuildError (one line, log in build.log) on
    failure, DockerUnavailable if the daemon goes away. ``no_cache`` rebuilds every layer."""
    import docker

    log = _BuildLog(progress)
    base = _base_image(context / "Dockerfile")
    if base:
        try:
            client.inspect_image(base)
        except docker.errors.ImageNotFound:
            log.emit(f"base image {base} is not present locally: Docker will try to pull it")
        except docker.errors.APIError:
            pass
    buildargs = {k: os.environ[k] for k in _PROXY_VARS if os.environ.get(k)}
    started = time.perf_counter()
    try:
        for chunk in client.build(path=str(context), tag=image, decode=True, rm=True,
                                  forcerm=True, pull=False, nocache=no_cache, buildargs=buildargs or None,
                                  timeout=BUILD_TIMEOUT):
            log.feed(chunk)
    except docker.errors.APIError as e:
        log.error = log.error or one_line(getattr(e, "explanation", None) or str(e))
    except Exception as e:  # connection lost mid-build
        log.write(context / "build.log")
        raise DockerUnavailable(f"lost the Docker daemon at {docker_host()} during the build "
                                f"({_reason(e)}); log in {context / 'build.log'}") from None
    seconds = time.perf_counter() - started
    log.write(context / "build.log")
    if log.error:
        where = f" at step {log.step}/{log.steps} ({_short(log.step_text)})" if log.step else ""
        detail = f" [{_short(log.last_error_line, 200)}]" if log.last_error_line else ""
        raise BuildError(f"docker build of {image} failed{where}: {_short(log.error, 300)}"
                         f"{detail}; full log in {context / 'build.log'}")
    image_id = log.image_id
    size = 0
    try:
        info = client.inspect_image(image)
        image_id, size = info["Id"], int(info.get("Size") or 0)
    except docker.errors.APIError:
        pass
    return BuildResult(image=image, image_id=image_id or "", context=context, seconds=seconds,
                       cached_steps=log.cached, steps=log.steps, size=size, log=log.lines)


class _BuildLog:
    """Turns the daemon's JSON messages into log lines and counts steps and cache hits."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.lines: list[str] = []
        self.step = self.steps = self.cached = 0
        self.step_text = ""
        self.image_id = ""
        self.error = ""
        self.last_error_line = ""
        self._partial = ""
        self._last_status = None

    def emit(self, line: str) -> None:
        self.lines.append(line)
        if self.progress is not None:
            self.progress(line)

    def feed(self, chunk: dict) -> None:
        if "stream" in chunk:
            text = self._partial + chunk["stream"]
            *complete, self._partial = text.split("\n")
            for line in complete:
                self._line(line.rstrip("\r"))
        elif "error" in chunk:
            self._flush()
            self.error = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
            self.emit(f"ERROR: {self.error.strip()}")
        elif "status" in chunk:
            detail = chunk.get("progressDetail") or {}
            if detail.get("total"):
                return  # byte counters of a pull: too chatty for a log
            status = f"{chunk.get('id', '')}: {chunk['status']}".lstrip(": ")
            if status != self._last_status:
                self._last_status = status
                self.emit(status)
        elif "aux" in chunk and isinstance(chunk["aux"], dict) and chunk["aux"].get("ID"):
            self.image_id = chunk["aux"]["ID"]

    def _line(self, line: str) -> None:
        stripped = line.strip()
        if not stripped:
            return
        step = _STEP.match(stripped)
        if step:
            self.step, self.steps, self.step_text = int(step[1]), int(step[2]), step[3]
            self.last_error_line = ""
        elif stripped == "---> Using cache":
            self.cached += 1
        elif stripped.startswith("ERROR:") or (
                not self.last_error_line.startswith("ERROR:")
                and not stripped.startswith(("---> ", "Removing intermediate container"))):
            # the step's own output: pip's "ERROR: ..." line wins, else its last line
            self.last_error_line = stripped
        built = _BUILT.match(stripped)
        if built and not self.image_id:
            self.image_id = built[1]
        self.emit(line.rstrip())

    def _flush(self) -> None:
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(line)

    def write(self, path: Path) -> None:
        self._flush()
        try:
            path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        except OSError:
            pass  # the log is a convenience; the error itself is raised to the caller


def _base_image(dockerfile: Path) -> str | None:
    try:
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            if line.strip().upper().startswith("FROM "):
                return line.split()[1]
    except OSError:
        return None
    return None


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason of a connection error ("No such file or directory",
    "Connection refused"), else the first line of the message."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        for nested in (*getattr(e, "args", ()), getattr(e, "reason", None),
                       e.__cause__, e.__context__):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return _short(str(exc), 160)


def _short(text: str, limit: int = 80) -> str:
    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"

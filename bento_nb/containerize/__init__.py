"""Containerize a bundle: a Docker build context, an image built with the Docker SDK, and
Kubernetes manifests (:mod:`bento_nb.containerize.k8s`).

    from bento_nb.containerize import build, write_context
    result = build("IrisClassifier:latest", image="iris-classifier:1", progress=print)
    # docker run -p 5000:5000 iris-classifier:1 --workers=2
    path = write_context("IrisClassifier:latest", "ctx/")   # context only, no Docker needed

Without a reachable daemon, :func:`build` leaves the context on disk and raises
:class:`~bento_nb.errors.DockerUnavailable` whose ``.context`` and ``.command`` say where it
is and the exact ``docker build`` command that builds it later.

Modules: ``reference`` (image names), ``wheel`` (a wheel of the running bento_nb),
``context`` (the build context), ``builder`` (Docker SDK build, streamed log), ``k8s``.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from ..errors import DockerUnavailable
from ..store import Bundle
from .builder import BuildResult, build_image, connect
from .context import (build_command, is_context, locked, resolve_bundle, run_command,
                      write_context)
from .context import context_dir as resolve_context_dir
from .reference import default_image, validate_image

__all__ = ["BuildResult", "build", "write_context", "validate_image", "default_image",
           "build_command", "run_cli"]


def build(tag: str | os.PathLike | Bundle, image: str | None = None,
          base_image: str | None = None, progress: Callable[[str], None] | None = None,
          context_dir: str | os.PathLike | None = None, no_cache: bool = False) -> BuildResult:
    """Write the build context of ``tag`` and build it into ``image`` (default
    ``<name>:<version>``), sending each log line to ``progress(line)``. ``context_dir``
    defaults to ``$BENTO_NB_HOME/build/<Name>/<version>``; ``no_cache`` ignores Docker's
    layer cache.

    Raises InvalidName for a bad image name (before anything is written),
    DockerUnavailable (with ``.context``/``.command``) when no daemon answers, BuildError
    when the build fails (its log is in ``<context>/build.log``)."""
    if image is not None:
        validate_image(image)
    bundle = resolve_bundle(tag)
    image = image or default_image(bundle.name, bundle.version)
    if base_image is not None:
        validate_image(base_image, allow_digest=True)
    with locked(resolve_context_dir(bundle, context_dir)):
        context = write_context(bundle, out_dir=context_dir, base_image=base_image, image=image)
        command = build_command(image, context)
        try:
            client = connect()
        except DockerUnavailable as e:
            raise DockerUnavailable(f"{e.message}; the build context is in {context}; "
                                    f"build it later with: {command}",
                                    context=context, command=command) from None
        if progress is not None:
            progress(f"building {image} from {context}")
        try:
            return build_image(client, context, image, progress, no_cache=no_cache)
        finally:
            client.close()


def run_cli(tag: str, image: str | None = None, base_image: str | None = None,
            context_only: str | None = None) -> int:
    """``bento-nb containerize``: a progress bar on a terminal, log lines otherwise."""
    if context_only is not None:
        if image is not None:
            validate_image(image)
        if base_image is not None:
            validate_image(base_image, allow_digest=True)
        bundle = resolve_bundle(tag)
        image = image or default_image(bundle.name, bundle.version)
        target = resolve_context_dir(bundle, context_only)
        with locked(target):
            replaced = is_context(target)
            context = write_context(bundle, out_dir=context_only, base_image=base_image,
                                    image=image)
        print(f"wrote the build context of {bundle.tag} to {context}"
              + (" (replacing the one bento-nb wrote there before)" if replaced else ""))
        print(build_command(image, context))
        return 0
    with _CliProgress() as progress:
        try:
            result = build(tag, image=image, base_image=base_image, progress=progress)
        except DockerUnavailable as e:
            progress.close()
            if e.command:
                print(e.command)  # stdout: the command alone, ready to copy
            raise
        progress.close(done=True)
    print(f"built {result.image} ({result.image_id[:19]}, {_mb(result.size)}) in "
          f"{result.seconds:.1f} s; {result.cached_steps}/{result.steps} steps from cache")
    print(f"run it:  {run_command(result.image)}")
    return 0


class _CliProgress:
    """On a terminal: a tqdm bar over the Dockerfile's steps with the latest line beside
    it. Elsewhere (CI logs, pipes): every log line on stdout."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = None

    def __call__(self, line: str) -> None:
        if not self.tty:
            print(line, flush=True)
            return
        from tqdm import tqdm

        from .builder import _STEP

        step = _STEP.match(line.strip())
        if step:
            if self.bar is None:
                self.bar = tqdm(total=int(step[2]), file=self.stream, unit="step",
                                dynamic_ncols=True, leave=True)
            self.bar.n = int(step[1]) - 1
            self.bar.set_description(f"Step {step[1]}/{step[2]}")
            self.bar.write(line.strip(), file=self.stream)
        elif self.bar is not None:
            self.bar.set_postfix_str(line.strip()[:60])
        else:
            print(line, file=self.stream, flush=True)

    def close(self, done: bool = False) -> None:
        if self.bar is not None:
            if done:
                self.bar.n = self.bar.total
                self.bar.refresh()
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "_CliProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


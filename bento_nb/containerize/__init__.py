"""Containerize a bundle: a Docker build context, an image built with the Docker SDK, and
Kubernetes manifests (:mod:`bento_nb.containerize.k8s`).

    from bento_nb.containerize import build, write_context
    result = build("IrisClassifier:latest", image="iris-classifier:1", progress=print)
    # docker run --rm -p 127.0.0.1:5000:5000 iris-classifier:1 --workers=2
    path = write_context("IrisClassifier:latest", "ctx/")   # context only, no Docker needed

Without a reachable daemon, :func:`build` leaves the context on disk and raises
:class:`~bento_nb.errors.DockerUnavailable` whose ``.context`` and ``.command`` say where it
is and the exact ``docker build`` command that builds it later.

Modules: ``reference`` (image names), ``wheel`` (a wheel of the running bento_nb),
``context`` (the build context), ``builder`` (Docker SDK build, streamed log), ``images``
(the images built from each bundle, with their ``docker run`` command), ``k8s``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DockerUnavailable
from ..options import option
from ..store import Bundle, find_bundle
from . import images
from .builder import BuildResult, build_image, connect
from .context import (build_command, is_context, locked, run_hint,
                      write_context)
from .context import context_dir as resolve_context_dir
from .reference import default_image, validate_image

__all__ = ["BuildResult", "ContainerizeOptions", "PreparedContext", "build", "prepare_context",
           "write_context", "validate_image", "default_image", "build_command", "run_cli"]


@dataclass
class ContainerizeOptions:
    """What ``containerize`` takes from a user, checked when made: the CLI, ``%bento
    containerize``, the widgets and the Jupyter API all build one (flags from the fields)."""

    image: str | None = option(None, "--image", "IMAGE[:TAG] (default: name:version)",
                               short="-t", type=str, metavar="IMAGE")
    base_image: str | None = option(None, "--base-image",
                                    "default: python:<packing version>-slim", type=str,
                                    metavar="IMAGE")
    context_only: str | None = option(None, "--context-only",
                                      "write the build context to DIR and stop", type=str,
                                      metavar="DIR")

    def __post_init__(self) -> None:
        if self.image is not None:
            validate_image(self.image)
        if self.base_image is not None:
            validate_image(self.base_image, allow_digest=True)


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
    bundle = find_bundle(tag)
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
            result = build_image(client, context, image, progress, no_cache=no_cache)
        finally:
            client.close()
        images.record(bundle.name, bundle.version, result)  # shown by the panel and widgets
        return result


@dataclass
class PreparedContext:
    """A build context written to disk, and how to build it."""

    bundle: Bundle
    image: str
    path: Path
    command: str            # the exact `docker build` command
    replaced: bool          # it replaced a context bento_nb had written there before


def prepare_context(tag: str | os.PathLike | Bundle,
                    options: ContainerizeOptions) -> PreparedContext:
    """Write the build context of ``tag`` to ``options.context_only`` (default: the
    store's build folder) without building it."""
    bundle = find_bundle(tag)
    image = options.image or default_image(bundle.name, bundle.version)
    target = resolve_context_dir(bundle, options.context_only)
    with locked(target):
        replaced = is_context(target)
        path = write_context(bundle, out_dir=options.context_only,
                             base_image=options.base_image, image=image)
    return PreparedContext(bundle, image, Path(path), build_command(image, path), replaced)


def run_cli(tag: str, options: ContainerizeOptions) -> int:
    """``bento-nb containerize``: a progress bar on a terminal, log lines otherwise."""
    if options.context_only is not None:
        prepared = prepare_context(tag, options)
        print(f"wrote the build context of {prepared.bundle.tag} to {prepared.path}"
              + (" (replacing the one bento-nb wrote there before)" if prepared.replaced else ""))
        print(prepared.command)
        return 0
    with _CliProgress() as progress:
        try:
            result = build(tag, image=options.image, base_image=options.base_image,
                           progress=progress)
        except DockerUnavailable as e:
            progress.close()
            if e.command:
                print(e.command)  # stdout: the command alone, ready to copy
            raise
        progress.close(done=True)
    print(f"built {result.image} ({result.image_id[:19]}, {_mb(result.size)}) in "
          f"{result.seconds:.1f} s; {result.cached_steps}/{result.steps} steps from cache")
    bundle = find_bundle(tag)
    print("run it:  " + "\n         ".join(run_hint(result.image, bundle.manifest)))
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


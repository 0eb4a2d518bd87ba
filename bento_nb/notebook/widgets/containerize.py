"""The progress of one image build (``bento_nb.containerize.build``) as a widget: a status
line and the build log, fed from a background thread so a click never blocks the kernel.

    view = ContainerizeView()
    view.start("IrisClassifier:20260101_abc123", image="iris:1")
    view.wait()          # -> "done", "failed" or "no-daemon"

``state`` is a traitlet (``idle``, ``building``, ``done``, ``failed``, ``no-daemon``):
observe it to react to the outcome.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import traitlets

from ._shared import ERROR, OK, WARN, PlainReprMixin, colored, escape

_LOG_LINES = 200
_STATE_WORDS = {"idle": "not started", "no-daemon": "no Docker daemon"}


class ContainerizeView(PlainReprMixin, W.VBox):
    """Progress of one build: a status line and the build log.

    With no reachable Docker daemon it shows the one-line message, the build context left
    on disk and the exact ``docker build`` command to run elsewhere.
    """

    state = traitlets.Unicode("idle", help="idle, building, done, failed or no-daemon")
    message = traitlets.Unicode("", help="the outcome in one line")

    def __init__(self, **kwargs: Any):
        self.status = W.HTML()
        self.log_box = W.Textarea(disabled=True, rows=8,
                                  layout=W.Layout(width="100%", display="none"))
        super().__init__([self.status, self.log_box], **kwargs)
        self.lines: list[str] = []
        self.result = None
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None
        self._last_flush = 0.0
        self._lock = threading.Lock()

    # running

    def start(self, tag: str, image: str | None = None, base_image: str | None = None) -> None:
        """Build in a background thread (a click handler must not block the kernel)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self.run, args=(tag, image, base_image),
                                        name="bento-containerize", daemon=True)
        self._set("building", f"building an image for {escape(tag)} …")
        self._thread.start()

    def wait(self, timeout: float | None = None) -> str:
        """Wait for a build started with :meth:`start`; returns the final state."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def run(self, tag: str, image: str | None = None, base_image: str | None = None,
            echo: Callable[[str], None] | None = None):
        """Build now, in this thread; returns the BuildResult or None on failure (the view
        says why). ``echo`` also receives every log line (the magic prints them in a
        terminal)."""
        from ...errors import BentoNbError, DockerUnavailable

        self.lines, self.result, self.error = [], None, None
        self._set("building", f"building an image for {escape(tag)} …")

        def progress(line: str) -> None:
            line = str(line).rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if echo is not None:
                echo(line)
            self._flush()

        try:
            from ...containerize import build

            result = build(tag, image=image, base_image=base_image, progress=progress)
        except DockerUnavailable as e:
            self.error = e
            context = getattr(e, "context", None)
            command = getattr(e, "command", None)
            extra = ""
            if context and str(context) not in e.message:
                extra += f"<br>build context: <code>{escape(context)}</code>"
            if command and command not in e.message:
                extra += f"<br>build it where Docker runs: <code>{escape(command)}</code>"
            self.message = e.message
            self._set("no-daemon", colored(f"⚠ {escape(e.message)}", WARN) + extra)
            return None
        except BentoNbError as e:
            self.error = e
            self.message = e.message
            self._set("failed", colored(f"✗ build failed: {escape(e.message)}", ERROR))
            return None
        except Exception as e:  # a bug or an SDK surprise: say it, keep the kernel alive
            self.error = e
            self.message = f"{type(e).__name__}: {e}"
            self._set("failed", colored(f"✗ build failed: {escape(self.message)}", ERROR))
            return None
        self.result = result
        cached = getattr(result, "cached_steps", None)
        seconds = getattr(result, "seconds", None)
        details = []
        if seconds is not None:
            details.append(f"{seconds:.1f} s")
        if cached:
            details.append(f"{cached} cached steps")
        self.message = f"built {result.image}"
        self._set("done", colored(f"✓ built <code>{escape(result.image)}</code>", OK)
                  + (f" ({escape(', '.join(details))})" if details else "")
                  + "<br>run it: " + "<br>".join(
                      f"<code>{escape(line)}</code>" for line in self._run_hint(tag, result.image)))
        return result

    @staticmethod
    def _run_hint(tag: str, image: str) -> list[str]:
        from ...containerize.context import run_hint
        from ...store import find_bundle

        return run_hint(image, find_bundle(tag).manifest)

    # display

    def _set(self, state: str, status_html: str) -> None:
        self.status.value = status_html
        self.state = state
        self._flush(force=True)

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < 0.2:  # keep comm traffic bounded
            return
        self._last_flush = now
        with self._lock:
            lines = self.lines[-_LOG_LINES:]
        if lines:
            self.log_box.layout.display = None
            self.log_box.value = "\n".join(lines)

    def plain_text(self) -> str:
        state = _STATE_WORDS.get(self.state, self.state)
        return f"containerize: {state}" + (f" — {self.message}" if self.message else "")

    def plain_html(self) -> str:
        return f"<div>{self.status.value}</div>"

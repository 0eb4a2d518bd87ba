"""The one refresh thread of a kernel: every live server widget is redrawn from it.

A registry of widgets and a single daemon thread (``bento-nb-widget-refresh``) that calls
each one's ``refresh()`` about once a second. ``refresh()`` returns False when there is
nothing left to follow (the server stopped) and the widget leaves the registry; so does a
widget whose refresh raises (its comm went away) and one that is closed (:func:`unwatch`).
The thread ends as soon as the registry is empty and starts again with the next widget::

    watch(widget)     # refreshed from now on
    unwatch(widget)   # no longer (close(), or the server stopped)

N widgets cost one thread and N small ``refresh()`` calls per second, not N threads.
"""

from __future__ import annotations

import threading
from typing import Any

THREAD_NAME = "bento-nb-widget-refresh"
INTERVAL_SECONDS = 1.0


class Refresher:
    """A set of widgets and the thread that refreshes them while the set is not empty."""

    def __init__(self, interval: float = INTERVAL_SECONDS):
        self.interval = interval
        self._widgets: list[Any] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def watch(self, widget: Any) -> None:
        with self._lock:
            if widget not in self._widgets:
                self._widgets.append(widget)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()

    def unwatch(self, widget: Any) -> None:
        with self._lock:
            if widget in self._widgets:
                self._widgets.remove(widget)
        self._wake.set()  # an empty registry ends the thread now, not in a second

    def watched(self) -> list[Any]:
        with self._lock:
            return list(self._widgets)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                widgets = list(self._widgets)
                if not widgets:  # checked and cleared under the lock watch() starts under
                    self._thread = None
                    return
            for widget in widgets:
                try:
                    keep = widget.refresh()
                except Exception:  # the comm went away (kernel shutting down, closed)
                    keep = False
                if not keep:
                    self.unwatch(widget)


_refresher = Refresher()


def watch(widget: Any) -> None:
    """Refresh ``widget`` from the kernel's refresh thread until it says stop."""
    _refresher.watch(widget)


def unwatch(widget: Any) -> None:
    _refresher.unwatch(widget)


def refresher() -> Refresher:
    """The kernel's refresher (tests and ``%bento`` look at its thread)."""
    return _refresher

"""The notebook session: what one kernel has packed and is serving.

One :class:`NotebookSession` per kernel process (see :func:`current`) remembers the last
packed bundle (what ``%bento serve`` with no target serves), which variable was packed as
which bundle (``%bento serve clf`` after ``%bento pack clf`` serves that bundle, while
``clf`` still holds the packed object), and the servers started from
the notebook, keyed by what was served. Serving the same target again *replaces* its
server instead of leaking a port, so re-running a ``%bento serve`` cell is harmless::

    session = current()
    entry = session.serve(resolve("IrisClassifier"))     # starts
    entry = session.serve(resolve("IrisClassifier"))     # replaces (same target key)
    session.stop_all()

Every server of the process is stopped when the kernel shuts down or restarts: the hook
runs before Python joins non-daemon threads, so a server thread cannot hold the exit up.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

DEFAULT_PORT = 5000


@dataclass
class ServedEntry:
    """One server started from the notebook, and the widgets showing it."""

    key: str
    handle: Any                      # bento_nb.server.ServerHandle
    widgets: list = field(default_factory=list)
    api_token: str | None = None     # what clients of this server must send


class NotebookSession:
    """Per-kernel state of the ``%bento`` magic. Thread-safe; cheap."""

    def __init__(self) -> None:
        self.last_packed: str | None = None
        self._packed: dict[str, tuple[Callable[[], Any] | None, int, str]] = {}
        self._served: dict[str, ServedEntry] = {}
        self._lock = threading.RLock()
        self.last_widget = None          # the widget the magic showed last
        self.server_widgets: list = []   # every server widget, refreshed after a %bento stop

    # packing

    def remember_pack(self, var: str, obj: Any, tag: str) -> None:
        """``%bento pack VAR`` saved ``obj`` (the value of ``VAR``) as ``tag``. Held weakly
        where possible: a retrained model is not kept alive by this."""
        try:
            ref: Callable[[], Any] | None = weakref.ref(obj)
        except TypeError:  # lists, dicts, ...: compared by identity only
            ref = None
        with self._lock:
            self._packed[var] = (ref, id(obj), tag)

    def announce_pack(self, var: str, bundle: Any) -> None:
        """``%bento pack VAR`` saved ``bundle``: the server of ``VAR`` (``%bento serve
        VAR`` of the live object) follows it from now on, swapping it in (see
        :mod:`bento_nb.server.versions`)."""
        entry = self.entry_for(f"var:{var}")
        if entry is not None:
            entry.handle.announce(bundle)

    def packed_tag(self, var: str, obj: Any) -> str | None:
        """The tag ``var`` was packed as, while ``var`` still holds that very object."""
        with self._lock:
            ref, ident, tag = self._packed.get(var, (None, 0, None))
        if tag is None or id(obj) != ident or (ref is not None and ref() is not obj):
            return None
        return tag

    # serving

    def serve(self, target: Any, port: int | None = None,
              on_replace: Callable[[ServedEntry], None] | None = None,
              **options: Any) -> ServedEntry:
        """Serve ``target`` (an :class:`~bento_nb.actions.Target`) under its ``key``.

        A server already running for that key is stopped first and, unless ``port`` is
        given, its port is reused (the URL the notebook shows stays valid). A
        busy port (another target, another process) moves to the next free one:
        ``handle.moved_from`` then holds the asked port. ``options`` are
        :class:`~bento_nb.server.config.ServerConfig` fields.
        """
        from ..actions import serve
        from ..server.config import ServerConfig

        key = target.key
        with self._lock:
            self._forget_stopped()
            old = self._served.pop(key, None)
            if old is not None:
                if port is None:  # keep the URL the notebook already shows
                    port = old.handle.port
                if on_replace is not None:
                    on_replace(old)
                old.handle.stop()
            port = DEFAULT_PORT if port is None else port
            handle = serve(target, ServerConfig(port=port, port_fallback=True, **options))
            entry = ServedEntry(key, handle)
            self._served[key] = entry
            return entry

    def _forget_stopped(self) -> None:
        for key, entry in list(self._served.items()):
            if not entry.handle.running:
                del self._served[key]

    def entry_for(self, key: str) -> ServedEntry | None:
        with self._lock:
            entry = self._served.get(key)
            return entry if entry is not None and entry.handle.running else None

    def entry_serving(self, target: Any) -> ServedEntry | None:
        """The running server of this kernel for ``target``: the server of that live
        object, or one serving that very bundle version."""
        if target.bundle is None:
            return self.entry_for(target.key)
        return next((e for e in self.entries() if e.handle.tag == target.bundle.tag), None)

    def entry_for_port(self, port: int) -> ServedEntry | None:
        with self._lock:
            for entry in self._served.values():
                if entry.handle.port == port and entry.handle.running:
                    return entry
        return None

    def entries(self) -> list[ServedEntry]:
        with self._lock:
            self._forget_stopped()
            return list(self._served.values())

    # stopping

    def stop_all(self) -> list[int]:
        """Stop every server this process runs (also those started outside the magic).
        Returns the ports that were stopped."""
        ports = []
        with self._lock:
            handles = [e.handle for e in self._served.values()]
            self._served.clear()
        try:
            from ..server import running_servers
            handles += [h for h in running_servers() if h not in handles]
        except ImportError:
            pass
        for handle in handles:
            if handle.running:
                ports.append(handle.port)
            handle.stop()
        return ports


_SESSION: NotebookSession | None = None
_HOOKED = False
_SESSION_LOCK = threading.Lock()


def current() -> NotebookSession:
    """The session of this process, created (and its shutdown hook installed) on first use."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = NotebookSession()
            _install_shutdown_hook()
        return _SESSION


def _shutdown() -> None:
    session = _SESSION
    if session is not None:
        try:
            session.stop_all()
        except Exception:  # interpreter is exiting: never block or fail the exit
            pass


def _install_shutdown_hook() -> None:
    """Stop servers at kernel shutdown/restart. ``threading._register_atexit`` runs before
    the interpreter joins non-daemon threads (a plain ``atexit`` hook would run after, and
    a server thread could hold the exit up); ``atexit`` stays as a fallback."""
    global _HOOKED
    if _HOOKED:
        return
    _HOOKED = True
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_shutdown)
        except RuntimeError:  # already shutting down
            pass
    atexit.register(_shutdown)

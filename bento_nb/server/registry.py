"""Which prediction servers are running: in this process, and on this machine.

The one piece of global state of bento_nb. In-process, :func:`running` lists the live
handles (``bento_nb.server.running_servers()``). On disk, each running server writes
``<jupyter runtime dir>/bento_nb/servers/<pid>-<port>.json``::

    {"pid": 4242, "host": "127.0.0.1", "port": 5000, "url": "http://127.0.0.1:5000",
     "tag": "IrisClassifier:20240101-...", "name": "IrisClassifier", "apis": ["predict"],
     "started_at": "2024-01-01T12:00:00+00:00"}

removed on stop; :func:`list_servers` skips (and deletes) files of dead processes, so the
Jupyter server extension sees exactly the servers that are alive.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from .._processes import pid_alive

_lock = threading.Lock()
_running: list[Any] = []
_atexit_registered = False


# -- this process -------------------------------------------------------------------------


def add(handle: Any) -> None:
    global _atexit_registered
    with _lock:
        _running.append(handle)
        if not _atexit_registered:
            atexit.register(_remove_own_records)
            _atexit_registered = True


def _remove_own_records() -> None:
    """At interpreter exit (server threads are daemons): drop this process's records."""
    for handle in running():
        remove_record(os.getpid(), handle.port)


def discard(handle: Any) -> None:
    with _lock:
        if handle in _running:
            _running.remove(handle)


def running() -> list[Any]:
    with _lock:
        return list(_running)


# -- this machine -------------------------------------------------------------------------


def servers_dir() -> Path:
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / "bento_nb" / "servers"


def record_path(pid: int, port: int) -> Path:
    return servers_dir() / f"{pid}-{port}.json"


def write_record(record: dict) -> Path | None:
    """Write a server record atomically (temp file + rename); returns its path. The record
    only serves the Jupyter panel: where it cannot be written (a read-only container, say)
    the server runs anyway, with a warning, and None is returned."""
    path = record_path(record["pid"], record["port"])
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        print(f"bento-nb: warning: cannot register the server in {path.parent} "
              f"({e.strerror or e}); Jupyter will not list it (set JUPYTER_RUNTIME_DIR to a "
              "writable folder)", file=sys.stderr)
        return None
    return path


def remove_record(pid: int, port: int) -> None:
    try:
        record_path(pid, port).unlink()
    except OSError:  # gone already, or never written (see write_record)
        pass


def list_servers() -> list[dict]:
    """Records of running servers on this machine, sorted by port. Files whose process is
    gone (or that cannot be read) are removed."""
    folder = servers_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            _unlink(path)
            continue
        if not pid_alive(pid):
            _unlink(path)
            continue
        found.append(record)
    return sorted(found, key=lambda r: (r.get("port", 0), r.get("pid", 0)))


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass

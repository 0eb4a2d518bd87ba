"""Which prediction servers are running: in this process, and on this machine.

The one piece of global state of bento_nb. In-process, :func:`running` lists the live
handles (``bento_nb.server.running_servers()``). On disk, each running server writes
``<jupyter runtime dir>/bento_nb/servers/<pid>-<port>.json``::

    {"pid": 4242, "host": "127.0.0.1", "port": 5000, "url": "http://127.0.0.1:5000",
     "tag": "IrisClassifier:20240101-...", "name": "IrisClassifier", "apis": ["predict"],
     "started_at": "2024-01-01T12:00:00+00:00", "secret": "<random, per server>",
     "control": "<random, per server>", "kernel_id": "5f0c...",   # or "command": "bento-nb serve ..."
    }

removed on stop. The folder is ``0700`` and each file ``0600``: only this user reads them.
:func:`read_records` is the one reader: it deletes files of dead processes, and skips and
reports (never raises on) files that are not such a record, so the Jupyter server extension
sees exactly the servers that are alive.

The ``secret`` lets the Jupyter proxy check that the process answering on a record's port is
the server that wrote the record, not whatever took the port (or the pid) after it: it sends
a random nonce to ``GET /.bento/identity?nonce=...`` and expects
:func:`identity_proof` ``(secret, nonce)`` back. The secret itself never crosses the wire
and is never shown (:func:`list_servers`, ``/metadata`` and ``api/servers`` leave it out).

The ``control`` token is what the Jupyter extension sends (only after the identity check) to
``POST /.bento/stop`` and ``GET /.bento/stats`` of the server (:mod:`.control`): whoever can
read the record, i.e. this user, may stop the server and read its figures. ``kernel_id`` (a
server started inside a Jupyter kernel) or ``command`` (any other process) say who owns the
server; :func:`owner` gives them for this process.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import os
import re
import secrets
import shlex
import stat
import sys
import threading
from dataclasses import dataclass
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


IDENTITY_PATH = "/.bento/identity"
_UID = os.getuid() if hasattr(os, "getuid") else None  # None: no POSIX owners and modes


def new_secret() -> str:
    """A fresh per-server secret for its record (256 random bits)."""
    return secrets.token_urlsafe(32)


PRIVATE_FIELDS = ("secret", "control")  # never shown, never sent except as described above


def public(record: dict) -> dict:
    """``record`` without its :data:`PRIVATE_FIELDS`."""
    return {k: v for k, v in record.items() if k not in PRIVATE_FIELDS}


_KERNEL_FILE = re.compile(r"kernel-([0-9A-Za-z-]{1,64})\.json")
_COMMAND_MAX = 500


def owner() -> dict:
    """Who runs servers in this process, for its records: ``{"kernel_id": ...}`` inside a
    Jupyter kernel (from the kernel's connection file name, the id the Jupyter server's
    sessions know it by), else ``{"command": "bento-nb serve ..."}`` (this process's
    command line, shortened to 500 characters)."""
    if "ipykernel" in sys.modules:
        try:
            from ipykernel.connect import get_connection_file

            found = _KERNEL_FILE.fullmatch(os.path.basename(get_connection_file()))
        except Exception:  # noqa: BLE001 - ipykernel imported but no kernel app running
            found = None
        if found:
            return {"kernel_id": found.group(1)}
    argv = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else sys.executable,
            *sys.argv[1:]]
    if argv[0] == "__main__.py":  # python -m bento_nb
        argv[0] = "python -m bento_nb"
    command = shlex.join(argv[1:])
    return {"command": (argv[0] + " " + command).strip()[:_COMMAND_MAX]}


def control_matches(expected: str | None, given: str | bytes | None) -> bool:
    """Whether ``given`` is the control token ``expected`` (constant time; never true when
    either is missing)."""
    if not expected or not given:
        return False
    if isinstance(given, str):
        given = given.encode("utf-8", "replace")
    return hmac.compare_digest(expected.encode(), given)


def identity_proof(secret: str, nonce: str) -> str:
    """What a server holding ``secret`` answers to ``nonce`` (hex HMAC-SHA256)."""
    return hmac.new(secret.encode(), b"bento_nb identity\n" + nonce.encode(),
                    hashlib.sha256).hexdigest()


def _private_dir(folder: Path) -> None:
    """Create ``folder`` (and its ``bento_nb`` parent) user-only; tighten them if they are
    ours but open to others (written by an older version)."""
    for path in (folder.parent, folder):
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.stat()
        if info.st_uid == _UID and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, 0o700)


def write_record(record: dict) -> Path | None:
    """Write a server record atomically (temp file + rename), readable by this user only;
    returns its path. The record only serves the Jupyter panel: where it cannot be written
    (a read-only container, say) the server runs anyway, with a warning, and None is
    returned."""
    path = record_path(record["pid"], record["port"])
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    try:
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        _private_dir(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if hasattr(os, "fchmod"):  # an old temp file of the same name keeps its mode
                os.fchmod(f.fileno(), 0o600)
            f.write(json.dumps(record, indent=1))
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


@dataclass
class BadRecord:
    """A file in the registry folder that is not a usable record, and why."""

    path: str
    error: str

    def to_json(self) -> dict:
        return {"path": self.path, "error": self.error}


# field -> the JSON types it may have; None allowed where listed
_FIELDS: dict[str, tuple] = {
    "pid": (int,), "port": (int,), "host": (str, type(None)), "url": (str, type(None)),
    "tag": (str, type(None)), "name": (str, type(None)), "apis": (list,),
    "started_at": (str, type(None)), "secret": (str, type(None)),
    "control": (str, type(None)), "kernel_id": (str, type(None)), "command": (str, type(None)),
}
_REQUIRED = ("pid", "port")


def _check(record: Any) -> str | None:
    """Why ``record`` (parsed JSON) is not a server record, or None when it is one."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for key in _REQUIRED:
        if key not in record:
            return f"missing {key!r}"
    for key, types in _FIELDS.items():
        value = record.get(key)
        if key in record and (isinstance(value, bool) or not isinstance(value, types)):
            return f"{key!r} is {json.dumps(value)[:40]}, not {types[0].__name__}"
    if record["pid"] <= 0:
        return f"'pid' is {record['pid']}"
    if not 0 < record["port"] < 65536:
        return f"'port' is {record['port']}, not 1-65535"
    if not all(isinstance(api, str) for api in record.get("apis", [])):
        return "'apis' is not a list of names"
    return None


def read_records() -> tuple[list[dict], list[BadRecord]]:
    """``(records, bad)``: the records of running servers on this machine, sorted by port
    (with their ``secret``), and the files that are not usable records (not JSON, a field
    missing or of the wrong type, owned by another user or readable by others). Files of
    processes that are gone are deleted; bad files are left for the user to look at."""
    folder = servers_dir()
    if not folder.is_dir():
        return [], []
    found: list[dict] = []
    bad: list[BadRecord] = []
    for path in sorted(folder.glob("*.json")):
        try:
            info = path.lstat()
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            bad.append(BadRecord(str(path), f"cannot be read: {getattr(e, 'strerror', e) or e}"))
            continue
        try:
            record = json.loads(raw)
        except ValueError as e:
            bad.append(BadRecord(str(path), f"not JSON: {e}"))
            continue
        pid = record.get("pid") if isinstance(record, dict) else None
        if isinstance(pid, int) and not isinstance(pid, bool) and not pid_alive(pid):
            _unlink(path)  # stale, whatever else is wrong with it
            continue
        problem = _check(record)
        if problem is None and not stat.S_ISREG(info.st_mode):
            problem = "not a regular file"
        elif problem is None and _UID is not None and info.st_uid != _UID:
            problem = f"owned by another user (uid {info.st_uid})"
        elif problem is None and _UID is not None and stat.S_IMODE(info.st_mode) & 0o077:
            problem = (f"mode {stat.S_IMODE(info.st_mode):o}: other users can read it "
                       "(a record must be 0600)")
        if problem is not None:
            bad.append(BadRecord(str(path), problem))
            continue
        found.append(record)
    found.sort(key=lambda r: (r["port"], r["pid"]))
    return found, bad


def list_servers() -> list[dict]:
    """Records of running servers on this machine, sorted by port, without their secret and
    control token. Files whose process is gone are removed; files that are not records are
    skipped (:func:`read_records` says why)."""
    return [public(r) for r in read_records()[0]]


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass

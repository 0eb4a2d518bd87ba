"""Process liveness, shared by everything that leaves files keyed by a pid (the store's
temp dirs, the running-server registry, the Jupyter discovery)."""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """True while a process with this pid exists (also when it belongs to another user)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

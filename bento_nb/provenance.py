"""Provenance: where a bundle came from, recorded in its manifest at pack time.

:func:`collect` gathers what is cheap and certain, each part absent when it cannot be told::

    {"notebook": "/home/ada/iris/train.ipynb",     # packed from a Jupyter kernel
     "cells": "# In[1]:\\nimport ...",             # the cells run so far (IPython)
     "cells_truncated": False,
     "git": {"commit": "3f2a...", "dirty": True},  # the folder is in a git repository
     "python": "CPython 3.11.7",
     "packages_sha256": "9b1c...", "packages": 212}

- ``notebook``: the path jupyter-server (2.0 and later) gives a kernel it starts for a
  notebook, in the ``JPY_SESSION_NAME`` environment variable, which ipykernel also puts in
  the namespace as ``__session__``; VS Code's ``__vsc_ipynb_file__``. Only read inside a
  kernel: a script started from a notebook inherits the variable but is not the notebook.
  Asking the Jupyter server's sessions API would need its URL and token: not worth it.
- ``cells``: IPython's raw input history, the latest cells kept up to
  :data:`CELLS_MAX_BYTES`. **Cell sources may hold secrets** (a token pasted in a cell):
  pack with ``provenance=False`` (``%bento pack --no-provenance``) to record none of this.
- ``git``: ``git rev-parse HEAD`` and ``git status --porcelain`` (untracked files count as
  dirty) in the notebook's folder, else the working directory, each bounded by
  :data:`GIT_TIMEOUT` seconds; absent outside a repository or without git.
- ``packages_sha256``: sha256 of the sorted ``name==version`` lines of every installed
  distribution: two environments with the same hash have the same packages.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

CELLS_MAX_BYTES = 64 * 1024
GIT_TIMEOUT = 3.0


def collect(shell: Any = None, cwd: str | os.PathLike | None = None) -> dict:
    """The provenance of a pack now; ``shell``: the IPython shell (default: the running
    one, if any); ``cwd``: where git is asked when no notebook path is known."""
    shell = shell if shell is not None else _running_shell()
    out: dict[str, Any] = {}
    notebook = notebook_path(shell)
    if notebook:
        out["notebook"] = notebook
    if shell is not None:
        cells, truncated = cell_sources(shell)
        if cells:
            out["cells"] = cells
            out["cells_truncated"] = truncated
    folder = Path(cwd or os.getcwd())
    if notebook and os.path.isabs(notebook) and os.path.isdir(os.path.dirname(notebook)):
        folder = Path(os.path.dirname(notebook))
    git = git_state(folder)
    if git:
        out["git"] = git
    out["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    out["packages_sha256"], out["packages"] = packages_hash()
    return out


def _running_shell() -> Any:
    """The IPython shell this code runs in, without importing IPython when it is not."""
    if "IPython" not in sys.modules:
        return None
    try:
        return sys.modules["IPython"].get_ipython()
    except Exception:  # noqa: BLE001 - an IPython too old or half-imported: no shell
        return None


def notebook_path(shell: Any) -> str | None:
    """The notebook of the kernel ``shell`` runs in, or None outside a kernel or when the
    kernel was not started for a notebook by a Jupyter server (or VS Code)."""
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    namespace = getattr(shell, "user_ns", {}) or {}
    for value in (namespace.get("__vsc_ipynb_file__"), namespace.get("__session__"),
                  os.environ.get("JPY_SESSION_NAME")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def cell_sources(shell: Any, limit: int = CELLS_MAX_BYTES) -> tuple[str, bool]:
    """The cells run so far as one text (``# In[n]:`` before each), the latest kept whole
    up to ``limit`` bytes of UTF-8 (a single latest cell longer than that: its end);
    and whether older cells were left out."""
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    kept: list[str] = []
    size = 0
    truncated = False
    for number in range(len(history) - 1, 0, -1):  # entry 0 is always empty
        source = history[number]
        if not isinstance(source, str) or not source.strip():
            continue
        block = f"# In[{number}]:\n{source.rstrip()}\n"
        length = len(block.encode("utf-8"))
        if size + length > limit:
            truncated = True
            if not kept:  # the latest cell alone is too long: keep its end
                tail = block.encode("utf-8")[-limit:].decode("utf-8", "ignore")
                kept.append(tail)
            break
        kept.append(block)
        size += length
    return "\n".join(reversed(kept)), truncated


def git_state(folder: str | os.PathLike) -> dict | None:
    """``{"commit": sha, "dirty": bool}`` of the repository holding ``folder``; None when
    it is not in one, git is missing or slower than :data:`GIT_TIMEOUT`."""
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None or not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        return None
    state: dict[str, Any] = {"commit": commit}
    status = _git(folder, "status", "--porcelain")
    if status is not None:
        state["dirty"] = bool(status)
    return state


def _git(folder: str | os.PathLike, *args: str) -> str | None:
    # GIT_OPTIONAL_LOCKS=0: `git status` then never takes the index lock a user's own git
    # command may be waiting for.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(["git", *args], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def packages_hash() -> tuple[str, int]:
    """(sha256 hex, count) over the sorted, de-duplicated ``name==version`` lines of the
    installed distributions (names normalized as pip does: ``Foo_Bar`` is ``foo-bar``)."""
    from importlib import metadata

    lines = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            lines.add(f"{re.sub(r'[-_.]+', '-', name).lower()}=={dist.version}")
    text = "\n".join(sorted(lines))
    return hashlib.sha256(text.encode("utf-8")).hexdigest(), len(lines)

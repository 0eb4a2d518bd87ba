"""How the store touches the file system: paths checked as text, links never followed,
a full disk reported as DiskFull.

Every path a manifest or an archive names goes through :func:`bundle_path` before it is
joined to a folder; every folder of the repository is looked at with ``lstat``, and a
symbolic link where the store keeps its own folders is refused, never followed::

    bundle_path("artifacts/model.pkl")    # 'artifacts/model.pkl'
    bundle_path("../../etc/passwd")       # None
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

from ..errors import DiskFull, StoreError
from .display import printable

# A path inside a bundle: at most 8 segments of portable characters, none empty, none
# starting with '.' (so no '.', '..', '//', absolute path, backslash or control character).
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_MAX_DEPTH = 8
_FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def bundle_path(text: Any) -> str | None:
    """``text`` if it is a relative path that stays inside a bundle (``artifacts/model.pkl``),
    else None. Checked on the text itself, never through the file system: absolute paths,
    ``..``, ``.``, empty segments (``a//b``), backslashes and any character outside
    ``[A-Za-z0-9_.-]`` are refused, whatever a later ``Path`` join would make of them."""
    if not isinstance(text, str) or len(text) > 1024:
        return None
    parts = text.split("/")
    if len(parts) > _MAX_DEPTH or not all(_SEGMENT_RE.match(part) for part in parts):
        return None
    return text


def is_real_dir(path: Path) -> bool:
    """A directory, not a symbolic link to one (lstat: the link itself is looked at)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def refuse_link(path: Path, what: str) -> None:
    """Raise StoreError if ``path`` is a symbolic link: the store never follows one."""
    if os.path.islink(path):
        raise StoreError(f"{printable(path)} is a symbolic link; bento_nb never follows links "
                         f"inside the store ({what}): replace it with a folder")


def disk_full(error: OSError, doing: str, where: Path) -> DiskFull | None:
    """DiskFull for an out-of-space (or quota, or file-size limit) OSError, else None."""
    if error.errno not in _FULL_DISK:
        return None
    return DiskFull(f"{doing}: {os.strerror(error.errno).lower()} in {where}; nothing was "
                    "kept: free some space and try again")

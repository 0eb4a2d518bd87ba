"""The files of a service's ``@web_static_content`` folder, served under ``/``.

    files = StaticFiles.of(service)          # None when the service has no such folder
    status, body, headers = files.get("/css/app.css")

The folder is listed once, when the server starts: only the regular files found then,
never through a symbolic link (and, for a bundle, only those its manifest lists with
their sha256), can be answered, and a request path is only ever looked
up in that list (never joined to a folder), so ``..``, encoded slashes or absolute paths
reach nothing. A file is opened without following a link (``O_NOFOLLOW``) and must still
be a regular file. ``/`` and ``/dir/`` (or ``/dir``, ``/dir/index``) are the folder's
``index.html``, as BentoML 0.x served them. Anything else is a NotFound (404 JSON).
"""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import BundleCorrupted, NotFound

_INDEX = "index.html"


class StaticFiles:
    """A fixed set of files under one folder, by URL path."""

    def __init__(self, root: Path, listed: set[str] | None = None):
        self.root = root
        self.files = _regular_files(root)  # "css/app.css" -> its path
        if listed is not None:  # a bundle's: only what its manifest lists (and verified)
            self.files = {name: path for name, path in self.files.items() if name in listed}

    @classmethod
    def of(cls, service: Any) -> StaticFiles | None:
        """The service's static folder (see ``BentoService.web_static_folder``), or None."""
        folder = getattr(service, "web_static_folder", None)
        folder = folder() if callable(folder) else None
        if folder is None:
            return None
        if not stat.S_ISDIR(_lstat_mode(folder)):
            raise BundleCorrupted(f"the web_static_content folder {folder} is missing "
                                  "(or is a link)")
        bundle = getattr(service, "bundle", None)
        record = bundle.manifest.get("web_static_content") if bundle is not None else None
        if record is None:
            return cls(folder)
        prefix = f"{record}/"
        return cls(folder, {r["file"][len(prefix):] for r in bundle.manifest.get("files") or []
                            if r["file"].startswith(prefix)})

    @property
    def has_index(self) -> bool:
        return _INDEX in self.files

    def find(self, path: str) -> str | None:
        """The listed file a URL path names, or None."""
        name = path.lstrip("/")
        if name in self.files:
            return name
        for stem in (name.removesuffix("/index"), name.rstrip("/")):
            index = f"{stem}/{_INDEX}" if stem else _INDEX
            if index in self.files:
                return index
        return None

    def get(self, path: str) -> tuple[int, bytes, list]:
        name = self.find(path)
        if name is None:
            raise NotFound(f"no route GET {path} and no such file in web_static_content")
        try:
            fd = os.open(self.files[name], os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise NotFound(f"{path} is no longer readable") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise NotFound(f"{path} is not a file")
            body = f.read()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "application/json",
                                                "image/svg+xml"):
            kind += "; charset=utf-8"
        return 200, body, [(b"content-type", kind.encode()),
                           (b"x-content-type-options", b"nosniff"),
                           (b"cache-control", b"no-cache")]


def _regular_files(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):  # never descends into links
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if stat.S_ISDIR(_lstat_mode(here / d))]
        for name in filenames:
            path = here / name
            if stat.S_ISREG(_lstat_mode(path)):
                found[path.relative_to(root).as_posix()] = path
    return found


def _lstat_mode(path: Path) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0

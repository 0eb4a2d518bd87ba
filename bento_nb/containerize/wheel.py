"""A wheel of the bento_nb that is running now, so an image never needs it from a registry.

The wheel is assembled straight from the imported package directory (editable checkout or
site-packages alike) instead of calling a build backend: no build hooks (the JupyterLab
extension's npm build) run, it takes milliseconds, and it is byte-for-byte reproducible
(sorted members, fixed timestamps), so Docker's layer cache sees the same file and reuses
the install layer. Wheels are cached per version and source hash::

    path = running_wheel()          # .../cache/wheels/0.1.0-<hash>/bento_nb-0.1.0-py3-none-any.whl

Only the import package goes in; Jupyter config files and the labextension's share/ data
are for notebook installs, not for a serving image.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import threading
import zipfile
from importlib import metadata
from pathlib import Path

from .. import config
from .._version import __version__

DIST_NAME = "bento-nb"
PACKAGE = "bento_nb"
_SKIP_DIRS = {"__pycache__", "node_modules", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def package_dir() -> Path:
    return Path(sys.modules[PACKAGE].__file__).resolve().parent


def package_files(root: Path | None = None) -> list[tuple[str, Path]]:
    """``(archive name, file)`` for every file of the import package, sorted."""
    root = root or package_dir()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for filename in filenames:
            if filename.startswith(".") or filename.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(dirpath) / filename
            files.append((f"{PACKAGE}/{path.relative_to(root).as_posix()}", path))
    return sorted(files)


def declared_requirements() -> list[str]:
    """bento_nb's ``Requires-Dist`` lines, from ``pyproject.toml`` when running from a source
    checkout (an editable install's metadata may predate the last edit), else from the
    installed distribution's metadata."""
    pyproject = package_dir().parent / "pyproject.toml"
    if pyproject.is_file():
        try:
            import tomllib
        except ImportError:  # Python 3.10
            tomllib = None
        if tomllib is not None:
            with open(pyproject, "rb") as f:
                project = tomllib.load(f).get("project", {})
            if project.get("name") == DIST_NAME:
                requires = list(project.get("dependencies", []))
                for extra, reqs in sorted(project.get("optional-dependencies", {}).items()):
                    requires += [f"{r}; extra == '{extra}'" for r in reqs]
                return requires
    try:
        return list(metadata.distribution(DIST_NAME).requires or [])
    except metadata.PackageNotFoundError:
        return []


def _metadata_text(requires: list[str]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DIST_NAME}",
        f"Version: {__version__}",
        "Summary: Serve a machine-learning model straight from a Jupyter notebook "
        "(wheel assembled by bento_nb containerize).",
        "Requires-Python: >=3.10",
    ]
    extras = sorted({r.split("extra ==")[1].strip(" '\"") for r in requires if "extra ==" in r})
    lines += [f"Provides-Extra: {e}" for e in extras]
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n"


_WHEEL_TEXT = ("Wheel-Version: 1.0\nGenerator: bento_nb.containerize\nRoot-Is-Purelib: true\n"
               "Tag: py3-none-any\n")
_ENTRY_POINTS = "[console_scripts]\nbento-nb = bento_nb.cli:main\n"


def wheel_name() -> str:
    return f"{PACKAGE}-{__version__}-py3-none-any.whl"


def running_wheel(cache_dir: Path | None = None) -> Path:
    """Build (or reuse from the cache) a wheel of the running bento_nb; return its path."""
    files = package_files()
    requires = declared_requirements()
    meta = _metadata_text(requires)
    digest = hashlib.sha256(meta.encode())
    contents = []
    for arcname, path in files:
        data = path.read_bytes()
        digest.update(arcname.encode() + b"\0" + hashlib.sha256(data).digest())
        contents.append((arcname, data))
    source_hash = digest.hexdigest()[:16]
    folder = (cache_dir or config.home() / "cache" / "wheels") / f"{__version__}-{source_hash}"
    target = folder / wheel_name()
    if target.is_file():
        return target

    dist_info = f"{PACKAGE}-{__version__}.dist-info"
    contents += [(f"{dist_info}/METADATA", meta.encode()),
                 (f"{dist_info}/WHEEL", _WHEEL_TEXT.encode()),
                 (f"{dist_info}/entry_points.txt", _ENTRY_POINTS.encode())]
    record = [f"{name},sha256={_urlsafe_sha256(data)},{len(data)}" for name, data in contents]
    record.append(f"{dist_info}/RECORD,,")
    contents.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{target.name}.{os.getpid()}.{threading.get_ident()}.part"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in contents:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _urlsafe_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

"""The local model store: versioned bundles on disk.

Layout under ``$BENTO_NB_HOME`` (see :mod:`bento_nb.config`)::

    repository/<Name>/<version>/bento.yml        person-readable manifest
                                /requirements.txt
                                /service.pkl      the service definition (cloudpickle)
                                /service.py       its source, when it is a class
                                /artifacts/...    the packed models
                                /README.md, Dockerfile
    repository/.tmp/                               bundles being written

A bundle is written into ``.tmp/`` and renamed into place, so a crash or ``kill -9`` at any
moment leaves no visible half bundle; leftovers of dead writers are removed by the next
:class:`Store` that opens the repository. Tags are ``Name:version``; ``Name`` and
``Name:latest`` mean the newest version. Versions sort by creation time::

    store = Store()
    bundle = store.get("IrisClassifier:latest")
    print(bundle.tag, bundle.path, bundle.size)
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import os
import re
import secrets
import shutil
import tarfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from . import config
from ._processes import pid_alive
from .errors import BundleCorrupted, BundleNotFound, InvalidName, UnsafeArchive, UsageError

MANIFEST = "bento.yml"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_TMP = ".tmp"
_STALE_SECONDS = 3600
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".bento")  # what export writes: a gzip'd tar


# -- names and tags -----------------------------------------------------------------------


def validate_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a valid bundle name or version, else raise InvalidName."""
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        raise InvalidName(
            f"invalid {what} {value!r}: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True)
class Tag:
    """``Name:version``; ``version`` is None for "the newest"."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Tag":
        """``Name``, ``Name:latest`` or ``Name:version``; anything else (``Name:`` too)
        raises InvalidName."""
        if not isinstance(text, str) or not text:
            raise InvalidName("empty tag: expected Name or Name:version")
        name, sep, version = text.partition(":")
        validate_name(name)
        if sep and not version:
            raise InvalidName(f"invalid tag {text!r}: empty version after ':'; "
                              f"use {name} or {name}:latest")
        if version in ("", "latest"):
            return cls(name, None)
        return cls(name, validate_name(version, "version"))

    def __str__(self) -> str:
        return f"{self.name}:{self.version or 'latest'}"


def new_version(now: float | None = None) -> str:
    """A version string that sorts by creation time: ``20261124_143000_123_9f3a1c``."""
    now = time.time() if now is None else now
    stamp = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
    return f"{stamp:%Y%m%d_%H%M%S}_{stamp.microsecond // 1000:03d}_{secrets.token_hex(3)}"


# -- hashing ------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


class HashingWriter:
    """A binary file that hashes what is written to it: one pass for write and sha256."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "wb")
        self._hash = hashlib.sha256()
        self._pool: ThreadPoolExecutor | None = None
        self.size = 0

    _CHUNK = 16 << 20

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if len(view) <= self._CHUNK:
            self._hash.update(view)
            self._file.write(view)
        else:
            # Large buffers: hash each chunk in a helper thread while the chunk is written
            # (hashlib and file writes both release the GIL), so hashing costs little time.
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="bento-nb-sha256")
            for start in range(0, len(view), self._CHUNK):
                chunk = view[start:start + self._CHUNK]
                hashed = self._pool.submit(self._hash.update, chunk)
                self._file.write(chunk)
                hashed.result()
        self.size += len(view)
        return len(view)

    def close(self) -> dict:
        self._file.close()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return {"sha256": self._hash.hexdigest(), "size": self.size}

    def __enter__(self) -> "HashingWriter":
        return self

    def __exit__(self, *exc) -> None:
        if not self._file.closed:
            self.close()


# -- bundles ------------------------------------------------------------------------------


@dataclass
class Bundle:
    """A saved bundle: where it is and what its manifest says."""

    name: str
    version: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def created_at(self) -> str:
        return self.manifest.get("created_at", "")

    @property
    def apis(self) -> list[dict]:
        return list(self.manifest.get("apis", []))

    @property
    def requirements(self) -> list[str]:
        return list(self.manifest.get("requirements", []))

    @property
    def labels(self) -> dict:
        return dict(self.manifest.get("labels") or {})

    @property
    def size(self) -> int:
        """Bytes on disk, all files of the bundle."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def info(self) -> dict:
        """A JSON-able summary (what ``list --json`` and the Jupyter API show)."""
        return {
            "tag": self.tag,
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "created_at": self.created_at,
            "size": self.size,
            "apis": self.apis,
            "labels": self.labels,
            "requirements": self.requirements,
        }

    def verify(self) -> None:
        """Check every file listed in the manifest against its sha256 and size."""
        for record in iter_file_records(self.manifest):
            path = self.path / record["file"]
            if not path.is_file():
                raise BundleCorrupted(f"bundle {self.tag}: missing file {record['file']}")
            if path.stat().st_size != record["size"] or sha256_file(path) != record["sha256"]:
                raise BundleCorrupted(
                    f"bundle {self.tag}: checksum mismatch in {record['file']}; "
                    "the file was modified or damaged since it was packed"
                )


def human_size(n: float) -> str:
    """``6.9 KB``, ``1.0 GB``: bundle sizes for people."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def iter_file_records(manifest: dict) -> Iterator[dict]:
    """Every ``{file, sha256, size}`` record a manifest lists (service and artifacts)."""
    service = manifest.get("service") or {}
    if "file" in service:
        yield service
    for artifact in manifest.get("artifacts") or []:
        if "file" in artifact:
            yield artifact
        if artifact.get("buffers"):
            yield artifact["buffers"]
        yield from artifact.get("files") or []  # an artifact in its own format's files


def read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    try:
        with open(file, encoding="utf-8") as f:
            manifest = yaml.safe_load(f)
    except FileNotFoundError:
        raise BundleCorrupted(f"bundle at {path} has no {MANIFEST}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BundleCorrupted(
            f"bundle at {path}: {MANIFEST} is not valid YAML ({_first_line(e)})") from None
    if not isinstance(manifest, dict) or not manifest.get("name") or not manifest.get("version"):
        raise BundleCorrupted(f"bundle at {path}: {MANIFEST} lacks name/version")
    return manifest


def _first_line(error: Exception) -> str:
    """What a parser error says is wrong, and where, in one line (YAML's own messages
    span several lines with a quote of the text)."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (docstrings) as ``|`` blocks, so the manifest reads well."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def write_manifest(path: Path, manifest: dict) -> None:
    with open(path / MANIFEST, "w", encoding="utf-8") as f:
        yaml.dump(manifest, f, Dumper=_ManifestDumper, sort_keys=False,
                  default_flow_style=False, allow_unicode=True)


# -- the store ----------------------------------------------------------------------------


@dataclass
class ListEntry:
    """One row of :meth:`Store.list`: a bundle, or the error that hides it."""

    name: str
    version: str
    path: Path
    bundle: Bundle | None = None
    error: str | None = None


class Store:
    """Bundles under ``root/repository``. Cheap to create; holds no open files."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else config.home()
        self.repository = self.root / "repository"

    # reading

    def list(self, name: str | None = None) -> list[ListEntry]:
        """All bundles (or all versions of ``name``), oldest first. A bundle whose manifest
        is unreadable is listed with its error; it never hides the others."""
        if name is not None:
            validate_name(name)
        entries: list[ListEntry] = []
        if not self.repository.is_dir():
            return entries
        names = [name] if name else sorted(os.listdir(self.repository))
        for n in names:
            if n.startswith(".") or not (self.repository / n).is_dir():
                continue
            try:
                versions = sorted(os.listdir(self.repository / n))
            except FileNotFoundError:  # its last version was deleted meanwhile
                continue
            for version in versions:
                path = self.repository / n / version
                if version.startswith(".") or not path.is_dir():
                    continue
                try:
                    manifest = read_manifest(path)
                    entries.append(ListEntry(n, version, path, Bundle(n, version, path, manifest)))
                except BundleCorrupted as e:
                    if path.exists():  # else deleted since listdir(): not part of the list
                        entries.append(ListEntry(n, version, path, error=e.message))
        return entries

    def bundles(self, name: str | None = None) -> list[Bundle]:
        return [e.bundle for e in self.list(name) if e.bundle is not None]

    def resolve(self, tag: str | Tag) -> Path:
        """The directory of a tag (without reading its manifest)."""
        tag = Tag.parse(tag) if isinstance(tag, str) else tag
        folder = self.repository / tag.name
        if tag.version is None:
            try:
                names = os.listdir(folder)
            except (FileNotFoundError, NotADirectoryError):  # never made, or just emptied
                names = []
            versions = sorted(v for v in names if not v.startswith(".") and (folder / v).is_dir())
            if not versions:
                raise BundleNotFound(
                    f"no bundle named {tag.name!r} in {self.root}; see `bento-nb list`"
                )
            return folder / versions[-1]
        path = folder / tag.version
        if not path.is_dir():
            raise BundleNotFound(f"no bundle {tag} in {self.root}; see `bento-nb list`")
        return path

    def get(self, tag: str | Tag) -> Bundle:
        """The bundle for a tag; raises BundleNotFound or BundleCorrupted."""
        path = self.resolve(tag)
        try:
            manifest = read_manifest(path)
        except BundleCorrupted:
            if not path.exists():  # deleted by another process since resolve()
                raise BundleNotFound(f"bundle {path.parent.name}:{path.name} was just deleted") from None
            raise
        return Bundle(path.parent.name, path.name, path, manifest)

    # writing

    def new_bundle_dir(self, name: str) -> Path:
        """A fresh private directory to write a bundle of ``name`` into; hand it to
        :meth:`commit` when complete. Cleans leftovers of dead writers first."""
        validate_name(name)
        tmp_root = self.repository / _TMP
        tmp_root.mkdir(parents=True, exist_ok=True)
        self.clean_leftovers()
        path = tmp_root / f"{name}.{os.getpid()}.{secrets.token_hex(4)}"
        path.mkdir()
        return path

    def commit(self, tmp_dir: Path, name: str, version: str) -> Bundle:
        """Atomically move a complete bundle directory into place as ``name:version``."""
        validate_name(name)
        validate_name(version, "version")
        target = self.repository / name / version
        for attempt in range(5):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp_dir, target)  # atomic; fails if the target exists
                break
            except FileNotFoundError:
                # A concurrent delete removed the (empty) name folder between mkdir and
                # rename: make it again.
                if attempt == 4:
                    shutil.rmtree(tmp_dir, ignore_errors=True)
                    raise
            except OSError:
                shutil.rmtree(tmp_dir, ignore_errors=True)
                raise
        return self.get(Tag(name, version))

    def save(self, name: str, write: Callable[[Path, str], dict]) -> Bundle:
        """Write a bundle: ``write(tmp_dir, version)`` fills the directory and returns the
        manifest; the directory is then renamed into place. On any error nothing is left."""
        validate_name(name)
        tmp_dir = self.new_bundle_dir(name)
        try:
            for _attempt in range(5):
                version = new_version()
                if not (self.repository / name / version).exists():
                    break
            manifest = write(tmp_dir, version)
            write_manifest(tmp_dir, manifest)
            return self.commit(tmp_dir, name, version)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

    def delete(self, tag: str | Tag) -> Path:
        """Remove one version (``Name:version``), or the newest when no version is given.
        The directory is first renamed out of sight, so a reader never sees half of it."""
        path = self.resolve(tag)
        tmp_root = self.repository / _TMP
        tmp_root.mkdir(parents=True, exist_ok=True)
        doomed = tmp_root / f"deleted.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            raise BundleNotFound(f"bundle {tag} was removed by someone else") from None
        shutil.rmtree(doomed, ignore_errors=True)
        try:
            path.parent.rmdir()  # drop the name folder when its last version goes
        except OSError:
            pass
        return path

    def clean_leftovers(self) -> int:
        """Remove temp dirs of writers that died (pid gone) or are over an hour old."""
        tmp_root = self.repository / _TMP
        removed = 0
        if not tmp_root.is_dir():
            return 0
        for entry in os.listdir(tmp_root):
            path = tmp_root / entry
            parts = entry.split(".")
            try:
                pid = int(parts[-2])
            except (ValueError, IndexError):
                pid = -1
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if not pid_alive(pid) or age > _STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    # archives

    def export(self, tag: str | Tag, file: str | os.PathLike) -> Path:
        """Write one bundle to a gzip'd tar archive named ``*.tar.gz``, ``*.tgz`` or
        ``*.bento``; an existing file of that name is replaced. The archive is written
        beside ``file`` and renamed into place, so a crash leaves no half archive. A
        directory, a missing folder or another suffix is refused (UsageError) before any
        write."""
        bundle = self.get(tag)
        file = Path(file)
        if file.is_dir():
            raise UsageError(f"cannot export to {file}: it is a directory; "
                             f"give a file name such as {file / bundle.name}.tar.gz")
        if not file.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise UsageError(f"cannot export to {file}: the archive name must end in "
                             f"{', '.join(ARCHIVE_SUFFIXES[:-1])} or {ARCHIVE_SUFFIXES[-1]}")
        if not file.parent.is_dir():
            problem = "is not a folder" if file.parent.exists() else "does not exist"
            raise UsageError(f"cannot export to {file}: {file.parent} {problem}")
        bundle.verify()
        tmp = file.with_name(f".{file.name}.{os.getpid()}.part")
        try:
            # gzip records the final name (not the temp file's) in its header
            with open(tmp, "wb") as raw, \
                    gzip.GzipFile(file.name, "wb", fileobj=raw) as stream, \
                    tarfile.open(fileobj=stream, mode="w") as tar:
                tar.add(bundle.path, arcname=f"{bundle.name}/{bundle.version}")
            os.replace(tmp, file)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return file

    def import_(self, file: str | os.PathLike) -> Bundle:
        """Import an archive made by :meth:`export`. Members that would land outside the
        bundle (absolute paths, ``..``), links and devices are refused before anything is
        written; the bundle's checksums are verified before it becomes visible. A missing
        file is BundleNotFound, a file that is no tar archive UnsafeArchive, a truncated
        one BundleCorrupted."""
        file = Path(file)
        try:
            tar = tarfile.open(file, "r:*")
        except FileNotFoundError:
            raise BundleNotFound(f"no such file: {file}") from None
        except tarfile.TarError:
            raise UnsafeArchive(f"{file}: not a bento_nb archive (not a gzip'd tar file)") from None
        with tar:
            try:
                members = tar.getmembers()
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise BundleCorrupted(
                    f"{file}: damaged or truncated archive ({_first_line(e)})") from None
            name, version = _check_members(members, file)
            if (self.repository / name / version).exists():
                raise InvalidName(f"bundle {name}:{version} already exists in {self.root}")
            tmp_dir = self.new_bundle_dir(name)
            try:
                prefix = f"{name}/{version}/"
                for m in members:
                    rel = m.name[len(prefix):] if m.name.startswith(prefix) else ""
                    if not rel:
                        continue
                    dest = tmp_dir / rel
                    if m.isdir():
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 8 << 20)
                manifest = read_manifest(tmp_dir)
                if manifest.get("name") != name or manifest.get("version") != version:
                    raise UnsafeArchive(f"{file}: manifest does not match {name}:{version}")
                Bundle(name, version, tmp_dir, manifest).verify()
            except BaseException:
                shutil.rmtree(tmp_dir, ignore_errors=True)
                raise
            return self.commit(tmp_dir, name, version)


def _check_members(members: list[tarfile.TarInfo], file: Path) -> tuple[str, str]:
    """Refuse anything but regular files and dirs under one ``Name/version/`` prefix."""
    if not members:
        raise UnsafeArchive(f"{file}: empty archive")
    tops: set[tuple[str, str]] = set()
    for m in members:
        name = m.name
        parts = Path(name).parts
        if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts or "\\" in name:
            raise UnsafeArchive(f"{file}: refusing member {name!r} that escapes the bundle")
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchive(f"{file}: refusing member {name!r}: links and devices are not allowed")
        if len(parts) >= 2:
            tops.add((parts[0], parts[1]))
        elif not m.isdir():
            raise UnsafeArchive(f"{file}: member {name!r} is outside a Name/version/ folder")
    if len(tops) != 1:
        raise UnsafeArchive(f"{file}: expected exactly one Name/version/ bundle, found {len(tops)}")
    name, version = tops.pop()
    validate_name(name)
    validate_name(version, "version")
    return name, version

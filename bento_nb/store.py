"""The local model store: versioned bundles on disk.

Layout under ``$BENTO_NB_HOME`` (see :mod:`bento_nb.config`)::

    repository/<Name>/<version>/bento.yml        person-readable manifest: lists every
                                                  other file with its sha256, and its own
                                                  ``digest``
                                /requirements.txt
                                /service.pkl      the service definition (cloudpickle)
                                /service.py       its source, when it is a class
                                /artifacts/...    the packed models
                                /README.md, Dockerfile
    repository/.tmp/                               bundles being written

A bundle is written into ``.tmp/`` and renamed into place, so a crash or ``kill -9`` at any
moment leaves no visible half bundle; leftovers of dead writers are removed by the next
:class:`Store` that opens the repository. Nothing here follows a symbolic link inside the
repository, and every path a manifest or an archive names is checked as text to stay
inside its bundle (:func:`bundle_path`, :func:`check_manifest`). Tags are ``Name:version``; ``Name`` and
``Name:latest`` mean the newest version. Versions sort by creation time::

    store = Store()
    bundle = store.get("IrisClassifier:latest")
    print(bundle.tag, bundle.path, bundle.size)
"""

from __future__ import annotations

import datetime as _dt
import errno
import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
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
from .errors import (BundleCorrupted, BundleNotFound, DiskFull, InvalidName, StoreError,
                     UnsafeArchive, UsageError)

MANIFEST = "bento.yml"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
_TMP = ".tmp"
_STALE_SECONDS = 3600
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".bento")  # what export writes: a gzip'd tar
# Files of a bundle packed before manifests listed every file (no ``digest``): export and
# import carry these unchecked, and nothing else that is unlisted.
_LEGACY_EXTRAS = ("requirements.txt", "README.md", "Dockerfile", "service.py")
# A path inside a bundle: at most 8 segments of portable characters, none empty, none
# starting with '.' (so no '.', '..', '//', absolute path, backslash or control character).
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_MAX_DEPTH = 8
_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
_FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Bounds of what import reads from an archive (keyword arguments of Store.import_).
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 64 << 30
_MAX_MANIFEST_BYTES = 4 << 20


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


# -- paths and names shown to people -----------------------------------------------------


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


def printable(text: Any) -> str:
    """``text`` safe to print on a terminal: control and format characters (ANSI escapes,
    newlines, bidi overrides) shown as ``\\x1b``-style escapes, everything else as is."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _is_real_dir(path: Path) -> bool:
    """A directory, not a symbolic link to one (lstat: the link itself is looked at)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _refuse_link(path: Path, what: str) -> None:
    """Raise StoreError if ``path`` is a symbolic link: the store never follows one."""
    if os.path.islink(path):
        raise StoreError(f"{printable(path)} is a symbolic link; bento_nb never follows links "
                         f"inside the store ({what}): replace it with a folder")


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
        """Check every file listed in the manifest against its sha256 and size. A listed
        file that is missing, a symbolic link or not a regular file is BundleCorrupted too."""
        for record in iter_file_records(self.manifest):
            path = self.path / record["file"]
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                raise BundleCorrupted(f"bundle {self.tag}: missing file {record['file']}") from None
            if not stat.S_ISREG(info.st_mode):
                raise BundleCorrupted(f"bundle {self.tag}: {record['file']} is not a regular file "
                                      "(a link or a folder); bundles hold plain files only")
            if info.st_size != record["size"] or sha256_file(path) != record["sha256"]:
                raise BundleCorrupted(
                    f"bundle {self.tag}: checksum mismatch in {record['file']}; "
                    "the file was modified or damaged since it was packed"
                )

    def files(self) -> list[str]:
        """The files of the bundle, relative, as export writes them: the manifest, every
        file it lists, and for a bundle packed before manifests listed every file (no
        ``digest``) the usual extras that exist."""
        listed = [record["file"] for record in iter_file_records(self.manifest)]
        if not self.manifest.get("digest"):
            listed += [extra for extra in _LEGACY_EXTRAS
                       if extra not in listed and os.path.isfile(self.path / extra)
                       and not os.path.islink(self.path / extra)]
        return [MANIFEST, *listed]


def human_size(n: float) -> str:
    """``6.9 KB``, ``1.0 GB``: bundle sizes for people."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def iter_file_records(manifest: dict) -> Iterator[dict]:
    """Every ``{file, sha256, size}`` record a manifest lists (service, artifacts and their
    buffers, other files). The manifest must have passed :func:`check_manifest`."""
    service = manifest.get("service") or {}
    if "file" in service:
        yield service
        if service.get("buffers"):
            yield service["buffers"]
    for artifact in manifest.get("artifacts") or []:
        if "file" in artifact:
            yield artifact
        if artifact.get("buffers"):
            yield artifact["buffers"]
        yield from artifact.get("files") or []  # an artifact in its own format's files
    yield from manifest.get("files") or []


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest without its ``digest`` field, in a canonical form (JSON,
    sorted keys). The manifest lists every other file with its sha256, so this one digest
    covers the whole bundle: ``bento.yml``, ``requirements.txt`` and every pickle."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_manifest(path: Path) -> dict:
    """The manifest of the bundle folder ``path``, checked by :func:`check_manifest`;
    BundleCorrupted names what is wrong (the file, the YAML position or the field)."""
    file = path / MANIFEST
    try:
        if os.path.islink(file):
            raise BundleCorrupted(f"bundle at {path}: {MANIFEST} is a symbolic link")
        text = file.read_bytes()
    except FileNotFoundError:
        raise BundleCorrupted(f"bundle at {path} has no {MANIFEST}") from None
    except IsADirectoryError:
        raise BundleCorrupted(f"bundle at {path}: {MANIFEST} is a folder") from None
    manifest = _parse_manifest(text, f"bundle at {path}")
    return check_manifest(manifest, f"bundle at {path}")


def check_manifest(manifest: Any, where: str) -> dict:
    """``manifest`` (parsed YAML) if it has the structure bento_nb relies on, else
    BundleCorrupted naming the field: the one place a manifest from disk or from an archive
    is checked before anything reads it. Every file path it names must stay inside the
    bundle (see :func:`bundle_path`); ``digest``, when present, must match (a bundle packed
    before digests existed has none and is still accepted)."""
    if not isinstance(manifest, dict) or not manifest.get("name") or not manifest.get("version"):
        raise BundleCorrupted(f"{where}: {MANIFEST} lacks name/version")

    def bad(field: str, problem: str) -> BundleCorrupted:
        return BundleCorrupted(f"{where}: {MANIFEST}: field {field!r} {problem}")

    for key in ("name", "version"):
        if not isinstance(manifest[key], str) or not _NAME_RE.match(manifest[key]):
            raise bad(key, "must be a valid name (letters, digits, '_', '.', '-')")
    paths: list[str] = []

    def check_record(record: Any, field: str, buffers: bool = True) -> None:
        if not isinstance(record, dict):
            raise bad(field, "must be a mapping")
        if bundle_path(record.get("file")) is None:
            raise bad(f"{field}.file", "must be a relative path inside the bundle "
                                       f"(got {printable(repr(record.get('file')))})")
        if not isinstance(record.get("sha256"), str) or not _SHA256_RE.match(record["sha256"]):
            raise bad(f"{field}.sha256", "must be 64 hex digits")
        if not _is_count(record.get("size")):
            raise bad(f"{field}.size", "must be a whole number of bytes")
        paths.append(record["file"])
        if buffers and record.get("buffers") is not None:
            check_record(record["buffers"], f"{field}.buffers", buffers=False)
            spans = record["buffers"].get("spans")
            if not isinstance(spans, list) or not all(
                    isinstance(span, list) and len(span) == 2 and all(map(_is_count, span))
                    and span[0] + span[1] <= record["buffers"]["size"] for span in spans):
                raise bad(f"{field}.buffers.spans", "must be [offset, size] pairs within the file")

    service = manifest.get("service")
    if not isinstance(service, dict):
        raise bad("service", "must be a mapping")
    check_record(service, "service")
    if service.get("source") is not None and bundle_path(service["source"]) is None:
        raise bad("service.source", "must be a relative path inside the bundle")
    for key in ("artifacts", "files", "apis", "requirements"):
        if manifest.get(key) is not None and not isinstance(manifest[key], list):
            raise bad(key, "must be a list")
    for i, artifact in enumerate(manifest.get("artifacts") or []):
        if isinstance(artifact, dict) and "file" not in artifact and "files" in artifact:
            # an artifact in its own format (bento_nb.frameworks): the files it wrote
            if not isinstance(artifact["files"], list) or not artifact["files"]:
                raise bad(f"artifacts[{i}].files", "must be a non-empty list")
            for j, record in enumerate(artifact["files"]):
                check_record(record, f"artifacts[{i}].files[{j}]", buffers=False)
        else:
            check_record(artifact, f"artifacts[{i}]")
        if not isinstance(artifact.get("name"), str) or not _NAME_RE.match(artifact["name"]):
            raise bad(f"artifacts[{i}].name", "must be a valid name")
    for i, record in enumerate(manifest.get("files") or []):
        check_record(record, f"files[{i}]", buffers=False)
    if len(set(paths)) != len(paths) or MANIFEST in paths:
        raise bad("file", "names one file twice (or bento.yml itself)")
    folders = {"/".join(p.split("/")[:n]) for p in paths for n in range(1, p.count("/") + 1)}
    if folders & set(paths):
        raise bad("file", "names a file that is also a folder of another file")
    for i, described in enumerate(manifest.get("apis") or []):
        if not isinstance(described, dict) or not isinstance(described.get("name"), str):
            raise bad(f"apis[{i}]", "must be a mapping with a 'name'")
        adapter = described.get("input")
        if not isinstance(adapter, str) and not (isinstance(adapter, dict)
                                                 and isinstance(adapter.get("type"), str)):
            raise bad(f"apis[{i}].input", "must be an adapter kind or a mapping with a 'type'")
    if not all(isinstance(r, str) for r in manifest.get("requirements") or []):
        raise bad("requirements", "must be a list of strings")
    if manifest.get("labels") is not None and not isinstance(manifest["labels"], dict):
        raise bad("labels", "must be a mapping")
    example = manifest.get("example")
    if example is not None and not (isinstance(example, dict) and isinstance(example.get("api"), str)):
        raise bad("example", "must be a mapping with an 'api'")
    digest = manifest.get("digest")
    if digest is not None:
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            raise bad("digest", "must be 64 hex digits")
        if digest != manifest_digest(manifest):
            raise BundleCorrupted(f"{where}: {MANIFEST} does not match its digest; it was "
                                  "modified or damaged since it was packed")
    return manifest


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _first_line(error: Exception) -> str:
    """What a parser error says is wrong, and where, in one line (YAML's own messages
    span several lines with a quote of the text)."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (docstrings) as ``|`` blocks, so the manifest reads well; an
    object met twice is written twice (no ``&anchor``/``*alias``: readers refuse those)."""

    def ignore_aliases(self, data) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def write_manifest(path: Path, manifest: dict) -> dict:
    """Write ``bento.yml`` with a ``digest`` (see :func:`manifest_digest`) computed over what
    a reader will parse back; returns the manifest as written."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    text = yaml.dump(body, Dumper=_ManifestDumper, sort_keys=False,
                     default_flow_style=False, allow_unicode=True)
    written = {**yaml.load(text, Loader=_NoAliasLoader), "digest": None}
    written["digest"] = manifest_digest(written)
    with open(path / MANIFEST, "w", encoding="utf-8") as f:
        f.write(text + f"digest: {written['digest']}\n")
    return written


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
        is unreadable is listed with its error; it never hides the others. Symbolic links
        and folders whose names are not bundle names are listed as errors, never followed."""
        if name is not None:
            validate_name(name)
        entries: list[ListEntry] = []
        if not self.repository.is_dir():
            return entries
        names = [name] if name else sorted(os.listdir(self.repository))
        for n in names:
            folder = self.repository / n
            if n.startswith(".") or not (_is_real_dir(folder) or os.path.islink(folder)):
                continue
            if problem := _folder_problem(folder, n):
                entries.append(ListEntry(n, "*", folder, error=problem))
                continue
            try:
                versions = sorted(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):  # its last version was deleted meanwhile
                continue
            for version in versions:
                path = folder / version
                if version.startswith(".") or not (_is_real_dir(path) or os.path.islink(path)):
                    continue
                if problem := _folder_problem(path, version):
                    entries.append(ListEntry(n, version, path, error=problem))
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
        """The directory of a tag (without reading its manifest). A name or version folder
        that is a symbolic link raises StoreError: the store never follows links."""
        tag = Tag.parse(tag) if isinstance(tag, str) else tag
        folder = self.repository / tag.name
        _refuse_link(folder, f"the folder of {tag.name}")
        if tag.version is None:
            try:
                names = os.listdir(folder)
            except (FileNotFoundError, NotADirectoryError):  # never made, or just emptied
                names = []
            versions = sorted(v for v in names if not v.startswith(".") and _NAME_RE.match(v)
                              and (_is_real_dir(folder / v) or os.path.islink(folder / v)))
            if not versions:
                raise BundleNotFound(
                    f"no bundle named {tag.name!r} in {self.root}; see `bento-nb list`"
                )
            path = folder / versions[-1]
        else:
            path = folder / tag.version
        _refuse_link(path, f"bundle {tag.name}:{path.name}")
        if not _is_real_dir(path):
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

    def _tmp_root(self) -> Path:
        """``repository/.tmp``, made if missing; refused (StoreError) if it is a link, so
        writing and cleaning never reach outside the store through it."""
        tmp_root = self.repository / _TMP
        _refuse_link(tmp_root, "the folder of bundles being written")
        tmp_root.mkdir(parents=True, exist_ok=True)
        _refuse_link(tmp_root, "the folder of bundles being written")
        return tmp_root

    def new_bundle_dir(self, name: str) -> Path:
        """A fresh private directory to write a bundle of ``name`` into; hand it to
        :meth:`commit` when complete. Cleans leftovers of dead writers first."""
        validate_name(name)
        tmp_root = self._tmp_root()
        self.clean_leftovers()
        path = tmp_root / f"{name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except OSError as e:
            raise _disk_full(e, f"cannot save {name}", self.repository) or e
        return path

    def commit(self, tmp_dir: Path, name: str, version: str) -> Bundle:
        """Atomically move a complete bundle directory into place as ``name:version``."""
        validate_name(name)
        validate_name(version, "version")
        target = self.repository / name / version
        try:
            for attempt in range(5):
                _refuse_link(target.parent, f"the folder of {name}")
                target.parent.mkdir(parents=True, exist_ok=True)
                _refuse_link(target.parent, f"the folder of {name}")
                try:
                    os.rename(tmp_dir, target)  # atomic; fails if the target exists
                    break
                except FileNotFoundError:
                    # A concurrent delete removed the (empty) name folder between mkdir and
                    # rename: make it again.
                    if attempt == 4:
                        raise
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        return self.get(Tag(name, version))

    def save(self, name: str, write: Callable[[Path, str], dict]) -> Bundle:
        """Write a bundle: ``write(tmp_dir, version)`` fills the directory and returns the
        manifest; every other file it wrote is added to the manifest's ``files`` with its
        sha256, the manifest gets its ``digest``, and the directory is renamed into place.
        On any error nothing is left; a full disk is DiskFull."""
        validate_name(name)
        tmp_dir = self.new_bundle_dir(name)
        try:
            for _attempt in range(5):
                version = new_version()
                if not (self.repository / name / version).exists():
                    break
            manifest = dict(write(tmp_dir, version))
            listed = {record["file"] for record in iter_file_records(manifest)}
            manifest["files"] = [_file_record(tmp_dir, rel) for rel in _regular_files(tmp_dir)
                                 if rel not in listed and rel != MANIFEST]
            write_manifest(tmp_dir, manifest)
            return self.commit(tmp_dir, name, version)
        except OSError as e:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise _disk_full(e, f"cannot save {name}", self.repository) or e
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

    def delete(self, tag: str | Tag) -> Path:
        """Remove one version (``Name:version``), or the newest when no version is given.
        The directory is first renamed out of sight, so a reader never sees half of it.
        Nothing is deleted through a symbolic link (StoreError)."""
        path = self.resolve(tag)
        tmp_root = self._tmp_root()
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
        """Remove temp dirs of writers that died (pid gone) or are over an hour old. Links
        found there are removed themselves, never what they point to."""
        tmp_root = self.repository / _TMP
        removed = 0
        if not _is_real_dir(tmp_root):
            _refuse_link(tmp_root, "the folder of bundles being written")
            return 0
        for entry in os.listdir(tmp_root):
            path = tmp_root / entry
            parts = entry.split(".")
            try:
                pid = int(parts[-2])
            except (ValueError, IndexError):
                pid = -1
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            if pid_alive(pid) and time.time() - info.st_mtime <= _STALE_SECONDS:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path, ignore_errors=True)  # never follows links inside
            else:
                try:
                    os.unlink(path)
                except OSError:
                    continue
            removed += 1
        return removed

    # archives

    def export(self, tag: str | Tag, file: str | os.PathLike) -> Path:
        """Write one bundle to a gzip'd tar archive named ``*.tar.gz``, ``*.tgz`` or
        ``*.bento``; an existing file of that name is replaced. The archive holds the
        manifest and the files it lists, nothing else. It is written beside ``file`` and
        renamed into place, so a crash leaves no half archive. A directory, a missing
        folder or another suffix is refused (UsageError) before any write; a full disk is
        DiskFull, with nothing left behind."""
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
                for rel in bundle.files():
                    tar.add(bundle.path / rel, arcname=f"{bundle.name}/{bundle.version}/{rel}",
                            recursive=False)
            os.replace(tmp, file)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _disk_full(e, f"cannot export {bundle.tag}", file.parent) or e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return file

    def import_(self, file: str | os.PathLike, max_members: int = MAX_ARCHIVE_MEMBERS,
                max_bytes: int = MAX_ARCHIVE_BYTES) -> Bundle:
        """Import an archive made by :meth:`export`. Every member is checked before
        anything is written: its name must be a path inside one ``Name/version/`` folder
        (see :func:`bundle_path`), it must be a regular file or a folder (no links,
        devices or duplicates), and it must be ``bento.yml`` or a file that manifest lists
        (with the size it lists); at most ``max_members`` members and ``max_bytes`` bytes.
        The files are then streamed into a private folder, each one's sha256 checked, and
        only a complete, verified bundle is renamed into place. A refusal is UnsafeArchive
        (BundleCorrupted for a damaged archive or checksum, BundleNotFound for a missing
        file, DiskFull when it would not fit) and leaves nothing behind."""
        file = Path(file)
        try:
            tar = tarfile.open(file, "r:*")
        except FileNotFoundError:
            raise BundleNotFound(f"no such file: {file}") from None
        except tarfile.TarError:
            raise UnsafeArchive(f"{file}: not a bento_nb archive (not a gzip'd tar file)") from None
        with tar:
            try:
                name, version, members = _check_members(tar, file, max_members, max_bytes)
                manifest_text = _read_member(tar, members.pop(MANIFEST, None), file, MANIFEST,
                                             _MAX_MANIFEST_BYTES)
                manifest = check_manifest(_parse_manifest(manifest_text, file), str(file))
                if manifest["name"] != name or manifest["version"] != version:
                    raise UnsafeArchive(f"{file}: manifest does not match {name}:{version}")
                plan = _plan_extraction(manifest, members, file)
                if (self.repository / name / version).exists() or os.path.islink(self.repository / name / version):
                    raise InvalidName(f"bundle {name}:{version} already exists in {self.root}")
                _check_free_space(self.root, sum(m.size for m, _ in plan.values()), file)
                tmp_dir = self.new_bundle_dir(name)
                try:
                    for rel, (member, record) in plan.items():
                        _extract(tar, member, record, tmp_dir, rel, file)
                    with open(tmp_dir / MANIFEST, "xb") as out:
                        out.write(manifest_text)
                except BaseException:
                    shutil.rmtree(tmp_dir, ignore_errors=True)
                    raise
            except OSError as e:
                raise _disk_full(e, f"cannot import {file}", self.repository) or e
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise BundleCorrupted(
                    f"{file}: damaged or truncated archive ({_first_line(e)})") from None
            return self.commit(tmp_dir, name, version)


# -- helpers of save, import and list -----------------------------------------------------

def _folder_problem(path: Path, name: str) -> str | None:
    """Why ``list`` cannot show a folder of the repository as a bundle, or None."""
    if os.path.islink(path):
        return "a symbolic link; bento_nb never follows links inside the store"
    if not _NAME_RE.match(name):
        return "not a bundle folder: its name is not a valid bundle name or version"
    return None


def _disk_full(error: OSError, doing: str, where: Path) -> DiskFull | None:
    """DiskFull for an out-of-space (or quota, or file-size limit) OSError, else None."""
    if error.errno not in _FULL_DISK:
        return None
    return DiskFull(f"{doing}: {os.strerror(error.errno).lower()} in {where}; nothing was "
                    "kept: free some space and try again")


def _regular_files(folder: Path) -> list[str]:
    """Relative paths of the regular files under ``folder`` (links are not followed)."""
    found = []
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            path = os.path.join(dirpath, f)
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(Path(os.path.relpath(path, folder)).as_posix())
    return sorted(found)


def _file_record(folder: Path, rel: str) -> dict:
    if bundle_path(rel) is None:
        raise UsageError(f"cannot save a file named {printable(rel)!r} in a bundle: use "
                         "letters, digits, '_', '.' and '-' only")
    path = folder / rel
    return {"file": rel, "sha256": sha256_file(path), "size": path.stat().st_size}


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses YAML aliases: bento_nb never writes them, and nested aliases
    are how a few hundred bytes of YAML expand into gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _parse_manifest(text: bytes, where: Path | str) -> Any:
    try:
        return yaml.load(text.decode("utf-8"), Loader=_NoAliasLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BundleCorrupted(f"{where}: {MANIFEST} is not valid YAML ({_first_line(e)})") from None


def _check_members(tar: tarfile.TarFile, file: Path, max_members: int,
                   max_bytes: int) -> tuple[str, str, dict[str, tarfile.TarInfo]]:
    """Read every member header and refuse the archive unless each one is a regular file or
    folder whose name is a confined path under one ``Name/version/`` folder, no name comes
    twice, and there are at most ``max_members`` members of at most ``max_bytes`` bytes in
    all. Returns the name, version and the members by path relative to the bundle
    (folders as ``path/``)."""
    top: tuple[str, str] | None = None
    members: dict[str, tarfile.TarInfo] = {}
    seen: set[str] = set()
    total = 0
    for count, m in enumerate(tar, 1):
        if count > max_members:
            raise UnsafeArchive(f"{file}: more than {max_members:,} members; a bundle has a few")
        shown = printable(repr(m.name))
        if bundle_path(m.name) is None:
            raise UnsafeArchive(f"{file}: refusing member {shown}: not a plain relative path "
                                "inside the bundle (absolute, '..', '//', '\\\\' or odd characters)")
        if m.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
            raise UnsafeArchive(f"{file}: refusing member {shown}: links, devices and other "
                                "special files are not allowed")
        if m.name in seen:
            raise UnsafeArchive(f"{file}: refusing member {shown}: it comes twice")
        seen.add(m.name)
        total += m.size
        if total > max_bytes:
            raise UnsafeArchive(f"{file}: members add up to more than {human_size(max_bytes)}")
        parts = m.name.split("/")
        if len(parts) < 2:
            if not m.isdir():
                raise UnsafeArchive(f"{file}: member {shown} is outside a Name/version/ folder")
            continue
        if top is None:
            top = (parts[0], parts[1])
        elif (parts[0], parts[1]) != top:
            raise UnsafeArchive(f"{file}: expected exactly one Name/version/ bundle, found "
                                f"{printable(top[0])}/{printable(top[1])} and "
                                f"{printable(parts[0])}/{printable(parts[1])}")
        rel = "/".join(parts[2:])
        if rel:
            members[rel + "/" if m.isdir() else rel] = m
    if top is None:
        raise UnsafeArchive(f"{file}: empty archive")
    validate_name(top[0])
    validate_name(top[1], "version")
    return top[0], top[1], members


def _plan_extraction(manifest: dict, members: dict[str, tarfile.TarInfo],
                     file: Path) -> dict[str, tuple[tarfile.TarInfo, dict | None]]:
    """``{path: (member, record)}`` of what to extract: every file the manifest lists (with
    its record), plus, for a bundle packed before manifests listed every file, the legacy
    extras present (unchecked, record None). Any other member is refused."""
    records = {record["file"]: record for record in iter_file_records(manifest)}
    plan: dict[str, tuple[tarfile.TarInfo, dict | None]] = {}
    for rel, record in records.items():
        member = members.get(rel)
        if member is None:
            raise BundleCorrupted(f"{file}: missing file {rel} that {MANIFEST} lists")
        if member.size != record["size"]:
            raise BundleCorrupted(f"{file}: {rel} is {member.size:,} bytes, {MANIFEST} says "
                                  f"{record['size']:,}; the archive was modified or damaged")
        plan[rel] = (member, record)
    if not manifest.get("digest"):
        for extra in _LEGACY_EXTRAS:
            member = members.get(extra)
            if extra not in plan and member is not None and not member.isdir():
                if member.size > _MAX_MANIFEST_BYTES:
                    raise UnsafeArchive(f"{file}: {extra} is {human_size(member.size)}, "
                                        "more than any bundle writes")
                plan[extra] = (member, None)
    folders = {"/".join(rel.split("/")[:n]) + "/" for rel in plan for n in range(1, rel.count("/") + 1)}
    for rel in members:
        if rel not in plan and rel not in folders:
            raise UnsafeArchive(f"{file}: refusing member {printable(repr(rel))}: "
                                f"{MANIFEST} does not list it")
    return plan


def _check_free_space(root: Path, needed: int, file: Path) -> None:
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise DiskFull(f"cannot import {file}: it holds {human_size(needed)}, only "
                       f"{human_size(free)} free in {root}; nothing was written")


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo | None, file: Path, what: str,
                 limit: int) -> bytes:
    if member is None or member.isdir():
        raise UnsafeArchive(f"{file}: no {what}: not a bento_nb archive")
    if member.size > limit:
        raise UnsafeArchive(f"{file}: {what} is {human_size(member.size)}, more than "
                            f"{human_size(limit)}")
    with tar.extractfile(member) as src:
        data = src.read(limit + 1)
    if len(data) != member.size:
        raise BundleCorrupted(f"{file}: damaged or truncated archive ({what} is short)")
    return data


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, record: dict | None, folder: Path,
             rel: str, file: Path) -> None:
    """Stream one member into ``folder/rel`` (a new file; never through a link), counting
    and hashing the bytes: more bytes than the header said, or a wrong sha256, is refused."""
    dest = folder / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, written = hashlib.sha256(), 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with tar.extractfile(member) as src, open(fd, "wb") as out:
        while chunk := src.read(8 << 20):
            written += len(chunk)
            if written > member.size:
                raise UnsafeArchive(f"{file}: {rel} holds more bytes than its header says")
            digest.update(chunk)
            out.write(chunk)
    if written != member.size:
        raise BundleCorrupted(f"{file}: damaged or truncated archive ({rel} is short)")
    if record is not None and digest.hexdigest() != record["sha256"]:
        raise BundleCorrupted(f"{file}: checksum mismatch in {rel}; the archive was modified "
                              "or damaged since it was exported")


# -- tag or path --------------------------------------------------------------------------


def looks_like_path(target: str | os.PathLike) -> bool:
    """The one rule every front end follows for "tag or path?": a path-like object, or a
    string with a path separator or starting with ``.`` or ``~``, is a folder; anything
    else is a tag. A tag never holds those characters, so ``Iris`` means the bundle named
    Iris even when a folder ``./Iris`` exists; write ``./Iris`` for the folder."""
    if isinstance(target, os.PathLike):
        return True
    text = str(target)
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(s in text for s in separators) or text.startswith((".", "~"))


def find_bundle(target: "str | os.PathLike | Bundle", store: "Store | None" = None) -> Bundle:
    """The bundle ``target`` names: a :class:`Bundle` as is, a folder (see
    :func:`looks_like_path`) read from disk, else a tag looked up in the store
    (``Name``, ``Name:latest``, ``Name:version``). Raises BundleNotFound, InvalidName or
    BundleCorrupted with a message that says which."""
    if isinstance(target, Bundle):
        return target
    if not isinstance(target, (str, os.PathLike)):
        raise UsageError(f"expected a tag or a bundle folder, got {type(target).__name__}")
    if looks_like_path(target):
        path = Path(target).expanduser().resolve()
        if not path.is_dir():
            raise BundleNotFound(f"no bundle at {path}: give a tag (Name:version) or "
                                 "a bundle folder")
        manifest = read_manifest(path)
        return Bundle(manifest["name"], manifest["version"], path, manifest)
    return (store or Store()).get(str(target))

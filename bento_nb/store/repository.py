"""The :class:`Store`: bundles under ``$BENTO_NB_HOME/repository``, saved, listed, read,
deleted, exported and imported.

A bundle is written into ``repository/.tmp/`` and renamed into place, so a crash or
``kill -9`` at any moment leaves no visible half bundle; leftovers of dead writers are
removed by the next :class:`Store` that opens the repository. Nothing here follows a
symbolic link inside the repository. :func:`find_bundle` answers "which bundle does this
tag or folder name?" for every front end::

    store = Store()
    bundle = store.get("IrisClassifier:latest")
    print(bundle.tag, bundle.path, bundle.size)
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import config
from .._processes import pid_alive
from ..errors import BundleCorrupted, BundleNotFound, InvalidName, UsageError
from .archive import (DAMAGED_ARCHIVE, MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, check_archive,
                      check_free_space, extract_archive, open_archive, write_archive)
from .bundle import Bundle
from .display import first_line, printable
from .filesystem import bundle_path, disk_full, is_real_dir, refuse_link
from .hashing import sha256_file
from .manifest import MANIFEST, iter_file_records, read_manifest, write_manifest
from .tags import NAME_RE, Tag, looks_like_path, new_version, validate_name

_TMP = ".tmp"
_STALE_SECONDS = 3600


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
            if n.startswith(".") or not (is_real_dir(folder) or os.path.islink(folder)):
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
                if version.startswith(".") or not (is_real_dir(path) or os.path.islink(path)):
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
        refuse_link(folder, f"the folder of {tag.name}")
        if tag.version is None:
            try:
                names = os.listdir(folder)
            except (FileNotFoundError, NotADirectoryError):  # never made, or just emptied
                names = []
            versions = sorted(v for v in names if not v.startswith(".") and NAME_RE.match(v)
                              and (is_real_dir(folder / v) or os.path.islink(folder / v)))
            if not versions:
                raise BundleNotFound(f"no bundle named {tag.name!r} in {self.root}", see="list")
            path = folder / versions[-1]
        else:
            path = folder / tag.version
        refuse_link(path, f"bundle {tag.name}:{path.name}")
        if not is_real_dir(path):
            raise BundleNotFound(f"no bundle {tag} in {self.root}", see="list")
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
        refuse_link(tmp_root, "the folder of bundles being written")
        tmp_root.mkdir(parents=True, exist_ok=True)
        refuse_link(tmp_root, "the folder of bundles being written")
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
            raise disk_full(e, f"cannot save {name}", self.repository) or e
        return path

    def commit(self, tmp_dir: Path, name: str, version: str) -> Bundle:
        """Atomically move a complete bundle directory into place as ``name:version``."""
        validate_name(name)
        validate_name(version, "version")
        target = self.repository / name / version
        try:
            for attempt in range(5):
                refuse_link(target.parent, f"the folder of {name}")
                target.parent.mkdir(parents=True, exist_ok=True)
                refuse_link(target.parent, f"the folder of {name}")
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
            raise disk_full(e, f"cannot save {name}", self.repository) or e
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
        if not is_real_dir(tmp_root):
            refuse_link(tmp_root, "the folder of bundles being written")
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
        return write_archive(self.get(tag), file)

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
        with open_archive(file) as tar:
            try:
                plan = check_archive(tar, file, max_members, max_bytes)
                name, version = plan.name, plan.version
                if (self.repository / name / version).exists() or os.path.islink(self.repository / name / version):
                    raise InvalidName(f"bundle {name}:{version} already exists in {self.root}")
                check_free_space(self.root, plan.size, file)
                tmp_dir = self.new_bundle_dir(name)
                try:
                    extract_archive(tar, plan, tmp_dir, file)
                except BaseException:
                    shutil.rmtree(tmp_dir, ignore_errors=True)
                    raise
            except OSError as e:
                raise disk_full(e, f"cannot import {file}", self.repository) or e
            except DAMAGED_ARCHIVE as e:
                raise BundleCorrupted(
                    f"{file}: damaged or truncated archive ({first_line(e)})") from None
            return self.commit(tmp_dir, name, version)


# -- helpers of save and list -------------------------------------------------------------


def _folder_problem(path: Path, name: str) -> str | None:
    """Why ``list`` cannot show a folder of the repository as a bundle, or None."""
    if os.path.islink(path):
        return "a symbolic link; bento_nb never follows links inside the store"
    if not NAME_RE.match(name):
        return "not a bundle folder: its name is not a valid bundle name or version"
    return None


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


# -- tag or path --------------------------------------------------------------------------


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

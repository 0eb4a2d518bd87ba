"""Bundle archives: the gzip'd tar that ``export`` writes and ``import`` reads back.

An archive holds one ``Name/version/`` folder: the manifest and the files it lists,
nothing else. Reading one is careful, since an archive comes from elsewhere: every member
header is checked before anything is written (a plain path inside the bundle, a regular
file or a folder, listed by the manifest with the size it lists, within the bounds), then
each file is streamed out with its sha256 checked. :class:`~bento_nb.store.Store` places
the result; this module knows the format::

    write_archive(bundle, "iris.tar.gz")
    with open_archive(Path("iris.tar.gz")) as tar:
        plan = check_archive(tar, file, MAX_ARCHIVE_MEMBERS, MAX_ARCHIVE_BYTES)
        extract_archive(tar, plan, private_folder, file)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import BundleCorrupted, BundleNotFound, DiskFull, UnsafeArchive, UsageError
from .bundle import Bundle
from .display import human_size, printable
from .filesystem import bundle_path, disk_full
from .manifest import LEGACY_EXTRAS, MANIFEST, check_manifest, iter_file_records, parse_manifest
from .tags import validate_name

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".bento")  # what export writes: a gzip'd tar
# Bounds of what import reads from an archive (keyword arguments of Store.import_).
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 64 << 30
_MAX_MANIFEST_BYTES = 4 << 20
# What reading a damaged or truncated archive raises, besides OSError.
DAMAGED_ARCHIVE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


# -- writing ------------------------------------------------------------------------------


def write_archive(bundle: Bundle, file: str | os.PathLike) -> Path:
    """Write ``bundle`` to ``file`` (see :meth:`Store.export
    <bento_nb.store.Store.export>`): the name is checked and the bundle verified before
    any write, and the archive is written beside ``file`` and renamed into place."""
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
        raise disk_full(e, f"cannot export {bundle.tag}", file.parent) or e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return file


# -- reading ------------------------------------------------------------------------------


@dataclass
class ArchivePlan:
    """What an archive holds once its headers and manifest were checked: the bundle's tag,
    the manifest's bytes as they will be written, and ``{path: (member, record)}`` of the
    files to extract (record None for an unchecked legacy extra)."""

    name: str
    version: str
    manifest_text: bytes
    files: dict[str, tuple[tarfile.TarInfo, dict | None]]

    @property
    def size(self) -> int:
        """Bytes the extracted files will take."""
        return sum(member.size for member, _ in self.files.values())


def open_archive(file: Path) -> tarfile.TarFile:
    """The archive ``file``, open for reading; BundleNotFound if there is no such file,
    UnsafeArchive if it is not a tar file."""
    try:
        return tarfile.open(file, "r:*")
    except FileNotFoundError:
        raise BundleNotFound(f"no such file: {file}") from None
    except tarfile.TarError:
        raise UnsafeArchive(f"{file}: not a bento_nb archive (not a gzip'd tar file)") from None


def check_archive(tar: tarfile.TarFile, file: Path, max_members: int,
                  max_bytes: int) -> ArchivePlan:
    """Check every member header and the manifest, before anything is written; the
    refusals :meth:`Store.import_ <bento_nb.store.Store.import_>` lists."""
    name, version, members = _check_members(tar, file, max_members, max_bytes)
    manifest_text = _read_member(tar, members.pop(MANIFEST, None), file, MANIFEST,
                                 _MAX_MANIFEST_BYTES)
    manifest = check_manifest(parse_manifest(manifest_text, file), str(file))
    if manifest["name"] != name or manifest["version"] != version:
        raise UnsafeArchive(f"{file}: manifest does not match {name}:{version}")
    return ArchivePlan(name, version, manifest_text, _plan_extraction(manifest, members, file))


def extract_archive(tar: tarfile.TarFile, plan: ArchivePlan, folder: Path, file: Path) -> None:
    """Stream the planned files into the empty private ``folder``, each one's size and
    sha256 checked, then write the manifest. On an error the caller removes ``folder``."""
    for rel, (member, record) in plan.files.items():
        _extract(tar, member, record, folder, rel, file)
    with open(folder / MANIFEST, "xb") as out:
        out.write(plan.manifest_text)


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
        for extra in LEGACY_EXTRAS:
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


def check_free_space(root: Path, needed: int, file: Path) -> None:
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



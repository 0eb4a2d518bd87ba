"""A saved bundle: the record of one ``Name:version`` folder and what its manifest says.

A :class:`Bundle` is what the store hands out (``Store.get``, ``find_bundle``, ``pack``);
it reads the manifest's fields, checks every listed file against its sha256, and names
the files an archive of it holds::

    bundle.tag, bundle.path, bundle.size, bundle.apis
    bundle.verify()                 # BundleCorrupted if a file was modified
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BundleCorrupted
from .hashing import sha256_file
from .manifest import LEGACY_EXTRAS, MANIFEST, iter_file_records


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
    def provenance(self) -> dict:
        """Where it was packed from (notebook, cells, git, environment hash); empty for a
        bundle packed with ``provenance=False`` or before provenance was recorded."""
        return dict(self.manifest.get("provenance") or {})

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
            # the cells' source is left to the manifest (up to 64 KiB per bundle)
            "provenance": {k: v for k, v in self.provenance.items() if k != "cells"},
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
            listed += [extra for extra in LEGACY_EXTRAS
                       if extra not in listed and os.path.isfile(self.path / extra)
                       and not os.path.islink(self.path / extra)]
        return [MANIFEST, *listed]

"""The manifest ``bento.yml``: what a bundle holds, checked before anything reads it.

The manifest names the bundle, its APIs and requirements, and lists every other file of
the bundle with its sha256 and size; its own ``digest`` (:func:`manifest_digest`) covers
all of that, so one check of the manifest and one of each file it lists verify the whole
bundle. :func:`check_manifest` is the one place a manifest from disk or from an archive is
checked; it refuses YAML aliases and any path that would leave the bundle::

    manifest = read_manifest(bundle_folder)         # BundleCorrupted names what is wrong
    for record in iter_file_records(manifest):
        print(record["file"], record["sha256"], record["size"])
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import BundleCorrupted
from .display import first_line, printable
from .filesystem import bundle_path
from .tags import NAME_RE

MANIFEST = "bento.yml"
# Files of a bundle packed before manifests listed every file (no ``digest``): export and
# import carry these unchecked, and nothing else that is unlisted.
LEGACY_EXTRAS = ("requirements.txt", "README.md", "Dockerfile", "service.py")
_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")


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
    manifest = parse_manifest(text, f"bundle at {path}")
    return check_manifest(manifest, f"bundle at {path}")


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses YAML aliases: bento_nb never writes them, and nested aliases
    are how a few hundred bytes of YAML expand into gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed",
                                              event.start_mark)
        return super().compose_node(parent, index)


def parse_manifest(text: bytes, where: Path | str) -> Any:
    try:
        return yaml.load(text.decode("utf-8"), Loader=_NoAliasLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BundleCorrupted(f"{where}: {MANIFEST} is not valid YAML ({first_line(e)})") from None


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
        if not isinstance(manifest[key], str) or not NAME_RE.match(manifest[key]):
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
    static = manifest.get("web_static_content")
    if static is not None and bundle_path(static) is None:
        raise bad("web_static_content", "must be a relative path inside the bundle")
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
        if not isinstance(artifact.get("name"), str) or not NAME_RE.match(artifact["name"]):
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
    for i, described in enumerate(manifest.get("apis") or []):
        if described.get("signature") is not None:
            problem = signature_problem(described["signature"])
            if problem:
                raise bad(f"apis[{i}].signature", problem)
    if manifest.get("provenance") is not None:
        problem = provenance_problem(manifest["provenance"])
        if problem:
            raise bad(f"provenance.{problem[0]}" if problem[0] else "provenance", problem[1])
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


# -- signature and provenance (optional: bundles packed before them have neither) -------

SIGNATURE_TYPES = ("boolean", "integer", "number", "string", "any")
SIGNATURE_SOURCES = ("example", "adapter")
# provenance field -> the types its value may have (None: the field may be absent or null)
_PROVENANCE_FIELDS = {"notebook": (str,), "cells": (str,), "cells_truncated": (bool,),
                      "git": (dict,), "python": (str,), "packages_sha256": (str,),
                      "packages": (int,)}


def signature_problem(data: Any) -> str | None:
    """What is wrong with an API's ``signature`` as a manifest records it, or None::

        {"from": "example", "inputs": [{"name": "age", "type": "integer"}, ...]}
    """
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or not data["inputs"]:
        return "must be a mapping with a non-empty list 'inputs'"
    if data.get("from", "example") not in SIGNATURE_SOURCES:
        return f"'from' must be one of {list(SIGNATURE_SOURCES)}"
    named = None
    for i, column in enumerate(data["inputs"]):
        if not isinstance(column, dict) or column.get("type") not in SIGNATURE_TYPES:
            return f"inputs[{i}] must be a mapping with a 'type' among {list(SIGNATURE_TYPES)}"
        name = column.get("name")
        if name is not None and not isinstance(name, str):
            return f"inputs[{i}].name must be a string or null"
        if named is not None and named != (name is not None):
            return "inputs must all have names or none"
        named = name is not None
        if not isinstance(column.get("optional", False), bool):
            return f"inputs[{i}].optional must be true or false"
    names = [c.get("name") for c in data["inputs"] if c.get("name") is not None]
    if len(set(names)) != len(names):
        return "inputs name a column twice"
    return None


def provenance_problem(data: Any) -> tuple[str, str] | None:
    """(field, problem) for a ``provenance`` mapping that is not what bento_nb writes
    (see :mod:`bento_nb.provenance`), or None."""
    if not isinstance(data, dict):
        return "", "must be a mapping"
    for key, types in _PROVENANCE_FIELDS.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)
                                  and bool not in types):
            return key, f"must be a {types[0].__name__}"
    git = data.get("git")
    if git is not None:
        commit = git.get("commit")
        if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{7,64}", commit):
            return "git.commit", "must be a commit id (hex digits)"
        if git.get("dirty") is not None and not isinstance(git["dirty"], bool):
            return "git.dirty", "must be true or false"
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0



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

"""Names, versions and tags of bundles, and the one rule for "tag or path?".

A tag is ``Name:version``; ``Name`` and ``Name:latest`` mean the newest version, and
versions sort by creation time. A name or version is 1-63 portable characters, so it is
also a safe folder name::

    Tag.parse("Iris:latest")        # Tag(name='Iris', version=None)
    looks_like_path("./Iris")       # True: a folder, not the bundle named Iris
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import time
from dataclasses import dataclass

from ..errors import InvalidName

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")


def validate_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a valid bundle name or version, else raise InvalidName."""
    if not isinstance(value, str) or not NAME_RE.match(value) or value in (".", ".."):
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


def looks_like_path(target: str | os.PathLike) -> bool:
    """The one rule every front end follows for "tag or path?": a path-like object, or a
    string with a path separator (and no ``:`` before it) or starting with ``.`` or ``~``,
    is a folder; anything else is a tag. A tag never holds those characters, so ``Iris`` means the bundle named
    Iris even when a folder ``./Iris`` exists; write ``./Iris`` for the folder."""
    if isinstance(target, os.PathLike):
        return True
    text = str(target)
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    first = min((i for i in (text.find(s) for s in separators) if i >= 0), default=-1)
    if first < 0:
        return text.startswith((".", "~"))
    # "Name:<anything>" is a tag (an invalid one if the version holds a "/"): refused as
    # such, never read as a folder
    return ":" not in text[:first]

"""Docker image references: validate ``-t IMAGE[:TAG]`` before anything reaches Docker.

Follows the grammar of ``distribution/reference`` (what ``docker build -t`` accepts)::

    reference  := name [":" tag] ["@" digest]
    name       := [domain "/"] component ["/" component]*
    component  := [a-z0-9]+ (([._] | "__" | "-"+) [a-z0-9]+)*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

    validate_image("iris-classifier:1.0")      # returns it unchanged
    validate_image("Iris")                     # InvalidName: ... must be lowercase ...
    default_image("IrisClassifier", "20261124_143000_123_9f3a1c")
    # -> "irisclassifier:20261124_143000_123_9f3a1c"
"""

from __future__ import annotations

import re

from ..errors import InvalidName

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}\Z")
_NAME_MAX = 255


def validate_image(reference: str, allow_digest: bool = False) -> str:
    """Return ``reference`` if Docker accepts it as an image name, else raise
    :class:`~bento_nb.errors.InvalidName` with a one-line reason. ``docker build -t`` takes
    no digest, so ``name@sha256:...`` is only allowed with ``allow_digest`` (Kubernetes)."""
    if not isinstance(reference, str) or not reference:
        raise InvalidName("empty image name: expected NAME[:TAG], e.g. iris-classifier:1.0")

    def bad(reason: str) -> InvalidName:
        return InvalidName(f"invalid image name {reference!r}: {reason}")

    if any(c.isspace() for c in reference):
        raise bad("it contains whitespace")
    name, digest = reference, None
    if "@" in reference:
        name, _, digest = reference.partition("@")
        if not allow_digest:
            raise bad("a digest (@...) cannot be used as a build tag; use NAME[:TAG]")
        if not _DIGEST.match(digest):
            raise bad(f"{digest!r} is not a digest like sha256:<64 hex digits>")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.match(tag):
            raise bad(f"tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-', "
                      "not starting with '.' or '-'")
    if not name:
        raise bad("the repository name is empty")
    if len(name) > _NAME_MAX:
        raise bad(f"the repository name is longer than {_NAME_MAX} characters")
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"
                           or first != first.lower()):
        if not _DOMAIN.match(first):
            raise bad(f"{first!r} is not a valid registry host[:port]")
        parts = parts[1:]
    for part in parts:
        if not _COMPONENT.match(part):
            if part != part.lower():
                raise bad(f"repository names must be lowercase (try {reference.lower()!r})")
            raise bad(f"{part!r} is not a valid path component: use lowercase letters and "
                      "digits separated by '.', '_', '__' or '-'")
    return reference


def split_image(reference: str) -> tuple[str, str]:
    """``("repo/name", "tag")`` of a validated reference; the tag defaults to ``latest``."""
    slash, colon = reference.rfind("/"), reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1:]
    return reference, "latest"


def default_image(name: str, version: str) -> str:
    """The image a bundle builds to without ``-t``: ``<name lowercased>:<version>``."""

    def separator(match: re.Match) -> str:
        run = match.group()
        return run if re.fullmatch(r"[._]|__|-+", run) else "-"

    repo = re.sub(r"[^a-z0-9._-]+", "-", name.lower())
    repo = re.sub(r"[._-]+", separator, repo).strip("._-") or "bento"
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", version).lstrip(".-")[:128] or "latest"
    return validate_image(f"{repo}:{tag}")

"""Pinned requirements inferred from what a bundle really imports.

Module names come from the pickled object graph (:func:`bento_nb._pickling.pickled_modules`)
and from the ``import`` statements of the service's source; each is mapped to its installed
distribution with :mod:`importlib.metadata` and pinned to the installed version. The
standard library, bento_nb itself (installed beside the bundle) and modules that no
distribution provides (local files) are left out. Never the whole environment::

    infer({"sklearn", "numpy", "os"})   # ['numpy==2.4.6', 'scikit-learn==1.8.0']
"""

from __future__ import annotations

import ast
import sys
from functools import lru_cache
from importlib import metadata
from typing import Iterable

from packaging.requirements import InvalidRequirement, Requirement

_SKIP = {"bento_nb", "__main__", "builtins", "copyreg", "_codecs", "cloudpickle"}


@lru_cache(maxsize=1)
def _module_to_dists() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def distribution_of(module: str) -> str | None:
    """The installed distribution providing a top-level module, or None."""
    top = module.split(".")[0]
    if top in _SKIP or top in sys.stdlib_module_names:
        return None
    dists = _module_to_dists().get(top)
    return dists[0] if dists else None


def public_version(version: str) -> str:
    """``version`` without a local label (``2.13.0+cpu`` -> ``2.13.0``): package indexes
    such as PyPI serve no local versions, so a pin with one could never be installed."""
    return version.split("+", 1)[0]


def infer(modules: Iterable[str]) -> list[str]:
    """``name==version`` pins for the distributions behind ``modules``, sorted."""
    pins: dict[str, str] = {}
    for module in modules:
        dist = distribution_of(module)
        if dist is None:
            continue
        try:
            name = metadata.distribution(dist).metadata["Name"]
            pins[_canonical(dist)] = f"{name}=={public_version(metadata.version(dist))}"
        except metadata.PackageNotFoundError:
            continue
    return sorted(pins.values(), key=str.lower)


def imports_in_source(source: str) -> set[str]:
    """Top-level module names imported by Python source (absolute imports only)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def merge(inferred: list[str], extra: Iterable[str]) -> list[str]:
    """User requirements override inferred pins of the same distribution."""
    result = {_canonical(_req_name(r)): r for r in inferred}
    for requirement in extra:
        requirement = requirement.strip()
        if requirement:
            result[_canonical(_req_name(requirement))] = requirement
    return sorted(result.values(), key=str.lower)


def _req_name(requirement: str) -> str:
    try:
        return Requirement(requirement).name
    except InvalidRequirement:
        return requirement


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")

"""Artifacts: the named model objects a service carries, and how each is saved.

``@artifacts([PickleArtifact("model")])`` declares them on a :class:`~bento_nb.BentoService`;
``svc.pack("model", obj)`` fills them; ``svc.artifacts.model`` reads them back. Every
artifact is pickled with out-of-band buffers (see :mod:`bento_nb._pickling`), so large
numpy arrays are written at disk speed and memory-mapped on load. Framework artifacts
(:mod:`bento_nb.frameworks`) add validation and input-schema hints on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ... import _pickling
from ...errors import PackError
from ...store import validate_name


class Artifact:
    """Base class: one named object saved in a bundle's ``artifacts/`` folder."""

    def __init__(self, name: str):
        self.name = validate_name(name, "artifact name")

    @property
    def type(self) -> str:
        return type(self).__name__

    def check(self, obj: Any) -> Any:
        """Validate an object before it is packed; return it (or a normalised form)."""
        return obj

    def save(self, obj: Any, bundle_dir: Path) -> dict:
        """Write ``obj`` under ``bundle_dir/artifacts``; return the manifest record."""
        record = _pickling.dump(obj, bundle_dir, f"artifacts/{self.name}",
                                by_value=_pickling.local_modules(obj))
        return {"name": self.name, "type": self.type, **record}

    def load(self, bundle_dir: Path, record: dict) -> Any:
        return _pickling.load(bundle_dir, record)

    def __repr__(self) -> str:
        return f"{self.type}({self.name!r})"


class PickleArtifact(Artifact):
    """Any cloudpickle-able object: models, pipelines, plain functions."""


class ArtifactCollection:
    """``svc.artifacts``: attribute and item access to the packed objects."""

    def __init__(self, specs: Iterable[Artifact]):
        object.__setattr__(self, "_specs", {s.name: s for s in specs})
        object.__setattr__(self, "_objects", {})

    @property
    def specs(self) -> dict[str, Artifact]:
        return dict(self._specs)

    def pack(self, name: str, obj: Any) -> None:
        if name not in self._specs:
            raise PackError(
                f"no artifact named {name!r}; declared: {sorted(self._specs) or 'none'} "
                "(add it to @artifacts([...]))")
        self._objects[name] = self._specs[name].check(obj)

    def missing(self) -> list[str]:
        return [n for n in self._specs if n not in self._objects]

    def items(self):
        return self._objects.items()

    def __getattr__(self, name: str) -> Any:
        objects = self.__dict__.get("_objects")
        if objects is None:  # mid-unpickling: nothing set yet
            raise AttributeError(name)
        try:
            return objects[name]
        except KeyError:
            if name in self.__dict__.get("_specs", {}):
                raise AttributeError(f"artifact {name!r} is declared but not packed") from None
            raise AttributeError(f"no artifact named {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        return self._objects[name]

    def __contains__(self, name: str) -> bool:
        return name in self._objects

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("use svc.pack(name, obj) to set an artifact")

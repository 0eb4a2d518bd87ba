"""Artifacts: the named model objects a service carries, and how each is saved.

``@artifacts([PickleArtifact("model")])`` declares them on a :class:`~bento_nb.BentoService`;
``svc.pack("model", obj)`` fills them; ``svc.artifacts.model`` reads them back. A
:class:`PickleArtifact` is pickled with out-of-band buffers (see :mod:`bento_nb._pickling`),
so large numpy arrays are written at disk speed and memory-mapped on load.

A :class:`NativeArtifact` writes its object in its own format instead (``JSONArtifact``,
``TextFileArtifact``, and the framework artifacts of :mod:`bento_nb.frameworks`: an
xgboost ``.model``, a TorchScript ``.pt``, a SavedModel folder...), named from the artifact
name under ``artifacts/``; every file it writes is listed with its sha256 in the manifest
record's ``files``, so ``Bundle.verify`` checks them like pickles::

    @artifacts([JSONArtifact("labels"), XgboostModelArtifact("model")])
    class Scorer(BentoService): ...
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

from ... import _pickling
from ...errors import PackError
from ...store import validate_name
from ...store.hashing import sha256_file


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

    def modules(self, bundle_dir: Path, record: dict) -> set[str]:
        """Top-level modules loading this artifact needs (its requirements are inferred
        from them): for a pickle, the modules it refers to."""
        return _pickling.pickled_modules(bundle_dir / record["file"])

    def __repr__(self) -> str:
        return f"{self.type}({self.name!r})"


class PickleArtifact(Artifact):
    """Any cloudpickle-able object: models, pipelines, plain functions.

    ``pickle_module`` (a module or its name, e.g. ``"dill"``), as in BentoML 0.x, pickles
    with that module's ``dump``/``load`` into ``artifacts/<name>.pkl`` instead of
    bento_nb's cloudpickle with out-of-band buffers (the default).
    """

    pickle_module: str | None = None  # also for specs unpickled from older bundles

    def __init__(self, name: str, pickle_module: ModuleType | str | None = None):
        super().__init__(name)
        if isinstance(pickle_module, ModuleType):
            pickle_module = pickle_module.__name__
        if pickle_module is not None and not isinstance(pickle_module, str):
            raise TypeError(f"PickleArtifact(pickle_module=...) expects a module or its name, "
                            f"got {type(pickle_module).__name__}")
        # Kept by name: a spec is deep-copied and pickled with its service class.
        self.pickle_module = None if pickle_module == "cloudpickle" else pickle_module

    def _module(self) -> Any:
        module = importlib.import_module(self.pickle_module)
        if not (callable(getattr(module, "dump", None)) and callable(getattr(module, "load", None))):
            raise PackError(f"pickle_module {self.pickle_module!r} has no dump()/load()")
        return module

    def save(self, obj: Any, bundle_dir: Path) -> dict:
        if self.pickle_module is None:
            return super().save(obj, bundle_dir)
        file = f"artifacts/{self.name}.pkl"
        (bundle_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        with open(bundle_dir / file, "wb") as f:
            self._module().dump(obj, f)
        return {"name": self.name, "type": self.type, "pickle_module": self.pickle_module,
                **file_record(bundle_dir, file)}

    def load(self, bundle_dir: Path, record: dict) -> Any:
        if not record.get("pickle_module"):
            return super().load(bundle_dir, record)
        with open(bundle_dir / record["file"], "rb") as f:
            return importlib.import_module(record["pickle_module"]).load(f)

    def modules(self, bundle_dir: Path, record: dict) -> set[str]:
        found = super().modules(bundle_dir, record)
        if record.get("pickle_module"):
            found.add(record["pickle_module"].split(".")[0])
        return found


class NativeArtifact(Artifact):
    """Base of artifacts saved in their own format rather than as a pickle.

    Subclasses implement :meth:`write` (put the object's files in ``folder``, named from
    the artifact name; return their paths, files or folders) and :meth:`read` (restore it
    from ``folder``, given what :meth:`write` recorded), and list the top-level modules the
    format needs in ``framework_modules`` (their installed versions are pinned in the
    bundle's requirements). :meth:`check` validates the object at pack time and returns
    what the API functions see as ``self.artifacts.<name>``.
    """

    framework_modules: tuple[str, ...] = ()

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        """Write ``obj`` under ``folder``; return the paths written and extra record keys."""
        raise NotImplementedError

    def read(self, folder: Path, record: dict) -> Any:
        raise NotImplementedError

    def save(self, obj: Any, bundle_dir: Path) -> dict:
        folder = bundle_dir / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        paths, extra = self.write(obj, folder)
        files = []
        for path in paths:
            path = Path(path)
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    files.append(file_record(bundle_dir, file.relative_to(bundle_dir).as_posix()))
        return {"name": self.name, "type": self.type, **extra, "files": files}

    def load(self, bundle_dir: Path, record: dict) -> Any:
        return self.read(bundle_dir / "artifacts", record)

    def modules(self, bundle_dir: Path, record: dict) -> set[str]:
        found = set(record.get("modules") or self.framework_modules)
        for entry in record.get("files") or []:
            if entry["file"].endswith(".pkl"):  # helper pickles (e.g. a model's classes)
                found |= _pickling.pickled_modules(bundle_dir / entry["file"])
        return found


def file_record(bundle_dir: Path, file: str) -> dict:
    """``{file, sha256, size}`` of a file written under ``bundle_dir``."""
    path = bundle_dir / file
    return {"file": file, "sha256": sha256_file(path), "size": path.stat().st_size}


class JSONArtifact(NativeArtifact):
    """A JSON-able value (labels, a vocabulary, settings) saved as ``artifacts/<name>.json``.

    ``encoding`` and ``json_module`` (a module with ``dump``/``load``, or its name) as in
    BentoML 0.x. Refused at pack time when it cannot be written as JSON.
    """

    def __init__(self, name: str, encoding: str = "utf-8", json_module: ModuleType | str | None = None):
        super().__init__(name)
        self.encoding = encoding
        self.json_module = json_module.__name__ if isinstance(json_module, ModuleType) else json_module

    def _json(self) -> Any:
        return importlib.import_module(self.json_module) if self.json_module else json

    def check(self, obj: Any) -> Any:
        try:
            self._json().dumps(obj)
        except (TypeError, ValueError) as e:
            raise PackError(f"JSONArtifact {self.name!r}: the value cannot be written as JSON: {e}") from None
        return obj

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        path = folder / f"{self.name}.json"
        with open(path, "w", encoding=self.encoding) as f:
            self._json().dump(obj, f)
        return [path], {"encoding": self.encoding}

    def read(self, folder: Path, record: dict) -> Any:
        with open(folder / f"{self.name}.json", encoding=record.get("encoding", self.encoding)) as f:
            return self._json().load(f)


class TextFileArtifact(NativeArtifact):
    """A string (a prompt, a vocabulary, a config file) saved as ``artifacts/<name><ext>``.

    ``file_extension`` (default ``.txt``) and ``encoding`` as in BentoML 0.x.
    """

    def __init__(self, name: str, file_extension: str = ".txt", encoding: str = "utf-8"):
        super().__init__(name)
        if not file_extension.startswith(".") or "/" in file_extension or "\\" in file_extension:
            raise ValueError(f"file_extension must look like '.txt', got {file_extension!r}")
        self.file_extension = file_extension
        self.encoding = encoding

    def check(self, obj: Any) -> Any:
        if not isinstance(obj, str):
            raise PackError(f"TextFileArtifact {self.name!r} expects a str, got {type(obj).__name__}")
        try:
            obj.encode(self.encoding)
        except UnicodeEncodeError as e:
            raise PackError(f"TextFileArtifact {self.name!r}: the text cannot be written as "
                            f"{self.encoding}: {e}") from None
        return obj

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        path = folder / f"{self.name}{self.file_extension}"
        path.write_bytes(obj.encode(self.encoding))
        return [path], {"encoding": self.encoding}

    def read(self, folder: Path, record: dict) -> Any:
        data = (folder / f"{self.name}{self.file_extension}").read_bytes()
        return data.decode(record.get("encoding", self.encoding))


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

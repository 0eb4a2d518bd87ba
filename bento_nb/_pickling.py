"""Pickling with out-of-band buffers, and what a pickle imports.

Large numpy buffers (>= 1 MiB) are not copied into the pickle stream: with pickle protocol 5
they are handed to a ``buffer_callback`` and written straight from the arrays' memory into a
side file, 64-byte aligned. Loading memory-maps that file copy-on-write and gives the views
back to the unpickler, so a model holding 1 GB of arrays neither doubles memory when packed
nor copies a byte when loaded::

    record = dump(model, bundle_dir, "artifacts/model")   # model.pkl + model.buffers
    model = load(bundle_dir, record)

Objects whose classes live in ``__main__`` or in a local, non-installed module (a notebook
cell, ``bento_service.py`` next to the notebook) are pickled by value, so they load in a
fresh process that cannot import that module.
"""

from __future__ import annotations

import mmap
import os
import pickle
import pickletools
import sys
import sysconfig
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Iterator

import cloudpickle

from .store import HashingWriter

_INBAND_LIMIT = 1 << 20
_ALIGN = 64


def dump(obj: Any, bundle_dir: Path, stem: str, by_value: Iterable[ModuleType] = ()) -> dict:
    """Write ``bundle_dir/<stem>.pkl`` (and ``<stem>.buffers`` if any large buffer; ``stem``
    may hold a folder, e.g. ``artifacts/model``) and return the manifest record
    ``{file, sha256, size[, buffers: {file, sha256, size, spans}]}`` with relative paths."""
    (bundle_dir / stem).parent.mkdir(parents=True, exist_ok=True)
    buffers: list[pickle.PickleBuffer] = []

    def keep_large_out_of_band(buf: pickle.PickleBuffer) -> bool:
        try:
            nbytes = buf.raw().nbytes
        except BufferError:  # not contiguous: let pickle copy it in-band
            return True
        if nbytes < _INBAND_LIMIT:
            return True
        buffers.append(buf)
        return False

    pkl_path = bundle_dir / f"{stem}.pkl"
    with pickle_by_value(by_value), HashingWriter(pkl_path) as out:
        cloudpickle.dump(obj, out, protocol=5, buffer_callback=keep_large_out_of_band)
        record: dict[str, Any] = {"file": f"{stem}.pkl", **out.close()}
    if buffers:
        buf_path = bundle_dir / f"{stem}.buffers"
        spans = []
        with HashingWriter(buf_path) as out:
            for buf in buffers:
                pad = -out.size % _ALIGN
                if pad:
                    out.write(b"\0" * pad)
                raw = buf.raw()
                spans.append([out.size, raw.nbytes])
                out.write(raw)
            record["buffers"] = {"file": f"{stem}.buffers", **out.close(), "spans": spans}
    return record


def load(bundle_dir: Path, record: dict) -> Any:
    """Inverse of :func:`dump`; large buffers are memory-mapped, not read."""
    buffers = None
    info = record.get("buffers")
    if info:
        with open(bundle_dir / info["file"], "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if info["size"] else b""
        view = memoryview(mapped)
        buffers = [view[offset:offset + size] for offset, size in info["spans"]]
    with open(bundle_dir / record["file"], "rb") as f:
        return _Unpickler(f, buffers=buffers).load()


# Modules of bento_nb that moved, for bundles pickled before the move: old -> new.
_MOVED_MODULES = {"bento_nb.artifacts": "bento_nb.service.artifacts"}


class _Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that finds classes of bento_nb modules that have moved."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED_MODULES.get(module, module), name)


@contextmanager
def pickle_by_value(modules: Iterable[ModuleType]) -> Iterator[None]:
    """Register local modules with cloudpickle for pickling by value, for this block."""
    registered = []
    for module in modules:
        if module.__name__ == "__main__":
            continue  # cloudpickle already pickles __main__ by value
        try:
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        except ValueError:
            pass  # already registered, or not importable by name
    try:
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def local_modules(*objects: Any) -> list[ModuleType]:
    """Modules defining these objects (or their classes) that are not installed packages:
    ``__main__`` or a ``.py`` file outside site-packages and the standard library; and,
    transitively, the local modules those modules use (``import my_lib`` or
    ``from my_lib import f`` in a service file), so helper modules next to the service
    travel in the bundle by value and a bundle loads from any folder."""
    found: dict[str, ModuleType] = {}
    pending = []
    for obj in objects:
        cls = obj if isinstance(obj, type) else type(obj)
        pending += [getattr(obj, "__module__", None), cls.__module__]
    while pending:
        module = sys.modules.get(pending.pop() or "")
        if module is None or module.__name__ in found or not is_local_module(module):
            continue
        found[module.__name__] = module
        pending += _modules_used_by(module)
    return list(found.values())


def _modules_used_by(module: ModuleType) -> list[str]:
    """Names of the modules ``module``'s globals are or come from."""
    names = []
    for value in list(vars(module).values()):
        try:
            if isinstance(value, ModuleType):
                names.append(value.__name__)
            elif isinstance(value, type) or callable(value):
                names.append(getattr(value, "__module__", None))
        except Exception:  # noqa: BLE001 - a lazy proxy that fails on access: not a module
            continue
    return [n for n in names if isinstance(n, str)]


def is_local_module(module: ModuleType) -> bool:
    if module.__name__ == "__main__":
        return True
    file = getattr(module, "__file__", None)
    if not file or module.__name__.split(".")[0] in sys.stdlib_module_names:
        return False
    path = os.path.realpath(file)
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    roots.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    if any(path.startswith(os.path.realpath(r) + os.sep) for r in roots):
        return False
    return module.__name__.split(".")[0] != "bento_nb"


def pickled_modules(path: Path, top_level: bool = True) -> set[str]:
    """Top-level module names a pickle file refers to (GLOBAL / STACK_GLOBAL opcodes and
    cloudpickle's ``subimport`` calls), found by reading opcodes, never by unpickling;
    ``top_level=False``: the full dotted names (``sklearn.ensemble._forest``)."""
    modules = _ModuleNames(top_level)
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # the last few pushed values, enough for STACK_GLOBAL
    after_subimport = False
    with open(path, "rb") as f:
        for opcode, arg, _pos in pickletools.genops(f):
            name = opcode.name
            value: Any = None
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                value = arg
                if after_subimport:
                    modules.add(arg)
                    after_subimport = False
            elif name == "GLOBAL":
                module, _, attr = arg.partition(" ")
                modules.add(module)
                after_subimport = attr == "subimport"
            elif name == "STACK_GLOBAL" and len(recent) >= 2:
                module, attr = recent[-2], recent[-1]
                if isinstance(module, str):
                    modules.add(module)
                after_subimport = attr in ("subimport", "dynamic_subimport")
            elif name == "MEMOIZE" and recent:
                memo[len(memo)] = recent[-1]
                continue
            elif name in ("BINPUT", "LONG_BINPUT", "PUT") and recent:
                memo[int(arg)] = recent[-1]
                continue
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                value = memo.get(int(arg))
                if after_subimport and isinstance(value, str):
                    modules.add(value)
                    after_subimport = False
            elif name in ("FRAME", "PROTO"):
                continue
            recent.append(value)
            del recent[:-2]
    return set(modules)


class _ModuleNames(set):
    """A set of module names that keeps each whole or its top-level part only."""

    def __init__(self, top_level: bool):
        super().__init__()
        self._top_level = top_level

    def add(self, name: str) -> None:
        super().add(name.split(".")[0] if self._top_level else name)

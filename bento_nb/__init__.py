"""bento_nb: serve a machine-learning model straight from a Jupyter notebook.

    import bento_nb
    bundle = bento_nb.pack(clf, name="IrisClassifier")     # versioned bundle in the store
    server = bento_nb.serve(bundle.tag)                      # HTTP server in a thread
    svc = bento_nb.load("IrisClassifier:latest")             # in-process
    svc.predict([[5.1, 3.5, 1.4, 0.2]])

In a notebook: ``%load_ext bento_nb`` then ``%bento pack clf`` / ``%bento serve``.
Everything not in ``__all__`` is internal and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import hooks as _hooks
from ._version import __version__
from .errors import BentoNbError

if TYPE_CHECKING:  # the names below load on first use (PEP 562): `import bento_nb` is light
    from .service import BentoService, api, env, load, pack
    from .service import artifacts_decorator as artifacts
    from .store import Bundle, Store

__all__ = [
    "__version__", "BentoNbError", "BentoService", "Bundle", "Store",
    "api", "artifacts", "env", "load", "pack", "serve", "list_bundles", "batch", "spark",
    "load_ipython_extension", "unload_ipython_extension",
    # BentoML 0.x
    "save", "save_to_dir", "load_from_dir", "web_static_content",
]

# public name -> (module, attribute). Importing them lazily keeps `import bento_nb.jupyter`
# (Jupyter's start-up) and `%load_ext bento_nb` free of numpy, pandas and cloudpickle.
_LAZY = {
    "BentoService": (".service", "BentoService"),
    "api": (".service", "api"),
    "artifacts": (".service", "artifacts_decorator"),
    "env": (".service", "env"),
    "load": (".service", "load"),
    "pack": (".service", "pack"),
    "Bundle": (".store", "Bundle"),
    "Store": (".store", "Store"),
    "save": (".service.compat", "save"),
    "save_to_dir": (".service.compat", "save_to_dir"),
    "load_from_dir": (".service", "load_from_dir"),
    "web_static_content": (".service", "web_static_content"),
}


# Submodules reached as attributes: the public bento_nb.batch.predict(...) and
# bento_nb.spark.udf(...) (Spark loads only then), and those BentoML 0.x code reaches
# that way (`bentoml.saved_bundle.load(path)`).
_SUBMODULES = {"adapters", "artifact", "batch", "frameworks", "handlers", "saved_bundle",
               "spark", "types", "utils"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
        globals()[name] = value
        return value
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'bento_nb' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def serve(target, port: int = 5000, host: str = "127.0.0.1", **options):
    """Start an HTTP prediction server in a background thread; returns its handle
    (``.url``, ``.port``, ``.stats()``, ``.stop()``). See :func:`bento_nb.server.serve`."""
    from .server import serve as _serve

    return _serve(target, port=port, host=host, **options)


# svc.start_dev_server() (in bento_nb.service, which may not import the server) serves
# through this: the same thread-hosted server as bento_nb.serve.
_hooks.serve_in_process = serve


def list_bundles(name: str | None = None) -> list[Bundle]:
    """Every readable bundle in the store (or every version of ``name``), oldest first."""
    from .store import Store

    return Store().bundles(name)


def load_ipython_extension(ipython) -> None:
    """``%load_ext bento_nb``: register the ``%bento`` magic."""
    from .notebook import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .notebook import unload_ipython_extension as _unload

    _unload(ipython)


def _jupyter_server_extension_points():
    return [{"module": "bento_nb.jupyter"}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "bento-nb"}]

"""BentoML 0.x's ``bentoml.saved_bundle``: bundle folders outside the store.

    bento_nb.saved_bundle.save_to_dir(svc, "/tmp/iris")
    svc = bento_nb.saved_bundle.load("/tmp/iris")     # = load_from_dir
"""

from __future__ import annotations

from ..service import load_from_dir
from ..service.compat import save_to_dir

load = load_from_dir

__all__ = ["load", "load_from_dir", "save_to_dir"]

"""Environment variables, read in one place.

``BENTO_NB_HOME``       root of the model store (default ``~/bento_nb``)
``BENTO_NB_API_TOKEN``  when set, prediction routes require ``Authorization: Bearer <token>``
``BENTO_NB_IN_CONTAINER`` set by the images bento_nb builds: the server binds 0.0.0.0 inside
                        the container's own network namespace, so it does not warn about it
                        (publishing the port is ``docker run -p``'s decision)
``OMP_NUM_THREADS``     (and ``MKL_NUM_THREADS``) when set, the threads a ``bento-nb serve``
                        process lets torch, xgboost, lightgbm... use per model call; unset,
                        the server chooses (see ``bento_nb.server.process``)
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The store root: ``$BENTO_NB_HOME`` or ``~/bento_nb``; read on every call so tests
    and notebooks may change it at run time."""
    value = os.environ.get("BENTO_NB_HOME")
    return Path(value).expanduser() if value else Path.home() / "bento_nb"


def api_token() -> str | None:
    return os.environ.get("BENTO_NB_API_TOKEN") or None


def in_container() -> bool:
    return os.environ.get("BENTO_NB_IN_CONTAINER") == "1"


MODEL_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def model_threads_given() -> bool:
    """Whether the user chose how many threads the OpenMP / MKL libraries start."""
    return any(os.environ.get(name) for name in MODEL_THREAD_VARIABLES)

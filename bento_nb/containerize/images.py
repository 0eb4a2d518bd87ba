"""The Docker images built from each bundle, remembered beside the store.

    $BENTO_NB_HOME/images/<Name>/<version>.json
    [{"image": "iris:1", "image_id": "sha256:...", "size": 412000000,
      "built_at": "2026-12-01T12:00:00+00:00",
      "run": "docker run --rm -p 127.0.0.1:5000:5000 iris:1 --workers=2"}, ...]

:func:`record` is called by :func:`bento_nb.containerize.build` once an image is built: the
one function behind ``bento-nb containerize``, ``%bento containerize``, the widgets'
Containerize button and the Jupyter panel's jobs, so every image is recorded whichever
started it. :func:`built_from` reads the list, newest first (a rebuild of the same image
name replaces its entry). The file outlives a deleted bundle on purpose: the image still
exists in Docker. A file that cannot be read is treated as empty (and rewritten by the next
build), never an error: it only feeds displays.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
from pathlib import Path
from typing import Any

from .. import config
from .context import run_command

_KEEP = 20  # images remembered per bundle version


def images_file(name: str, version: str) -> Path:
    return config.home() / "images" / name / f"{version}.json"


def built_from(name: str, version: str) -> list[dict]:
    """The images recorded for bundle ``name:version``, newest first."""
    try:
        data = json.loads(images_file(name, version).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [entry for entry in data if isinstance(entry, dict)
            and isinstance(entry.get("image"), str)]


def record(name: str, version: str, result: Any) -> dict:
    """Remember that ``result`` (a :class:`~.builder.BuildResult`) was built from
    ``name:version``; returns the entry. Never raises for an unwritable folder (the image
    exists anyway): the entry is returned unrecorded."""
    entry = {
        "image": result.image,
        "image_id": result.image_id,
        "size": result.size,
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run": run_command(result.image),
    }
    entries = [entry] + [e for e in built_from(name, version) if e["image"] != result.image]
    path = images_file(name, version)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entries[:_KEEP], indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return entry

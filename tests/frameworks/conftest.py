"""The round trip every framework artifact must survive, with real processes:

1. a training script, written to its own folder, trains a tiny model, packs it into a
   0.x-style service and saves it (``pack_in_subprocess``); the folder is then deleted,
   so nothing later can import the training code;
2. ``bento-nb serve TAG`` in a fresh process from another folder (``served``) answers 64
   concurrent distinct requests, each with its own prediction, equal to what the live
   model predicted in the training process; a wrong-width table gets a 400 JSON error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from netcheck import exchange, free_port
from servecli import spawn, terminate, wait_ready

READY_SECONDS = 180  # tensorflow and torch take a while to import on a busy machine
PREAMBLE = """\
import json, sys
import numpy as np
import bento_nb
from bento_nb import BentoService, api, artifacts, env
from bento_nb.adapters import DataframeInput

def done(svc, rows, expected, **extra):
    path = svc.save()
    print("RESULT " + json.dumps({"tag": svc.tag, "path": path, "rows": np.asarray(rows).tolist(),
                                  "expected": np.asarray(expected).tolist(), **extra}))
"""


def pack_in_subprocess(tmp_path: Path, source: str, timeout: float = 300) -> dict:
    """Run ``source`` as ``train.py`` in a folder of its own (it ends with ``done(svc, rows,
    expected)``), delete the folder, and return what it reported."""
    folder = tmp_path / "training"
    folder.mkdir()
    (folder / "train.py").write_text(PREAMBLE + textwrap.dedent(source), encoding="utf-8")
    proc = subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True,
                          text=True, timeout=timeout)
    shutil.rmtree(folder)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


class Served:
    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port = proc, port

    def post(self, route: str, body, content_type: str = "application/json"):
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return exchange("127.0.0.1", self.port, "POST", f"/{route}", raw, content_type, None, 60)


@pytest.fixture
def served(tmp_path):
    """served(tag) -> a ``bento-nb serve`` process (another cwd, a free port), ready."""
    procs = []

    def start(tag: str) -> Served:
        port = free_port()
        cwd = tmp_path / "serving"
        cwd.mkdir(exist_ok=True)
        proc = spawn(tag, "--port", str(port), cwd=cwd)
        procs.append(proc)
        wait_ready(proc, port, READY_SECONDS)
        return Served(proc, port)

    yield start
    for proc in procs:
        terminate(proc, 30)


def check_served(served, packed: dict, route: str = "predict", rtol: float = 1e-5,
                 wrong_width: int | None = None) -> None:
    """:func:`check_concurrent`, and a row of the wrong width gets a 400 JSON error naming
    the expected width."""
    server = served(packed["tag"])
    check_concurrent(server, packed, route, rtol)
    width = len(packed["rows"][0])
    bad = server.post(route, [[0.5] * (wrong_width or width + 1)])
    assert bad.status == 400, bad.body
    error = json.loads(bad.body)["error"]
    assert f"expected {width} columns" in error["message"], error


def check_concurrent(server, packed: dict, route: str = "predict", rtol: float = 1e-5) -> None:
    """64 concurrent distinct one-row requests each get their own prediction."""
    rows, expected = packed["rows"], packed["expected"]
    assert len(rows) == 64 and len({json.dumps(r) for r in rows}) == 64

    def one(i: int):
        response = server.post(route, [rows[i]])
        assert response.status == 200, response.body
        return json.loads(response.body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(64)))
    for i, answer in enumerate(answers):
        np.testing.assert_allclose(np.asarray(answer, dtype=float).reshape(-1),
                                   np.asarray([expected[i]], dtype=float).reshape(-1),
                                   rtol=rtol, atol=1e-6, err_msg=f"request {i}")
    # the answers differ: each request got its own row's prediction, not a neighbour's
    assert len({json.dumps(a) for a in answers}) > 1


def assert_pins(packed: dict, *distributions: str) -> None:
    """The bundle's requirements.txt pins each distribution to the installed version (its
    public part: ``torch==2.13.0`` for an installed ``2.13.0+cpu``)."""
    from bento_nb.requirements import public_version

    lines = (Path(packed["path"]) / "requirements.txt").read_text().split()
    for dist in distributions:
        assert f"{dist}=={public_version(metadata.version(dist))}" in lines, (dist, lines)


def artifact_files(packed: dict) -> list[str]:
    """The files the bundle's (only) artifact wrote, as its manifest lists them."""
    from bento_nb.store.manifest import read_manifest

    (artifact,) = read_manifest(Path(packed["path"]))["artifacts"]
    return [f["file"] for f in artifact["files"]]

"""Issue 7 item 1: the soak bench, 10 s per target in CI (the README has the 60 s run)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from .conftest import REPO

SOAK = REPO / "bench" / "soak.py"


def load_soak_module():
    spec = importlib.util.spec_from_file_location("bento_soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_soak_10s_cli_and_inprocess(tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(SOAK), "--seconds", "10", "--json", str(out)],
                          capture_output=True, text=True, timeout=180, cwd=str(REPO))
    print(proc.stdout, proc.stderr[-2000:])
    results = {r["target"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"cli", "inprocess"}
    for target, r in results.items():
        assert r["requests"] > 1000, (target, r)           # the load really ran
        assert r["ok"] == r["requests"], (target, r["failures"], r["examples"])
        assert r["failed"] == 0 and r["wrong"] == 0, (target, r["examples"])
        assert all(n > 0 for n in r["body_forms"].values()), r["body_forms"]
        assert r["rss_growth_pct"] < 10.0, (target, r)
    assert results["inprocess"]["server_stats"]["requests"] == results["inprocess"]["requests"]
    assert results["inprocess"]["server_stats"]["mean_batch_size"] > 1
    assert proc.returncode == 0 and "PASS" in proc.stdout


def test_soak_checker_catches_wrong_answers(serve_model):
    """The soak's answer check is real: a model answering something else is caught."""
    from .conftest import Echo

    soak = load_soak_module()
    _, rows, answers = soak.make_pool()
    handle = serve_model(Echo())  # answers the first value of each row, not the class
    r = soak.soak("echo", handle.port, os.getpid(), seconds=1.0, warmup=0.5, rows=rows,
                  answers=answers, clients=4)
    assert r["requests"] > 0
    assert r["wrong"] == r["requests"] and r["ok"] == 0
    assert any("wrong answer" in e for e in r["examples"])

"""Soak test: 64 concurrent clients for N seconds against the iris SVC, every answer checked.

    python bench/soak.py                          # 60 s against each target (default)
    python bench/soak.py --seconds 10 --json out.json
    python bench/soak.py --target cli             # only `python -m bento_nb serve`
    python bench/soak.py --target inprocess       # only a bento_nb.serve(...) handle

Two targets, one after the other:

* ``cli``: ``python -m bento_nb serve SoakIris --port P`` in a subprocess; its resident
  memory (``VmRSS`` of /proc/<pid>/status) is sampled once a second.
* ``inprocess``: ``bento_nb.serve("SoakIris", port=0)`` in this process (background thread);
  the load generator shares the process, so the memory sampled is this process's.

The load generator is an asyncio loop of ``--clients`` keep-alive HTTP/1.1 connections, each
sending requests back to back (no think time). Every request carries 1-4 distinct rows of a
pool of 4096 jittered iris rows whose right answers were computed beforehand with the same
model, in every body form the API documents: JSON rows (most), CSV (one in five), records
and the split form ``{"columns", "data"}``, so requests of different shapes meet in one
batch. A response counts as *ok* only if it is a 200 whose JSON is exactly the expected
predictions; anything else (another status, a wrong or reordered answer, a reset, a 10 s
timeout) is a failure and is printed. Memory growth is measured from
the end of the warm-up (a fifth of the run, at least 2 s) to the end of the run.

Pass (exit code 0): zero failures, zero wrong answers, memory growth < 10 %. ``--json FILE``
writes the figures for each target (used by tests/reliability/test_soak.py).
Everything runs against 127.0.0.1, in a temporary BENTO_NB_HOME.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from array import array

CLIENTS = 64
POOL = 4096
REQUEST_TIMEOUT = 10.0
MAX_GROWTH = 0.10
NAMES = ["x0", "x1", "x2", "x3"]  # the column names /docs.json gives a positional model


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def make_pool():
    """(the fitted SVC, rows, expected answers): POOL distinct iris-like rows."""
    import numpy as np
    from sklearn import datasets, svm

    X, y = datasets.load_iris(return_X_y=True)
    clf = svm.SVC(gamma="scale").fit(X, y)
    rng = np.random.default_rng(7)
    rows = np.round(X[rng.integers(0, len(X), POOL)] + rng.normal(0, 0.15, (POOL, 4)), 3)
    rows = np.unique(rows, axis=0)  # distinct inputs
    rng.shuffle(rows)
    answers = [int(v) for v in clf.predict(rows)]
    return clf, rows.tolist(), answers


class Load:
    """``clients`` keep-alive connections hammering POST /predict until ``deadline``."""

    def __init__(self, host: str, port: int, rows: list, answers: list, clients: int):
        self.host, self.port = host, port
        self.rows, self.answers = rows, answers
        self.clients = clients
        self.ok = 0
        self.failures: dict[str, int] = {}
        self.examples: list[str] = []
        self.latencies = array("d")
        self.sent = 0
        self.forms = {"rows": 0, "csv": 0, "records": 0, "split": 0}
        self.stop_at = 0.0

    def fail(self, kind: str, detail: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if len(self.examples) < 10:
            self.examples.append(f"{kind}: {detail}")

    def request_for(self, client: int, k: int) -> tuple[bytes, list]:
        n = 1 + (client + k) % 4
        start = (client * 613 + k * 37) % (len(self.rows) - n)
        rows = self.rows[start:start + n]
        expected = self.answers[start:start + n]
        ctype = "application/json"
        if k % 5 == 4:
            self.forms["csv"] += 1
            body = "".join(",".join(repr(v) for v in row) + "\n" for row in rows).encode()
            ctype = "text/csv"
        elif k % 7 == 3:
            self.forms["records"] += 1
            body = json.dumps([dict(zip(NAMES, row)) for row in rows]).encode()
        elif k % 11 == 5:
            self.forms["split"] += 1
            body = json.dumps({"columns": NAMES, "data": rows}).encode()
        else:
            self.forms["rows"] += 1
            body = json.dumps(rows).encode()
        head = (f"POST /predict HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        return head + body, expected

    async def exchange(self, reader, writer, data: bytes) -> tuple[int, bytes]:
        writer.write(data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await reader.readexactly(length) if length else b""
        return status, body

    async def client(self, index: int) -> None:
        reader = writer = None
        k = 0
        while time.monotonic() < self.stop_at:
            if writer is None:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), REQUEST_TIMEOUT)
                except (OSError, asyncio.TimeoutError) as e:
                    self.fail("connect", repr(e))
                    await asyncio.sleep(0.1)
                    continue
            data, expected = self.request_for(index, k)
            k += 1
            self.sent += 1
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(self.exchange(reader, writer, data),
                                                      REQUEST_TIMEOUT)
            except asyncio.TimeoutError:
                self.fail("timeout", f"client {index} request {k}")
                writer.close()
                writer = None
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                self.fail("connection", f"client {index} request {k}: {e!r}")
                writer.close()
                writer = None
                continue
            self.latencies.append(time.perf_counter() - started)
            if status != 200:
                self.fail(f"http {status}", body[:200].decode("utf-8", "replace"))
            elif json.loads(body) != expected:
                self.fail("wrong answer", f"expected {expected}, got {body[:200]!r}")
            else:
                self.ok += 1
        if writer is not None:
            writer.close()

    async def run(self, seconds: float, on_tick) -> None:
        self.stop_at = time.monotonic() + seconds
        tasks = [asyncio.ensure_future(self.client(i)) for i in range(self.clients)]
        start = time.monotonic()
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0.25)
            on_tick(time.monotonic() - start)
        await asyncio.gather(*tasks)


def percentile(values: array, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def soak(target: str, port: int, pid: int, seconds: float, warmup: float, rows, answers,
         clients: int, metrics_url: str | None = None) -> dict:
    load = Load("127.0.0.1", port, rows, answers, clients)
    samples: list[tuple[float, int]] = [(0.0, rss_kib(pid))]
    last = [0.0]

    def tick(elapsed: float) -> None:
        if elapsed - last[0] >= 1.0:
            last[0] = elapsed
            samples.append((elapsed, rss_kib(pid)))

    started = time.perf_counter()
    asyncio.run(load.run(seconds, tick))
    wall = time.perf_counter() - started
    samples.append((wall, rss_kib(pid)))
    after_warmup = next((kib for t, kib in samples if t >= warmup), samples[-1][1])
    end = samples[-1][1]
    requests = load.ok + sum(load.failures.values())
    return {
        "target": target,
        "seconds": round(wall, 1),
        "clients": clients,
        "requests": requests,
        "ok": load.ok,
        "failed": sum(v for k, v in load.failures.items() if k != "wrong answer"),
        "wrong": load.failures.get("wrong answer", 0),
        "failures": load.failures,
        "examples": load.examples,
        "body_forms": load.forms,
        "requests_per_second": round(requests / wall, 1),
        "p50_ms": round(percentile(load.latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(load.latencies, 0.99) * 1000, 2),
        "max_ms": round(max(load.latencies, default=float("nan")) * 1000, 2),
        "rss_start_mb": round(samples[0][1] / 1024, 1),
        "rss_after_warmup_mb": round(after_warmup / 1024, 1),
        "rss_end_mb": round(end / 1024, 1),
        "rss_max_mb": round(max(k for _, k in samples) / 1024, 1),
        "rss_growth_pct": round(100.0 * (end - after_warmup) / after_warmup, 2),
        "warmup_s": warmup,
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli_target(tag: str, seconds: float, warmup: float, rows, answers, clients: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bento_nb", "serve", tag, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(proc, 60)
        if "serving" not in line:
            raise SystemExit(f"the CLI server did not start: {line!r} {proc.stderr.read()}")
        out = soak("cli", port, proc.pid, seconds, warmup, rows, answers, clients)
        out["server_stats"] = None
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


def run_inprocess_target(tag: str, seconds: float, warmup: float, rows, answers,
                         clients: int) -> dict:
    import bento_nb

    handle = bento_nb.serve(tag, port=0)
    try:
        out = soak("inprocess", handle.port, os.getpid(), seconds, warmup, rows, answers, clients)
        stats = handle.stats()
        out["server_stats"] = {k: stats[k] for k in ("requests", "errors", "mean_batch_size",
                                                       "p50_ms", "p99_ms")}
        return out
    finally:
        handle.stop()


def print_table(results: list[dict]) -> None:
    cols = [("target", "target"), ("seconds", "s"), ("requests", "requests"), ("ok", "ok"),
            ("failed", "failed"), ("wrong", "wrong"), ("requests_per_second", "req/s"),
            ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("rss_after_warmup_mb", "RSS warm MB"),
            ("rss_end_mb", "RSS end MB"), ("rss_growth_pct", "growth %")]
    widths = [max(len(h), *(len(str(r[k])) for r in results)) for k, h in cols]
    print("  ".join(h.rjust(w) for (_, h), w in zip(cols, widths)))
    for r in results:
        print("  ".join(str(r[k]).rjust(w) for (k, _), w in zip(cols, widths)))
    for r in results:
        print(f"{r['target']}: body forms {r['body_forms']}, RSS start {r['rss_start_mb']} MB, "
              f"max {r['rss_max_mb']} MB, slowest {r['max_ms']} ms")
        if r["failures"]:
            print(f"{r['target']}: failures {r['failures']}")
            for example in r["examples"]:
                print("   ", example)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the memory baseline (default: a fifth, >= 2)")
    parser.add_argument("--target", choices=["both", "cli", "inprocess"], default="both")
    parser.add_argument("--json", metavar="FILE", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else max(2.0, args.seconds / 5)

    with tempfile.TemporaryDirectory(prefix="bento_soak_") as home:
        os.environ["BENTO_NB_HOME"] = home
        os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(home, "runtime")
        os.environ.pop("BENTO_NB_API_TOKEN", None)
        import bento_nb

        clf, rows, answers = make_pool()
        tag = bento_nb.pack(clf, name="SoakIris").tag
        print(f"soak: {args.clients} clients, {args.seconds:g} s per target, warm-up {warmup:g} s, "
              f"{len(rows)} distinct rows, bundle {tag}", flush=True)
        results = []
        if args.target in ("both", "cli"):
            results.append(run_cli_target(tag, args.seconds, warmup, rows, answers, args.clients))
        if args.target in ("both", "inprocess"):
            results.append(run_inprocess_target(tag, args.seconds, warmup, rows, answers,
                                                args.clients))
    print_table(results)
    for r in results:
        if r.get("server_stats"):
            print(f"{r['target']} server stats: {r['server_stats']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    passed = all(r["failed"] == 0 and r["wrong"] == 0 and r["rss_growth_pct"] < 100 * MAX_GROWTH
                 for r in results)
    print("PASS" if passed else "FAIL: failures, wrong answers or memory growth >= 10 %")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

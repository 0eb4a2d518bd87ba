"""Framework benchmark: torch and xgboost models served by bento_nb against a per-request
tornado endpoint, and their native bundle against a pickle of the object.

    python bench/frameworks.py                       # ~3 min: both models, 3 runs of 4 s each
    python bench/frameworks.py --models xgboost --repeat 1 --duration 2

Two models with four inputs each (one iris-sized row per request):

  torch      a small MLP, ``nn.Sequential`` 4 → 256 → 256 → 3 (ReLU), float32
  xgboost    an ``XGBRegressor`` of 300 trees of depth 6

Each is served, one server at a time, as a separate process on 127.0.0.1:

  bento_nb       ``bento-nb serve TAG`` of ``bento_nb.pack(model)`` (the native bundle,
                 adaptive micro-batching)
  per-request    a tornado 6 ``RequestHandler`` calling the same model once per request on
                 its event loop: ``model(torch.as_tensor(rows))`` under ``no_grad`` or
                 ``model.predict(np.asarray(rows))`` (the hand-written endpoint a notebook
                 user would otherwise deploy)

and loaded by ``wrk -t1 -c64`` (``--concurrency``) POSTing one row as JSON, the servers
taking turns ``--repeat`` times; the table shows medians (requests/s range beside them),
and the target is judged on the medians: bento_nb ≥ 5× the per-request throughput with
zero non-2xx answers. Both get ``OMP_NUM_THREADS`` as ``bento-nb serve`` sets it
for itself (one per core left after the event loop's; yours wins when set), so the ratio
is that of batching, not of OpenMP threads spin-waiting. The load generator, its parsing, the CPU-time reading and the
medians are bench/serve.py's.

Then pack and load: ``bento_nb.pack(model)`` (the framework's own format, checksummed) and
``bento_nb.load(tag)`` against ``pickle.dumps`` / ``pickle.loads`` of the live object, the
median of five in this process (imports already paid), with the sizes on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as serve_bench  # noqa: E402  (bench/serve.py: wrk, /proc CPU time, medians)

MODELS = ("torch", "xgboost")
SERVERS = ("bento_nb", "per-request")
ROW = json.loads(serve_bench.BODY)


def train(kind: str):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 4)).astype("float32")
    if kind == "torch":
        import torch

        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 3)).eval()
    import xgboost

    y = X @ np.array([1.0, -2.0, 3.0, 0.5], dtype="float32") + rng.normal(size=5000)
    return xgboost.XGBRegressor(n_estimators=300, max_depth=6, random_state=0).fit(X, y)


def predict_function(kind: str, model):
    """``rows -> list``: the model called the framework's way, once per request."""
    import numpy as np

    if kind == "torch":
        import torch

        def predict(rows):
            with torch.no_grad():
                return model(torch.as_tensor(rows, dtype=torch.float32)).numpy().tolist()
        return predict
    return lambda rows: model.predict(np.asarray(rows, dtype="float32")).tolist()


# -- the per-request endpoint (a child process) --------------------------------------------


def per_request_child(kind: str, port: int, model_path: str) -> None:
    from tornado import httpserver, ioloop, web

    with open(model_path, "rb") as f:
        predict = predict_function(kind, pickle.load(f))

    class Predict(web.RequestHandler):
        def post(self):
            answer = predict(json.loads(self.request.body))
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(answer))

    app = web.Application([(r"/predict", Predict)], log_function=lambda handler: None)
    httpserver.HTTPServer(app).listen(port, "127.0.0.1")
    ioloop.IOLoop.current().start()


def start(kind: str, server: str, tag: str, model_path: str, env: dict):
    if server == "bento_nb":
        return serve_bench.start_server("bento_nb", tag, model_path, env, [])
    port = serve_bench.free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, "--port", str(port),
                             "--model-path", model_path], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    serve_bench.wait_ready(url, proc)
    return proc, url


def answer(url: str):
    import urllib.request

    request = urllib.request.Request(url + "/predict", data=serve_bench.BODY.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# -- pack / load -----------------------------------------------------------------------------


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def pack_and_load(kind: str, model, rounds: int = 5) -> dict:
    import bento_nb

    pack_s, load_s, dump_s, loads_s = [], [], [], []
    bundle = None
    for _ in range(rounds):
        t = time.perf_counter()
        bundle = bento_nb.pack(model, name=f"Bench{kind.title()}", provenance=False)
        pack_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        bento_nb.load(bundle.tag)
        load_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        dump_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        pickle.loads(data)
        loads_s.append(time.perf_counter() - t)
    return {"model": kind, "pack_ms": median(pack_s) * 1e3, "load_ms": median(load_s) * 1e3,
            "artifact_bytes": folder_bytes(bundle.path / "artifacts"),
            "bundle_bytes": folder_bytes(bundle.path),
            "format": _format(bundle),
            "dumps_ms": median(dump_s) * 1e3, "loads_ms": median(loads_s) * 1e3,
            "pickle_bytes": len(data), "tag": bundle.tag}


def _format(bundle) -> str:
    return str((bundle.manifest.get("model") or {}).get("format", "?"))


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs per server, taking turns")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        per_request_child(args.child, args.port, args.model_path)
        return

    if not shutil.which("wrk"):
        raise SystemExit("bench/frameworks.py needs wrk (apt-get install wrk)")
    home = tempfile.mkdtemp(prefix="bento_nb_bench_frameworks_")
    os.environ["BENTO_NB_HOME"] = home
    # Both servers get the threads bento-nb serve gives itself (server.process), so the
    # comparison is of batching, not of OpenMP threads spinning on a busy machine.
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) - 1))
    env = {**os.environ, "BENTO_NB_HOME": home, "OMP_NUM_THREADS": threads}
    lua = Path(home) / "post.lua"
    lua.write_text(serve_bench.LUA)
    load = os.getloadavg()
    print(f"wrk -t1 -c{args.concurrency}, {args.duration:g} s per run, {args.repeat} run(s) per "
          f"server, {os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}, load average {load[0]:.1f}", flush=True)
    runs, storage = [], []
    try:
        for kind in args.models.split(","):
            model = train(kind)
            expected = predict_function(kind, model)(ROW)
            packed = pack_and_load(kind, model)
            storage.append(packed)
            model_path = str(Path(home) / f"{kind}.pkl")
            with open(model_path, "wb") as f:
                pickle.dump(model, f)
            for turn in range(max(1, args.repeat)):
                for server in SERVERS:
                    runs.append(one_run(kind, server, packed["tag"], model_path, env, lua,
                                        args, expected, turn))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    results = serve_bench.medians(runs)
    print_tables(results, storage)
    if args.json:
        Path(args.json).write_text(json.dumps({"serving": results, "storage": storage}, indent=1))


def one_run(kind, server, tag, model_path, env, lua, args, expected, turn) -> dict:
    import numpy as np

    proc, url = start(kind, server, tag, model_path, env)
    try:
        got = answer(url)
        if not np.allclose(np.asarray(got, dtype=float).reshape(-1),
                           np.asarray(expected, dtype=float).reshape(-1), rtol=1e-4, atol=1e-5):
            raise SystemExit(f"{server} answered {got} for {kind}, the model says {expected}")
        serve_bench.run_wrk(url, 16, 1, lua)  # warm-up: first calls, the batch-time fit
        before = serve_bench.batch_counters(url) if server == "bento_nb" else None
        cpu_before = serve_bench.cpu_seconds(proc.pid)
        row = serve_bench.run_wrk(url, args.concurrency, args.duration, lua)
        served = row["rps"] * max(1, round(args.duration))
        row["cpu_us"] = (serve_bench.cpu_seconds(proc.pid) - cpu_before) / served * 1e6
        if before is not None:
            after = serve_bench.batch_counters(url)
            batches = after[1] - before[1]
            row["batch"] = (after[0] - before[0]) / batches if batches else 0.0
        row.update(model=kind, server=server, c=args.concurrency)
        print(f"  run {turn + 1}/{args.repeat} {kind} {server}: {row['rps']:.0f} req/s, "
              f"{row['non2xx']} non-2xx", file=sys.stderr, flush=True)
        return row
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def print_tables(results: list[dict], storage: list[dict]) -> None:
    print()
    header = (f"{'model':<8} {'server':<12} {'c':>3} {'req/s':>8} {'range':>13} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'non-2xx':>7} {'batch':>6} {'CPU us/req':>10}")
    print(header)
    print("-" * len(header))
    for r in results:
        batch = f"{r['batch']:6.1f}" if "batch" in r else f"{'-':>6}"
        print(f"{r['model']:<8} {r['server']:<12} {r['c']:>3} {r['rps']:>8.0f} "
              f"{r['rps_min']:>6.0f}-{r['rps_max']:<6.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
              f"{r['non2xx']:>7} {batch} {r['cpu_us']:>10.0f}")
    print()
    header = (f"{'model':<8} {'format':<10} {'pack ms':>8} {'load ms':>8} {'artifact KB':>11} "
              f"{'bundle KB':>9} | {'pickle dumps ms':>15} {'loads ms':>8} {'pickle KB':>9}")
    print(header)
    print("-" * len(header))
    for s in storage:
        print(f"{s['model']:<8} {s['format']:<10} {s['pack_ms']:>8.1f} {s['load_ms']:>8.1f} "
              f"{s['artifact_bytes'] / 1024:>11.1f} {s['bundle_bytes'] / 1024:>9.1f} | "
              f"{s['dumps_ms']:>15.2f} {s['loads_ms']:>8.2f} {s['pickle_bytes'] / 1024:>9.1f}")
    print()
    for kind in {r["model"] for r in results}:
        ours = next((r for r in results if r["model"] == kind and r["server"] == "bento_nb"), None)
        plain = next((r for r in results if r["model"] == kind and r["server"] == "per-request"),
                     None)
        if ours and plain:
            ratio = ours["rps"] / plain["rps"]
            ok = ratio >= 5 and ours["non2xx"] == 0
            print(f"[{'met ' if ok else 'MISS'}] {kind} c={ours['c']}: {ratio:.1f}x the per-request "
                  f"throughput (target >= 5), {ours['non2xx']} non-2xx (target 0)")


if __name__ == "__main__":
    main()

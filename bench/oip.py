"""Open Inference Protocol benchmark: bento_nb's /v2 infer against its native /predict and
against MLServer serving the same iris SVC on the same machine, in one run.

    python bench/oip.py                                  # ~1.5 min, c = 64, 8 s per run
    python bench/oip.py --mlserver /path/to/venv/bin/mlserver --duration 5 --repeat 3

MLServer (``pip install mlserver mlserver-sklearn``, 1.7) pins pandas, protobuf and
starlette versions of its own: install it in a separate virtualenv and pass its
``mlserver`` with ``--mlserver`` (without it, the MLServer rows are skipped). It serves the
model with its scikit-learn runtime, adaptive batching on (``max_batch_size`` 64,
``max_batch_time`` 10 ms), one process (``parallel_workers`` 0). It binds 0.0.0.0; every
request here goes to 127.0.0.1.

Each server runs as a separate process, one at a time, and takes one iris row per request:

  native /predict        wrk, ``[[5.1,3.5,1.4,0.2]]``
  OIP JSON               wrk, ``{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64",...}]}``
  OIP binary             wrk, exactly the bytes tritonclient sends (binary tensor extension)
  tritonclient           ``tritonclient.http`` itself, ``async_infer`` from 64 greenlets
                         in ``--client-processes`` processes (2; its default: binary
                         inputs and outputs)
  same-client native     /predict from 64 greenlets of geventhttpclient, the HTTP client
                         tritonclient is built on, in as many processes: the native route
                         through the same client machinery, for the tritonclient ratio

Printed: requests/s, p50/p99 ms, non-2xx, the server's CPU time per request, the machine's
load average before and after (with ``--repeat N``: N rounds, bento_nb and MLServer taking
turns, and the median of each figure); then the targets (OIP through tritonclient >= 0.8x native;
bento_nb >= 2x MLServer at c=64 with zero non-2xx). On 2 shared cores a run varies by
about 15 %; the Python clients need CPU of their own, which the servers then do not get.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve  # noqa: E402
from serve import cpu_seconds, free_port, train  # noqa: E402

ROW = [5.1, 3.5, 1.4, 0.2]
NATIVE_BODY = json.dumps([ROW])
OIP_BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                   "data": ROW}]})


def tritonclient_binary_request() -> tuple[bytes, int]:
    """The body and JSON header length tritonclient sends for one row (binary in, all
    outputs binary), built by tritonclient itself."""
    import numpy as np
    from tritonclient.http import InferInput
    from tritonclient.http._utils import _get_inference_request

    tensor = InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([ROW]))
    body, json_size = _get_inference_request([tensor], "", None, 0, False, False, 0, None, None)
    return body, json_size


def lua_script(path: Path, body: bytes, headers: dict) -> None:
    escaped = "".join(f"\\{b:03d}" for b in body)  # any bytes, as a Lua string
    lines = ['wrk.method = "POST"', f'wrk.body = "{escaped}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")


def run_wrk(url: str, concurrency: int, duration: float, lua: Path) -> dict:
    return serve.run_wrk(url, concurrency, duration, lua, path="")


def run_in_processes(kind: str, port: int, model: str, concurrency: int, duration: float,
                     processes: int, binary: bool = True) -> dict:
    """A Python client load (``kind``: tritonclient or same-client) from ``processes``
    child processes sharing ``concurrency`` greenlets: one Python process is held to one
    core by its GIL, more than the server needs to answer it."""
    share = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    children = [subprocess.Popen(
        [sys.executable, __file__, "--load-child", kind, "--port", str(port), "--model", model,
         "--concurrency", str(n), "--duration", str(duration),
         *(["--json-only"] if not binary else [])],
        stdout=subprocess.PIPE, env={**os.environ}) for n in share]
    parts = []
    for child in children:
        out, _ = child.communicate(timeout=duration + 120)
        parts.append(json.loads(out))
    latencies = sorted(v for part in parts for v in part["latencies"])
    n = sum(part["count"] for part in parts)
    return {"rps": n / duration, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(len(latencies) * .99)],
            "non2xx": sum(part["failed"] for part in parts),
            "client_us": sum(part["cpu"] for part in parts) / max(n, 1) * 1e6}


def load_child(args) -> None:
    if args.load_child == "tritonclient":
        row = run_tritonclient(args.port, args.model, args.concurrency, args.duration,
                               binary=not args.json_only, keep=True)
    else:
        row = run_same_client_native(args.port, args.concurrency, args.duration, keep=True)
    print(json.dumps(row))


def run_greenlets(call, concurrency: int, duration: float, keep: bool = False) -> dict:
    """``call()`` -> ok, from ``concurrency`` greenlets for ``duration`` seconds."""
    import gevent

    latencies: list[float] = []
    failed = [0]
    cpu_started = time.process_time()
    stop_at = time.monotonic() + duration

    def worker():
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                ok = call()
            except Exception:  # noqa: BLE001 - counted, the run goes on
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            if not ok:
                failed[0] += 1

    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)], timeout=duration + 30)
    latencies.sort()
    n = len(latencies)
    if keep:  # for the parent of several load processes
        return {"count": n, "failed": failed[0], "latencies": latencies[::max(1, n // 2000)],
                "cpu": time.process_time() - cpu_started}
    return {"rps": n / duration, "p50": latencies[n // 2], "p99": latencies[int(n * .99)],
            "non2xx": failed[0]}


def run_tritonclient(port: int, model: str, concurrency: int, duration: float,
                     binary: bool = True, keep: bool = False) -> dict:
    import numpy as np
    import tritonclient.http as triton

    client = triton.InferenceServerClient(f"127.0.0.1:{port}", concurrency=concurrency,
                                          network_timeout=10)
    tensor = triton.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([ROW]), binary_data=binary)
    outputs = [triton.InferRequestedOutput("predict", binary_data=binary)]
    expected = client.infer(model, [tensor], outputs=outputs).as_numpy("predict").ravel()[0]

    def call():
        result = client.async_infer(model, [tensor], outputs=outputs).get_result()
        return result.as_numpy("predict").ravel()[0] == expected

    try:
        return run_greenlets(call, concurrency, duration, keep)
    finally:
        client.close()


def run_same_client_native(port: int, concurrency: int, duration: float,
                           keep: bool = False) -> dict:
    from geventhttpclient import HTTPClient

    client = HTTPClient("127.0.0.1", port, concurrency=concurrency, network_timeout=10)
    headers = {"Content-Type": "application/json"}

    def call():
        response = client.post("/predict", body=NATIVE_BODY, headers=headers)
        response.read()
        return response.status_code == 200

    try:
        return run_greenlets(call, concurrency, duration, keep)
    finally:
        client.close()


def start_bento_nb(tag: str, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bento_nb", "serve", tag, "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    serve.wait_until_ok(f"http://127.0.0.1:{port}/v2/health/ready", proc, 120)
    return proc, port


def start_mlserver(mlserver: str, model, home: Path) -> tuple[subprocess.Popen, int]:
    folder = home / "mlserver"
    folder.mkdir(exist_ok=True)
    # joblib from the mlserver virtualenv's own Python, so the pickle matches its sklearn
    with open(folder / "model.pkl", "wb") as f:
        pickle.dump(model, f)
    python = str(Path(mlserver).parent / "python")
    subprocess.run([python, "-c", "import joblib, pickle; joblib.dump(pickle.load(open("
                    "'model.pkl','rb')), 'model.joblib')"], cwd=folder, check=True, timeout=120)
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"}, "max_batch_size": 64,
        "max_batch_time": 0.01}))
    (folder / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": grpc_port, "metrics_port": metrics_port,
        "parallel_workers": 0}))
    proc = subprocess.Popen([mlserver, "start", "."], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    serve.wait_until_ok(f"http://127.0.0.1:{port}/v2/models/iris/ready", proc, 120)
    return proc, port


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure(proc, label: str, run) -> dict:
    cpu_before = cpu_seconds(proc.pid)
    row = run()
    served = max(1.0, row["rps"] * DURATION[0])
    row["cpu_us"] = (cpu_seconds(proc.pid) - cpu_before) / served * 1e6
    row["run"] = label
    client = f" {row['client_us']:>10.0f}" if "client_us" in row else ""
    print(f"{label:<34} {row['rps']:>9.0f} {row['p50']:>8.2f} {row['p99']:>8.2f} "
          f"{row['non2xx']:>8} {row['cpu_us']:>10.0f}{client}", flush=True)
    return row


DURATION = [8.0]


def medians(rounds: list[dict]) -> dict:
    """Per run, the median of each figure over the rounds (non-2xx summed, req/s range)."""
    import statistics

    out = {}
    for key in rounds[0]:
        runs = [r[key] for r in rounds if key in r]
        rps = [r["rps"] for r in runs]
        out[key] = {"run": runs[0]["run"], "non2xx": sum(r["non2xx"] for r in runs),
                    "range": f"{min(rps):.0f}-{max(rps):.0f}",
                    **{f: statistics.median(r[f] for r in runs)
                       for f in ("rps", "p50", "p99", "cpu_us", "client_us") if f in runs[0]}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mlserver", help="the mlserver executable (its own virtualenv)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds, the servers taking turns; report medians")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="processes of the Python client loads (tritonclient, same-client)")
    parser.add_argument("--load-child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_child:
        load_child(args)
        return
    DURATION[0] = max(1, round(args.duration))
    c, duration = args.concurrency, args.duration
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk (apt-get install wrk)")

    import bento_nb

    home = Path(tempfile.mkdtemp(prefix="bento_nb_oip_bench_"))
    env = {**os.environ, "BENTO_NB_HOME": str(home)}
    os.environ["BENTO_NB_HOME"] = str(home)
    model = train("svc")
    tag = bento_nb.pack(model, name="IrisSVC").tag
    scripts = {}
    for name, body, headers in [
            ("native", NATIVE_BODY.encode(), {"Content-Type": "application/json"}),
            ("oip_json", OIP_BODY.encode(), {"Content-Type": "application/json"})]:
        scripts[name] = home / f"{name}.lua"
        lua_script(scripts[name], body, headers)
    binary_body, json_size = tritonclient_binary_request()
    scripts["oip_binary"] = home / "oip_binary.lua"
    lua_script(scripts["oip_binary"], binary_body,
               {"Inference-Header-Content-Length": str(json_size)})

    load_before = os.getloadavg()
    print(f"c={c}, {duration:g} s per run, {os.cpu_count()} CPUs, load average "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    print(f"{'run':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
          f"{'CPU us/req':>10} {'client us':>10}")
    procs = args.client_processes

    def bento_nb_round(rows: dict) -> None:
        proc, port = start_bento_nb(tag, env)
        base = f"http://127.0.0.1:{port}"
        infer = base + "/v2/models/IrisSVC/infer"
        try:
            run_wrk(base + "/predict", 16, 1, scripts["native"])  # warm-up: first calls, fit
            run_wrk(infer, 16, 1, scripts["oip_json"])
            rows["native"] = measure(proc, "bento_nb native /predict (wrk)", lambda: run_wrk(
                base + "/predict", c, duration, scripts["native"]))
            rows["oip_json"] = measure(proc, "bento_nb OIP JSON (wrk)", lambda: run_wrk(
                infer, c, duration, scripts["oip_json"]))
            rows["oip_binary"] = measure(proc, "bento_nb OIP binary (wrk)", lambda: run_wrk(
                infer, c, duration, scripts["oip_binary"]))
            rows["triton"] = measure(proc, "bento_nb OIP via tritonclient",
                                     lambda: run_in_processes("tritonclient", port, "IrisSVC",
                                                              c, duration, procs))
            rows["same_client"] = measure(proc, "bento_nb native via geventhttpclient",
                                          lambda: run_in_processes("same-client", port, "", c,
                                                                   duration, procs))
        finally:
            stop(proc)

    def mlserver_round(rows: dict) -> None:
        proc, port = start_mlserver(args.mlserver, model, home)
        url = f"http://127.0.0.1:{port}/v2/models/iris/infer"
        try:
            run_wrk(url, 16, 1, scripts["oip_json"])
            rows["mlserver"] = measure(proc, "MLServer OIP JSON (wrk)", lambda: run_wrk(
                url, c, duration, scripts["oip_json"]))
            rows["mlserver_triton"] = measure(
                proc, "MLServer via tritonclient (JSON)",
                lambda: run_in_processes("tritonclient", port, "iris", c, duration, procs,
                                         binary=False))
        finally:
            stop(proc)

    rounds = []
    for turn in range(max(1, args.repeat)):
        if args.repeat > 1:
            print(f"-- round {turn + 1} of {args.repeat}", flush=True)
        rows: dict = {}
        bento_nb_round(rows)
        if args.mlserver:
            mlserver_round(rows)
        rounds.append(rows)
    rows = rounds[0] if len(rounds) == 1 else medians(rounds)
    if len(rounds) > 1:
        print(f"-- medians of {len(rounds)} rounds (non-2xx: summed)")
        for key, row in rows.items():
            client = f" {row['client_us']:>10.0f}" if "client_us" in row else " " * 11
            print(f"{row['run']:<34} {row['rps']:>9.0f} {row['p50']:>8.2f} {row['p99']:>8.2f} "
                  f"{row['non2xx']:>8} {row['cpu_us']:>10.0f}{client}   req/s {row['range']}")
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print()
    ratio = rows["triton"]["rps"] / rows["same_client"]["rps"]
    print(f"OIP via tritonclient / native via the same client: {ratio:.2f}x (target >= 0.8)")
    # Clients and server share the machine's cores: req/s <= cores / (server + client CPU
    # per request). The ceiling of the ratio with this server, and with an OIP route that
    # cost the server no more than the native one:
    cores = os.cpu_count() or 1
    triton, same = rows["triton"], rows["same_client"]
    ceiling_native = cores / (same["cpu_us"] + same["client_us"]) * 1e6
    ceiling_triton = cores / (triton["cpu_us"] + triton["client_us"]) * 1e6
    ceiling_free = cores / (same["cpu_us"] + triton["client_us"]) * 1e6
    print(f"CPU per request, server + client: tritonclient {triton['cpu_us']:.0f} + "
          f"{triton['client_us']:.0f} us, same-client native {same['cpu_us']:.0f} + "
          f"{same['client_us']:.0f} us; on {cores} cores the ratio can reach at most "
          f"{ceiling_triton / ceiling_native:.2f}x, and "
          f"{ceiling_free / ceiling_native:.2f}x if OIP cost the server what native does")
    print(f"OIP via tritonclient / native /predict with wrk: "
          f"{rows['triton']['rps'] / rows['native']['rps']:.2f}x (wrk needs far less CPU "
          f"than a Python client on the same cores)")
    ratio_wrk = rows["oip_binary"]["rps"] / rows["native"]["rps"]
    print(f"OIP binary / native /predict, both wrk: {ratio_wrk:.2f}x; JSON: "
          f"{rows['oip_json']['rps'] / rows['native']['rps']:.2f}x")
    if "mlserver" in rows:
        vs = rows["oip_json"]["rps"] / rows["mlserver"]["rps"]
        bad = rows["oip_json"]["non2xx"] + rows["oip_binary"]["non2xx"] + rows["triton"]["non2xx"]
        print(f"bento_nb OIP JSON / MLServer OIP JSON, wrk c={c}: {vs:.2f}x (target >= 2), "
              f"bento_nb non-2xx: {bad}")
        if "mlserver_triton" in rows:
            print(f"through tritonclient: bento_nb (binary) / MLServer (JSON): "
                  f"{rows['triton']['rps'] / rows['mlserver_triton']['rps']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

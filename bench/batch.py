"""Batch benchmark: ``bento-nb run`` over a large CSV, and the Spark UDF against MLflow's.

    python bench/batch.py                              # the targets: 10M rows, both models, 3 runs
    python bench/batch.py --rows 1000000 --repeat 1 --models svc
    python bench/batch.py --skip-files --spark-rows 1000000   # the Spark comparison alone

Files. A CSV of ``--rows`` iris rows (4 numeric columns, a header) is scored, for the iris
SVC and a RandomForest of 200 trees, by three commands, each a fresh process, taking
turns ``--repeat`` times (medians reported):

  pandas      ``pandas.read_csv`` + ``model.predict`` + ``DataFrame.to_parquet``: the whole
              file in memory, the same unpickled model
  run         ``bento-nb run TAG predict --input-file in.csv --output out.parquet``
  run -w2     the same with ``--workers 2``

Each row of the table: rows/s over the process's whole wall time (start-up, bundle load,
reading, predicting, writing), the CPU seconds it used (user + sys of the process and
every process it started, the workers' fork server and workers included, read from
``/proc`` while it runs) and those over its wall time (cores used: 2.0 is both cores
busy, less is time spent waiting for a core others use), the load average as it ended,
and its peak RSS (for ``run -w2`` the main process and the largest other process).
``--flat 1000000`` adds a ``run`` at that many rows, to show the peak RSS does not grow
with the file.

Spark. In one ``local[2]`` session, a DataFrame of ``--spark-rows`` iris rows (cached)
gets a prediction column from ``bento_nb.spark.udf`` and from ``mlflow.pyfunc.spark_udf``
(``env_manager="local"``) on the same SVC, each written to Spark's ``noop`` sink; rows/s,
medians of ``--repeat``. Needs ``pip install pyspark mlflow-skinny skops`` and Java.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLUMNS = ["sl", "sw", "pl", "pw"]
MODELS = {"svc": "IrisSVC", "rf200": "IrisForest200"}

MEASURED = """
import json, resource, sys, time
start = time.perf_counter()
{body}
usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": time.perf_counter() - start, "rss_mb": usage / 1024}}))
"""

PANDAS = """
import pandas as pd
import bento_nb
model = bento_nb.load({tag!r}).artifacts.model
frame = pd.read_csv({source!r})
pd.DataFrame({{"prediction": model.predict(frame.to_numpy())}}).to_parquet({target!r})
"""

RUN = """
from bento_nb.cli import main
code = main({argv!r})
if code:
    sys.exit(code)
"""


def prepare(home: Path, rows: int, folder: Path) -> Path:
    import numpy as np
    from sklearn import datasets, svm
    from sklearn.ensemble import RandomForestClassifier

    import bento_nb

    os.environ["BENTO_NB_HOME"] = str(home)
    X, y = datasets.load_iris(return_X_y=True)
    if not bento_nb.list_bundles("IrisSVC"):
        bento_nb.pack(svm.SVC().fit(X, y), name="IrisSVC")
        bento_nb.pack(RandomForestClassifier(n_estimators=200, random_state=0).fit(X, y),
                      name="IrisForest200")
    path = folder / f"iris-{rows}.csv"
    if not path.exists():
        rng = np.random.default_rng(0)
        with open(path, "w") as f:
            f.write(",".join(COLUMNS) + "\n")
            for start in range(0, rows, 1_000_000):
                block = X[rng.integers(0, len(X), min(1_000_000, rows - start))]
                np.savetxt(f, block, fmt="%.1f", delimiter=",")
    return path


def measure(body: str, env: dict) -> dict:
    """Run ``body`` in a fresh process; its timing and peak RSS, and from ``/proc`` (sampled
    every 0.2 s) the CPU seconds of it and every process it started, and the largest peak
    RSS among those others (workers that are not its children, a fork server's, too)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", MEASURED.format(body=body)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: dict[int, tuple[float, float]] = {}  # pid: (CPU seconds, peak RSS MB)
    while process.poll() is None:
        alive = {process.pid} | {pid for pid in seen if os.path.exists(f"/proc/{pid}")}
        for pid in alive | _children(alive):
            sample = _sample(pid)
            if sample is not None:
                seen[pid] = (sample[0], max(sample[1], seen.get(pid, (0.0, 0.0))[1]))
        time.sleep(0.2)
    wall = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    others = [rss for pid, (_, rss) in seen.items() if pid != process.pid]
    cpu = sum(seconds for seconds, _ in seen.values())
    result.update(cpu=cpu, cores=cpu / wall,
                  others_mb=max(others, default=0.0), load=os.getloadavg()[0])
    return result


def _sample(pid: int) -> tuple[float, float, int] | None:
    """(CPU seconds, peak RSS MB, parent pid) of a process, from /proc; None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            peak = next((line.split()[1] for line in f if line.startswith("VmHWM")), "0")
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, int(peak) / 1024, int(fields[1])


def _children(parents: set[int]) -> set[int]:
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            sample = _sample(int(name))
            if sample is not None and sample[2] in parents:
                found.add(int(name))
    return found


def files(args, env: dict, folder: Path) -> list[str]:
    source = prepare(Path(env["BENTO_NB_HOME"]), args.rows, folder)
    lines = [f"## Files: {args.rows:,} rows ({source.stat().st_size / 1e6:,.0f} MB CSV), "
             f"medians of {args.repeat}", "",
             "| model | command | rows/s | × pandas | CPU (s) | CPU used (cores) | load avg "
             "| peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for model in args.models.split(","):
        tag = MODELS[model]
        target = str(folder / "out.parquet")
        commands = {
            "pandas": PANDAS.format(tag=tag, source=str(source), target=target),
            "run": RUN.format(argv=["run", tag, "predict", "--input-file", str(source),
                                    "--output", target]),
            "run -w2": RUN.format(argv=["run", tag, "predict", "--input-file", str(source),
                                        "--output", target, "--workers", "2"]),
        }
        results: dict[str, list[dict]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, body in commands.items():  # taking turns: a slow spell hits all
                results[name].append(measure(body, env))
                print(f"  {model} {name}: {results[name][-1]}", file=sys.stderr)
        base = statistics.median(r["seconds"] for r in results["pandas"])
        for name, runs in results.items():
            seconds = statistics.median(r["seconds"] for r in runs)
            rss = statistics.median(r["rss_mb"] for r in runs)
            workers = statistics.median(r["others_mb"] for r in runs)
            cores = statistics.median(r["cores"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            loads = "/".join(f"{r['load']:.1f}" for r in runs)
            shown = f"{rss:,.0f}" + (f" (+ at most {workers:,.0f} per process)" if "w2" in name
                                     else "")
            lines.append(f"| {model} | {name} | {args.rows / seconds:,.0f} | "
                         f"{base / seconds:.2f} | {cpu:.1f} | {cores:.2f} | {loads} | {shown} |")
    if args.flat:
        small = prepare(Path(env["BENTO_NB_HOME"]), args.flat, folder)
        model = args.models.split(",")[0]
        run = measure(RUN.format(argv=["run", MODELS[model], "predict", "--input-file",
                                       str(small), "--output", str(folder / "small.parquet")]),
                      env)
        lines += ["", f"Peak RSS of `run` ({model}) at {args.flat:,} rows: {run['rss_mb']:,.0f} "
                      f"MB (the table above: {args.rows:,} rows)."]
    return lines


SPARK = """
import os, statistics, sys, time
os.environ["PYSPARK_PYTHON"] = os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
import numpy as np, pandas as pd
import mlflow.sklearn, mlflow.pyfunc
from pyspark.sql import SparkSession
import bento_nb, bento_nb.spark
from sklearn import datasets

X, y = datasets.load_iris(return_X_y=True)
model = bento_nb.load("IrisSVC").artifacts.model
mlflow_path = {mlflow_path!r}
if not os.path.exists(mlflow_path):
    mlflow.sklearn.save_model(model, mlflow_path)
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000").getOrCreate())
rows = X[np.random.default_rng(0).integers(0, len(X), {rows})]
frame = spark.createDataFrame(pd.DataFrame(rows, columns={columns!r})).repartition(2).cache()
frame.count()
udfs = {{"bento_nb.spark.udf": bento_nb.spark.udf(spark, "IrisSVC", result_type="long"),
        "mlflow.pyfunc.spark_udf": mlflow.pyfunc.spark_udf(spark, mlflow_path, result_type="long",
                                                           env_manager="local")}}
times = {{name: [] for name in udfs}}
for name, udf in udfs.items():  # warm: workers started, models loaded
    frame.select(udf(*{columns!r})).write.format("noop").mode("overwrite").save()
for _ in range({repeat}):
    for name, udf in udfs.items():
        start = time.perf_counter()
        frame.select(udf(*{columns!r})).write.format("noop").mode("overwrite").save()
        times[name].append(time.perf_counter() - start)
check = frame.limit(2000).select(*{columns!r}, udfs["bento_nb.spark.udf"](*{columns!r}).alias("p")).toPandas()
assert (check["p"].to_numpy() == model.predict(check[{columns!r}].to_numpy())).all()
for name, values in times.items():
    print("RESULT", name, statistics.median(values), flush=True)
spark.stop()
"""


def spark(args, env: dict, folder: Path) -> list[str]:
    prepare(Path(env["BENTO_NB_HOME"]), 1, folder)
    out = subprocess.run([sys.executable, "-c", SPARK.format(
        mlflow_path=str(folder / "mlflow-svc"), rows=args.spark_rows, columns=COLUMNS,
        repeat=args.repeat)], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"Spark benchmark failed:\n{out.stderr[-3000:]}")
    results = {line.split()[1]: float(line.split()[2]) for line in out.stdout.splitlines()
               if line.startswith("RESULT")}
    mlflow = results["mlflow.pyfunc.spark_udf"]
    lines = [f"## Spark local[2]: {args.spark_rows:,} rows, iris SVC, medians of {args.repeat}",
             "", "| UDF | seconds | rows/s | × MLflow |", "|---|---:|---:|---:|"]
    for name, seconds in results.items():
        lines.append(f"| {name} | {seconds:.2f} | {args.spark_rows / seconds:,.0f} | "
                     f"{mlflow / seconds:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default="svc,rf200")
    parser.add_argument("--flat", type=int, default=1_000_000,
                        help="also the peak RSS of run at this many rows (0: no)")
    parser.add_argument("--spark-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-files", action="store_true")
    parser.add_argument("--skip-spark", action="store_true")
    args = parser.parse_args()
    folder = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="bento_nb_batch_"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENTO_NB_HOME": str(folder / "home")}
    load = os.getloadavg()
    lines = [f"# bench/batch.py, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
             f"load average {load[0]:.1f} at start", ""]
    if not args.skip_files:
        lines += files(args, env, folder) + [""]
    if not args.skip_spark:
        lines += spark(args, env, folder)
    lines += ["", f"load average at the end: {os.getloadavg()[0]:.1f}"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Pack and load throughput of a model holding one large numpy array, beside a plain
sequential write of the same bytes, with each phase's peak resident memory.

    python bench/store.py            # 1 GiB array (default)
    python bench/store.py --mb 256

Each phase runs in its own process so its peak RSS (ru_maxrss) is its own. "load" includes
the sha256 verification of every file; "load, no verify" shows what mapping alone costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

PHASE = r"""
import json, os, resource, sys, time
import numpy as np
phase, mb, home = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.environ["BENTO_NB_HOME"] = home
import bento_nb

class Weights:
    def __init__(self, w): self.w = w
    def predict(self, df): return df.sum(axis=1) * float(self.w[0])

out = {}
if phase in ("write", "pack"):
    array = np.ones(mb * (1 << 20) // 8)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if phase == "write":
        with open(os.path.join(home, "plain.bin"), "wb") as f:
            f.write(memoryview(array).cast("B"))
    else:
        bento_nb.pack(Weights(array), name="Big")
    out["seconds"] = time.perf_counter() - start
    out["array_mb"] = array.nbytes / 2**20
else:
    start = time.perf_counter()
    svc = bento_nb.load("Big", verify=(phase == "load"))
    out["seconds"] = time.perf_counter() - start
    out["predict"] = svc.apis["predict"]([[1.0, 2.0]]).tolist()
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def run(phase: str, mb: int, home: str, repeat: int) -> dict:
    """The median run of ``repeat``; dirty pages are flushed before each, so one phase's
    write-back does not slow the next."""
    runs = []
    for _ in range(repeat):
        os.sync()
        out = subprocess.run([sys.executable, "-c", PHASE, phase, str(mb), home], check=True,
                             capture_output=True, text=True)
        runs.append(json.loads(out.stdout))
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="array size in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase (median shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as home:
        rows = [("plain sequential write", run("write", args.mb, home, args.repeat)),
                ("bento_nb.pack", run("pack", args.mb, home, args.repeat)),
                ("bento_nb.load (sha256 verified)", run("load", args.mb, home, args.repeat)),
                ("bento_nb.load, verify=False", run("load_noverify", args.mb, home, args.repeat))]
    print(f"{args.mb} MiB array, median of {args.repeat}; peak RSS includes the array itself "
          "for write/pack")
    print(f"| {'operation':34} | {'seconds':>8} | {'MB/s':>8} | {'peak RSS MB':>11} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    for label, r in rows:
        rate = args.mb / r["seconds"] if r["seconds"] else float("inf")
        print(f"| {label:34} | {r['seconds']:8.3f} | {rate:8.0f} | {r['peak_rss_mb']:11.0f} |")


if __name__ == "__main__":
    main()

"""The API route without HTTP: CPU per request of bento_nb's app, dispatcher and model
thread, in one process, for the iris SVC (what bench/serve.py serves).

    python bench/hot_path.py                 # 64 requests at a time, then lone requests
    python bench/hot_path.py --oip           # the same through POST /v2/models/.../infer
    python bench/hot_path.py --pause         # for callgrind (below)

The app of a real server (``ModelServer``, its dispatcher and model thread) is driven as
the connection layer drives it (``App.open`` -> ``Call.take`` -> ``Call.complete``, the
answer to an in-memory ``respond``): ``--concurrency`` requests at a time (they queue and
batch on the model thread), then one at a time (answered inline). With ``--oip`` each
request is the Open Inference Protocol body tritonclient sends for one row (binary
tensors). Printed: CPU time per request of each thread (from /proc) and of the process.
The HTTP parsing and the socket (the floor of bench/serve.py) are not in it.

Instructions per request, a figure other load on a shared machine does not move::

    valgrind --tool=callgrind --instr-atstart=no python bench/hot_path.py --pause
    # when it prints "counting": callgrind_control -i on <pid>, then press Enter;
    # when it prints "counted":  callgrind_control -i off <pid>, then press Enter;
    # instructions: the "totals:" line of callgrind.out.<pid>, divided by --requests
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

BODY = b"[[5.1,3.5,1.4,0.2]]"


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by thread id."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=12800)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--oip", action="store_true",
                        help="Open Inference Protocol infer requests (binary tensors)")
    parser.add_argument("--pause", action="store_true",
                        help="wait for Enter before and after each counted part")
    args = parser.parse_args()
    os.environ.setdefault("BENTO_NB_HOME", tempfile.mkdtemp(prefix="bento_nb_hot_path_"))

    from sklearn import datasets, svm

    import bento_nb
    from bento_nb.server.config import ServerConfig
    from bento_nb.server.runner import ModelServer, new_event_loop
    from bento_nb.service import load

    X, y = datasets.load_iris(return_X_y=True)
    tag = bento_nb.pack(svm.SVC(gamma="scale").fit(X, y), name="IrisSVC").tag
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = ModelServer(load(tag), ServerConfig(port=0))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server.start([listener])
    app = server.app
    path, body, headers = "/predict", BODY, [(b"content-type", b"application/json")]
    if args.oip:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from oip import tritonclient_binary_request

        body, json_size = tritonclient_binary_request()
        path = f"/v2/models/{server.service.name}/infer"
        headers = [(b"content-type", b"application/octet-stream"),
                   (b"inference-header-content-length", b"%d" % json_size)]
    headers = [(b"host", b"bench"), *headers, (b"content-length", b"%d" % len(body))]
    sent: list = []
    done = {"left": 0, "future": None}

    def respond(status: int, headers: list, answer: bytes, close: bool) -> None:
        sent.append((status, answer))
        done["left"] -= 1
        if done["left"] == 0 and done["future"] is not None:
            done["future"].set_result(None)

    def fire() -> None:
        scope = {"type": "http", "method": "POST", "path": path,
                 "raw_path": path.encode(), "headers": headers}
        call = app.open(scope, respond)
        if call.admit() and call.take(body):
            call.complete()

    async def crowd(n: int, c: int) -> None:
        for _ in range(n // c):
            done["left"], done["future"] = c, loop.create_future()
            for _ in range(c):
                fire()
            await done["future"]

    async def lone(n: int) -> None:
        for _ in range(n):
            await crowd(1, 1)

    def measure(title: str, work, n: int, alone: bool) -> None:
        app.alone = (lambda: True) if alone else (lambda: False)
        loop.run_until_complete(work(max(n // 10, 64)))  # warm: first calls, the fit
        sent.clear()
        if args.pause:
            input(f"counting {title} (pid {os.getpid()}): press Enter\n")
        before, started = thread_cpu(), time.process_time()
        loop.run_until_complete(work(n))
        spent, after = time.process_time() - started, thread_cpu()
        if args.pause:
            input(f"counted {title}: press Enter\n")
        answered = len(sent)
        if sent[-1][0] != 200:
            raise SystemExit(f"unexpected answer {sent[-1]!r}")
        names = {str(t.native_id): t.name for t in __import__("threading").enumerate()}
        print(f"{title}: {answered} requests, {1e6 * spent / answered:.1f} us CPU each "
              f"(process)", flush=True)
        for tid, seconds in after.items():
            used = seconds - before.get(tid, 0.0)
            if used > 0:
                print(f"  {names.get(tid, tid)}: {1e6 * used / answered:.1f} us", flush=True)

    measure(f"{args.concurrency} at a time", lambda n: crowd(n, args.concurrency),
            args.requests, alone=False)
    measure("one at a time (inline)", lone, max(args.requests // 4, 100), alone=True)
    server.app.close()
    for dispatcher in server.dispatchers.values():
        dispatcher.close()
    sys.exit(0)


if __name__ == "__main__":
    main()

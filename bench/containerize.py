"""Build times and image size of `bento-nb containerize` for the iris SVC.

    bash ../shared/ci/docker-engine.sh      # a local engine and python:3.11-slim
    python bench/containerize.py            # first (no cache), cached, image size

"first build" ignores Docker's layer cache (every dependency is downloaded and installed);
"model changed" packs a retrained SVC (same requirements) and builds it: the dependency
layers come from the cache and only the bundle is copied. Context writing (bundle copy,
wheel, requirements) is timed apart.
Images are removed at the end; their cached layers are kept.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the images")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="bench-containerize-")
    os.environ["BENTO_NB_HOME"] = home
    from sklearn import datasets, svm

    import bento_nb
    from bento_nb.containerize import build, write_context
    from bento_nb.containerize.builder import connect
    from bento_nb.errors import DockerUnavailable

    try:
        client = connect()
    except DockerUnavailable as e:
        print(f"skipped: {e.message}; start one with `bash ../shared/ci/docker-engine.sh`")
        return 1

    X, y = datasets.load_iris(return_X_y=True)
    first = bento_nb.pack(svm.SVC(gamma="scale").fit(X, y), name="IrisClassifier")
    second = bento_nb.pack(svm.SVC(C=0.5, gamma="scale").fit(X, y), name="IrisClassifier")
    suffix = secrets.token_hex(3)
    images = [f"bento-nb-bench/iris:{suffix}-1", f"bento-nb-bench/iris:{suffix}-2"]

    start = time.perf_counter()
    write_context(first.tag, os.path.join(home, "ctx-timing"))
    context_s = time.perf_counter() - start

    rows = []
    try:
        r1 = build(first.tag, image=images[0], no_cache=True)
        rows.append(("first build (no cache)", r1))
        r2 = build(second.tag, image=images[1])
        rows.append(("model changed (deps cached)", r2))
    finally:
        if not args.keep:
            for image in images:
                try:
                    client.remove_image(image, force=True, noprune=True)
                except Exception:  # already gone
                    pass
        client.close()

    print(f"bento_nb {bento_nb.__version__}, Python {sys.version.split()[0]}, "
          f"base python:3.11-slim; context written in {context_s * 1000:.0f} ms")
    print(f"{'build':30} {'seconds':>8} {'cached steps':>13} {'image size':>11}")
    for label, r in rows:
        print(f"{label:30} {r.seconds:8.1f} {f'{r.cached_steps}/{r.steps}':>13} "
              f"{r.size / 1e6:8.0f} MB")
    base = client_size = None
    try:
        import docker

        with docker.APIClient(**docker.utils.kwargs_from_env()) as c:
            base = c.inspect_image("python:3.11-slim")["Size"]
            client_size = rows[0][1].size - base
    except Exception:
        pass
    if base:
        print(f"of which base image {base / 1e6:.0f} MB, bento_nb + dependencies + model "
              f"{client_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

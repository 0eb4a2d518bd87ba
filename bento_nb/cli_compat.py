"""The ``bento-nb`` commands and flags as BentoML 0.x users type them.

    bento-nb serve TAG --enable-microbatch | --disable-microbatch
                   --mb-max-batch-size N --mb-max-latency MS    # = --max-batch-size, --max-latency-ms
    bento-nb serve-gunicorn TAG [-p PORT] [-w WORKERS] [--timeout S]   # = serve --workers
    bento-nb retrieve TAG --target_dir DIR       # copy the bundle folder into DIR
    bento-nb open-api-spec TAG                   # the OpenAPI document the server serves
    bento-nb info TAG                            # the service: name, version, APIs, artifacts, env

``list -o json|yaml|table|wide``, ``get --print-location`` / ``-o`` / ``--quiet`` and
``delete NAME`` (every version) are in :mod:`bento_nb.cli` itself. ``--enable-microbatch``
is accepted and changes nothing (adaptive micro-batching is always on, as in 0.13);
``--disable-microbatch`` is ``--max-batch-size 1``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from .errors import UsageError
from .options import add_options, given


def add_microbatch_aliases(parser: argparse.ArgumentParser) -> None:
    """The 0.13 micro-batching flags of ``serve`` / ``serve-gunicorn``, as aliases."""
    group = parser.add_argument_group("BentoML 0.x aliases")
    group.add_argument("--mb-max-batch-size", dest="max_batch_size", type=int, metavar="N",
                       default=None, help="= --max-batch-size")
    group.add_argument("--mb-max-latency", dest="max_latency_ms", type=float, metavar="MS",
                       default=None, help="= --max-latency-ms")
    toggle = group.add_mutually_exclusive_group()
    toggle.add_argument("--enable-microbatch", dest="microbatch", action="store_const",
                        const=True, default=None, help="accepted: micro-batching is always on")
    toggle.add_argument("--disable-microbatch", dest="microbatch", action="store_const",
                        const=False, help="= --max-batch-size 1")


def apply_microbatch(args: argparse.Namespace) -> None:
    """``--disable-microbatch``: one request per model call (refused beside a larger
    ``--max-batch-size``, which would contradict it)."""
    if getattr(args, "microbatch", None) is False:
        if args.max_batch_size not in (None, 1):
            raise UsageError(f"--disable-microbatch contradicts --max-batch-size "
                             f"{args.max_batch_size}")
        args.max_batch_size = 1


def add_commands(sub, parser_class) -> None:
    from .server.config import ServerConfig

    p = sub.add_parser("serve-gunicorn", help="BentoML 0.x alias of `serve --workers N`")
    p.add_argument("tag", help="tag (Name[:version]) or bundle folder (./path)")
    p.add_argument("-w", "--workers", type=int, default=1, help="processes sharing the port")
    p.add_argument("-p", dest="port", type=int, default=None, help="= --port")
    p.add_argument("--timeout", dest="request_timeout", type=float, default=None, metavar="S",
                   help="= --request-timeout")
    add_options(p, ServerConfig)
    add_microbatch_aliases(p)

    p = sub.add_parser("retrieve", help="copy a bundle's folder into a directory")
    p.add_argument("tag")
    p.add_argument("--target_dir", "--target-dir", dest="target_dir", required=True,
                   metavar="DIR", help="made if missing; must not hold other files")

    p = sub.add_parser("open-api-spec", help="print the OpenAPI document of a bundle")
    p.add_argument("tag")

    p = sub.add_parser("info", help="print a bundle's service: APIs, artifacts, environment")
    p.add_argument("tag")


def _serve_gunicorn(args) -> int:
    from .server.config import ServerConfig
    from .server.process import run_cli

    apply_microbatch(args)
    return run_cli(args.tag, ServerConfig(**given(args, ServerConfig)), workers=args.workers)


def _retrieve(args) -> int:
    from .store import find_bundle

    bundle = find_bundle(args.tag)
    target = Path(args.target_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"--target_dir {target} is not an empty folder")
    shutil.copytree(bundle.path, target, dirs_exist_ok=True)
    print(f"Save {bundle.tag} artifact to directory {target}")  # as BentoML 0.13 says it
    return 0


def _open_api_spec(args) -> int:
    from .server.openapi import build_openapi
    from .service import load

    print(json.dumps(build_openapi(load(args.tag)), indent=2))
    return 0


def _info(args) -> int:
    from .store import find_bundle

    bundle = find_bundle(args.tag)
    m = bundle.manifest
    print(json.dumps({
        "name": m["name"], "version": m["version"], "created_at": m.get("created_at"),
        "env": {"python_version": m.get("python_version"),
                "bento_nb_version": m.get("bento_nb_version"),
                "pip_packages": m.get("requirements") or [], **(m.get("env") or {})},
        "artifacts": [{"name": a["name"], "artifact_type": a.get("type"),
                       **({"metadata": a["metadata"]} if "metadata" in a else {})}
                      for a in m.get("artifacts") or []],
        "apis": m.get("apis") or [],
        "labels": m.get("labels") or {},
    }, indent=2))
    return 0


COMMANDS = {"serve-gunicorn": _serve_gunicorn, "retrieve": _retrieve,
            "open-api-spec": _open_api_spec, "info": _info}

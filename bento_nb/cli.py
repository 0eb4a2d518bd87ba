"""The ``bento-nb`` command line.

    bento-nb list [NAME] [--json | -o json|yaml|table|wide]   bundles in the store
    bento-nb get TAG [--json | -o json|yaml] [--print-location] [--quiet]
    bento-nb delete TAG|NAME[,TAG...] [-y]      NAME: every version of it
    bento-nb run TAG API --input JSON | --input-file PATH|GLOB|- ... [--format csv|json|jsonl|parquet]
        [--output PATH|-] [--output-format F] [--batch-size N] [--workers N]
        [--on-error fail|skip|null] [--keep-columns]
    bento-nb export TAG FILE.tar.gz|.tgz|.bento / import FILE
    bento-nb serve TAG [--port 5000] [--host 127.0.0.1] [--workers N] [--watch] ...
    bento-nb serve NAME:V1 NAME:V2 --split 90,10   A/B: several versions in one server
    bento-nb containerize TAG -t IMAGE[:TAG] [--base-image ...] [--context-only DIR]
    bento-nb k8s TAG --image IMAGE [--replicas N] [--port 5000] [-o DIR]
        [--kserve [--kserve-mode serverless|raw] [--canary-image IMAGE --canary-percent N]
         [--min-replicas N --max-replicas N] [--scale-metric concurrency|rps|cpu --scale-target N]]
    bento-nb quickstart                         train, pack, serve and query the iris model
    bento-nb serve-gunicorn / retrieve / open-api-spec / info   BentoML 0.x (bento_nb.cli_compat)

User errors print one line on stderr (``bento-nb: error: ...``) and exit non-zero with the
code of their :mod:`~bento_nb.errors` class; there is no traceback unless
``BENTO_NB_DEBUG=1``. A file or folder the command cannot read or write (an ``OSError``
no module turned into a clearer error) is a user error too: ``bento-nb: error: PATH:
REASON``, exit code 2 like other bad input. Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from . import cli_compat
from ._version import __version__
from .errors import BentoNbError, UsageError, one_line
from .options import ArgumentParser, add_options, given


class _Parser(ArgumentParser):
    """The shared parser, except that ``--help``/``--version`` end the process as usual."""

    def exit(self, status: int = 0, message: str | None = None):
        argparse.ArgumentParser.exit(self, status, message)


def build_parser() -> argparse.ArgumentParser:
    from .batch import FORMATS as BATCH_FORMATS
    from .batch import BatchOptions
    from .containerize import ContainerizeOptions
    from .server.config import ServerConfig

    parser = _Parser(prog="bento-nb", description="Pack, serve and containerize ML models.")
    parser.add_argument("--version", action="version", version=f"bento-nb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list bundles in the store")
    p.add_argument("name", nargs="?", help="only versions of this name")
    p.add_argument("--json", action="store_true", help="print JSON (= -o json)")
    p.add_argument("-o", "--output", choices=["json", "yaml", "table", "wide"], default=None,
                   help="table (default), wide (with artifacts, labels and paths), json, yaml")

    p = sub.add_parser("get", help="show one bundle")
    p.add_argument("tag", help="tag (Name[:version]) or bundle folder (./path)")
    p.add_argument("--json", action="store_true", help="print JSON (= -o json)")
    p.add_argument("-o", "--output", choices=["json", "yaml"], default=None,
                   help="yaml (default: the manifest) or json (summary and manifest)")
    p.add_argument("--print-location", action="store_true", help="print only the bundle's folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no '# PATH' header line")

    p = sub.add_parser("delete", help="delete bundle versions (NAME: all its versions)")
    p.add_argument("tag", help="Name:version, Name (every version), or several, comma-separated")
    p.add_argument("-y", "--yes", "--assume-yes", action="store_true",
                   help="do not ask for confirmation")

    p = sub.add_parser("run", help="run an API in-process over an input or files of any size",
                       description="Run an API in-process. --input: one input, JSON printed. "
                       "--input-file: files streamed in chunks (bounded memory), results "
                       "written in input order to stdout (a JSON list) or --output.")
    p.add_argument("tag", help="tag (Name[:version]) or bundle folder (./path)")
    p.add_argument("api")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="JSON (or CSV with --format csv) input text")
    source.add_argument("--input-file", nargs="+", metavar="PATH",
                        help="files, folders or globs (- for stdin): .csv, .jsonl, .json, "
                        ".parquet; any file for a file or text API")
    p.add_argument("--format", choices=list(BATCH_FORMATS),
                   help="input format (default: by file suffix, else json)")
    add_options(p, BatchOptions)

    p = sub.add_parser("export", help="write a bundle to one archive")
    p.add_argument("tag")
    p.add_argument("file")

    p = sub.add_parser("import", help="import a bundle archive")
    p.add_argument("file")

    p = sub.add_parser("serve", help="serve a bundle over HTTP")
    p.add_argument("tag", nargs="+", metavar="TAG",
                   help="tag (Name[:version]) or bundle folder (./path); several versions of "
                        "one bundle with --split")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    add_options(p, ServerConfig)
    cli_compat.add_microbatch_aliases(p)

    p = sub.add_parser("containerize", help="build a Docker image serving a bundle")
    p.add_argument("tag")
    add_options(p, ContainerizeOptions)

    p = sub.add_parser("k8s", help="write Kubernetes manifests for an image")
    p.add_argument("tag")
    p.add_argument("--image", required=True)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("-o", "--output", default=None, help="directory (default: print to stdout)")
    kserve = p.add_argument_group("KServe", "one InferenceService instead of the Deployment, "
                                  "Service and autoscaler")
    kserve.add_argument("--kserve", action="store_true",
                        help="write a serving.kserve.io/v1beta1 InferenceService")
    kserve.add_argument("--kserve-mode", choices=["serverless", "raw"], default=None,
                        help="Knative revisions (default) or RawDeployment")
    kserve.add_argument("--canary-image", default=None, metavar="IMAGE",
                        help="roll this image out as a canary beside the running revision")
    kserve.add_argument("--canary-percent", type=int, default=None, metavar="N",
                        help="share of the traffic for the canary, 0-100 (default 10)")
    kserve.add_argument("--min-replicas", type=int, default=None, metavar="N",
                        help="default: --replicas; 0 scales to zero (serverless)")
    kserve.add_argument("--max-replicas", type=int, default=None, metavar="N",
                        help="default: max(10, 2 x min)")
    kserve.add_argument("--scale-metric", choices=["concurrency", "rps", "cpu"], default=None)
    kserve.add_argument("--scale-target", type=int, default=None, metavar="N",
                        help="per pod: requests in flight, requests/s or CPU %%")

    p = sub.add_parser("quickstart", help="train the iris SVC, pack, serve and predict")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--keep-serving", action="store_true", help="keep the server up until Ctrl-C")
    cli_compat.add_commands(sub, _Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            build_parser().print_help()
            return 0
        return _COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        print("bento-nb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except (BentoNbError, OSError) as e:  # OSError: a path the user gave cannot be used
        if os.environ.get("BENTO_NB_DEBUG"):
            raise
        message, exit_code = _describe(e)
        print(f"bento-nb: error: {_printable(one_line(message))}", file=sys.stderr)
        return exit_code


def _describe(e: BentoNbError | OSError) -> tuple[str, int]:
    """Message and exit code of a user error: a BentoNbError's own; for an OSError
    ``PATH: REASON`` (``A -> B: REASON`` for a rename) and the usage/input code."""
    if isinstance(e, BentoNbError):
        return e.hint("bento-nb"), e.exit_code
    paths = " -> ".join(os.fsdecode(f) for f in (e.filename, e.filename2) if f is not None)
    reason = e.strerror or str(e) or type(e).__name__
    return (f"{paths}: {reason}" if paths else reason), UsageError.exit_code


def _printable(text: str) -> str:
    from .store import printable

    return printable(text)


# -- commands -----------------------------------------------------------------------------


def _list(args) -> int:
    from .store import Store, human_size, printable

    entries = Store().list(args.name)
    output = "json" if args.json else (args.output or "table")
    if output in ("json", "yaml"):
        records = [e.bundle.info() if e.bundle else
                   {"tag": f"{e.name}:{e.version}", "path": str(e.path), "error": e.error}
                   for e in entries]
        if output == "json":
            print(json.dumps(records, indent=2))
        else:
            import yaml

            print(yaml.safe_dump(records, sort_keys=False), end="")
        return 0
    if not entries:
        if args.name and Store().list():
            print(f"no bundle named {args.name!r}; see `bento-nb list`")
        else:
            print("no bundles yet: pack one with bento_nb.pack(model, name=...) or %bento pack")
        return 0
    wide = output == "wide"
    rows = [("TAG", "APIS", "SIZE", "CREATED")
            + (("ARTIFACTS", "LABELS", "PATH") if wide else ())]
    for e in entries:  # names come from folders anyone can make: no raw control characters
        if e.bundle is None:
            rows.append((printable(f"{e.name}:{e.version}"), "-", "-",
                         f"unreadable: {printable(one_line(e.error))}")
                        + (("-", "-", printable(str(e.path))) if wide else ()))
        else:
            b = e.bundle
            rows.append((printable(b.tag), printable(",".join(a["name"] for a in b.apis)),
                         human_size(b.size), printable(b.created_at))
                        + ((_artifacts_column(b), _labels_column(b), printable(str(b.path)))
                           if wide else ()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return 0


def _artifacts_column(bundle) -> str:
    from .store import printable

    return printable(",".join(f"{a['name']}<{a.get('type', '?')}>"
                              for a in bundle.manifest.get("artifacts") or [])) or "-"


def _labels_column(bundle) -> str:
    from .store import printable

    return printable(",".join(f"{k}={v}" for k, v in bundle.labels.items())) or "-"


def _get(args) -> int:
    import yaml

    from .store import find_bundle

    bundle = find_bundle(args.tag)
    if args.print_location:
        print(bundle.path)
    elif args.json or args.output == "json":
        print(json.dumps({**bundle.info(), "manifest": bundle.manifest}, indent=2))
    else:
        if not args.quiet:
            print(f"# {bundle.path}")
            for line in _summary(bundle):  # YAML comments: the output stays the manifest
                print(f"# {_printable(line)}")
        print(yaml.safe_dump(bundle.manifest, sort_keys=False), end="")
    return 0


def _summary(bundle) -> list[str]:
    """What a reader looks for first: each API's signature, where the bundle came from and
    the images built from it (with the command that runs each)."""
    from .adapters.signature import Signature

    lines = []
    for described in bundle.apis:
        if described.get("signature"):
            signature = Signature.from_dict(described["signature"])
            lines.append(f"signature {described['name']}: {signature.describe()} "
                         f"(from the {signature.source})")
    origin = bundle.provenance
    if origin.get("notebook"):
        lines.append(f"notebook: {origin['notebook']}")
    if origin.get("cells"):
        count = origin["cells"].count("# In[")
        lines.append(f"cells: {count} cell(s), {len(origin['cells'].encode()):,} bytes"
                     + (" (older cells left out)" if origin.get("cells_truncated") else "")
                     + "; see provenance.cells")
    git = origin.get("git")
    if git:
        dirty = {True: ", uncommitted changes", False: ", clean"}.get(git.get("dirty"), "")
        lines.append(f"git: {git['commit']}{dirty}")
    if origin.get("packages_sha256"):
        lines.append(f"environment: {origin.get('python', '?')}, {origin.get('packages', '?')} "
                     f"packages, sha256 {origin['packages_sha256'][:16]}")
    if not origin:
        lines.append("provenance: not recorded")
    from .containerize.images import built_from

    for image in built_from(bundle.name, bundle.version):
        lines.append(f"image {image['image']} (built {image.get('built_at', '?')}): "
                     f"{image.get('run', '')}")
    return lines


def _delete(args) -> int:
    from .store import Store

    store = Store()
    tags = _delete_targets(store, args.tag)
    if not args.yes:
        shown = ", ".join(tags) if len(tags) <= 5 else f"{', '.join(tags[:5])} and {len(tags) - 5} more"
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {shown} without confirmation: pass -y")
        if input(f"Delete {shown}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    for tag in tags:
        store.delete(tag)
        print(f"deleted {tag}")
    return 0


def _delete_targets(store, text: str) -> list[str]:
    """The versions ``delete`` removes, as BentoML 0.x: ``Name:version``, ``Name`` (every
    version of it, readable or not) or several of them, comma-separated. An unknown one
    is BundleNotFound before anything is deleted."""
    from .store import Tag

    tags: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        tag = Tag.parse(item)
        if ":" in item:  # Name:version or Name:latest: that one version
            tags.append(store.get(item).tag)
            continue
        # the name folder is checked first: never through a link (StoreError), and
        # BundleNotFound with its usual message when there is no version
        store.resolve(tag)
        tags += [f"{e.name}:{e.version}" for e in store.list(tag.name) if e.name == tag.name]
    if not tags:
        raise UsageError("nothing to delete: give Name:version or Name")
    return list(dict.fromkeys(tags))


def _run(args) -> int:
    from .actions import resolve
    from .batch import BatchOptions, run

    options = BatchOptions(**given(args, BatchOptions))
    target = resolve(args.tag)
    if args.input is not None:
        return _run_inline(target, args)
    report = run(target, args.api, args.input_file, options, input_format_name=args.format,
                 single_result=True)
    if options.output not in (None, "-") or report.skipped or report.nulls:
        print(f"bento-nb: {report.summary()}", file=sys.stderr)
        for message in report.errors:
            print(f"  {_printable(one_line(message))}", file=sys.stderr)
    return 0


def _run_inline(target, args) -> int:
    """``--input TEXT``: one input, parsed as the server parses a body; JSON printed."""
    from .adapters import DataframeInput, dumps_json

    svc = target.service()
    inference_api = svc.apis.get(args.api)
    if inference_api is None:
        raise UsageError(f"{svc.tag} has no API {args.api!r}; it has {sorted(svc.apis)}")
    body = args.input.encode()
    if isinstance(inference_api.input, DataframeInput):
        content_type = "text/csv" if args.format == "csv" else "application/json"
    elif args.format == "csv":
        raise UsageError(f"API {args.api!r} takes {inference_api.input.kind} input, not CSV")
    else:  # JSON, text or a file: the input as that API takes it
        content_type = inference_api.input.media_types[0]
    payload = inference_api.input.parse(body, content_type)
    result = inference_api.run_one(payload)
    print(dumps_json(result, compact=False).decode())
    return 0


def _export(args) -> int:
    from .store import Store

    path = Store().export(args.tag, args.file)
    print(f"exported {args.tag} to {path}")
    return 0


def _import(args) -> int:
    from .store import Store

    bundle = Store().import_(args.file)
    print(f"imported {bundle.tag}")
    return 0


def _serve(args) -> int:
    from .server.config import ServerConfig
    from .server.process import run_cli

    cli_compat.apply_microbatch(args)
    return run_cli(args.tag, ServerConfig(**given(args, ServerConfig)), workers=args.workers)


def _containerize(args) -> int:
    from .containerize import ContainerizeOptions, run_cli

    return run_cli(args.tag, ContainerizeOptions(**given(args, ContainerizeOptions)))


def _k8s(args) -> int:
    from .containerize.k8s import run_cli

    return run_cli(args.tag, image=args.image, replicas=args.replicas, port=args.port,
                   output=args.output, kserve=args.kserve, kserve_mode=args.kserve_mode,
                   canary_image=args.canary_image, canary_percent=args.canary_percent,
                   min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                   scale_metric=args.scale_metric, scale_target=args.scale_target)


def _quickstart(args) -> int:
    from .quickstart import main as quickstart

    return quickstart(port=args.port, keep_serving=args.keep_serving)


_COMMANDS = {"list": _list, "get": _get, "delete": _delete, "run": _run, "export": _export,
             "import": _import, "serve": _serve, "containerize": _containerize, "k8s": _k8s,
             "quickstart": _quickstart, **cli_compat.COMMANDS}

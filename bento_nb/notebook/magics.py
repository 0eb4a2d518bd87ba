"""The ``%bento`` line magic: pack, serve, predict and ship a model without leaving the notebook.

    %load_ext bento_nb
    %bento pack clf --name IrisClassifier      # bundle widget (Serve, Containerize)
    %bento serve                               # the last packed bundle; server widget
    %bento predict IrisClassifier [[5.1, 3.5, 1.4, 0.2]]
    %bento stop all

Arguments are parsed with argparse; a usage error (unknown flag, unknown variable, no such
bundle, ...) prints one line on stderr and never a traceback (``BENTO_NB_DEBUG=1`` shows it).
``%bento`` alone prints the help. The magic reads variables from the notebook's namespace:
``serve`` and ``predict`` accept a variable holding a model (served at once, no pack
needed), a service, a bundle or a tag/path string.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from IPython.display import display

from .. import client, config
from ..adapters import loads_json
from ..actions import Target, name_from_variable, pick_api, resolve, write_build_context
from ..containerize.context import run_hint
from ..actions import predict as actions_predict
from ..errors import BentoNbError, UsageError, one_line
from ..options import ArgumentParser, HelpShown, add_options, did_you_mean, given
from .session import current
from .widgets import BundleWidget, ContainerizeView, ServerWidget, Table, human_size

HELP = """\
%bento — pack, serve and ship models from the notebook

  %bento pack VAR [--name N] [--api predict,predict_proba] [--input dataframe]
                  [--label k=v] [--requirement PKG] [--no-batch] [--example X[:2]]
                  [--no-provenance]
                                         save a variable as a bundle; shows the bundle
  %bento serve [TARGET] [--port N] [--host H] [--max-batch-size N]
               [--max-latency-ms N] [--api-token TOKEN] [--max-queue N]
               [--max-body-bytes N] [--drain-timeout S] [--body-timeout S]
               [--header-timeout S] [--max-connections N] [--request-timeout S]
               [--watch]                 TARGET: tag, ./folder, variable, or (none)
                                         the last packed; a name, the last packed or a
                                         variable follows new versions (hot swap),
                                         NAME:VERSION is pinned
  %bento serve NAME:V1 NAME:V2 --split 90,10
                                         A/B: requests shared by weight (sticky per
                                         X-Bento-Route-Key header)
  %bento predict TARGET DATA [--api NAME]
                                         DATA: JSON literal or variable name
  %bento list                            bundles in the store
  %bento servers                         running servers
  %bento stop [PORT|all]                 stop servers
  %bento delete TAG                      delete a bundle version
  %bento export TAG FILE                 write a bundle to one archive
  %bento containerize [TAG] [-t/--image IMAGE] [--base-image IMG] [--context-only DIR]
                                         build a Docker image serving the bundle

`%bento COMMAND -h` shows the options of one command."""


def build_parser() -> argparse.ArgumentParser:
    from ..adapters import ADAPTERS
    from ..containerize import ContainerizeOptions
    from ..server.config import ServerConfig

    parser = ArgumentParser(prog="%bento", add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=ArgumentParser)

    p = sub.add_parser("pack", prog="%bento pack", help="save a variable as a bundle")
    p.add_argument("var", help="the notebook variable holding the model or service")
    p.add_argument("--name", help="bundle name (default: the variable name)")
    p.add_argument("--api", default=None, help="comma-separated methods to serve (default: predict)")
    p.add_argument("--input", default=None, choices=sorted(ADAPTERS),
                   help="input adapter (default: dataframe)")
    p.add_argument("--label", action="append", default=[], metavar="K=V")
    p.add_argument("--requirement", action="append", default=[], metavar="PKG",
                   help="extra pip requirement (repeatable)")
    p.add_argument("--no-batch", action="store_true", help="one request per call, no batching")
    p.add_argument("--example", metavar="DATA", default=None,
                   help="an input such as X[:2] (variable, expression or JSON): checked now, "
                        "then the request example of /docs.json and Try it")
    p.add_argument("--no-provenance", action="store_true",
                   help="record no notebook path, cell sources, git state or package hash "
                        "(cells may hold secrets)")

    p = sub.add_parser("serve", prog="%bento serve", help="serve in the kernel")
    p.add_argument("target", nargs="*", help="tag, ./folder, variable, or (none) the last "
                                             "packed; several versions with --split")
    add_options(p, ServerConfig, defaults={"port": None})

    sub.add_parser("predict", prog="%bento predict", help="TARGET DATA [--api NAME]")

    p = sub.add_parser("list", prog="%bento list", help="bundles in the store")
    p.add_argument("name", nargs="?")

    sub.add_parser("servers", prog="%bento servers", help="running servers")

    p = sub.add_parser("stop", prog="%bento stop", help="stop servers")
    p.add_argument("what", nargs="?", metavar="PORT|all")

    p = sub.add_parser("delete", prog="%bento delete", help="delete a bundle version")
    p.add_argument("tag")

    p = sub.add_parser("export", prog="%bento export", help="write a bundle to an archive")
    p.add_argument("tag")
    p.add_argument("file")

    p = sub.add_parser("containerize", prog="%bento containerize", help="build a Docker image")
    p.add_argument("tag", nargs="?", help="tag, variable, or (none) the last packed bundle")
    add_options(p, ContainerizeOptions)

    sub.add_parser("help", prog="%bento help")
    parser.commands = sub.choices  # name -> parser, for "did you mean" on a bad flag
    return parser


def _has_widget_frontend(shell: Any) -> bool:
    """True in a Jupyter kernel (widgets have a comm), False in terminal IPython."""
    return getattr(shell, "kernel", None) is not None


@magics_class
class BentoMagics(Magics):
    """Holds no state of its own: the kernel's :class:`~.session.NotebookSession` does."""

    def __init__(self, shell=None):
        super().__init__(shell)
        self._loaded: dict[str, Any] = {}

    @line_magic
    @no_var_expand
    def bento(self, line: str = ""):
        """Pack, serve and ship models: `%bento` alone prints the help."""
        try:
            return self.run(line)
        except HelpShown:
            return None
        except BentoNbError as e:
            if os.environ.get("BENTO_NB_DEBUG"):
                raise
            print(f"%bento: error: {one_line(e.hint('%bento'))}", file=sys.stderr)
        except KeyboardInterrupt:
            print("%bento: interrupted", file=sys.stderr)
        except Exception as e:  # keep the one-line promise; the debug switch shows the trace
            if os.environ.get("BENTO_NB_DEBUG"):
                raise
            print(f"%bento: error: {type(e).__name__}: {one_line(e)} "
                  "(set BENTO_NB_DEBUG=1 for the traceback)", file=sys.stderr)
        return None

    # dispatch

    def run(self, line: str):
        line = line.strip()
        command, _, rest = line.partition(" ")
        if not line or command in ("help", "-h", "--help"):
            print(HELP)
            return None
        if command == "predict":
            return self.predict(rest)
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"cannot parse the arguments: {e}") from None
        parser = build_parser()
        args, extra = parser.parse_known_args(words)
        if extra:
            flags = parser.commands[args.command].option_strings()
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}"
                             f"{did_you_mean(extra[0].split('=')[0], flags)} "
                             f"(see `%bento {args.command} -h`)")
        handler = getattr(self, f"_cmd_{args.command}", None)
        if handler is None:  # pragma: no cover - argparse refuses unknown commands first
            raise UsageError(f"unknown command {args.command!r}; see %bento")
        return handler(args)

    @property
    def _ns(self) -> dict:
        return self.shell.user_ns if self.shell is not None else {}

    def _resolve(self, text: str | None) -> Target:
        """What a word of a ``%bento`` line names, notebook variables included."""
        session = current()
        return resolve(text or None, variables=self._ns, packed_tag=session.packed_tag,
                       last_packed=session.last_packed)

    # pack

    def _cmd_pack(self, args):
        from ..service import BentoService, pack
        from ..store import Bundle

        if not args.var.isidentifier() or args.var not in self._ns:
            raise UsageError(f"name {args.var!r} is not defined in the notebook")
        obj = self._ns[args.var]
        labels = {}
        for item in args.label:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UsageError(f"--label expects KEY=VALUE, got {item!r}")
            labels[key] = value
        if isinstance(obj, Bundle):
            raise UsageError(f"{args.var} is already a bundle ({obj.tag}); serve it with %bento serve {args.var}")
        example = self._data(args.example) if args.example is not None else None
        if isinstance(obj, BentoService):
            if args.name or args.api or args.input or args.no_batch:
                raise UsageError("--name/--api/--input/--no-batch apply to plain models; a "
                                 "BentoService is saved under its class name with its own @api")
            bundle = obj.save_bundle(labels=labels, extra_requirements=args.requirement,
                                     example=example, provenance=not args.no_provenance)
        else:
            # no --api / --input: what the model's framework wants (see bento_nb.pack)
            apis = [a.strip() for a in args.api.split(",") if a.strip()] if args.api else None
            bundle = pack(obj, name=args.name or name_from_variable(args.var), apis=apis,
                          input=args.input, batch=not args.no_batch,
                          labels=labels, requirements=args.requirement, example=example,
                          provenance=not args.no_provenance)
        current().last_packed = bundle.tag
        current().remember_pack(args.var, obj, bundle.tag)
        current().announce_pack(args.var, bundle)  # the server of VAR swaps it in
        widget = BundleWidget(bundle, on_serve=self._serve_tag)
        current().last_widget = widget
        display(widget)
        return None

    # serve

    def _cmd_serve(self, args):
        from ..actions import combine
        from ..server.config import ServerConfig

        words = args.target or [None]
        targets = [self._resolve(word) for word in words]
        target = targets[0] if len(targets) == 1 else combine(targets)
        if target.note:
            print(target.note)
        options = given(args, ServerConfig)
        port = options.pop("port", None)
        widget = self.start_server(target, port, **options)
        display(widget)
        return None

    def _serve_tag(self, tag: str) -> ServerWidget:
        """The bundle widget's Serve button: that bundle, as ``%bento serve NAME`` would."""
        from ..store import Store

        return self.start_server(resolve(Store().get(tag)))

    def start_server(self, target: Target, port: int | None = None,
                     **options: Any) -> ServerWidget:
        """Start (or replace) the server of ``target`` and return its widget."""

        def on_replace(old):
            for w in old.widgets:
                w.add_note("replaced: this server was started again (cell re-run)")

        entry = current().serve(target, port, on_replace=on_replace, **options)
        entry.api_token = options.get("api_token") or config.api_token()
        widget = ServerWidget(entry.handle, api_token=entry.api_token)
        entry.widgets.append(widget)
        current().last_widget = widget
        current().server_widgets.append(widget)
        return widget

    # predict

    def predict(self, rest: str):
        """``%bento predict TARGET DATA [--api NAME]``: via the running server of TARGET
        when there is one, else in-process. Returns the JSON-able result."""
        api_name, target_text, data_text = _split_predict(rest)
        session = current()
        if target_text.isdigit():
            entry = session.entry_for_port(int(target_text))
            if entry is None:
                raise UsageError(f"no server of this kernel on port {target_text} (see %bento servers)")
            target = None
        else:
            target = self._resolve(target_text)
            entry = session.entry_serving(target)
        data = self._data(data_text)
        if target is not None and _is_large_frame(data):
            # In chunks, in-process (bento_nb.batch): memory bounded by the chunk, not by
            # one request holding the whole table.
            from ..adapters import to_jsonable
            from ..batch import predict as batch_predict

            return to_jsonable(batch_predict(target.service(self._loaded), data, api=api_name))
        if entry is not None:
            handle = entry.handle
            api_name = pick_api(api_name, list(handle.apis), handle.tag or handle.name)
            answer, url = client.predict(handle.url, api_name, data, api_token=entry.api_token)
            print(f"(answered by {url})")
            return answer
        return actions_predict(target, data, api_name, cache=self._loaded)

    def _data(self, text: str) -> Any:
        text = text.strip()
        if not text:
            raise UsageError("missing DATA: give a JSON literal such as [[5.1, 3.5, 1.4, 0.2]] "
                             "or a variable name")
        if text.isidentifier() and text in self._ns:
            return self._ns[text]
        if text.isidentifier() and text not in ("true", "false", "null"):
            raise UsageError(f"name {text!r} is not defined in the notebook (DATA is a JSON "
                             "literal or a variable name)")
        try:
            json.loads(text)
            is_json = True
        except json.JSONDecodeError:
            is_json = False  # an expression, below
        except (ValueError, RecursionError):  # JSON, too long an integer or too deep
            is_json = True
        if is_json:
            return loads_json(text)  # with the server's checks: a BadInput says what is wrong
        try:  # an expression of notebook variables, e.g. X[:3]
            return eval(compile(text, "<%bento predict>", "eval"), self._ns)  # noqa: S307
        except Exception:
            raise UsageError(f"DATA must be a JSON literal or a variable name, got {text[:60]!r}") from None

    # store

    def _cmd_list(self, args):
        from ..store import Store

        rows = []
        for e in Store().list(args.name):
            if e.bundle is None:
                rows.append([f"{e.name}:{e.version}", "-", "-", f"unreadable: {e.error}"])
            else:
                b = e.bundle
                rows.append([b.tag, ",".join(a["name"] for a in b.apis), human_size(b.size),
                             b.created_at])
        empty = (f"no bundle named {args.name!r} (see %bento list)"
                 if args.name and Store().list() else "no bundles yet: %bento pack VAR saves one")
        display(Table(["tag", "APIs", "size", "created"], rows, empty=empty))

    def _cmd_servers(self, args):
        rows = []
        own = {h.port: h for h in _running_handles()}
        listed = set()
        try:
            from ..server.registry import list_servers
            records = list_servers()
        except ImportError:
            records = []
        for r in records:
            port = r.get("port")
            mine = r.get("pid") == os.getpid()
            handle = own.get(port) if mine else None
            stats = _safe_stats(handle) if handle is not None else {}
            if mine:
                listed.add(port)
            rows.append([port, r.get("tag") or r.get("name"), r.get("url"),
                         "this kernel" if mine else f"pid {r.get('pid')}",
                         stats.get("requests", ""), stats.get("errors", "")])
        for port, handle in own.items():
            if port not in listed:
                stats = _safe_stats(handle)
                rows.append([port, handle.tag or handle.name, handle.url, "this kernel",
                             stats.get("requests", ""), stats.get("errors", "")])
        display(Table(["port", "serving", "url", "process", "requests", "errors"], rows,
                      empty="no servers running: %bento serve starts one"))

    def _cmd_stop(self, args):
        handles = _running_handles()
        what = (args.what or "").strip().lower()
        if what == "all":
            ports = current().stop_all()
            _refresh_widgets()
            print(f"stopped {len(ports)} server(s)" + (f" on port(s) {', '.join(map(str, ports))}" if ports else ""))
            return None
        if not what:
            if not handles:
                print("no servers running in this kernel")
                return None
            if len(handles) > 1:
                raise UsageError(f"{len(handles)} servers are running (ports "
                                 f"{', '.join(str(h.port) for h in handles)}): "
                                 "use %bento stop PORT or %bento stop all")
            chosen = handles[0]
        elif what.isdigit():
            matches = [h for h in handles if h.port == int(what)]
            if not matches:
                from ..server.registry import list_servers

                running = ", ".join(str(h.port) for h in handles) or "none"
                owner = next((r.get("pid") for r in list_servers()
                              if r.get("port") == int(what) and r.get("pid") != os.getpid()), None)
                elsewhere = f"; port {what} is served by another process (pid {owner})" \
                    if owner else ""
                raise UsageError(f"no server of this kernel on port {what} (running: "
                                 f"{running}){elsewhere}")
            chosen = matches[0]
        else:
            raise UsageError(f"expected a port number or 'all', got {args.what!r}")
        chosen.stop()
        _refresh_widgets()
        print(f"stopped {chosen.tag or chosen.name} on port {chosen.port}")
        return None

    def _cmd_delete(self, args):
        from ..store import Store

        store = Store()
        bundle = store.get(args.tag)
        store.delete(bundle.tag)
        self._loaded.pop(str(bundle.path), None)
        served = [h for h in _running_handles() if h.tag == bundle.tag]
        note = f" (still served from memory on port {served[0].port})" if served else ""
        print(f"deleted {bundle.tag}{note}")

    def _cmd_export(self, args):
        from ..store import Store

        store = Store()
        bundle = store.get(args.tag)
        path = store.export(bundle.tag, os.path.expanduser(args.file))
        print(f"exported {bundle.tag} to {path}")

    # containerize

    def _cmd_containerize(self, args):
        from ..containerize import ContainerizeOptions

        # a bad image name is a usage error, before any widget
        options = ContainerizeOptions(**given(args, ContainerizeOptions))
        if not args.tag and current().last_packed is None:
            raise UsageError("nothing packed yet: give a tag, e.g. %bento containerize IrisClassifier")
        target = self._resolve(args.tag)
        if target.note:
            print(target.note)
        if options.context_only:
            prepared = write_build_context(target, options)
            print(f"build context for {prepared.bundle.tag} written to {prepared.path}")
            print(f"build it with: {prepared.command}")
            return None
        bundle = target.bundle
        if bundle is None:
            raise UsageError(f"{target.label} is not packed: %bento pack it first, then containerize")
        view = ContainerizeView()
        in_kernel = _has_widget_frontend(self.shell)
        shown = display(view, display_id=True) if in_kernel else None
        result = view.run(bundle.tag, image=options.image, base_image=options.base_image,
                          echo=None if in_kernel else print)
        if shown is not None:  # the plain-text fallback now says how it ended
            shown.update(view)
        # a plain summary too: it survives in saved notebooks without widget state
        if result is not None:
            print(f"built {result.image} from {bundle.tag}"
                  + (f" in {result.seconds:.1f} s" if getattr(result, "seconds", None) else ""))
            print("run it: " + "\n        ".join(run_hint(result.image, bundle.manifest)))
        else:  # no daemon (the message holds the context and the command) or failed
            print(f"%bento: error: {one_line(view.message)}", file=sys.stderr)
        return None


# -- helpers -------------------------------------------------------------------------------


_TRAILING_API = re.compile(r"\s--api(?:=|\s+)([A-Za-z0-9_.-]+)\s*$")


def _is_large_frame(data: Any) -> bool:
    """A DataFrame of more rows than one batch chunk (``bento_nb.batch``)."""
    if type(data).__name__ != "DataFrame":
        return False
    from ..batch import DEFAULT_BATCH_SIZE

    return len(data) > DEFAULT_BATCH_SIZE


def _split_predict(rest: str) -> tuple[str | None, str, str]:
    """``[--api NAME] TARGET [--api NAME] DATA`` -> (api, target, raw DATA text). DATA is
    kept verbatim (JSON has spaces and quotes a shell-style split would mangle)."""
    api_name = None
    target = None
    text = rest.strip()
    while text:
        word, _, remainder = text.partition(" ")
        if word in ("-h", "--help"):
            print("%bento predict TARGET DATA [--api NAME]\n  TARGET: tag, variable or port of "
                  "a running server\n  DATA: JSON literal (e.g. [[5.1, 3.5, 1.4, 0.2]]) or a "
                  "variable name")
            raise HelpShown()
        if word == "--api":
            api_name, _, text = remainder.strip().partition(" ")
            text = text.strip()
            if not api_name:
                raise UsageError("--api expects an API name (see `%bento predict -h`)")
            continue
        if word.startswith("--api="):
            api_name, text = word[len("--api="):], remainder.strip()
            continue
        if word.startswith("-") and target is None:
            raise UsageError(f"unrecognized argument {word!r} (see `%bento predict -h`)")
        if target is None:
            target, text = word, remainder.strip()
            continue
        break
    if target is None:
        raise UsageError("usage: %bento predict TARGET DATA (see `%bento predict -h`)")
    trailing = _TRAILING_API.search(text)
    if trailing and api_name is None:
        api_name, text = trailing.group(1), text[:trailing.start()].strip()
    return api_name, target, text


def _running_handles() -> list:
    try:
        from ..server import running_servers
    except ImportError:
        return []
    return [h for h in running_servers() if h.running]


def _safe_stats(handle) -> dict:
    try:
        return dict(handle.stats())
    except Exception:
        return {}


def _refresh_widgets() -> None:
    for widget in list(current().server_widgets):
        try:
            widget.refresh()
        except Exception:  # a closed widget
            pass

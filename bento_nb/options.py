"""Options declared once, as dataclass fields, and turned into flags for every front end.

A knob (a :class:`~bento_nb.server.config.ServerConfig` field, a containerize option) says
its flag and help where it is declared; the CLI and ``%bento`` build their flags from that
declaration and read the values back, so a new option is one new field::

    @dataclass
    class ServerConfig:
        max_queue: int = option(1024, "--max-queue", "requests waiting per API before 503")

    add_options(parser, ServerConfig)            # --max-queue N, ... (default: not given)
    ServerConfig(**given(args, ServerConfig))    # only what the user typed

:class:`ArgumentParser` is the one parser class of the CLI and the magics: a usage error
is a :class:`~bento_nb.errors.UsageError` (one line, no usage dump, no ``SystemExit``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
from typing import Any

from .errors import UsageError

_KEY = "bento_nb.option"
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def did_you_mean(word: str, candidates: list[str]) -> str:
    """``"; did you mean 'serve'?"`` for the candidate closest to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def option(default: Any = dataclasses.MISSING, flag: str | None = None, help: str = "",
           *, metavar: str | None = None, type: Any = None, short: str | None = None,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is also a command-line flag (``flag`` None: not a flag).
    ``type`` converts the flag's text (default: the type of ``default``)."""
    meta = {_KEY: {"flag": flag, "help": help, "metavar": metavar, "type": type, "short": short}}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of dataclass ``cls`` declared with a flag, in declaration order."""
    return [f for f in dataclasses.fields(cls) if (f.metadata.get(_KEY) or {}).get("flag")]


def add_options(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                defaults: dict[str, Any] | None = None) -> None:
    """Add a flag for every flagged field of ``cls`` except ``skip``. A flag not given
    reads back as None (the dataclass default then applies), unless ``defaults`` names
    a front end's own default for it."""
    defaults = defaults or {}
    for f in flag_fields(cls):
        if f.name in skip:
            continue
        meta = f.metadata[_KEY]
        kind = meta["type"] or _type_of(f)
        names = ([meta["short"]] if meta["short"] else []) + [meta["flag"]]
        if kind is bool:
            parser.add_argument(*names, dest=f.name, action="store_true",
                                default=defaults.get(f.name), help=meta["help"])
            continue
        shown = _shown_default(f, defaults)
        metavar = meta["metavar"] or ("N" if kind in (int, float) else None)
        parser.add_argument(*names, dest=f.name, type=kind, metavar=metavar,
                            default=defaults.get(f.name),
                            help=meta["help"] + (f" (default: {shown})" if shown else ""))


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The flagged fields of ``cls`` the user gave (not None), as keyword arguments."""
    return {f.name: getattr(args, f.name) for f in flag_fields(cls)
            if getattr(args, f.name, None) is not None}


def _type_of(f: dataclasses.Field) -> Any:
    default = f.default
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return type(default)
    return str


def _shown_default(f: dataclasses.Field, defaults: dict[str, Any]) -> str:
    value = defaults.get(f.name, f.default)
    if value is dataclasses.MISSING or value is None or value == "":
        return ""
    return str(value)


class HelpShown(Exception):
    """``-h`` printed the help: the command has nothing more to do."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as one :class:`UsageError` line that points to the
    help, and ``-h`` raising :class:`HelpShown` instead of exiting the process (a magic
    must not end the kernel's cell with ``SystemExit``)."""

    def error(self, message: str):
        choice = _INVALID_CHOICE.search(message)
        if choice:
            message += did_you_mean(choice[1], re.findall(r"'([^']*)'", choice[2]))
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def option_strings(self) -> list[str]:
        """Every flag this parser takes (``--port``, ``-t``, ...)."""
        return [flag for action in self._actions for flag in action.option_strings]

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            print(message.rstrip(), file=sys.stderr)
        raise HelpShown()


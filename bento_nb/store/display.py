"""Text for people: names made safe for a terminal, sizes, a parser error in one line.

The store quotes names it read from disk or from an archive in its messages, and the CLI
and the notebook widgets show bundle sizes; both go through here::

    printable("evil\\x1b[31m")      # 'evil\\\\x1b[31m': the escape shown, not obeyed
    human_size(7372)                # '7.2 KB'
"""

from __future__ import annotations

from typing import Any


def printable(text: Any) -> str:
    """``text`` safe to print on a terminal: control and format characters (ANSI escapes,
    newlines, bidi overrides) shown as ``\\x1b``-style escapes, everything else as is."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def human_size(n: float) -> str:
    """``6.9 KB``, ``1.0 GB``: bundle sizes for people."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def first_line(error: Exception) -> str:
    """What a parser error says is wrong, and where, in one line (YAML's own messages
    span several lines with a quote of the text)."""
    problem, mark = getattr(error, "problem", None), getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return (str(error).strip().splitlines() or [type(error).__name__])[0]

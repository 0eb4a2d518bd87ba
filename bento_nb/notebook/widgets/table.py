"""The table of ``%bento list`` / ``%bento servers``: HTML in Jupyter, aligned text in a
terminal. Not a widget: it is displayed once and never changes.

    display(Table(["tag", "size"], [["Iris:1", "2.1 MiB"]], empty="no bundles"))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...store import printable
from ._shared import escape, link


class Table:
    """Rows of cells under a header; ``empty`` is shown when there are no rows."""

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = ""):
        self.header = list(header)
        # cells may hold names of folders anyone can make: no raw control characters
        self.rows = [[("" if c is None else printable(c)) for c in r] for r in rows]
        self.empty = empty

    def __repr__(self) -> str:
        if not self.rows:
            return self.empty
        rows = [self.header, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.header))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<p>{escape(self.empty)}</p>"
        head = "".join(f"<th style='text-align:left'>{escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{_linkify(c)}</td>"
                                        for c in r) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _linkify(cell: str) -> str:
    return link(cell) if cell.startswith(("http://", "https://")) else escape(cell)

"""Notebook integration: the ``%bento`` magic and the bundle/server widgets.

    %load_ext bento_nb
    %bento pack clf --name IrisClassifier
    %bento serve

``magics.py`` parses and runs the sub-commands, ``widgets/`` draws bundles, servers and
image builds, ``session.py`` tracks what this kernel serves (re-running a ``serve`` cell
replaces its server; every server stops when the kernel shuts down or restarts).
"""

from __future__ import annotations

from typing import Any

from .session import current

__all__ = ["load_ipython_extension", "unload_ipython_extension", "last_widget", "current"]


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%bento`` line magic (``%load_ext bento_nb``)."""
    from .magics import BentoMagics

    ipython.register_magics(BentoMagics)
    current()  # installs the shutdown hook that stops this kernel's servers


def unload_ipython_extension(ipython: Any) -> None:
    """Remove ``%bento``; servers keep running until stopped or the kernel exits."""
    line_magics = ipython.magics_manager.magics.get("line", {})
    line_magics.pop("bento", None)


def last_widget() -> Any:
    """The widget the ``%bento`` magic (or a Serve button) showed last, for driving it from
    code: ``last_widget().stop_button.click()``."""
    return current().last_widget

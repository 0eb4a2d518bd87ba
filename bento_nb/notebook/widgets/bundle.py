"""A packed bundle as a widget: tag, size, APIs with their signatures, where it came from
(notebook, git commit, Python), requirements; Serve and Containerize.

    BundleWidget(bundle, on_serve=start_server)   # what ``%bento pack`` shows
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ...store import human_size
from ._shared import ERROR, PlainReprMixin, colored, escape
from .containerize import ContainerizeView


class BundleWidget(PlainReprMixin, W.VBox):
    """A packed bundle: tag, size, APIs, requirements; Serve and Containerize.

    ``on_serve(tag) -> ServerWidget`` is how the Serve button starts a server (the magic
    passes its own, so the server is tracked and replaced like ``%bento serve``).
    """

    def __init__(self, bundle: Any, on_serve: Callable[[str], Any] | None = None, **kwargs: Any):
        self.bundle = bundle
        self.on_serve = on_serve
        self.info = W.HTML(self._details_html())
        self.serve_button = W.Button(description="Serve", icon="play", button_style="success",
                                     tooltip="serve this bundle from the kernel")
        self.containerize_button = W.Button(description="Containerize", icon="cube",
                                            tooltip="build a Docker image serving this bundle")
        self.serve_button.on_click(lambda _b: self.serve())
        self.containerize_button.on_click(lambda _b: self.containerize())  # never raises
        if on_serve is None:
            self.serve_button.disabled = True
        self.message = W.HTML()
        self.containerize_view = ContainerizeView(layout=W.Layout(display="none"))
        self.server_area = W.VBox()
        self.server_widget: Any = None
        super().__init__([self.info, W.HBox([self.serve_button, self.containerize_button]),
                          self.message, self.containerize_view, self.server_area], **kwargs)

    def serve(self) -> Any:
        try:
            widget = self.on_serve(self.bundle.tag)
        except Exception as e:
            message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            self.message.value = colored(f"✗ {escape(message)}", ERROR)
            return None
        self.message.value = ""
        self.server_widget = widget
        self.server_area.children = (widget,)
        return widget

    def containerize(self, image: str | None = None) -> None:
        self.containerize_view.layout.display = None
        self.containerize_view.start(self.bundle.tag, image=image)

    def _details_html(self) -> str:
        b = self.bundle
        apis = "".join(
            f"<tr><td><code>POST /{escape(a.get('name'))}</code></td>"
            f"<td>{escape((a.get('input') or {}).get('type', ''))}</td>"
            f"<td>{'batch' if a.get('batch') else ''}</td>"
            f"<td>{escape(a.get('doc') or '')}</td></tr>"
            + (f"<tr class='bento-nb-signature'><td></td><td colspan='3'><small>takes "
               f"{escape(signature)}</small></td></tr>" if (signature := _signature(a)) else "")
            for a in b.apis)
        reqs = ", ".join(f"<code>{escape(r)}</code>" for r in b.requirements) or "none"
        labels = ", ".join(f"{escape(k)}={escape(v)}" for k, v in b.labels.items())
        origin = provenance_lines(b.provenance)
        return (f"<div>bundle <b>{escape(b.tag)}</b> — {escape(human_size(b.size))}"
                f"<br><small>{escape(b.path)}</small>"
                f"<table>{apis}</table>"
                f"<div>requirements: {reqs}</div>"
                + (f"<div>labels: {labels}</div>" if labels else "")
                + "<div class='bento-nb-provenance'><small>"
                + "<br>".join(escape(line) for line in origin) + "</small></div></div>")

    def plain_text(self) -> str:
        b = self.bundle
        apis = ", ".join(f"/{a.get('name')}" for a in b.apis)
        signatures = "".join(f"\nsignature /{a.get('name')}: {signature}"
                             for a in b.apis if (signature := _signature(a)))
        origin = "".join(f"\n{line}" for line in provenance_lines(b.provenance))
        return (f"bento bundle {b.tag} ({human_size(b.size)}) at {b.path}\n"
                f"APIs: {apis}{signatures}\nrequirements: {', '.join(b.requirements) or 'none'}"
                f"{origin}")


def _signature(described: dict) -> str | None:
    """``age (integer), city (string)`` for an API the manifest gives a signature, else None."""
    from ...adapters.signature import Signature

    data = described.get("signature")
    if not data:
        return None
    try:
        return Signature.from_dict(data).describe()
    except ValueError:
        return None


def provenance_lines(origin: dict) -> list[str]:
    """Where a bundle came from, one line each: notebook, git commit (and whether the
    tree had uncommitted changes), Python; ``provenance: not recorded`` when absent."""
    lines = []
    if origin.get("notebook"):
        lines.append(f"packed from {origin['notebook']}")
    git = origin.get("git")
    if isinstance(git, dict) and git.get("commit"):
        dirty = {True: " (uncommitted changes)", False: " (clean)"}.get(git.get("dirty"), "")
        lines.append(f"git {str(git['commit'])[:12]}{dirty}")
    if origin.get("python"):
        packages = f", {origin['packages']} packages" if origin.get("packages") else ""
        lines.append(f"{origin['python']}{packages}")
    return lines or ["provenance: not recorded"]

    def plain_html(self) -> str:
        return self.info.value

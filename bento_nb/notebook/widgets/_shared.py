"""What every bento_nb widget shares: HTML escaping, links, the theme stylesheet and the
plain-repr mixin (``text/plain`` and ``text/html`` beside the widget view).

Colours are JupyterLab CSS variables (``var(--jp-ui-font-color1)``, ...) with a light
fallback, so the widgets follow the dark theme and still read in nbconvert HTML.
"""

from __future__ import annotations

import html
from typing import Any

# JupyterLab theme variables, with the light theme's values as fallbacks
TEXT = "var(--jp-ui-font-color1, #1f2328)"
MUTED = "var(--jp-ui-font-color3, #8c959f)"
BORDER = "var(--jp-border-color2, #ddd)"
PANEL = "var(--jp-layout-color2, #f6f8fa)"
LINK = "var(--jp-content-link-color, #0969da)"
OK = "var(--jp-success-color1, #1a7f37)"
WARN = "var(--jp-warn-color1, #9a6700)"
ERROR = "var(--jp-error-color1, #b00)"

# Rules the server widget needs beyond inline styles. ipywidgets adds the class
# ``jupyter-widgets-disconnected`` to every view whose model has no live comm: after the
# kernel restarted or died, and for views restored from a saved notebook. Under it the
# "running" status is hidden and "kernel restarted — server gone" shown instead; the stats
# grey and the buttons (which could not reach a kernel any more) fade.
STYLESHEET = f"""<style>
.bento-nb-server .bento-nb-gone {{ display: none; }}
.bento-nb-server.jupyter-widgets-disconnected .bento-nb-live {{ display: none; }}
.bento-nb-server.jupyter-widgets-disconnected .bento-nb-gone {{ display: inline; color: {ERROR}; }}
.bento-nb-server.jupyter-widgets-disconnected .bento-nb-stats {{ color: {MUTED}; opacity: 0.6; }}
.bento-nb-server.jupyter-widgets-disconnected .widget-button {{ opacity: 0.5; pointer-events: none; }}
.bento-nb-stats.bento-nb-stopped {{ color: {MUTED}; opacity: 0.6; }}
</style>"""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def link(url: str, text: str | None = None) -> str:
    # JupyterLab's HTML widgets do not style anchors: make them look like links
    return (f'<a href="{escape(url)}" target="_blank" rel="noopener" '
            f'style="color:{LINK};text-decoration:underline">{escape(text or url)}</a>')


def colored(text: str, color: str) -> str:
    """``text`` (already HTML) in a theme colour."""
    return f"<span style='color:{color}'>{text}</span>"


class PlainReprMixin:
    """``_repr_mimebundle_`` with text/plain and text/html fallbacks beside the widget view
    (ipywidgets' own bundle only carries a truncated ``repr``)."""

    def _repr_mimebundle_(self, **kwargs):
        data = {"text/plain": self.plain_text(), "text/html": self.plain_html()}
        if getattr(self, "comm", None) is not None and self._view_name is not None:
            data["application/vnd.jupyter.widget-view+json"] = {
                "version_major": 2, "version_minor": 0, "model_id": self._model_id}
        return data

    def _repr_html_(self) -> str:
        return self.plain_html()

    def plain_text(self) -> str:  # pragma: no cover - overridden
        return repr(self)

    def plain_html(self) -> str:  # pragma: no cover - overridden
        return f"<pre>{escape(self.plain_text())}</pre>"

    def __repr__(self) -> str:
        return self.plain_text()

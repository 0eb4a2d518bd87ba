"""A server started from the notebook, as a widget: status, links, live stats and actions.

    widget = ServerWidget(handle)      # what ``%bento serve`` shows
    widget.try_input.value = "[[5.1, 3.5, 1.4, 0.2]]"
    widget.try_button.click()          # buttons work from code as from the browser
    widget.upload(png_bytes, "digit.png")   # an image / file API: what "Choose file" picks
    widget.try_button.click()
    widget.stop_button.click()

State is two traitlets, ``status`` ("running" / "stopped") and ``stats`` (the dict of
``handle.stats()``), set by :meth:`ServerWidget.refresh` and observed to redraw the parts:
the kernel's one refresh thread (:mod:`._refresh`) calls ``refresh()`` about once a second
while the server runs. A stopped server's widget greys its stats and disables Open docs and
Try it.

A server that follows new versions (:mod:`bento_nb.server.versions`) says which one it
serves: "now serving <version> (swapped at HH:MM:SS)" after a hot swap, and why a version
was not swapped in; a split shows requests, errors and p50/p99 per version side by side.
"""

from __future__ import annotations

import datetime as _dt
import json
import mimetypes
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import traitlets

from ... import client
from . import _refresh
from ._shared import (BORDER, ERROR, MUTED, OK, STYLESHEET, WARN, PlainReprMixin, colored,
                      escape, link)
from .containerize import ContainerizeView

GONE = "kernel restarted — server gone"
_BUTTON_CLASSES = "jupyter-widgets jupyter-button widget-button"
_BUTTON_STYLE = ("text-decoration:none;display:inline-flex;align-items:center;"
                 "justify-content:center;padding:0 8px")


def proxy_url(port: int) -> str | None:
    """The server's URL through the Jupyter server (``<base_url>/bento/proxy/<port>/``)
    when the bento_nb Jupyter extension provides one, else None."""
    try:
        from ...jupyter import proxy_url_for
    except Exception:  # extension absent or not importable in this kernel
        return None
    try:
        url = proxy_url_for(port)
    except Exception:
        return None
    return url or None


class ServerWidget(PlainReprMixin, W.VBox):
    """A running (or stopped) in-kernel server: status, links, live stats and actions.

    Parts a program may drive: ``stop_button``, ``containerize_button``, ``try_input``
    (JSON), ``try_file`` (the file an image or file API is sent: :meth:`upload`),
    ``try_api`` (which API), ``try_button``, ``try_output``, ``containerize_view``.
    """

    status = traitlets.Unicode("running", help="running or stopped")
    stats = traitlets.Dict(help="the server's handle.stats() at the last refresh")
    as_of = traitlets.Unicode("", help="local time (HH:MM:SS) of the last refresh")

    def __init__(self, handle: Any, note: str = "", api_token: str | None = None, **kwargs: Any):
        from ... import config

        self.handle = handle
        self.api_token = api_token or config.api_token()
        self.last_answer: tuple[int, Any] | None = None
        self.proxy_url = proxy_url(handle.port)
        self.header = W.HTML()
        self.note = W.HTML(note)
        self.stats_html = W.HTML()
        self.stats_html.add_class("bento-nb-stats")

        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="stop the server and free its port")
        self.containerize_button = W.Button(description="Containerize", icon="cube",
                                            tooltip="build a Docker image serving this bundle")
        self.docs_button = W.HTML()
        self.stop_button.on_click(self._guarded(self.stop))
        self.containerize_button.on_click(self._guarded(self.containerize))
        if not handle.tag:
            self.containerize_button.disabled = True
            self.containerize_button.tooltip = "containerize needs a bundle: %bento pack it first"

        api_names = self._api_names()
        self.try_api = W.Dropdown(options=api_names, value=api_names[0] if api_names else None,
                                  description="API", layout=W.Layout(
                                      width="auto", display=None if len(api_names) > 1 else "none"))
        self.try_input = W.Textarea(value=self._example(api_names[0] if api_names else None),
                                    placeholder="JSON input, e.g. [[5.1, 3.5, 1.4, 0.2]]",
                                    rows=2, layout=W.Layout(width="100%"))
        self.try_file = W.FileUpload(multiple=False, description="Choose file")
        self.try_label = W.HTML()
        self.try_button = W.Button(description="Try it", icon="play", button_style="primary")
        self.try_output = W.HTML()
        self.try_button.on_click(self._guarded(self.try_it))
        self.try_api.observe(self._on_api, "value")
        self.containerize_view = ContainerizeView(layout=W.Layout(display="none"))

        actions = W.HBox([self.stop_button, self.containerize_button, self.docs_button])
        try_box = W.VBox([self.try_label, W.HBox([self.try_api]), self.try_input,
                          W.HBox([self.try_file, self.try_button]), self.try_output],
                         layout=W.Layout(border=f"1px solid {BORDER}", padding="4px",
                                         margin="4px 0"))
        super().__init__([self.header, self.note, self.stats_html, actions, try_box,
                          self.containerize_view], **kwargs)
        self.add_class("bento-nb-server")  # the stylesheet's rules hang on it
        if handle.moved_from:
            self.add_note(f"port {handle.moved_from} was busy: serving on port {handle.port} instead")
        self._on_api({"new": self.try_api.value})
        self.observe(self._on_status, "status")
        self.observe(self._on_stats, "stats")
        self.refresh()
        self._on_status()  # draw once even when nothing changed from the defaults
        if handle.running:
            _refresh.watch(self)

    # properties

    @property
    def url(self) -> str:
        return self.handle.url

    @property
    def docs_url(self) -> str:
        """The Swagger UI: through the Jupyter proxy when there is one (it works from a
        remote browser), else on the server itself."""
        if self.proxy_url:
            return self.proxy_url
        return getattr(self.handle, "docs_url", None) or self.handle.url + "/"

    @property
    def running(self) -> bool:
        return self.status == "running"

    def _guarded(self, action: Callable[[], Any]) -> Callable[[Any], None]:
        """A click handler that reports a failure in the widget instead of a traceback."""

        def on_click(_button: Any) -> None:
            try:
                action()
            except Exception as e:
                message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
                self.add_note(f"✗ {message}")

        return on_click

    def _api_names(self) -> list[str]:
        service = getattr(self.handle, "service", None)
        apis = getattr(service, "apis", None) or {}
        return list(apis)

    def _file_types(self, api_name: str | None) -> str | None:
        """The ``accept`` of an API that takes a file rather than JSON or text ("image/*"
        for images, "" for any file), or None when it takes JSON."""
        service = getattr(self.handle, "service", None)
        api = (getattr(service, "apis", None) or {}).get(api_name)
        media = getattr(getattr(api, "input", None), "media_types", ("application/json",))
        if any(m in ("application/json", "text/plain", "text/csv") for m in media):
            return None
        images = [m for m in media if m.startswith("image/")]
        return ",".join(images)

    def _on_api(self, change: dict) -> None:
        accept = self._file_types(change["new"])
        takes_file = accept is not None
        self.try_input.value = "" if takes_file else self._example(change["new"])
        self.try_input.layout.display = "none" if takes_file else None
        self.try_file.layout.display = None if takes_file else "none"
        self.try_file.accept = accept or ""
        what = ("an image" if accept else "a file") + " sent as the body" if takes_file \
            else "JSON body sent to the server"
        self.try_label.value = f"<b>Try it</b> — {what}"

    def _example(self, api_name: str | None) -> str:
        service = getattr(self.handle, "service", None)
        api = (getattr(service, "apis", None) or {}).get(api_name)
        if api is None:
            return "[[5.1, 3.5, 1.4, 0.2]]"
        try:  # the request example of /docs.json: the bundle's own when it has one
            from ...server.openapi import build_openapi

            content = build_openapi(service)["paths"][f"/{api.route}"]["post"][
                "requestBody"]["content"]
            media = content.get("application/json") or next(iter(content.values()))
            example = media.get("example")
            if example is None and media.get("examples"):
                example = next(iter(media["examples"].values())).get("value")
            if example is not None:
                return json.dumps(example)
        except Exception:  # an adapter without an example: leave the box for the user
            pass
        return ""

    # actions

    def add_note(self, text: str) -> None:
        line = f"<div style='color:{WARN}'>{escape(text)}</div>"
        self.note.value = (self.note.value or "") + line

    def stop(self) -> None:
        """Stop the server (drains in-flight requests, frees the port)."""
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        try:
            self.handle.stop()
        finally:
            self.refresh()

    def containerize(self, image: str | None = None) -> None:
        """Build an image of the served bundle in the background; progress shows below."""
        self.containerize_view.layout.display = None
        if not self.handle.tag:
            self.containerize_view.message = "containerize needs a saved bundle"
            self.containerize_view._set(
                "failed", "containerize needs a saved bundle: run <code>%bento pack VAR</code> "
                "and serve its tag")
            return
        self.containerize_view.start(self.handle.tag, image=image)

    def upload(self, data: bytes, name: str = "upload") -> None:
        """Put ``data`` in ``try_file`` as if the user had chosen the file ``name`` with
        "Choose file" (its media type from the name, else from its first bytes)."""
        data = bytes(data)
        kind = mimetypes.guess_type(name)[0] or client.media_type_of(data)
        self.try_file.value = ({"name": name, "type": kind, "size": len(data),
                                "content": memoryview(data),
                                "last_modified": _dt.datetime.now(_dt.timezone.utc)},)

    def try_it(self) -> Any:
        """POST the JSON of ``try_input`` (or, for an image or file API, the file of
        ``try_file``) to the selected API; show and return the answer."""
        api_name = self.try_api.value
        if not api_name:
            self.try_output.value = colored("this service has no API", ERROR)
            return None
        if not self.handle.running:
            self.try_output.value = colored("the server is stopped", ERROR)
            return None
        url = f"{self.url}/{api_name}"
        if self._file_types(api_name) is not None:
            if not self.try_file.value:
                self.try_output.value = colored("choose a file to send first", ERROR)
                return None
            chosen = self.try_file.value[0]
            data = bytes(chosen["content"])
            status, body = client.post_bytes(url, data, chosen.get("type") or
                                             client.media_type_of(data), api_token=self.api_token)
        else:
            status, body = client.post_json(url, self.try_input.value, api_token=self.api_token)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = body.decode("utf-8", "replace")
        shown = json.dumps(answer) if not isinstance(answer, str) else answer
        if len(shown) > 2000:
            shown = shown[:2000] + "…"
        self.try_output.value = (colored(str(status), OK if 200 <= status < 300 else ERROR)
                                 + f" <code>{escape(shown)}</code>")
        self.last_answer = (status, answer)
        return answer

    # state

    def refresh(self) -> bool:
        """Read the server's status and stats into the traitlets (observers redraw what
        changed). Returns whether the server still runs (the refresh thread's cue)."""
        running = self.handle.running
        self.stats = self._read_stats()
        self.as_of = time.strftime("%H:%M:%S")
        self.status = "running" if running else "stopped"
        return running

    def _read_stats(self) -> dict:
        try:
            return dict(self.handle.stats())
        except Exception:  # a stopped or failing server: show what we know
            return {}

    def _on_status(self, _change: Any = None) -> None:
        running = self.running
        self.header.value = self._header_html()
        self.docs_button.value = self._docs_html()
        for part in (self.try_button, self.try_input, self.try_api, self.try_file):
            part.disabled = not running
        if running:
            self.stats_html.remove_class("bento-nb-stopped")
        else:
            self.stop_button.disabled = True
            self.stop_button.description = "Stopped"
            self.stats_html.add_class("bento-nb-stopped")
            _refresh.unwatch(self)
        self._on_stats()

    def _on_stats(self, _change: Any = None) -> None:
        self.stats_html.value = _stats_html(self.stats, stopped=not self.running)
        self.header.value = self._header_html()  # a hot swap changes the tag served

    def close(self) -> None:
        _refresh.unwatch(self)
        super().close()

    # drawing

    def _header_html(self) -> str:
        handle = self.handle
        name = f"<b>{escape(handle.tag or f'{handle.name} (live object)')}</b>"
        if self.running:
            links = [link(handle.url)]
            if self.proxy_url:
                links.append("via Jupyter " + link(self.proxy_url))
            links.append(link(self.docs_url, "docs"))
            live = f"{colored('●', OK)} {name} — running — " + " · ".join(links)
        else:
            live = f"{colored('●', MUTED)} {name} — stopped — {colored(escape(handle.url), MUTED)}"
        # the frontend shows one of the two spans: see the stylesheet in ._shared
        return (f"{STYLESHEET}<span class='bento-nb-live'>{live}</span>"
                f"<span class='bento-nb-gone'>{colored('●', MUTED)} {name} — {GONE}</span>")

    def _docs_html(self) -> str:
        if self.running:
            return (f'<a class="{_BUTTON_CLASSES}" style="{_BUTTON_STYLE}" '
                    f'href="{escape(self.docs_url)}" target="_blank" rel="noopener">Open docs</a>')
        return (f'<span class="{_BUTTON_CLASSES} mod-disabled" aria-disabled="true" '
                f'title="the server is stopped" style="{_BUTTON_STYLE};opacity:0.5;'
                f'cursor:not-allowed">Open docs</span>')

    # plain representations (what nbconvert and terminals keep: a dated snapshot)

    def plain_text(self) -> str:
        h = self.handle
        parts = [f"bento server {h.tag or h.name}: {self.status} at {h.url}"]
        if self.proxy_url:
            parts.append(f"via Jupyter: {self.proxy_url}")
        parts.append(f"docs: {self.docs_url}")
        if h.moved_from:
            parts.append(f"(port {h.moved_from} was busy; moved to {h.port})")
        stats = self._read_stats()
        parts.extend(text for text, _colour in swap_lines(stats))
        if "requests" in stats:
            parts.append(f"{stats.get('requests', 0)} requests, {stats.get('errors', 0)} errors")
        parts.append(f"(as of {time.strftime('%H:%M:%S')}; this text does not update)")
        return "\n".join(parts)

    def plain_html(self) -> str:
        h = self.handle
        name = f"<b>{escape(h.tag or f'{h.name} (live object)')}</b>"
        dot = colored("●", OK if self.running else MUTED)
        links = " · ".join([link(h.url), *(["via Jupyter " + link(self.proxy_url)]
                                           if self.proxy_url else []),
                            link(self.docs_url, "docs")])
        stamp = colored(f"(as of {time.strftime('%H:%M:%S')})", MUTED)
        return (f"<div>{dot} {name} — {self.status} {stamp} — {links}{self.note.value or ''}"
                f"{_stats_html(self._read_stats(), stopped=not self.running)}</div>")


def swap_lines(stats: dict) -> list[tuple[str, str]]:
    """What the widget says of hot swaps, as (text, colour): the last swap, and the last
    version refused since."""
    lines = []
    swapped, refused = stats.get("swapped"), stats.get("refused")
    if swapped:
        lines.append((f"now serving {swapped['version']} (swapped at {swapped['at']})", OK))
    if refused and (not swapped or refused["version"] > swapped["version"]):
        serving = ", ".join(stats.get("serving") or {}) or "the old version"
        text = (f"✗ version {refused['version']} was not swapped in: {refused['reason']} "
                f"(still serving {serving})")
        lines.append((text, ERROR))
    return lines


def _versions_html(stats: dict) -> str:
    """Per-version requests, errors and p50/p99, side by side (a split)."""
    serving = stats.get("serving") or {}
    if len(serving) < 2:
        return ""
    figures = stats.get("versions") or {}
    total = sum(serving.values()) or 1
    head = "".join(f"<th style='padding:0 8px'>{escape(k)}</th>"
                   for k in ("version", "share", "requests", "errors", "p50", "p99"))
    rows = []
    for version, weight in serving.items():
        f = figures.get(version) or {}
        cells = [version, f"{100 * weight / total:g}%", str(f.get("requests", 0)),
                 str(f.get("errors", 0)), f"{f.get('p50_ms', 0):.1f} ms",
                 f"{f.get('p99_ms', 0):.1f} ms"]
        rows.append("<tr>" + "".join(f"<td style='padding:0 8px;text-align:center'>"
                                     f"{escape(c)}</td>" for c in cells) + "</tr>")
    return (f"<table class='bento-nb-versions-table'><tr>{head}</tr>{''.join(rows)}"
            "</table>")


def _stats_html(stats: dict, stopped: bool = False) -> str:
    if "requests" not in stats:
        return ""

    def fmt(key: str, spec: str = "{}") -> str:
        value = stats.get(key)
        return "–" if value is None else spec.format(value)

    window = stats.get("rate_window_seconds", 5)
    cells = [("requests", fmt("requests")), ("errors", fmt("errors")),
             (f"req/s ({window} s avg)", fmt("requests_per_second", "{:.1f}")),
             ("mean batch", fmt("mean_batch_size", "{:.2f}")),
             ("p50", fmt("p50_ms", "{:.1f} ms")), ("p99", fmt("p99_ms", "{:.1f} ms")),
             ("in flight", fmt("in_flight"))]
    head = "".join(f"<th style='padding:0 8px'>{escape(k)}</th>" for k, _ in cells)
    row = "".join(f"<td style='padding:0 8px;text-align:center'>{escape(v)}</td>"
                  for _, v in cells)
    style = f" style='color:{MUTED};opacity:0.6'" if stopped else ""
    title = "<caption style='text-align:left'>stopped: last figures</caption>" if stopped else ""
    notes = "".join(f"<div class='bento-nb-swap' style='color:{colour}'>{escape(text)}</div>"
                    for text, colour in swap_lines(stats))
    return (f"{notes}<table class='bento-nb-stats-table'{style}>{title}<tr>{head}</tr>"
            f"<tr>{row}</tr></table>{_versions_html(stats)}")

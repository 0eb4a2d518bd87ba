"""ipywidgets views of bundles, servers and image builds, with plain reprs.

Three composite widgets, each built from boxes and small parts the kernel can drive::

    BundleWidget(bundle, on_serve=...)   tag, size, APIs, requirements; Serve, Containerize
    ServerWidget(handle)                 status, URL (and the Jupyter-proxied URL), docs,
                                         live stats, Stop, Containerize, Open docs, Try it
    ContainerizeView()                   progress of one image build

Buttons work the same when clicked in the browser or from code (``widget.stop_button.click()``).
Every widget also has ``text/plain`` and ``text/html`` representations, so nbconvert HTML,
terminal IPython and frontends without the widget manager still show something useful.

The server widget refreshes its statistics about once a second from a daemon thread; the
thread ends when the server stops or the widget is closed.
"""

from __future__ import annotations

import html
import json
import threading
import time
from typing import Any, Callable, Sequence

import ipywidgets as W

from .. import client
from ..store import human_size, printable

_REFRESH_SECONDS = 1.0
_LOG_LINES = 200


# -- helpers ------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _link(url: str, text: str | None = None) -> str:
    # JupyterLab's HTML widgets do not style anchors: make them look like links
    return (f'<a href="{_e(url)}" target="_blank" rel="noopener" '
            f'style="color:#0969da;text-decoration:underline">{_e(text or url)}</a>')


def proxy_url(port: int) -> str | None:
    """The server's URL through the Jupyter server (``<base_url>/bento/proxy/<port>/``)
    when the bento_nb Jupyter extension provides one, else None."""
    try:
        from ..jupyter import proxy_url_for
    except Exception:  # extension absent or not importable in this kernel
        return None
    try:
        url = proxy_url_for(port)
    except Exception:
        return None
    return url or None


class _PlainReprMixin:
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
        return f"<pre>{_e(self.plain_text())}</pre>"

    def __repr__(self) -> str:
        return self.plain_text()


class Table:
    """A table for ``%bento list`` / ``%bento servers``: HTML in Jupyter, text elsewhere."""

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
            return f"<p>{_e(self.empty)}</p>"
        head = "".join(f"<th style='text-align:left'>{_e(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{_linkify(c)}</td>"
                                        for c in r) + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _linkify(cell: str) -> str:
    return _link(cell) if cell.startswith(("http://", "https://")) else _e(cell)


# -- containerize progress -----------------------------------------------------------------


_STATE_WORDS = {"idle": "not started", "no-daemon": "no Docker daemon"}


class ContainerizeView(_PlainReprMixin, W.VBox):
    """Progress of one ``bento_nb.containerize.build``: a status line and the build log.

    ``state`` is ``idle``, ``building``, ``done``, ``failed`` or ``no-daemon``. With no
    reachable Docker daemon it shows the one-line message, the build context left on disk
    and the exact ``docker build`` command to run elsewhere.
    """

    def __init__(self, **kwargs: Any):
        self.status = W.HTML()
        self.log_box = W.Textarea(disabled=True, rows=8, layout=W.Layout(width="100%", display="none"))
        super().__init__([self.status, self.log_box], **kwargs)
        self.state = "idle"
        self.lines: list[str] = []
        self.result = None
        self.error: Exception | None = None
        self.message = ""
        self._thread: threading.Thread | None = None
        self._last_flush = 0.0
        self._lock = threading.Lock()

    # running

    def start(self, tag: str, image: str | None = None, base_image: str | None = None) -> None:
        """Build in a background thread (a click handler must not block the kernel)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self.run, args=(tag, image, base_image),
                                        name="bento-containerize", daemon=True)
        self._set("building", f"building an image for {_e(tag)} …")
        self._thread.start()

    def wait(self, timeout: float | None = None) -> str:
        """Wait for a build started with :meth:`start`; returns the final state."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state

    def run(self, tag: str, image: str | None = None, base_image: str | None = None,
            echo: Callable[[str], None] | None = None):
        """Build now, in this thread; returns the BuildResult or None on failure (the view
        says why). ``echo`` also receives every log line (the magic prints them in a
        terminal)."""
        from ..errors import BentoNbError, DockerUnavailable

        self.lines, self.result, self.error = [], None, None
        self._set("building", f"building an image for {_e(tag)} …")

        def progress(line: str) -> None:
            line = str(line).rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if echo is not None:
                echo(line)
            self._flush()

        try:
            from ..containerize import build

            result = build(tag, image=image, base_image=base_image, progress=progress)
        except DockerUnavailable as e:
            self.error = e
            context = getattr(e, "context", None)
            command = getattr(e, "command", None)
            extra = ""
            if context and str(context) not in e.message:
                extra += f"<br>build context: <code>{_e(context)}</code>"
            if command and command not in e.message:
                extra += f"<br>build it where Docker runs: <code>{_e(command)}</code>"
            self.message = e.message
            self._set("no-daemon", f"⚠ {_e(e.message)}{extra}", force=True)
            return None
        except BentoNbError as e:
            self.error = e
            self.message = e.message
            self._set("failed", f"✗ build failed: {_e(e.message)}", force=True)
            return None
        except Exception as e:  # a bug or an SDK surprise: say it, keep the kernel alive
            self.error = e
            self.message = f"{type(e).__name__}: {e}"
            self._set("failed", f"✗ build failed: {_e(self.message)}", force=True)
            return None
        self.result = result
        cached = getattr(result, "cached_steps", None)
        seconds = getattr(result, "seconds", None)
        details = []
        if seconds is not None:
            details.append(f"{seconds:.1f} s")
        if cached:
            details.append(f"{cached} cached steps")
        self.message = f"built {result.image}"
        self._set("done", f"✓ built <code>{_e(result.image)}</code>"
                  + (f" ({_e(', '.join(details))})" if details else "")
                  + f"<br>run it: <code>docker run -p 5000:5000 {_e(result.image)}</code>",
                  force=True)
        return result

    # display

    def _set(self, state: str, status_html: str, force: bool = False) -> None:
        self.state = state
        self.status.value = status_html
        self._flush(force=True)

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < 0.2:  # keep comm traffic bounded
            return
        self._last_flush = now
        with self._lock:
            lines = self.lines[-_LOG_LINES:]
        if lines:
            self.log_box.layout.display = None
            self.log_box.value = "\n".join(lines)

    def plain_text(self) -> str:
        state = _STATE_WORDS.get(self.state, self.state)
        return f"containerize: {state}" + (f" — {self.message}" if self.message else "")

    def plain_html(self) -> str:
        return f"<div>{self.status.value}</div>"


# -- the server widget ----------------------------------------------------------------------


class ServerWidget(_PlainReprMixin, W.VBox):
    """A running (or stopped) in-kernel server: status, links, live stats and actions.

    Parts a program may drive: ``stop_button``, ``containerize_button``, ``try_input``
    (JSON), ``try_api`` (which API), ``try_button``, ``try_output``, ``containerize_view``.
    """

    def __init__(self, handle: Any, note: str = "", api_token: str | None = None, **kwargs: Any):
        from .. import config

        self.handle = handle
        self.api_token = api_token or config.api_token()
        self._closed = threading.Event()
        self.proxy_url = proxy_url(handle.port)
        self.header = W.HTML()
        self.note = W.HTML(note)
        self.stats_html = W.HTML()

        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="stop the server and free its port")
        self.containerize_button = W.Button(description="Containerize", icon="cube",
                                            tooltip="build a Docker image serving this bundle")
        self.docs_button = W.HTML(
            f'<a class="jupyter-widgets jupyter-button widget-button" style="text-decoration:none;'
            f'display:inline-flex;align-items:center;justify-content:center;padding:0 8px" '
            f'href="{_e(self.docs_url)}" target="_blank" rel="noopener">Open docs</a>')
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
        self.try_button = W.Button(description="Try it", icon="play", button_style="primary")
        self.try_output = W.HTML()
        self.try_button.on_click(self._guarded(self.try_it))
        self.try_api.observe(lambda change: setattr(self.try_input, "value",
                                                    self._example(change["new"])), "value")
        self.containerize_view = ContainerizeView(layout=W.Layout(display="none"))

        actions = W.HBox([self.stop_button, self.containerize_button, self.docs_button])
        try_box = W.VBox([W.HTML("<b>Try it</b> — JSON body sent to the server"),
                          W.HBox([self.try_api]), self.try_input,
                          W.HBox([self.try_button]), self.try_output],
                         layout=W.Layout(border="1px solid #ddd", padding="4px", margin="4px 0"))
        super().__init__([self.header, self.note, self.stats_html, actions, try_box,
                          self.containerize_view], **kwargs)
        if handle.moved_from:
            self.add_note(f"port {handle.moved_from} was busy: serving on port {handle.port} instead")
        self.refresh()
        self._thread = threading.Thread(target=self._refresh_loop, name="bento-widget-stats",
                                        daemon=True)
        self._thread.start()

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

    def _guarded(self, action: Callable[[], Any]) -> Callable[[Any], None]:
        """A click handler that reports a failure in the widget instead of a traceback."""

        def on_click(_button: Any) -> None:
            try:
                action()
            except Exception as e:
                message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
                self.add_note(f"✗ {message}")

        return on_click

    @property
    def status(self) -> str:
        return "running" if self.handle.running else "stopped"

    def _api_names(self) -> list[str]:
        service = getattr(self.handle, "service", None)
        apis = getattr(service, "apis", None) or {}
        return list(apis)

    def _example(self, api_name: str | None) -> str:
        service = getattr(self.handle, "service", None)
        api = (getattr(service, "apis", None) or {}).get(api_name)
        if api is None:
            return "[[5.1, 3.5, 1.4, 0.2]]"
        try:  # the request example of /docs.json: the bundle's own when it has one
            from ..server.openapi import build_openapi

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
        line = f"<div style='color:#9a6700'>{_e(text)}</div>"
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
        if not self.handle.tag:
            self.containerize_view.layout.display = None
            self.containerize_view._set(
                "failed", "containerize needs a saved bundle: run <code>%bento pack VAR</code> "
                "and serve its tag", force=True)
            return
        self.containerize_view.layout.display = None
        self.containerize_view.start(self.handle.tag, image=image)

    def try_it(self) -> Any:
        """POST the JSON of ``try_input`` to the selected API; show and return the answer."""
        api_name = self.try_api.value
        if not api_name:
            self.try_output.value = "<span style='color:#b00'>this service has no API</span>"
            return None
        if not self.handle.running:
            self.try_output.value = "<span style='color:#b00'>the server is stopped</span>"
            return None
        url = f"{self.url}/{api_name}"
        status, body = client.post_json(url, self.try_input.value, api_token=self.api_token)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = body.decode("utf-8", "replace")
        shown = json.dumps(answer) if not isinstance(answer, str) else answer
        if len(shown) > 2000:
            shown = shown[:2000] + "…"
        color = "#070" if 200 <= status < 300 else "#b00"
        self.try_output.value = (f"<span style='color:{color}'>{status}</span> "
                                 f"<code>{_e(shown)}</code>")
        self.last_answer = (status, answer)
        return answer

    # live stats

    def refresh(self) -> None:
        handle = self.handle
        running = handle.running
        dot = (f"<span style='color:{'#1a7f37' if running else '#8c959f'}'>●</span>")
        links = [_link(handle.url)]
        if self.proxy_url:
            links.append("via Jupyter " + _link(self.proxy_url))
        links.append(_link(self.docs_url, "docs"))
        name = handle.tag or f"{handle.name} (live object)"
        self.header.value = (f"{dot} <b>{_e(name)}</b> — {_e(self.status)} — "
                             + " · ".join(links))
        stats = self._stats()
        self.stats_html.value = _stats_html(stats)
        if not running:
            self.stop_button.disabled = True
            self.stop_button.description = "Stopped"
            self.try_button.disabled = True

    def _stats(self) -> dict:
        try:
            return dict(self.handle.stats())
        except Exception:  # a stopped or failing server: show what we know
            return {"status": self.status}

    def _refresh_loop(self) -> None:
        while not self._closed.wait(_REFRESH_SECONDS):
            try:
                self.refresh()
            except Exception:  # the comm went away (kernel shutting down)
                return
            if not self.handle.running:
                return

    def close(self) -> None:
        self._closed.set()
        super().close()

    # plain representations

    def plain_text(self) -> str:
        h = self.handle
        parts = [f"bento server {h.tag or h.name}: {self.status} at {h.url}"]
        if self.proxy_url:
            parts.append(f"via Jupyter: {self.proxy_url}")
        parts.append(f"docs: {self.docs_url}")
        if h.moved_from:
            parts.append(f"(port {h.moved_from} was busy; moved to {h.port})")
        stats = self._stats()
        if "requests" in stats:
            parts.append(f"{stats.get('requests', 0)} requests, {stats.get('errors', 0)} errors")
        return "\n".join(parts)

    def plain_html(self) -> str:
        note = self.note.value or ""
        return (f"<div>{self.header.value}{note}{self.stats_html.value}</div>")


def _stats_html(stats: dict) -> str:
    if "requests" not in stats:
        return ""

    def fmt(key: str, spec: str = "{}") -> str:
        value = stats.get(key)
        return "–" if value is None else spec.format(value)

    cells = [("requests", fmt("requests")), ("errors", fmt("errors")),
             ("req/s", fmt("requests_per_second", "{:.1f}")),
             ("mean batch", fmt("mean_batch_size", "{:.2f}")),
             ("p50", fmt("p50_ms", "{:.1f} ms")), ("p99", fmt("p99_ms", "{:.1f} ms")),
             ("in flight", fmt("in_flight"))]
    head = "".join(f"<th style='padding:0 8px'>{k}</th>" for k, _ in cells)
    row = "".join(f"<td style='padding:0 8px;text-align:center'>{_e(v)}</td>" for _, v in cells)
    return f"<table><tr>{head}</tr><tr>{row}</tr></table>"


# -- the bundle widget ----------------------------------------------------------------------


class BundleWidget(_PlainReprMixin, W.VBox):
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
        self.server_widget: ServerWidget | None = None
        super().__init__([self.info, W.HBox([self.serve_button, self.containerize_button]),
                          self.message, self.containerize_view, self.server_area], **kwargs)

    def serve(self) -> Any:
        try:
            widget = self.on_serve(self.bundle.tag)
        except Exception as e:
            message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            self.message.value = f"<span style='color:#b00'>✗ {_e(message)}</span>"
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
            f"<tr><td><code>POST /{_e(a.get('name'))}</code></td>"
            f"<td>{_e((a.get('input') or {}).get('type', ''))}</td>"
            f"<td>{'batch' if a.get('batch') else ''}</td>"
            f"<td>{_e(a.get('doc') or '')}</td></tr>" for a in b.apis)
        reqs = ", ".join(f"<code>{_e(r)}</code>" for r in b.requirements) or "none"
        labels = ", ".join(f"{_e(k)}={_e(v)}" for k, v in b.labels.items())
        return (f"<div>bundle <b>{_e(b.tag)}</b> — {_e(human_size(b.size))}"
                f"<br><small>{_e(b.path)}</small>"
                f"<table>{apis}</table>"
                f"<div>requirements: {reqs}</div>"
                + (f"<div>labels: {labels}</div>" if labels else "") + "</div>")

    def plain_text(self) -> str:
        b = self.bundle
        apis = ", ".join(f"/{a.get('name')}" for a in b.apis)
        return (f"bento bundle {b.tag} ({human_size(b.size)}) at {b.path}\n"
                f"APIs: {apis}\nrequirements: {', '.join(b.requirements) or 'none'}")

    def plain_html(self) -> str:
        return self.info.value

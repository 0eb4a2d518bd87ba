"""JupyterLab in a real browser: Playwright drives Debian's chromium (never a downloaded one)
against ``jupyter lab`` on 127.0.0.1 under a JupyterHub-like base_url.

The Bento panel shows a bundle the test packed and a running server whose link works;
Containerize shows a JupyterLab notification ("Building …", then the outcome) and scrolls the
job's progress into view; Delete asks for confirmation; a notebook running ``%bento serve``
shows the server widget and a real click on Stop stops the server; after a kernel restart
that widget reads "kernel restarted — server gone", not "running".
Screenshots go to the test's temp dir, and also to ``$BENTO_NB_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from polling import wait_for

import bento_nb
from bento_nb.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PANEL_TAB = '.jp-SideBar .lm-TabBar-tab[data-id="bento-nb-panel"]'
PANEL = "#bento-nb-panel"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def lab(jupyter_factory, tmp_path_factory):
    dead = tmp_path_factory.mktemp("nodocker") / "docker.sock"
    return jupyter_factory("lab", base_url="/user/alice/",
                           env={"DOCKER_HOST": f"unix://{dead}"})


@pytest.fixture
def browser_page(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(tmp_path / "last.png"))
            context.close()
            browser.close()


def save_screenshot(page, tmp_path: Path, name: str, locator=None) -> Path:
    path = tmp_path / name
    (locator or page).screenshot(path=str(path))
    assert path.stat().st_size > 1000
    extra = os.environ.get("BENTO_NB_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def open_lab(page, lab, path: str = "lab", reset: bool = False) -> None:
    """Open ``path``; ``reset`` starts from the default layout, not the one an earlier test
    of the module left in the workspace."""
    page.goto(f"{lab.url}{path}?{'reset&' if reset else ''}token={lab.token}")
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)


# Records the text of every JupyterLab toast shown from now on in window.__bentoToasts (a
# toast updated in place, like "Building …" turning into the outcome, leaves both texts).
TOAST_RECORDER = """() => {
    window.__bentoToasts = [];
    const record = () => {
        for (const node of document.querySelectorAll('.jp-toast-message')) {
            if (!window.__bentoToasts.includes(node.textContent)) {
                window.__bentoToasts.push(node.textContent);
            }
        }
    };
    new MutationObserver(record).observe(document.body,
        {childList: true, subtree: true, characterData: true});
}"""


def xsrf_header(page) -> dict:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return {"X-XSRFToken": cookies["_xsrf"]} if "_xsrf" in cookies else {}


def test_bento_panel_lists_bundles_and_servers_and_acts_on_them(
        lab, browser_page, point_at, monkeypatch, iris_clf, tmp_path):
    from playwright.sync_api import expect

    point_at(lab, monkeypatch)
    old = bento_nb.pack(iris_clf, name="BrowserIris")
    bundle = bento_nb.pack(iris_clf, name="BrowserIris")
    handle = bento_nb.serve(bundle.tag, port=0)
    page = browser_page
    try:
        open_lab(page, lab)
        page.click(PANEL_TAB)
        panel = page.locator(PANEL)
        row = panel.locator(f'.jp-BentoPanel-version[data-tag="{bundle.tag}"]')
        row.wait_for()
        assert panel.locator(f'.jp-BentoPanel-version[data-tag="{old.tag}"]').count() == 1
        assert "2 versions" in panel.locator('.jp-BentoPanel-bundle[data-name="BrowserIris"]') \
            .inner_text()
        assert "serving on 1 server" in row.inner_text()

        server = panel.locator(f'.jp-BentoPanel-server[data-port="{handle.port}"]')
        server.wait_for()
        assert "BrowserIris" in server.inner_text() and bundle.version in server.inner_text()
        server.locator('.jp-BentoPanel-pill[data-status="running"]').wait_for()
        link = server.locator("a.jp-BentoPanel-link")
        href = link.get_attribute("href")
        assert href == f"http://127.0.0.1:{lab.port}/user/alice/bento/proxy/{handle.port}/"
        save_screenshot(page, tmp_path, "bento-panel.png")

        # the link works: it opens the server's Swagger UI through Jupyter, and the browser
        # session can predict through the same proxy
        with page.expect_popup() as popup_info:
            link.click()
        popup = popup_info.value
        popup.wait_for_load_state()
        assert popup.url == href
        assert "swagger" in popup.content().lower()
        # Swagger's "Try it out" through the proxy: its request interceptor adds Jupyter's
        # XSRF token, without which Jupyter refuses a cookie-authenticated POST.
        popup.wait_for_function("() => window.ui && window.ui.getConfigs")
        tried = popup.evaluate("""async () => {
            const request = window.ui.getConfigs().requestInterceptor({
                url: "predict", method: "POST", body: "[[5.1, 3.5, 1.4, 0.2]]",
                headers: {"Content-Type": "application/json"}});
            const reply = await fetch("predict", {method: "POST", headers: request.headers,
                                                  body: request.body});
            const bare = await fetch("predict", {method: "POST", body: request.body,
                                                 headers: {"Content-Type": "application/json"}});
            return [reply.status, await reply.text(), bare.status];
        }""")
        assert tried[:2] == [200, "[0]"] and tried[2] == 403, tried
        popup.close()
        answer = page.request.post(href + "predict", data=json.dumps([[5.1, 3.5, 1.4, 0.2]]),
                                   headers={"Content-Type": "application/json",
                                            **xsrf_header(page)})
        assert answer.status == 200 and answer.json() == [0]

        # Containerize: a JupyterLab notification says "Building …" at once and then the
        # outcome; the job's row is scrolled into view, highlighted, and shows its progress
        # (no daemon here, so it fails with the manual command). A short window puts the jobs
        # section below the fold, as many bundles would.
        page.set_viewport_size({"width": 1400, "height": 480})
        expect(panel.locator(".jp-BentoPanel-jobs")).not_to_be_in_viewport()
        page.evaluate(TOAST_RECORDER)
        row.locator('button[data-action="containerize"]').click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for()
        dialog.locator("input").fill("browser-iris:test")
        dialog.locator("button.jp-mod-accept").click()
        job = panel.locator('.jp-BentoPanel-job[data-status="failed"]')
        job.wait_for(timeout=60_000)
        text = job.inner_text()
        assert "browser-iris:test" in text and "docker build" in text
        expect(job).to_have_class(re.compile(r"\bjp-mod-highlighted\b"))
        expect(job).to_be_in_viewport(timeout=10_000)
        toast = page.locator(".Toastify__toast--error .jp-toast-message",
                             has_text="Containerize failed: no Docker daemon reachable")
        toast.wait_for(timeout=20_000)
        seen = page.evaluate("window.__bentoToasts")
        assert f"Building browser-iris:test from {bundle.tag} …" in seen, seen
        save_screenshot(page, tmp_path, "bento-panel-containerize.png")
        page.set_viewport_size({"width": 1400, "height": 900})

        # Delete asks first; Cancel keeps the bundle, Delete removes it
        row.locator('button[data-action="delete"]').click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for()
        assert "Delete bundle" in dialog.inner_text() and bundle.tag in dialog.inner_text()
        assert "1 running server serves it" in dialog.inner_text()
        save_screenshot(page, tmp_path, "bento-panel-delete.png")
        dialog.locator("button.jp-mod-reject").click()
        dialog.wait_for(state="detached")
        assert bundle.path.is_dir()
        assert row.count() == 1

        row.locator('button[data-action="delete"]').click()
        page.locator(".jp-Dialog button.jp-mod-accept").click()
        row.wait_for(state="detached")
        assert not bundle.path.exists()
        assert [b.tag for b in Store().bundles("BrowserIris")] == [old.tag]

        # the server stops: the panel drops it on its next refresh
        handle.stop()
        server.wait_for(state="detached", timeout=20_000)
    finally:
        handle.stop()


def test_panel_links_only_http_urls_and_the_palette_refreshes_it(
        lab, browser_page, point_at, register, monkeypatch, iris_clf):
    """A server record whose url is not http(s) (here ``javascript:``, off loopback so there
    is no proxy link either) never becomes a link: no link, no Open button. The command palette's
    "Refresh Bento panel" reloads the panel: a bundle packed meanwhile appears."""
    point_at(lab, monkeypatch)
    register(47123, host="10.9.8.7", url="javascript:alert(document.domain)")
    page = browser_page
    open_lab(page, lab, reset=True)
    page.click(PANEL_TAB)
    panel = page.locator(PANEL)
    server = panel.locator('.jp-BentoPanel-server[data-port="47123"]')
    server.wait_for()
    assert "not on loopback" in server.inner_text()
    assert server.locator("a").count() == 0
    assert server.locator('button[data-action="open"]').count() == 0
    assert panel.evaluate("""el => [...el.querySelectorAll('*')].filter(
        n => [...n.attributes].some(a => /^\\s*javascript:/i.test(a.value))).length""") == 0

    bundle = bento_nb.pack(iris_clf, name="PaletteIris")
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    palette = page.locator(".lm-CommandPalette")

    def palette_open() -> bool:  # the shortcut is dropped while Lab is still busy: press again
        page.keyboard.press("Control+Shift+C")
        try:
            palette.locator("input").wait_for(state="visible", timeout=3000)
            return True
        except PlaywrightTimeoutError:
            return False

    assert wait_for(palette_open, 60, 0), "the command palette did not open"
    palette.locator("input").fill("Refresh Bento panel")
    item = palette.locator('.lm-CommandPalette-item.lm-mod-active[data-command="bento:refresh"]')
    item.wait_for()
    assert "Refresh Bento panel" in item.inner_text()
    # Enter runs the active item (a click can miss it: the palette re-renders its items
    # whenever a command's state changes)
    page.keyboard.press("Enter")
    panel.locator(f'.jp-BentoPanel-version[data-tag="{bundle.tag}"]').wait_for(timeout=20_000)


NOTEBOOK_CELLS = [
    "%load_ext bento_nb",
    "%bento serve BrowserServed --port {port}",
]


def test_notebook_server_widget_stop_click_stops_the_server(
        lab, browser_page, point_at, monkeypatch, iris_clf, tmp_path, port):
    point_at(lab, monkeypatch)
    bento_nb.pack(iris_clf, name="BrowserServed")
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                    "language": "python"}},
        "cells": [{"cell_type": "code", "source": src.format(port=port), "metadata": {},
                   "outputs": [], "execution_count": None, "id": f"cell{i}"}
                  for i, src in enumerate(NOTEBOOK_CELLS)],
    }
    status, _ = lab.json("api/contents/serve.ipynb", "PUT",
                         {"type": "notebook", "format": "json", "content": notebook})
    assert status in (200, 201)
    page = browser_page
    open_lab(page, lab, "lab/tree/serve.ipynb")
    # the execution indicator may say idle before the kernel is ready: wait for the status bar
    page.get_by_text("(ipykernel) | Idle").wait_for(timeout=90_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    for _ in NOTEBOOK_CELLS:
        page.keyboard.press("Shift+Enter")

    stop = page.locator(".jp-OutputArea-output .widget-button", has_text="Stop")
    stop.wait_for(timeout=90_000)
    widget = page.locator(".jp-OutputArea-output",
                          has=page.locator(".widget-button", has_text="Stop"))
    assert f"bento/proxy/{port}/" in widget.inner_html()  # the widget shows the proxied URL
    assert "running" in widget.inner_text()
    status, servers = lab.json("bento/api/servers")
    assert [s["status"] for s in servers["servers"] if s["port"] == port] == ["running"]
    save_screenshot(page, tmp_path, "bento-widget.png", widget)

    stop.click()
    def listed() -> list:
        return [s for s in lab.json("bento/api/servers")[1]["servers"] if s["port"] == port]

    assert wait_for(lambda: not listed(), 30, 0.3), listed()
    page.wait_for_function(
        "el => el.innerText.includes('stopped')", arg=widget.element_handle(), timeout=20_000)
    save_screenshot(page, tmp_path, "bento-widget-stopped.png", widget)
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # nothing listens any more


def test_restarted_or_crashed_kernel_widget_says_server_gone(
        lab, browser_page, point_at, monkeypatch, iris_clf, tmp_path, port):
    """The widget of a running server after its kernel crashes (killed; Jupyter restarts
    it) and after Kernel > Restart: the frontend keeps the view but its comm is gone, and
    the widget must not go on saying "running"."""
    import signal

    from bento_nb.notebook.widgets import GONE
    from bento_nb.server.registry import list_servers

    point_at(lab, monkeypatch)
    bento_nb.pack(iris_clf, name="BrowserRestart")
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                    "language": "python"}},
        "cells": [{"cell_type": "code", "source": src, "metadata": {}, "outputs": [],
                   "execution_count": None, "id": f"cell{i}"}
                  for i, src in enumerate(["%load_ext bento_nb",
                                           f"%bento serve BrowserRestart --port {port}"])],
    }
    status, _ = lab.json("api/contents/restart.ipynb", "PUT",
                         {"type": "notebook", "format": "json", "content": notebook})
    assert status in (200, 201)
    page = browser_page
    open_lab(page, lab, "lab/workspaces/restart/tree/restart.ipynb")  # a fresh workspace
    page.get_by_text("(ipykernel) | Idle").wait_for(timeout=90_000)

    # this notebook's panel only: the workspace may restore other notebooks (hidden tabs,
    # whose saved widgets' innerText is their raw textContent)
    shown = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output .bento-nb-server"

    def serve_and_wait_running():
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.click()
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        widget = page.locator(shown)
        page.wait_for_function(
            f"() => [...document.querySelectorAll({json.dumps(shown)})]"
            ".some(el => el.innerText.includes('running'))", timeout=90_000)
        assert widget.count() == 1
        assert GONE not in widget.inner_text()
        return widget

    def wait_gone(widget, name):
        page.wait_for_function(f"el => el.innerText.includes({json.dumps(GONE)})",
                               arg=widget.element_handle(), timeout=30_000)
        text = widget.inner_text()
        assert "running" not in text, text
        save_screenshot(page, tmp_path, name, widget)
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))  # the server is gone, as the widget says

    # a crash: the kernel process is killed; Jupyter's nanny starts a new one
    widget = serve_and_wait_running()
    kernel_pid = next(r["pid"] for r in list_servers() if r.get("port") == port)
    os.kill(kernel_pid, signal.SIGKILL)
    wait_gone(widget, "bento-widget-kernel-crashed.png")
    page.locator(".jp-Dialog", has_text="appears to have died") \
        .locator("button.jp-mod-accept").click()

    # a restart from the Kernel menu
    page.get_by_text("(ipykernel) | Idle").wait_for(timeout=90_000)
    widget = serve_and_wait_running()
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.get_by_role("menuitem", name=re.compile(r"^Restart Kernel…")).click()
    page.locator(".jp-Dialog button.jp-mod-accept").click()
    wait_gone(widget, "bento-widget-kernel-restarted.png")


def write_notebook(lab, name: str, cells: list[str]) -> None:
    notebook = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                    "language": "python"}},
        "cells": [{"cell_type": "code", "source": src, "metadata": {}, "outputs": [],
                   "execution_count": None, "id": f"cell{i}"} for i, src in enumerate(cells)],
    }
    status, _ = lab.json(f"api/contents/{name}", "PUT",
                         {"type": "notebook", "format": "json", "content": notebook})
    assert status in (200, 201)


def test_stop_from_the_panel_stops_a_kernels_server_and_health_checks_are_not_traffic(
        lab, browser_page, point_at, monkeypatch, iris_clf, tmp_path, port):
    """A notebook serves with ``%bento serve``; the panel lists that server as the
    notebook's, with its stats. While the panel polls (identity checks, stats) the widget's
    request count stays 0. Stop in the panel stops it: the widget says "stopped", the port
    refuses connections, the panel drops the row."""
    point_at(lab, monkeypatch)
    bento_nb.pack(iris_clf, name="PanelStopped")
    write_notebook(lab, "panel-stop.ipynb",
                   ["%load_ext bento_nb", f"%bento serve PanelStopped --port {port}"])
    page = browser_page
    open_lab(page, lab, "lab/workspaces/panelstop/tree/panel-stop.ipynb")
    page.get_by_text("(ipykernel) | Idle").wait_for(timeout=90_000)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.click()
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    shown = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output .bento-nb-server"
    page.wait_for_function(
        f"() => [...document.querySelectorAll({json.dumps(shown)})]"
        ".some(el => el.innerText.includes('running'))", timeout=90_000)
    widget = page.locator(shown)

    page.click(PANEL_TAB)
    panel = page.locator(PANEL)
    server = panel.locator(f'.jp-BentoPanel-server[data-port="{port}"]')
    server.locator('.jp-BentoPanel-pill[data-status="running"]').wait_for(timeout=30_000)
    owner = server.locator('.jp-BentoPanel-owner[data-kind="kernel"]')
    assert owner.inner_text() == "notebook: panel-stop.ipynb"
    assert server.locator(".jp-BentoPanel-stats").get_attribute("data-requests") == "0"
    assert "req/s (5 s avg)" in server.locator(".jp-BentoPanel-stats").inner_text()

    # the panel polls every 5 s: after two more refreshes (each an identity check and a
    # stats read per server), the widget's request count is still 0
    status_line = panel.locator(".jp-BentoPanel-status")
    for _ in range(2):
        before = status_line.inner_text()
        page.wait_for_function(
            "([el, text]) => el.innerText !== text && el.innerText.startsWith('Updated')",
            arg=[status_line.element_handle(), before], timeout=30_000)
    requests_cell = ("el => el.querySelector('.bento-nb-stats-table')"
                     ".rows[1].cells[0].textContent")
    assert wait_for(lambda: widget.evaluate(requests_cell) == "0", 5, 0.2)
    assert server.locator(".jp-BentoPanel-stats").get_attribute("data-requests") == "0"
    save_screenshot(page, tmp_path, "bento-panel-server-owner.png", panel)

    server.locator('button[data-action="stop"]').click()
    server.wait_for(state="detached", timeout=30_000)
    page.wait_for_function("el => el.innerText.includes('stopped')",
                           arg=widget.element_handle(), timeout=20_000)
    assert "running" not in widget.inner_text()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # nothing listens any more
    save_screenshot(page, tmp_path, "bento-widget-stopped-from-panel.png", widget)


def test_panel_marks_latest_flags_deleted_bundles_and_shows_images_signature_provenance(
        lab, browser_page, point_at, monkeypatch, iris_clf, tmp_path):
    import pandas as pd

    from bento_nb.containerize import images
    from bento_nb.containerize.builder import BuildResult

    point_at(lab, monkeypatch)
    columns = ["sepal_len", "sepal_wid", "petal_len", "petal_wid"]
    example = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=columns)
    old = bento_nb.pack(iris_clf, name="MarkedIris", example=example)
    new = bento_nb.pack(iris_clf, name="MarkedIris", example=example)
    images.record("MarkedIris", new.version, BuildResult(
        image="marked-iris:2", image_id="sha256:" + "b" * 64, context=new.path,
        seconds=1.0, cached_steps=0, size=1))
    handle = bento_nb.serve(old.tag, port=0)
    try:
        Store().delete(old.tag)
        page = browser_page
        open_lab(page, lab, reset=True)
        page.click(PANEL_TAB)
        panel = page.locator(PANEL)
        row = panel.locator(f'.jp-BentoPanel-version[data-tag="{new.tag}"]')
        row.wait_for()
        assert row.get_attribute("data-latest") == "true"
        assert row.locator(".jp-BentoPanel-latest").inner_text() == "latest"
        text = row.inner_text()
        assert "/predict takes sepal_len (number), sepal_wid (number)" in text, text
        assert "CPython 3." in row.locator(".jp-BentoPanel-provenance").inner_text()
        image = row.locator('.jp-BentoPanel-image[data-image="marked-iris:2"]')
        assert image.locator("code").inner_text() == \
            "docker run --rm -p 127.0.0.1:5000:5000 marked-iris:2 --workers=2"

        server = panel.locator(f'.jp-BentoPanel-server[data-port="{handle.port}"]')
        server.locator('.jp-BentoPanel-pill[data-status="running"]').wait_for()
        assert server.locator(".jp-BentoPanel-deleted").inner_text() == "bundle deleted"
        owner = server.locator('.jp-BentoPanel-owner[data-kind="process"]').inner_text()
        assert owner.startswith(f"process {os.getpid()}: "), owner
        save_screenshot(page, tmp_path, "bento-panel-latest-deleted-images.png", panel)
    finally:
        handle.stop()

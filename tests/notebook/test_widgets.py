"""The bundle and server widgets in a real kernel, their buttons clicked from the kernel
(``Button.click()``): Stop stops, Try it answers, Serve serves, Containerize reports progress
or the no-daemon message; live stats refresh and their thread ends; plain reprs."""

from __future__ import annotations

import json
import os

import pytest
from netcheck import free_port, port_is_free
from polling import wait_for

from .conftest import TRAIN, Kernel, has_widget_view, kernel_env, shown_url

DEAD_DOCKER = "unix:///nonexistent/bento-nb-test-docker.sock"


@pytest.fixture(scope="module")
def kernel(module_home):
    # The kernel believes a Jupyter server with the bento extension (this test process,
    # alive) runs it at /user/me/: the widget must show the proxied URL.
    env = kernel_env(module_home, BENTO_NB_JUPYTER_PID=str(os.getpid()),
                     BENTO_NB_JUPYTER_BASE_URL="/user/me/")
    k = Kernel(module_home, env)
    k.run(TRAIN)
    yield k
    k.shutdown()


@pytest.fixture(scope="module")
def container_iris(kernel) -> str:
    """A bundle the Containerize tests serve, packed in the kernel (whatever ran before)."""
    kernel.magic("pack clf --name ContainerIris")
    return "ContainerIris"


def _json(kernel: Kernel, code: str):
    """Run ``code`` whose last line is an expression; return that value (as JSON, read from
    stdout: a library's warning on stderr is no part of it)."""
    *body, last = code.strip().splitlines()
    out = kernel.text(kernel.run("\n".join(body) + f"\nimport json as _j; print(_j.dumps({last}))"),
                      "stdout")
    return json.loads(out.strip().splitlines()[-1])


def test_server_widget_stop_try_it_and_live_stats(kernel):
    port = free_port()
    outputs = kernel.run(f"%bento pack clf --name WidgetIris\n%bento serve --port {port}")
    assert has_widget_view(outputs)
    url, _ = shown_url(outputs)
    html = next(o for o in outputs if "bento server" in o["data"].get("text/plain", ""))["data"]["text/html"]
    assert f'href="{url}"' in html and "docs" in html
    assert f"/user/me/bento/proxy/{port}/" in html  # the Jupyter-proxied URL

    answer = _json(kernel, """
w = bento_nb.notebook.last_widget()
w.try_input.value = '[[6.7, 3.0, 5.2, 2.3], [5.1, 3.5, 1.4, 0.2]]'
w.try_button.click()
[w.try_output.value, w.last_answer]
""")
    assert "200" in answer[0] and "[2, 0]" in answer[0]
    assert answer[1] == [200, [2, 0]]

    bad = _json(kernel, """
w.try_input.value = '[[1, 2]]'
w.try_button.click()
w.try_output.value
""")
    assert "400" in bad and "expected 4 columns" in bad

    assert wait_for(lambda: ">2</td>" in _json(kernel, "w.stats_html.value"), 10, 0.2), \
        _json(kernel, "w.stats_html.value")  # refreshed by the kernel's refresh thread
    stats = _json(kernel, """
from bento_nb.notebook.widgets import _refresh
[w.stats_html.value, w in _refresh.refresher().watched()]
""")
    assert "requests" in stats[0] and ">2</td>" in stats[0]
    assert "req/s (5 s avg)" in stats[0]
    assert stats[1] is True

    stopped = _json(kernel, """
w.stop_button.click()
result = [w.status, w.handle.running, w.stop_button.disabled,
          w in _refresh.refresher().watched(), w.try_button.disabled]
result
""")
    assert stopped == ["stopped", False, True, False, True]
    assert port_is_free(port)

    plain = _json(kernel, """
bundle = w._repr_mimebundle_()
[sorted(bundle), bundle['text/plain']]
""")
    assert plain[0] == ["application/vnd.jupyter.widget-view+json", "text/html", "text/plain"]
    assert "stopped" in plain[1] and url in plain[1]


def test_closing_the_widget_stops_its_refresh(kernel):
    result = _json(kernel, """
%bento serve clf --port 0
w = bento_nb.notebook.last_widget()
from bento_nb.notebook.widgets import _refresh
watched_before = w in _refresh.refresher().watched()
w.close()
after = [watched_before, w in _refresh.refresher().watched(), w.handle.running,
         repr(w).startswith('bento server')]
w.handle.stop()
after
""")
    assert result == [True, False, True, True]


def test_bundle_widget_serve_button(kernel):
    result = _json(kernel, """
%bento pack clf --name ButtonIris
b = bento_nb.notebook.last_widget()
b.serve_button.click()
s = b.server_widget
[s.handle.url, s.handle.tag, b.server_area.children[0] is s, sorted(b._repr_mimebundle_())]
""")
    url, tag, inside, mimes = result
    assert tag.startswith("ButtonIris:") and inside
    assert "text/plain" in mimes and "text/html" in mimes
    from .test_magics import post

    assert post(url + "/predict", [[6.7, 3.0, 5.2, 2.3]]) == (200, [2])
    kernel.magic("stop all")


def test_bundle_widget_shows_the_signature_and_where_the_bundle_came_from(kernel):
    """Packed in a kernel of a notebook (the path jupyter-server gives it) with a DataFrame
    example: the widget names the columns and their types, the notebook and the Python."""
    result = _json(kernel, """
import os, pandas as pd
os.environ["JPY_SESSION_NAME"] = "/work/notebooks/signed.ipynb"
example = pd.DataFrame(X[:2], columns=["sepal_len", "sepal_wid", "petal_len", "petal_wid"])
from bento_nb.notebook.widgets import BundleWidget
signed = BundleWidget(bento_nb.pack(clf, name="SignedIris", example=example))
del os.environ["JPY_SESSION_NAME"]
[signed.info.value, signed.plain_text()]
""")
    html, plain = result
    for text in (html, plain):
        assert "sepal_len (number), sepal_wid (number)" in text, text
        assert "packed from /work/notebooks/signed.ipynb" in text, text
        assert "CPython 3." in text, text
    assert "signature /predict: sepal_len (number)" in plain


def test_containerize_button_without_daemon_says_so(kernel, container_iris):
    result = _json(kernel, f"""
import os
os.environ["DOCKER_HOST"] = "{DEAD_DOCKER}"
%bento serve {container_iris} --port 0
w = bento_nb.notebook.last_widget()
w.containerize_button.click()
state = w.containerize_view.wait(120)
b = bento_nb.notebook.current().server_widgets[0]
[state, w.containerize_view.status.value, w.containerize_view.layout.display]
""")
    state, status, display = result
    assert state == "no-daemon"
    assert "docker build -t" in status and "build context" in status
    assert display is None  # the progress area became visible
    outputs = kernel.magic(f"containerize {container_iris} -t container-iris:test")
    text = kernel.text(outputs)
    assert "docker build -t container-iris:test" in text
    assert not any(o.output_type == "error" for o in outputs)
    kernel.run("os.environ.pop('DOCKER_HOST')")
    kernel.magic("stop all")


def test_live_object_server_cannot_containerize(kernel):
    result = _json(kernel, """
unpacked = clf  # clf itself was packed above: `%bento serve clf` would serve that bundle
%bento serve unpacked --port 0
w = bento_nb.notebook.last_widget()
disabled = w.containerize_button.disabled
w.containerize()
w.handle.stop()
[disabled, w.containerize_view.state, w.containerize_view.status.value]
""")
    assert result[0] is True and result[1] == "failed" and "%bento pack" in result[2]


def _docker_reachable() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@pytest.mark.docker
def test_containerize_button_streams_build_progress(kernel, container_iris):
    if not _docker_reachable():
        pytest.skip("no Docker engine reachable (DOCKER_HOST / /var/run/docker.sock)")
    result = _json(kernel, f"""
%bento serve {container_iris} --port 0
w = bento_nb.notebook.last_widget()
w.containerize(image="bento-nb-widget-test:1")
state = w.containerize_view.wait(600)
w.handle.stop()
[state, len(w.containerize_view.lines), w.containerize_view.log_box.value[-300:], w.containerize_view.status.value]
""")
    state, n_lines, log_tail, status = result
    assert state == "done", status
    assert n_lines > 0 and log_tail
    assert "bento-nb-widget-test:1" in status
    import docker

    client = docker.from_env(timeout=30)
    try:
        client.images.remove("bento-nb-widget-test:1", force=True)
    finally:
        client.close()


def test_try_it_and_predict_send_the_api_token(kernel):
    from .test_magics import post

    outputs = kernel.magic("serve clf --port 0 --api-token s3cret")
    url, _ = shown_url(outputs)
    assert post(url + "/predict", [[6.7, 3.0, 5.2, 2.3]])[0] == 401  # the token is required
    answer = _json(kernel, """
w = bento_nb.notebook.last_widget()
w.try_input.value = '[[6.7, 3.0, 5.2, 2.3]]'
w.try_button.click()
w.last_answer
""")
    assert answer == [200, [2]]
    assert kernel.text(kernel.magic("predict clf [[5.1, 3.5, 1.4, 0.2]]")).strip().endswith("[0]")
    kernel.magic("stop all")


def test_try_it_starts_with_the_packed_example(kernel):
    """`%bento pack clf --example X[:2]`: the Try it box of its server holds those rows,
    and sending them as they are answers."""
    result = _json(kernel, """
import json
samples = X[[0, 100]]
%bento pack clf --name ExampleIris --example samples
%bento serve ExampleIris --port 0
w = bento_nb.notebook.last_widget()
before = json.loads(w.try_input.value)
w.try_button.click()
w.handle.stop()
[before, w.last_answer]
""")
    assert result == [[[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], [200, [0, 2]]]


def test_health_checks_leave_the_widget_request_count_unchanged(kernel):
    """The Jupyter panel polls /healthz, /readyz and /metrics: an idle server's widget must
    not show them as requests or req/s."""
    result = _json(kernel, """
import time, urllib.request
from bento_nb.notebook.widgets import _refresh
%bento serve clf --port 0
w = bento_nb.notebook.last_widget()
w.try_button.click()

def settle(condition):
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)

settle(lambda: w.stats.get('requests') == 1)
before = dict(w.stats)
for _ in range(5):
    for path in ('/healthz', '/readyz', '/metrics'):
        urllib.request.urlopen(w.url + path, timeout=10).read()
ticks = w.as_of
settle(lambda: w.as_of != ticks)  # one refresh of the thread after the checks
ticks = w.as_of
settle(lambda: w.as_of != ticks)  # and another
after = dict(w.stats)
shown = w.stats_html.value
w.handle.stop()
[before['requests'], after['requests'], after['errors'], after['requests_per_second'], shown]
""")
    before, after, errors, rate, shown = result
    assert (before, after, errors) == (1, 1, 0)
    assert rate <= 0.2  # the one Try it over 5 seconds, not 16 requests
    assert "<td style='padding:0 8px;text-align:center'>1</td>" in shown
    assert "req/s (5 s avg)" in shown


def test_stopped_server_greys_stats_and_disables_docs_and_try_it(kernel):
    result = _json(kernel, """
%bento serve clf --port 0
w = bento_nb.notebook.last_widget()
running = ['href=' in w.docs_button.value, w.try_button.disabled, w.try_input.disabled,
           'bento-nb-stopped' in w.stats_html._dom_classes]
w.stop_button.click()
stopped = ['href=' in w.docs_button.value, 'mod-disabled' in w.docs_button.value,
           w.try_button.disabled, w.try_input.disabled, w.try_api.disabled,
           'bento-nb-stopped' in w.stats_html._dom_classes, 'opacity:0.6' in w.stats_html.value,
           'stopped' in w.header.value, 'href=' in w.header.value.split('bento-nb-gone')[0]]
w.try_it()
[running, stopped, w.try_output.value]
""")
    running, stopped, said = result
    assert running == [True, False, False, False]
    assert stopped == [False, True, True, True, True, True, True, True, False]
    assert "stopped" in said


def test_one_refresh_thread_for_many_widgets(kernel):
    """N server widgets share the kernel's one refresh thread, which ends when the last
    server stops."""
    result = _json(kernel, """
import threading
from bento_nb.notebook.widgets import _refresh
ws = []
%bento serve clf --port 0
ws.append(bento_nb.notebook.last_widget())
%bento pack clf --name OneB
%bento serve OneB --port 0
ws.append(bento_nb.notebook.last_widget())
%bento pack clf --name OneC
%bento serve OneC --port 0
ws.append(bento_nb.notebook.last_widget())
refreshers = [t.name for t in threading.enumerate() if 'widget' in t.name]
watched = sum(w in _refresh.refresher().watched() for w in ws)
thread = _refresh.refresher().thread
for w in ws:
    w.stop_button.click()
thread.join(5)
left = [t.name for t in threading.enumerate() if 'widget' in t.name]
[refreshers, watched, thread.is_alive(), left]
""")
    refreshers, watched, alive, after = result
    assert refreshers == ["bento-nb-widget-refresh"]
    assert watched == 3
    assert alive is False and after == []


def _visible_text(fragment: str, disconnected: bool) -> str:
    """The text a browser shows for the header HTML: what the widget's stylesheet hides
    under ``.jupyter-widgets-disconnected`` (``bento-nb-live``) or otherwise
    (``bento-nb-gone``) left out."""
    from html.parser import HTMLParser

    hidden_class = "bento-nb-live" if disconnected else "bento-nb-gone"

    class Visible(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.parts = [], []

        def handle_starttag(self, tag, attrs):
            classes = (dict(attrs).get("class") or "").split()
            self.stack.append(tag == "style" or hidden_class in classes
                              or bool(self.stack and self.stack[-1]))

        def handle_endtag(self, tag):
            if self.stack:
                self.stack.pop()

        def handle_data(self, data):
            if not (self.stack and self.stack[-1]):
                self.parts.append(data)

    parser = Visible()
    parser.feed(fragment)
    return "".join(parser.parts)


def test_restarted_kernel_widget_does_not_say_running(module_home):
    """After a restart the old widget's state (what the frontend keeps, mirrored by
    nbclient from the comm messages) has no live kernel behind it: its view gets the
    ``jupyter-widgets-disconnected`` class, under which the header reads "kernel restarted
    — server gone" instead of "running". The browser test checks the same in JupyterLab."""
    from bento_nb.notebook.widgets import GONE

    kernel = Kernel(module_home, kernel_env(module_home))
    try:
        kernel.run(TRAIN)
        outputs = kernel.magic("serve clf --port 0")
        _, port = shown_url(outputs)
        model_id = next(o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
                        for o in outputs if has_widget_view([o]))
        kernel.restart()
        assert port_is_free(port)
        state = kernel.client.widget_state
        root = state[model_id]
        assert "bento-nb-server" in root["_dom_classes"]
        header_id = root["children"][0].removeprefix("IPY_MODEL_")
        header = state[header_id]["value"]
        live = _visible_text(header, disconnected=False)
        dead = _visible_text(header, disconnected=True)
        assert "running" in live and GONE not in live
        assert GONE in dead and "running" not in dead
        css = header[header.index("<style>"):header.index("</style>")]
        assert ".bento-nb-server.jupyter-widgets-disconnected .bento-nb-live { display: none; }" in css
    finally:
        kernel.shutdown()

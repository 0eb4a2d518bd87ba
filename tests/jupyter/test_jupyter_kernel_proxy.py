"""A kernel started by Jupyter serves a bundle in-kernel; ``proxy_url_for`` inside that kernel
gives the proxied address, and a POST /predict through it answers (the JupyterHub story)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from polling import wait_for

import bento_nb
from bento_nb.jupyter import discovery, proxy_url_for

pytestmark = pytest.mark.timeout(240)


def run_in_kernel(jupyter, kernel_id: str, code: str, timeout: float = 120) -> str:
    """Execute ``code`` in a kernel of ``jupyter`` (through its connection file) and return
    what it printed; raises if the cell errors."""
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(
        connection_file=str(jupyter.runtime_dir / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        for attempt in range(3):
            try:
                client.wait_for_ready(timeout=60)
                break
            except RuntimeError as e:
                # a client not made by a kernel manager judges the kernel by its heartbeat,
                # which can miss a beat on a loaded machine: "Kernel died before replying"
                if "before replying to kernel_info" not in str(e) or attempt == 2:
                    raise
        out: list[str] = []
        errors: list[str] = []

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                errors.append("\n".join(content["traceback"]))

        reply = client.execute_interactive(code, output_hook=hook, timeout=timeout)
        assert reply["content"]["status"] == "ok", "\n".join(errors)
        return "".join(out)
    finally:
        client.stop_channels()


def test_in_kernel_server_is_reachable_through_the_jupyter_proxy(jupyter, iris_clf):
    bundle = bento_nb.pack(iris_clf, name="KernelServed")
    status, kernel = jupyter.json("api/kernels", "POST", {"name": "python3"})
    assert status == 201, kernel
    try:
        printed = run_in_kernel(jupyter, kernel["id"], (
            "import json, os, bento_nb\n"
            "from bento_nb.jupyter import proxy_url_for\n"
            f"handle = bento_nb.serve({bundle.tag!r}, port=0)\n"
            "print(json.dumps({'port': handle.port, 'pid': os.getpid(),\n"
            "    'path': proxy_url_for(handle.port),\n"
            "    'url': proxy_url_for(handle.port, absolute=True),\n"
            "    'missing': proxy_url_for(0)}))\n"))
        seen = json.loads(printed.strip().splitlines()[-1])
        port = seen["port"]
        assert seen["path"] == f"/jp/bento/proxy/{port}/"
        assert seen["url"] == f"http://127.0.0.1:{jupyter.port}/jp/bento/proxy/{port}/"
        assert seen["missing"] is None

        status, servers = jupyter.json("bento/api/servers")
        ours = [s for s in servers["servers"] if s["port"] == port]
        assert ours and ours[0]["pid"] == seen["pid"] and ours[0]["status"] == "running"

        status, _, raw = jupyter.api(
            seen["url"][len(jupyter.url):] + "predict", "POST",
            json.dumps([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).encode(),
            headers={"Content-Type": "application/json"})
        assert status == 200, raw
        assert json.loads(raw) == [0, 2]
    finally:
        jupyter.api(f"api/kernels/{kernel['id']}", "DELETE")
    # the kernel is gone: its server leaves the list (dead pid) and the port is refused
    def listed() -> list:
        return [s for s in jupyter.json("bento/api/servers")[1]["servers"] if s["port"] == port]

    assert wait_for(lambda: not listed(), 30, 0.3), listed()
    status, _, _ = jupyter.api(f"bento/proxy/{port}/healthz")
    assert status == 403


def test_proxy_url_for_outside_jupyter_is_none(monkeypatch):
    monkeypatch.delenv(discovery.PID_VAR, raising=False)
    assert proxy_url_for(5000) is None
    assert proxy_url_for(5000, absolute=True) is None


def test_proxy_url_for_follows_the_advertised_server(monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv(discovery.PID_VAR, str(os.getpid()))
    monkeypatch.setenv(discovery.BASE_URL_VAR, "/user/alice")
    assert proxy_url_for(5000) == "/user/alice/bento/proxy/5000/"
    assert proxy_url_for("nonsense") is None and proxy_url_for(70000) is None
    # no server info file yet: no absolute URL
    assert proxy_url_for(5000, absolute=True) is None
    (tmp_path / f"jpserver-{os.getpid()}.json").write_text(json.dumps(
        {"url": "https://hub.example.org/user/alice/", "base_url": "/user/alice/"}))
    assert proxy_url_for(5000, absolute=True) == \
        "https://hub.example.org/user/alice/bento/proxy/5000/"

    # the advertising server died: nothing
    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setenv(discovery.PID_VAR, str(dead.pid))
    assert proxy_url_for(5000) is None

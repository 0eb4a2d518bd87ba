"""The panel as a control centre, against a real ``jupyter server`` subprocess: ``DELETE
api/servers/<id>`` stops a ``bento-nb serve`` process (it exits 0) and an in-kernel server
(the kernel lives on), and refuses unknown ids, writes without XSRF, stale records, impostors
and other users' records; ``api/servers`` says who owns each server, its live stats and
whether its bundle was deleted; ``api/bundles`` marks the latest version and lists the
images built from each bundle."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from polling import wait_for
from test_jupyter_api import _cookie_session
from test_jupyter_kernel_proxy import run_in_kernel

import bento_nb
from bento_nb.server import registry

pytestmark = pytest.mark.timeout(240)

ROW = [5.1, 3.5, 1.4, 0.2]


def listed(jupyter, port: int) -> list[dict]:
    status, body = jupyter.json("bento/api/servers")
    assert status == 200, body
    return [s for s in body["servers"] if s["port"] == port]


def refused(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_a_cli_server_from_the_panel_api(jupyter, iris_clf, workers):
    bundle = bento_nb.pack(iris_clf, name="CliStopped")
    process = subprocess.Popen(
        [sys.executable, "-m", "bento_nb", "serve", bundle.tag, "--port", "0",
         "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        found = re.search(r"at http://127\.0\.0\.1:(\d+)", line)
        assert found, line
        port = int(found.group(1))
        assert wait_for(lambda: [s["status"] for s in listed(jupyter, port)] == ["running"],
                        30, 0.2), listed(jupyter, port)
        server = listed(jupyter, port)[0]
        assert server["id"] == f"{process.pid}-{port}"
        assert "control" not in server and "secret" not in server
        assert server["owner"]["kind"] == "process" and server["owner"]["pid"] == process.pid
        assert "serve" in server["owner"]["command"] and bundle.tag in server["owner"]["command"]
        assert server["bundle_deleted"] is False
        assert server["stats"]["requests"] == 0

        status, _h, raw = jupyter.api(f"bento/proxy/{port}/predict", "POST",
                                      json.dumps([ROW]).encode(),
                                      headers={"Content-Type": "application/json"})
        assert (status, json.loads(raw)) == (200, [0])
        # (--workers: summed over the workers, whose figures are up to a second old); the
        # list's own checks are not counted as traffic
        assert wait_for(lambda: listed(jupyter, port)[0]["stats"]["requests"] == 1, 10, 0.2)
        assert all(listed(jupyter, port)[0]["stats"]["requests"] <= 1 for _ in range(3))

        status, body = jupyter.json(f"bento/api/servers/{server['id']}", "DELETE")
        assert status == 200, body
        assert body == {"stopped": server["id"], "tag": bundle.tag}
        assert process.wait(30) == 0  # drained and exited, as after Ctrl-C
        out = process.stdout.read()
        assert out.rstrip().endswith("bento-nb: stopped"), out
        assert refused(port) and listed(jupyter, port) == []
        status, body = jupyter.json(f"bento/api/servers/{server['id']}", "DELETE")
        assert status == 404 and body["error"]["type"] == "NotFound"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_stop_an_in_kernel_server_from_the_panel_api(jupyter, iris_clf):
    bundle = bento_nb.pack(iris_clf, name="KernelStopped")
    status, session = jupyter.json("api/sessions", "POST", {
        "path": "owner.ipynb", "type": "notebook", "name": "owner.ipynb",
        "kernel": {"name": "python3"}})
    assert status == 201, session
    kernel_id = session["kernel"]["id"]
    try:
        printed = run_in_kernel(jupyter, kernel_id, (
            "import bento_nb\n"
            f"handle = bento_nb.serve({bundle.tag!r}, port=0)\n"
            "print(handle.port)\n"))
        port = int(printed.split()[-1])
        server = listed(jupyter, port)[0]
        assert server["status"] == "running"
        assert server["owner"] == {"kind": "kernel", "kernel_id": kernel_id,
                                   "notebook": "owner.ipynb"}

        status, body = jupyter.json(f"bento/api/servers/{server['id']}", "DELETE")
        assert status == 200, body
        assert refused(port) and listed(jupyter, port) == []
        # the kernel lives on; its handle says stopped
        assert run_in_kernel(jupyter, kernel_id, "print(handle.running)").strip() == "False"
    finally:
        jupyter.api(f"api/sessions/{session['id']}", "DELETE")


def test_a_server_whose_bundle_was_deleted_is_flagged(jupyter, iris_clf):
    bundle = bento_nb.pack(iris_clf, name="DeletedUnder")
    handle = bento_nb.serve(bundle.tag, port=0)
    try:
        assert listed(jupyter, handle.port)[0]["bundle_deleted"] is False
        assert jupyter.json(f"bento/api/bundles/DeletedUnder/{bundle.version}", "DELETE")[0] \
            == 200
        server = listed(jupyter, handle.port)[0]
        assert server["bundle_deleted"] is True and server["status"] == "running"
    finally:
        handle.stop()


def test_stop_refuses_bad_ids_unknown_servers_and_writes_without_xsrf(jupyter, iris_clf):
    handle = bento_nb.serve(iris_clf, port=0, name="NotStopped")
    ident = f"{os.getpid()}-{handle.port}"
    try:
        for bad in ("abc", "12", "0-5000", "1-2-3", "..", "12-999999"):
            status, body = jupyter.json(f"bento/api/servers/{bad}", "DELETE")
            assert status in (400, 404), (bad, status, body)
            assert body["error"]["type"] in ("BadInput", "NotFound"), body
        status, body = jupyter.json(f"bento/api/servers/{os.getpid()}-1", "DELETE")
        assert status == 404 and "no running server" in body["error"]["message"]

        # no credentials, a wrong token, a cookie session without the XSRF token: 403
        assert jupyter.api(f"bento/api/servers/{ident}", "DELETE", token=False)[0] == 403
        assert jupyter.api(f"bento/api/servers/{ident}", "DELETE", token=False,
                           headers={"Authorization": "token wrong"})[0] == 403
        call, xsrf = _cookie_session(jupyter)
        status, raw = call(f"bento/api/servers/{ident}", "DELETE")
        assert status == 403 and b"_xsrf" in raw
        assert handle.running and not refused(handle.port)

        status, raw = call(f"bento/api/servers/{ident}", "DELETE",
                           headers={"X-XSRFToken": xsrf})
        assert status == 200, raw
        assert wait_for(lambda: not handle.running, 10)
    finally:
        handle.stop()


def test_stop_refuses_stale_records_impostors_and_other_users(jupyter, port, register,
                                                              impostor):
    # our pid is alive, nothing listens on the port: a stale record
    register(port, control="control-token-0123456789")
    status, body = jupyter.json(f"bento/api/servers/{os.getpid()}-{port}", "DELETE")
    assert status == 409 and body["error"]["type"] == "StaleServer", body
    assert "stale" in body["error"]["message"]

    # a program that took the port cannot prove the record: it never sees the token
    register(impostor.port, control="control-token-0123456789")
    status, body = jupyter.json(f"bento/api/servers/{os.getpid()}-{impostor.port}", "DELETE")
    assert status == 409 and body["error"]["type"] == "StaleServer", body
    assert [r["path"] for r in impostor.requests] == ["/.bento/identity"]
    assert not any("X-Bento-Control" in r["headers"] for r in impostor.requests)

    # a record without a control token (an older bento_nb)
    other = port + 1 if port < 65535 else port - 1
    register(other)
    status, body = jupyter.json(f"bento/api/servers/{os.getpid()}-{other}", "DELETE")
    assert status == 409 and "without remote stop" in body["error"]["message"]

    if os.getuid() != 0:
        pytest.skip("giving a record to another user needs root")
    path = registry.record_path(os.getpid(), port)
    os.chown(path, 4242, -1)
    status, body = jupyter.json(f"bento/api/servers/{os.getpid()}-{port}", "DELETE")
    assert status == 403 and "not yours" in body["error"]["message"], body


def test_bundles_mark_the_latest_version_and_list_the_images_built(jupyter, iris_clf):
    from bento_nb.containerize import images
    from bento_nb.containerize.builder import BuildResult

    old = bento_nb.pack(iris_clf, name="Marked")
    new = bento_nb.pack(iris_clf, name="Marked")
    # what containerize.build records after a successful build (the real build is
    # test_jupyter_api.py::test_containerize_job_builds_a_real_image, with a daemon)
    images.record("Marked", old.version, BuildResult(
        image="marked:1", image_id="sha256:" + "a" * 64, context=old.path, seconds=1.0,
        cached_steps=0, size=123))
    status, body = jupyter.json("bento/api/bundles/Marked")
    assert status == 200
    by_tag = {b["tag"]: b for b in body["bundles"]}
    assert by_tag[new.tag]["latest"] is True and by_tag[old.tag]["latest"] is False
    assert by_tag[new.tag]["images"] == []
    [image] = by_tag[old.tag]["images"]
    assert image["image"] == "marked:1" and image["image_id"].startswith("sha256:")
    assert image["run"] == "docker run --rm -p 127.0.0.1:5000:5000 marked:1 --workers=2"
    status, one = jupyter.json(f"bento/api/bundles/Marked/{old.version}")
    assert one["images"] == [image] and one["latest"] is False

"""``bento-nb serve`` as a real process: predictions, --workers on one port, errors, stop."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest
from netcheck import free_port
from polling import wait_for
from servecli import spawn, terminate, wait_ready

from .conftest import metric_value, post_json, request

ROW = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture
def cli_server(iris_bundle):
    procs = []

    def start(*extra: str):
        port = free_port()
        proc = spawn("IrisClassifier", "--port", str(port), *extra)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, port)
        return proc, url, port

    yield start
    for proc in procs:
        terminate(proc)


def test_cli_serve_predicts_json_and_csv(cli_server):
    proc, url, port = cli_server()
    r = request(url + "/predict", "POST", "[[5.1,3.5,1.4,0.2]]", "application/json")
    assert (r.status, r.json()) == (200, [0])
    r = request(url + "/predict", "POST", "5.1,3.5,1.4,0.2", "text/csv")
    assert (r.status, r.json()) == (200, [0])
    # the same with curl, exactly as a user would type it
    out = subprocess.run(["curl", "-s", "-d", "[[5.1,3.5,1.4,0.2]]", "-H",
                          "Content-Type: application/json", f"localhost:{port}/predict"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout == "[0]"
    from bento_nb.server import list_servers

    assert [r["port"] for r in list_servers() if r["pid"] == proc.pid] == [port]
    assert terminate(proc) == 0
    assert "serving IrisClassifier:" in proc.stdout.read()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert [r for r in list_servers() if r["pid"] == proc.pid] == []


def test_cli_workers_answer_from_two_processes(cli_server):
    proc, url, _ = cli_server("--workers", "2")
    pids = set()
    for _ in range(200):  # new connection each time: the kernel spreads them over workers
        pids.add(request(url + "/metadata").json()["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2 and proc.pid not in pids
    for _ in range(10):
        assert post_json(url + "/predict", ROW).json() == [0]
    # every worker proves the one record the parent wrote (its secret, never shown)
    from bento_nb.server import registry

    record = next(r for r in registry.read_records()[0] if r["pid"] == proc.pid)
    for i in range(6):
        nonce = f"worker-check-nonce-{i:02d}"
        answer = request(url + f"/.bento/identity?nonce={nonce}")
        assert answer.json() == {"proof": registry.identity_proof(record["secret"], nonce)}
    assert record["secret"] not in request(url + "/metadata").body.decode()
    assert terminate(proc) == 0
    for pid in pids:  # the workers are gone too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_cli_workers_metrics_count_every_worker(cli_server):
    """A scrape reaches one worker at random; /metrics must report all of them."""
    proc, url, _ = cli_server("--workers", "2")
    answered_by = set()
    for _ in range(40):  # new connections: the kernel spreads them over both workers
        assert post_json(url + "/predict", ROW).json() == [0]
    for _ in range(200):  # until both workers have answered (new connection each time)
        answered_by.add(request(url + "/metadata").json()["pid"])
        if len(answered_by) == 2:
            break
    assert len(answered_by) == 2
    seen: list = []
    scraped: list[str] = []

    def five_full_scrapes_in_a_row() -> bool:
        scraped.append(request(url + "/metrics").body.decode())
        seen.append(metric_value(scraped[-1], "bento_nb_requests_total", route="/predict",
                                 code="200"))
        return seen[-5:] == [40] * 5

    # snapshots are published about once a second; whichever worker answers a scrape
    assert wait_for(five_full_scrapes_in_a_row, 10, 0.2), seen
    text = scraped[-1]
    assert metric_value(text, "bento_nb_batch_size_count", api="predict") == 40
    assert metric_value(text, "bento_nb_request_duration_seconds_count", route="/predict") == 40
    assert terminate(proc) == 0


def test_cli_token_body_limit_and_request_timeout(cli_server):
    _, url, _ = cli_server("--api-token", "t0ken", "--max-body-bytes", "100",
                           "--request-timeout", "7.5")
    assert post_json(url + "/predict", ROW).status == 401
    auth = {"Authorization": "Bearer t0ken"}
    config = request(url + "/metadata", headers=auth).json()["config"]
    assert (config["max_body_bytes"], config["request_timeout"]) == (100, 7.5)
    r = post_json(url + "/predict", ROW, headers=auth)
    assert (r.status, r.json()) == (200, [0])
    r = post_json(url + "/predict", ROW * 10, headers=auth)
    assert r.status == 413 and r.json()["error"]["type"] == "PayloadTooLarge"


def test_cli_serves_when_the_registry_cannot_be_written(iris_bundle, tmp_path, monkeypatch):
    """A read-only container: the Jupyter registry is a nicety, never fatal. The log says
    when the server stops and that it drained."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(blocked))
    port = free_port()
    proc = spawn("IrisClassifier", "--port", str(port))
    try:
        wait_ready(proc, port)
        assert post_json(f"http://127.0.0.1:{port}/predict", ROW).json() == [0]
    finally:
        code = terminate(proc)
    out, err = proc.communicate(timeout=10)
    assert code == 0, err
    assert "warning: cannot register the server" in err and "Traceback" not in err
    assert "bento-nb: stopping (pid" in out and out.rstrip().endswith("bento-nb: stopped")


def test_cli_busy_port_is_one_line_error(iris_bundle):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for extra in ([], ["--workers", "2"]):
            proc = spawn("IrisClassifier", "--port", str(port), *extra)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 7
            lines = err.strip().splitlines()
            assert len(lines) == 1 and f"port {port} is already in use" in lines[0], err


def test_cli_unknown_bundle_is_one_line_error():
    proc = spawn("NoSuchModel", "--port", str(free_port()))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert len(err.strip().splitlines()) == 1 and "NoSuchModel" in err


def test_cli_serve_on_ipv6_loopback_prints_a_bracketed_url_and_answers_there(iris_bundle):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    proc = spawn("IrisClassifier", "--host", "::1", "--port", str(port))
    try:
        url = f"http://[::1]:{port}"
        wait_ready(proc, port, host="::1")
        first = proc.stdout.readline()
        assert f"at {url} " in first, first
        assert post_json(url + "/predict", ROW).json() == [0]
    finally:
        assert terminate(proc) == 0

"""serve() / stop(): several servers per process, port reuse, draining, the registry."""

from __future__ import annotations

import json
import os
import threading

import pytest
from netcheck import free_port, port_is_free

import bento_nb
from bento_nb.errors import ServerError
from bento_nb.server import list_servers, registry, running_servers, serve, stop_all

from .conftest import EchoModel, SlowEchoModel, metric_value, post_json, request

ROW = [[5.1, 3.5, 1.4, 0.2]]


def test_three_servers_in_one_process(iris_bundle, iris_clf, serve_model):
    from bento_nb.service import load

    by_tag = serve_model(iris_bundle.tag)
    by_path = serve_model(str(iris_bundle.path))
    by_object = serve_model(iris_clf, name="LiveIris")
    by_service = serve_model(load(iris_bundle.tag))
    handles = [by_tag, by_path, by_object, by_service]
    assert len({h.port for h in handles}) == 4
    for h in handles:
        r = post_json(h.url + "/predict", ROW)
        assert (r.status, r.json()) == (200, [0]), h
    assert by_tag.tag == iris_bundle.tag and by_object.tag is None
    assert by_object.name == "LiveIris"
    assert set(running_servers()) >= set(handles)
    records = {r["port"]: r for r in list_servers()}
    for h in handles:
        record = records[h.port]
        assert record["pid"] == os.getpid() and record["url"] == h.url
        assert record["apis"] == ["predict"] and record["name"] == h.name
    assert records[by_tag.port]["tag"] == iris_bundle.tag


def test_stop_frees_the_port_and_serve_again(iris_bundle):
    port = free_port()
    first = serve(iris_bundle.tag, port=port)
    assert first.port == port and first.url == f"http://127.0.0.1:{port}"
    assert post_json(first.url + "/predict", ROW).json() == [0]
    first.stop()
    assert not first.running and first.stats()["status"] == "stopped"
    assert first not in running_servers()
    assert not registry.record_path(os.getpid(), port).exists()
    assert port_is_free(port)
    first.stop()  # idempotent
    second = serve(iris_bundle.tag, port=port)
    try:
        assert second.port == port
        assert post_json(second.url + "/predict", ROW).json() == [0]
    finally:
        second.stop()


def test_busy_port_is_an_error_or_moves_on(iris_bundle, serve_model):
    first = serve_model(iris_bundle.tag)
    with pytest.raises(ServerError, match=f"port {first.port} is already in use"):
        serve(iris_bundle.tag, port=first.port)
    moved = serve_model(iris_bundle.tag, port=first.port, port_fallback=True)
    assert moved.port != first.port and moved.moved_from == first.port
    assert post_json(moved.url + "/predict", ROW).json() == [0]
    not_moved = serve_model(iris_bundle.tag, port=free_port(), port_fallback=True)
    assert not_moved.moved_from is None


def test_stop_drains_in_flight_requests(serve_model):
    handle = serve_model(SlowEchoModel(delay=0.5), name="Slow")
    answers = []
    sent = threading.Event()

    def call(value):
        sent.set()
        answers.append(post_json(handle.url + "/predict", [[value, 0]]))

    threads = [threading.Thread(target=call, args=(v,)) for v in (1, 2, 3)]
    for t in threads:
        t.start()
    sent.wait(5)
    # wait until the server has the requests (bounded)
    for _ in range(500):
        if handle.stats()["in_flight"] == 3:
            break
        threading.Event().wait(0.01)
    assert handle.stats()["in_flight"] == 3
    handle.stop(timeout=10)
    for t in threads:
        t.join(10)
    assert sorted(r.json()[0] for r in answers) == [1, 2, 3]
    assert all(r.status == 200 for r in answers)
    assert port_is_free(handle.port)


def test_stats_keys(serve_model):
    handle = serve_model(EchoModel(), name="Echo")
    for i in range(5):
        post_json(handle.url + "/predict", [[i, 0]])
    request(handle.url + "/predict", "POST", "oops")
    stats = handle.stats()
    assert set(stats) >= {"requests", "errors", "requests_per_second", "mean_batch_size",
                          "p50_ms", "p99_ms", "in_flight", "status"}
    assert stats["requests"] == 6 and stats["errors"] == 1
    assert stats["mean_batch_size"] == 1.0
    assert stats["status"] == "running" and stats["in_flight"] == 0
    assert 0 < stats["p50_ms"] <= stats["p99_ms"]


def test_operational_requests_are_not_traffic_in_stats(serve_model):
    """Health checks, scrapes, docs and probes (the Jupyter panel polls some of them every
    few seconds) leave stats() alone: an idle server shows no requests and no req/s. They
    stay in the per-route Prometheus counters."""
    handle = serve_model(EchoModel(), name="Echo")
    post_json(handle.url + "/predict", [[1, 0]])
    before = handle.stats()
    for path in ("/healthz", "/readyz", "/metrics", "/metadata", "/docs.json", "/",
                 "/.bento/identity", "/no-such-route"):
        for _ in range(3):
            request(handle.url + path)
    after = handle.stats()
    assert (after["requests"], after["errors"]) == (before["requests"], before["errors"]) == (1, 0)
    assert after["requests_per_second"] <= 1 / 5  # the one POST at most, not 24 more
    assert after["rate_window_seconds"] == 5
    scrape = request(handle.url + "/metrics").body.decode()
    assert metric_value(scrape, "bento_nb_requests_total", route="/healthz", code="200") == 3
    assert metric_value(scrape, "bento_nb_requests_total", route="/predict", code="200") == 1


def test_stop_all_and_public_serve(iris_bundle):
    handles = [bento_nb.serve(iris_bundle.tag, port=0) for _ in range(2)]
    assert all(h.running for h in handles)
    stop_all()
    assert not any(h.running for h in handles)
    assert running_servers() == []
    assert list_servers() == []


def test_registry_ignores_dead_processes(tmp_path):
    dead = {"pid": 2 ** 22 + 12345, "host": "127.0.0.1", "port": 1, "url": "http://x:1",
            "tag": None, "name": "Gone", "apis": [], "started_at": "2024-01-01T00:00:00+00:00"}
    path = registry.write_record(dead)
    assert path.exists()
    (path.parent / "garbage.json").write_text("{not json")
    assert list_servers() == []
    assert not path.exists()
    assert json.loads(registry.write_record({**dead, "pid": os.getpid()}).read_text())["pid"]
    assert [r["pid"] for r in list_servers()] == [os.getpid()]


def test_registry_records_are_private_and_prove_their_server(iris_bundle):
    handle = serve(iris_bundle.tag, port=0)
    try:
        path = registry.record_path(os.getpid(), handle.port)
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        secret = json.loads(path.read_text())["secret"]
        assert len(secret) >= 32
        # the proof is an HMAC of the nonce: the secret itself never crosses the wire
        answer = request(handle.url + "/.bento/identity?nonce=abcdefghijklmnop0123")
        assert answer.json() == {"proof": registry.identity_proof(secret,
                                                                  "abcdefghijklmnop0123")}
        assert answer.headers["cache-control"] == "no-store"
        assert secret.encode() not in answer.body
        for bad in ("", "short", "x" * 200, "a%20b%20c%20d%20e%20f%20g%20h%20i"):
            answer = request(handle.url + "/.bento/identity?nonce=" + bad)
            assert answer.status == 400 and answer.json()["error"]["type"] == "BadInput"
        assert secret not in request(handle.url + "/metadata").body.decode()
        assert all("secret" not in r for r in list_servers())
        assert secret not in repr(handle) + handle._repr_html_()
    finally:
        handle.stop()


def test_registry_skips_and_reports_files_that_are_not_records():
    folder = registry.servers_dir()
    good = registry.write_record({"pid": os.getpid(), "host": "127.0.0.1", "port": 4999,
                                  "url": None, "apis": []})
    files = {
        "abc.json": {"pid": os.getpid(), "port": "abc"},
        "null.json": {"pid": os.getpid(), "port": None},
        "zero.json": {"pid": os.getpid(), "port": 0},
        "apis.json": {"pid": os.getpid(), "port": 1, "apis": [1]},
        "nopid.json": {"port": 1},
        "list.json": [],
        "open.json": {"pid": os.getpid(), "port": 2},
        "dead.json": {"pid": 2 ** 22 + 12345, "port": "abc"},
    }
    for name, record in files.items():
        (folder / name).write_text(json.dumps(record))
        (folder / name).chmod(0o600)
    (folder / "open.json").chmod(0o644)
    (folder / "text.json").write_text("{not json")
    try:
        records, bad = registry.read_records()
        assert [r["port"] for r in records] == [4999]
        why = {os.path.basename(b.path): b.error for b in bad}
        assert set(why) == set(files) - {"dead.json"} | {"text.json"}
        assert why["abc.json"] == "'port' is \"abc\", not int"
        assert why["null.json"] == "'port' is null, not int"
        assert why["zero.json"] == "'port' is 0, not 1-65535"
        assert why["nopid.json"] == "missing 'pid'"
        assert "other users can read it" in why["open.json"]
        assert why["text.json"].startswith("not JSON")
        assert not (folder / "dead.json").exists()  # a dead process's file goes, bad or not
        assert [r["port"] for r in list_servers()] == [4999]
    finally:
        for name in [*files, "text.json"]:
            (folder / name).unlink(missing_ok=True)
        good.unlink()


def test_unknown_target_is_a_clear_error():
    from bento_nb.errors import BundleNotFound

    with pytest.raises(BundleNotFound):
        serve("NoSuchModel", port=0)


def test_server_options_are_keywords_and_unknown_ones_are_refused(iris_bundle, iris_clf,
                                                                   serve_model):
    from bento_nb.errors import UsageError
    from bento_nb.server import ServerConfig

    small = serve_model(iris_bundle.tag, max_body_bytes=100, max_queue=8)
    r = request(small.url + "/predict", "POST", json.dumps(ROW * 10))
    assert r.status == 413 and r.json()["error"]["type"] == "PayloadTooLarge"
    assert post_json(small.url + "/predict", ROW).json() == [0]
    with pytest.raises(UsageError, match="unknown option.*bogus"):
        serve(iris_bundle.tag, port=0, bogus=1)
    with pytest.raises(UsageError, match="name only apply when serving a live model"):
        serve(iris_bundle.tag, port=0, name="Other")
    with pytest.raises(UsageError, match="either in config= or as keywords"):
        serve(iris_bundle.tag, config=ServerConfig(port=0), max_body_bytes=100)
    with pytest.raises(UsageError, match="max_body_bytes must be at least 1"):
        serve(iris_clf, port=0, max_body_bytes=0)
    for bad in (0, -1, "soon", float("inf")):
        with pytest.raises(UsageError, match="request_timeout must be a positive number"):
            serve(iris_clf, port=0, request_timeout=bad)
    assert [h.port for h in running_servers()] == [small.port]  # no refused one started

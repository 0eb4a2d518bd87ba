"""The control routes the Jupyter panel uses (POST /.bento/stop, GET /.bento/stats): only the
registry record's control token opens them; Stop drains and stops an in-process server."""

from __future__ import annotations

import socket

import pytest
from polling import wait_for

from bento_nb.server import list_servers, registry

from .conftest import post_json, request

ROW = [[5.1, 3.5, 1.4, 0.2]]


def own_record(handle) -> dict:
    return next(r for r in registry.read_records()[0] if r["port"] == handle.port)


def test_stats_need_the_records_control_token_and_count_only_traffic(iris_bundle, serve_model):
    handle = serve_model(iris_bundle.tag)
    token = own_record(handle)["control"]
    assert token and token != own_record(handle)["secret"]
    assert all("control" not in r and "secret" not in r for r in list_servers())

    for headers in ({}, {"X-Bento-Control": "wrong"}, {"X-Bento-Control": token[:-1]}):
        r = request(handle.url + "/.bento/stats", headers=headers)
        assert r.status == 403 and r.json()["error"]["type"] == "Forbidden", headers
    assert post_json(handle.url + "/predict", ROW).status == 200
    r = request(handle.url + "/.bento/stats", headers={"X-Bento-Control": token})
    assert r.status == 200, r.body
    stats = r.json()
    assert stats["requests"] == 1 and stats["errors"] == 0 and "p50_ms" in stats
    assert "requests_per_second" in stats
    # the panel's polling of stats (and the refused tries above) is not traffic
    assert handle.stats()["requests"] == 1


def test_stop_with_the_token_drains_and_stops_the_server(iris_bundle, serve_model):
    handle = serve_model(iris_bundle.tag)
    token = own_record(handle)["control"]
    for method, headers, status in (("POST", {}, 403),
                                    ("POST", {"X-Bento-Control": "x" * len(token)}, 403),
                                    ("GET", {"X-Bento-Control": token}, 405)):
        r = request(handle.url + "/.bento/stop", method, b"" if method == "POST" else None,
                    headers=headers)
        assert r.status == status, (method, headers, r.body)
    assert handle.running and post_json(handle.url + "/predict", ROW).status == 200

    r = request(handle.url + "/.bento/stop", "POST", b"", headers={"X-Bento-Control": token})
    assert (r.status, r.json()) == (202, {"stopping": True})
    assert wait_for(lambda: not handle.running, 15), "the handle still runs"
    assert all(rec["port"] != handle.port for rec in list_servers())
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", handle.port))

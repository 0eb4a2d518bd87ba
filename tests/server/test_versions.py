"""One server, several versions: hot swap on a new pack (in-process and ``bento-nb serve
--watch``) and A/B splits (``--split``, ``weights=``), on real servers on 127.0.0.1.

Every model is an :class:`~versioned_models.Offset`: row ``i`` is answered ``i + k``, a
different ``k`` per version, so each answer proves which version computed it and must
agree with its ``X-Bento-Version`` header.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest
from netcheck import free_port
from polling import wait_for
from servecli import spawn, terminate, wait_ready
from versioncheck import Client, Load

from .conftest import metric_value, request
from .versioned_models import BrokenOnLoad, FailsOnceLoaded, Offset, SlowOffset

EXAMPLE = [[1.0, 2.0]]


def pack(model, name="Offset"):
    import bento_nb

    return bento_nb.pack(model, name=name, example=EXAMPLE)


# -- hot swap, in process ------------------------------------------------------------------


def test_a_served_name_swaps_to_the_new_version_under_load(serve_model):
    v1 = pack(Offset(1000))
    handle = serve_model("Offset")
    old_threads = [d._thread for d in handle._server.dispatchers.values()]
    offsets = {v1.version: 1000}
    with Load(handle.port, offsets) as load:
        assert wait_for(lambda: load.count() > 200, 20), load.failed
        v2 = pack(Offset(2000))
        offsets[v2.version] = 2000
        assert wait_for(lambda: load.answered_by(v2.version), 10), Counter(load.versions)
    assert load.failed == [] and load.wrong == []
    seen = Counter(load.versions)
    assert seen[v1.version] > 0 and seen[v2.version] > 0
    stats = handle.stats()
    assert stats["swapped"]["version"] == v2.version
    assert handle.tag == v2.tag
    from bento_nb.server import list_servers

    assert wait_for(lambda: [r["tag"] for r in list_servers()
                             if r["port"] == handle.port] == [v2.tag], 5)
    # the old version drained, then its model thread ended
    assert old_threads and wait_for(lambda: not any(t.is_alive() for t in old_threads), 10)


def test_a_request_in_flight_during_the_swap_finishes_on_the_old_version(serve_model):
    import bento_nb

    v1 = bento_nb.pack(SlowOffset(1000, delay=6), name="Offset")  # no example: not run
    handle = serve_model("Offset")
    slow: list = []
    thread = threading.Thread(target=lambda: slow.append(Client(handle.port).post(9)))
    thread.start()
    assert wait_for(lambda: handle.stats()["in_flight"] == 1, 10)
    v2 = pack(Offset(2000))
    assert wait_for(lambda: handle.version == v2.version, 10)  # (a request to v1 would wait)
    assert thread.is_alive()  # swapped while the slow request was in the old model
    assert Client(handle.port).post(1) == (200, v2.version, 2001)  # not behind it
    thread.join(20)
    assert slow == [(200, v1.version, 1009)]


def test_a_swap_is_seen_by_a_server_of_another_process_pack(serve_model):
    """The store is polled: a version packed elsewhere (no pack listener here) is found."""
    v1 = pack(Offset(1000))
    handle = serve_model("Offset")
    code = ("import sys; sys.path.insert(0, {tests!r}); import bento_nb; "
            "from server.versioned_models import Offset; "
            "print(bento_nb.pack(Offset(2000), name='Offset', example=[[1.0, 2.0]]).version)")
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code.format(tests=tests)], capture_output=True,
                         text=True, timeout=120, check=True)
    v2 = out.stdout.strip().splitlines()[-1]
    client = Client(handle.port)
    assert wait_for(lambda: client.post(5)[1] == v2, 10)
    assert client.post(5) == (200, v2, 2005)
    assert v1.version != v2


@pytest.mark.parametrize("broken, reason", [
    (BrokenOnLoad(2000), "it does not load: "),
    (FailsOnceLoaded(2000), "its example fails: "),
])
def test_a_broken_version_is_not_swapped_in_and_says_why(serve_model, broken, reason):
    v1 = pack(Offset(1000))
    handle = serve_model("Offset")
    bad = pack(broken)
    assert wait_for(lambda: "refused" in handle.stats(), 10), handle.stats()
    refused = handle.stats()["refused"]
    assert refused["version"] == bad.version and refused["reason"].startswith(reason)
    assert Client(handle.port).post(7) == (200, v1.version, 1007)
    # and a good version after it is still swapped in
    v3 = pack(Offset(3000))
    client = Client(handle.port)
    assert wait_for(lambda: client.post(7) == (200, v3.version, 3007), 10)


def test_a_version_with_other_apis_is_not_swapped_in(serve_model):
    import bento_nb

    pack(Offset(1000))
    handle = serve_model("Offset")
    other = bento_nb.pack(_Scorer(), name="Offset", apis=["score"])
    assert wait_for(lambda: "refused" in handle.stats(), 10)
    assert handle.stats()["refused"]["version"] == other.version
    assert "its APIs are score" in handle.stats()["refused"]["reason"]


class _Scorer:
    def score(self, rows):
        return [0 for _ in rows]


def test_pinned_tag_and_follow_false_do_not_follow(serve_model):
    v1 = pack(Offset(1000))
    following = serve_model("Offset")
    pinned = serve_model(v1.tag)
    off = serve_model("Offset", follow=False)
    assert "following" not in pinned.stats() and "following" not in off.stats()
    v2 = pack(Offset(2000))
    client = Client(following.port)
    assert wait_for(lambda: client.post(1)[1] == v2.version, 10)  # the control swapped
    assert Client(pinned.port).post(1) == (200, v1.version, 1001)
    assert Client(off.port).post(1) == (200, v1.version, 1001)


def test_follow_true_on_a_pinned_tag_is_a_usage_error(serve_model):
    from bento_nb.errors import UsageError

    v1 = pack(Offset(1000))
    with pytest.raises(UsageError, match="names one version"):
        serve_model(v1.tag, follow=True)


def test_a_live_object_server_swaps_when_the_object_is_packed(serve_model):
    model = Offset(1000)
    handle = serve_model(model)
    client = Client(handle.port)
    assert client.post(3) == (200, "live", 1003)
    bundle = pack(model, name="Packed")
    assert wait_for(lambda: client.post(3)[1] == bundle.version, 10)
    assert handle.tag == bundle.tag
    # and it follows that name from then on
    v2 = pack(Offset(2000), name="Packed")
    assert wait_for(lambda: client.post(3) == (200, v2.version, 2003), 10)


# -- hot swap, bento-nb serve --watch -------------------------------------------------------


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    terminate(proc)
    return proc.communicate(timeout=10)


@pytest.fixture
def cli():
    procs = []

    def start(*args: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        proc = spawn(*args, "--port", str(port))
        procs.append(proc)
        wait_ready(proc, port)
        return proc, port

    yield start
    for proc in procs:
        _stop(proc)


def test_cli_watch_swaps_under_load_and_logs_a_refused_version(cli):
    v1 = pack(Offset(1000))
    proc, port = cli("Offset", "--watch")
    log: list[str] = []  # the server's stderr, line by line as it comes
    reader = threading.Thread(target=lambda: [log.append(line) for line in proc.stderr],
                              daemon=True)
    reader.start()
    offsets = {v1.version: 1000}
    with Load(port, offsets) as load:
        assert wait_for(lambda: load.count() > 200, 20), load.failed
        bad = pack(FailsOnceLoaded(5000))  # refused: the old version keeps serving
        refusal = f"not swapping in version {bad.version}: its example fails: "
        assert wait_for(lambda: any(refusal in line for line in log), 15), log
        v2 = pack(Offset(2000))
        offsets[v2.version] = 2000
        assert wait_for(lambda: load.answered_by(v2.version), 15), Counter(load.versions)
    assert load.failed == [] and load.wrong == []
    assert Counter(load.versions)[v1.version] > 0
    from bento_nb.server import list_servers

    assert [r["tag"] for r in list_servers() if r["port"] == port] == [v2.tag]  # the panel's
    assert wait_for(lambda: any(f"now serving Offset:{v2.version} (swapped at " in line
                                for line in log), 5), log
    proc.send_signal(signal.SIGTERM)  # the reader, not the fixture, reads stderr to its end
    assert proc.wait(20) == 0
    reader.join(10)


def test_cli_watch_refuses_a_pinned_tag():
    v1 = pack(Offset(1000))
    out = subprocess.run([sys.executable, "-m", "bento_nb", "serve", v1.tag, "--watch",
                          "--port", "0"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1
    assert "--watch follows a bundle name" in out.stderr


# -- A/B split --------------------------------------------------------------------------


@pytest.fixture
def two_versions():
    return pack(Offset(1000)), pack(Offset(2000))


def test_split_shares_follow_the_weights_over_10000_requests(serve_model, two_versions):
    v1, v2 = two_versions
    handle = serve_model([v1.tag, v2.tag], weights=[0.9, 0.1])
    offsets = {v1.version: 1000, v2.version: 2000}
    client = Client(handle.port)
    seen: Counter = Counter()
    for i in range(10_000):
        status, version, value = client.post(i)
        assert status == 200 and value == i + offsets[version], (i, version, value)
        seen[version] += 1
    assert abs(seen[v1.version] / 10_000 - 0.9) <= 0.02, seen
    assert abs(seen[v2.version] / 10_000 - 0.1) <= 0.02, seen
    # per-version figures: /metrics labels and the handle's stats (what the widget shows)
    text = request(handle.url + "/metrics").body.decode()
    for version, count in seen.items():
        assert metric_value(text, "bento_nb_requests_total", route="/predict",
                            version=version) == count
        assert metric_value(text, "bento_nb_batch_size_count", api="predict",
                            version=version) == count
        assert handle.stats()["versions"][version]["requests"] == count
    assert set(handle.stats()["serving"]) == {v1.version, v2.version}


def test_a_route_key_always_reaches_the_same_version(serve_model, two_versions):
    v1, v2 = two_versions
    handle = serve_model([v1.tag, v2.tag], weights=[50, 50])
    client = Client(handle.port)
    first = {}
    for round_ in range(3):
        for key in range(200):
            _status, version, _ = client.post(key, headers={"X-Bento-Route-Key": f"user-{key}"})
            assert first.setdefault(key, version) == version, (key, round_)
    shares = Counter(first.values())
    assert set(shares) == {v1.version, v2.version}
    assert 60 <= shares[v1.version] <= 140, shares  # hashed keys spread by the weights


def test_oip_infer_honours_the_split_and_an_explicit_version(serve_model, two_versions):
    v1, v2 = two_versions
    handle = serve_model([v1.tag, v2.tag], weights=[0.5, 0.5])
    offsets = {v1.version: 1000, v2.version: 2000}

    def infer(i, path="/v2/models/Offset/infer"):
        body = json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2],
                                       "data": [i, 0]}]}).encode()
        return client.post(i, path, body=body)

    client = Client(handle.port)
    seen: Counter = Counter()
    for i in range(1000):
        status, version, value = infer(i)
        assert status == 200 and value == i + offsets[version]
        seen[version] += 1
    assert abs(seen[v1.version] / 1000 - 0.5) <= 0.06, seen
    for i in range(20):
        assert infer(i, f"/v2/models/Offset/versions/{v2.version}/infer") == (
            200, v2.version, i + 2000)
    status, _, _ = infer(1, "/v2/models/Offset/versions/nope/infer")
    assert status == 404
    answer = request(handle.url + "/v2/models/Offset/versions/nope/infer", "POST", b"{}")
    assert answer.status == 404 and v1.version in answer.json()["error"]
    assert request(handle.url + f"/v2/models/Offset/versions/{v2.version}/ready").status == 200
    metadata = request(handle.url + "/v2/models/Offset").json()
    assert sorted(metadata["versions"]) == sorted([v1.version, v2.version])
    text = request(handle.url + "/metrics").body.decode()
    assert metric_value(text, "bento_nb_requests_total", route="/v2/models/{model}/infer",
                        version=v2.version) >= 20


@pytest.mark.parametrize("split, message", [
    ("90", "1 weight(s) for 2 version(s)"),
    ("90,10,5", "3 weight(s) for 2 version(s)"),
    ("90,-10", "non-negative"),
    ("ninety,ten", "takes numbers"),
    ("0,0", "add up to 0"),
])
def test_a_bad_split_is_one_usage_line(two_versions, split, message):
    v1, v2 = two_versions
    out = subprocess.run([sys.executable, "-m", "bento_nb", "serve", v1.tag, v2.tag,
                          "--split", split, "--port", "0"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr


def test_a_split_of_different_bundles_or_apis_is_refused(serve_model, two_versions):
    import bento_nb
    from bento_nb.errors import UsageError

    v1, _ = two_versions
    other = pack(Offset(5), name="Other")
    with pytest.raises(UsageError, match="versions of one bundle"):
        serve_model([v1.tag, other.tag], weights=[1, 1])
    scorer = bento_nb.pack(_Scorer(), name="Offset", apis=["score"])
    with pytest.raises(UsageError, match="its APIs are score"):
        serve_model([v1.tag, scorer.tag])
    with pytest.raises(UsageError, match="given twice"):
        serve_model([v1.tag, v1.tag])


def test_cli_split_serves_both_versions(cli, two_versions):
    v1, v2 = two_versions
    proc, port = cli(v1.tag, v2.tag, "--split", "80,20")
    client = Client(port)
    seen: Counter = Counter()
    offsets = {v1.version: 1000, v2.version: 2000}
    for i in range(1000):
        status, version, value = client.post(i)
        assert status == 200 and value == i + offsets[version]
        seen[version] += 1
    assert abs(seen[v2.version] / 1000 - 0.2) <= 0.05, seen
    out, _err = _stop(proc)
    assert "(80%)" in out and "(20%)" in out

"""The micro-batching dispatcher: batches form under load, answers go back to the right
requests in order, a poisoned request fails alone, the queue is bounded."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bento_nb.errors import DeadlineExceeded, ModelError, Overloaded
from bento_nb.server.batching import BatchTimeModel, Dispatcher
from bento_nb.service import service_from_model

from .conftest import (
    GateModel,
    PoisonModel,
    SlowEchoModel,
    metric_value,
    post_json,
    request,
)

CLIENTS = 64
REQUESTS_PER_CLIENT = 5


def test_batch_time_model_recovers_a_line():
    fit = BatchTimeModel()
    for n in (1, 4, 16, 64, 2, 32) * 5:
        fit.observe(n, 0.002 + 0.0005 * n)
    assert fit.a == pytest.approx(0.0005, rel=1e-6)
    assert fit.b == pytest.approx(0.002, rel=1e-6)
    # budget 20 ms: (0.020 - 0.002) / 0.0005 = 36
    assert fit.largest_within(0.020, 100) == 36
    assert fit.largest_within(0.020, 10) == 10
    assert fit.largest_within(0.001, 100) == 1


def test_batch_time_model_without_slope_does_not_cap():
    fit = BatchTimeModel()
    for _ in range(10):
        fit.observe(1, 0.003)
    assert fit.a == 0 and fit.b == pytest.approx(0.003)
    assert fit.largest_within(0.010, 100) == 100


def _run_dispatcher(model, scenario, **options):
    """Run ``scenario(dispatcher, loop)`` (a coroutine function) on a fresh loop."""
    api = service_from_model(model, name="Gate").apis["predict"]

    async def main():
        dispatcher = Dispatcher(api, asyncio.get_running_loop(), **options)
        dispatcher.start()
        try:
            return await scenario(dispatcher, api)
        finally:
            dispatcher.close()
            dispatcher.join(5)

    return asyncio.run(asyncio.wait_for(main(), 20))


def test_queued_requests_form_one_batch_and_return_in_order():
    model = GateModel()

    async def scenario(dispatcher, api):
        first = dispatcher.submit(api.input.parse(b"[[100, 0]]", "application/json"))
        # the lone first request is dispatched at once, without waiting for company
        assert await asyncio.to_thread(model.entered.wait, 5)
        rest = [dispatcher.submit(api.input.parse(f"[[{i}, 0], [{i + 0.5}, 0]]".encode(),
                                                  "application/json")) for i in range(10)]
        assert dispatcher.queue_depth == 10
        model.gate.set()
        return await asyncio.gather(first, *rest)

    outcomes = _run_dispatcher(model, scenario)
    assert model.sizes == [1, 20]  # one lone call, then every queued request in one batch
    assert outcomes[0] == (True, b"[100]")
    for i, (ok, body) in enumerate(outcomes[1:]):
        assert ok and body == f"[{float(i)},{i + 0.5}]".encode()


def test_batch_size_is_capped():
    model = GateModel()

    async def scenario(dispatcher, api):
        first = dispatcher.submit(api.input.parse(b"[[0, 0]]", "application/json"))
        assert await asyncio.to_thread(model.entered.wait, 5)
        rest = [dispatcher.submit(api.input.parse(f"[[{i}, 0]]".encode(), "application/json"))
                for i in range(10)]
        model.gate.set()
        return await asyncio.gather(first, *rest)

    outcomes = _run_dispatcher(model, scenario, max_batch_size=4)
    assert model.sizes == [1, 4, 4, 2]
    assert [body for _, body in outcomes[1:]] == [f"[{i}]".encode() for i in range(10)]


def test_poisoned_request_is_isolated_by_bisection():
    model = GateModel()

    async def scenario(dispatcher, api):
        first = dispatcher.submit(api.input.parse(b"[[100, 0]]", "application/json"))
        assert await asyncio.to_thread(model.entered.wait, 5)
        rows = list(range(30))
        rows.insert(17, -1)
        rest = [dispatcher.submit(api.input.parse(f"[[{v}, 0]]".encode(), "application/json"))
                for v in rows]
        model.gate.set()
        return rows, await asyncio.gather(first, *rest)

    rows, outcomes = _run_dispatcher(model, scenario)
    assert model.sizes[:2] == [1, 31]  # the poisoned batch really was one batch
    for value, (ok, body) in zip(rows, outcomes[1:]):
        if value == -1:
            assert not ok and isinstance(body, ModelError)
            assert "poisoned row" in body.message
        else:
            assert ok and body == f"[{value}]".encode()


def test_requests_of_different_shapes_share_no_model_call():
    model = GateModel()

    async def scenario(dispatcher, api):
        first = dispatcher.submit(api.input.parse(b"[[100, 0]]", "application/json"))
        assert await asyncio.to_thread(model.entered.wait, 5)
        bodies = [b"[[22, 1]]", b'{"columns": ["a", "b"], "data": [[11, 1]]}',
                  b'[{"p": 33, "q": 1}]', b"[[44, 1]]"]
        rest = [dispatcher.submit(api.input.parse(b, "application/json")) for b in bodies]
        model.gate.set()
        return await asyncio.gather(first, *rest)

    outcomes = _run_dispatcher(model, scenario)
    assert [body for _, body in outcomes] == [b"[100]", b"[22]", b"[11]", b"[33]", b"[44]"]
    assert sorted(model.sizes[1:]) == [1, 1, 2]  # rows together, each named shape alone


def test_abandon_answers_queued_and_running_requests():
    model = GateModel()

    async def scenario(dispatcher, api):
        payload = api.input.parse(b"[[1, 0]]", "application/json")
        running = dispatcher.submit(payload)
        assert await asyncio.to_thread(model.entered.wait, 5)
        queued = [dispatcher.submit(payload) for _ in range(3)]
        assert dispatcher.abandon(Overloaded("the server is shutting down")) == 4
        answers = await asyncio.gather(running, *queued)
        model.gate.set()  # the model's late result for `running` is dropped
        return answers

    answers = _run_dispatcher(model, scenario)
    assert [ok for ok, _ in answers] == [False] * 4
    assert all(isinstance(e, Overloaded) for _, e in answers)


def test_full_queue_refuses_at_once():
    model = GateModel()

    async def scenario(dispatcher, api):
        payload = api.input.parse(b"[[1, 0]]", "application/json")
        first = dispatcher.submit(payload)
        assert await asyncio.to_thread(model.entered.wait, 5)
        queued = [dispatcher.submit(payload) for _ in range(3)]
        with pytest.raises(Overloaded) as refused:
            dispatcher.submit(payload)
        assert dispatcher.retry_after() >= 1
        model.gate.set()
        answers = await asyncio.gather(first, *queued)
        return refused.value, answers

    refused, answers = _run_dispatcher(model, scenario, max_queue=3)
    assert refused.http_status == 503 and "overloaded" in refused.message
    assert all(ok for ok, _ in answers)


def test_closed_dispatcher_answers_queued_and_refuses_new():
    model = GateModel()

    async def scenario(dispatcher, api):
        payload = api.input.parse(b"[[1, 0]]", "application/json")
        first = dispatcher.submit(payload)
        assert await asyncio.to_thread(model.entered.wait, 5)
        queued = dispatcher.submit(payload)
        dispatcher.close()
        with pytest.raises(Overloaded):
            dispatcher.submit(payload)
        model.gate.set()
        return await asyncio.gather(first, queued)

    assert _run_dispatcher(model, scenario) == [(True, b"[1]"), (True, b"[1]")]


async def _until(predicate, seconds: float = 5.0) -> bool:
    """Poll ``predicate`` on the loop until it holds (bounded)."""
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def test_requests_past_request_timeout_get_504_while_the_model_hangs():
    """A hung model thread cannot be killed, but nobody waits on it past request_timeout:
    the request inside the call and those queued behind it all get 504; while the call
    overruns, health() says so and new requests are refused at once; once the model
    returns, its late result is dropped and service resumes."""
    model = GateModel()

    async def scenario(dispatcher, api):
        payload = api.input.parse(b"[[1, 0]]", "application/json")
        running = dispatcher.submit(payload)
        queued = [dispatcher.submit(payload) for _ in range(3)]
        timed_out = await asyncio.wait_for(asyncio.gather(running, *queued), 5)
        assert dispatcher.queue_depth == 0  # the expired requests left the queue
        assert await _until(lambda: dispatcher.health() is not None)
        health = dispatcher.health()
        with pytest.raises(Overloaded) as refused:
            dispatcher.submit(payload)
        model.gate.set()
        assert await _until(lambda: dispatcher.health() is None)  # the model returned
        after = await asyncio.wait_for(dispatcher.submit(payload), 5)
        return timed_out, health, refused.value, after

    timed_out, health, refused, after = _run_dispatcher(
        model, scenario, max_batch_size=1, request_timeout=0.3)
    assert all(not ok and isinstance(e, DeadlineExceeded) for ok, e in timed_out), timed_out
    assert timed_out[0][1].http_status == 504
    assert "within request_timeout (0.3 s)" in timed_out[0][1].message
    assert "longer than request_timeout (0.3 s)" in health
    assert "busy on one call" in refused.message
    assert after == (True, b"[1]")
    assert model.sizes == [1, 1]  # the expired queued requests never reached the model


def test_admission_refuses_a_request_whose_predicted_wait_exceeds_request_timeout():
    """With a fitted 0.1 s per batch, batches of one and request_timeout 1 s, a request is
    queued only while the rest of the current call plus its position x 0.1 s fits 90 % of
    the timeout: 8 behind the running one (9 if the running call has already used its
    0.1 s by the time they come); the rest get 503 at once."""
    model = GateModel()

    async def scenario(dispatcher, api):
        for _ in range(3):  # the first observation is warm-up, the others are fitted
            dispatcher.model.observe(1, 0.1)
        payload = api.input.parse(b"[[1, 0]]", "application/json")
        running = dispatcher.submit(payload)
        assert await asyncio.to_thread(model.entered.wait, 5)
        admitted, refused = [], []
        for _ in range(12):
            try:
                admitted.append(dispatcher.submit(payload))
            except Overloaded as e:
                refused.append(e)
        retry_after = dispatcher.retry_after()
        model.gate.set()
        return (await asyncio.gather(running, *admitted)), refused, retry_after

    answers, refused, retry_after = _run_dispatcher(model, scenario, max_batch_size=1,
                                                    request_timeout=1.0)
    assert len(answers) - 1 in (8, 9) and all(ok for ok, _ in answers)
    assert len(answers) - 1 + len(refused) == 12
    assert all("would not be answered within request_timeout (1 s)" in e.message
               for e in refused)
    assert retry_after >= 1


def test_queued_requests_that_the_fit_says_will_miss_their_deadline_get_503_not_504():
    """A flood on a cold model: before any batch is fitted nothing is refused; once the
    fit knows a call takes 0.3 s, the requests at the tail of the queue that cannot make
    their 1 s deadline get 503 at once. Every request gets 200 or 503, none a 504."""
    model = SlowEchoModel(delay=0.3)

    async def scenario(dispatcher, api):
        payload = api.input.parse(b"[[1, 0]]", "application/json")
        futures = [dispatcher.submit(payload) for _ in range(10)]  # cold: all admitted
        return await asyncio.wait_for(asyncio.gather(*futures), 5)

    answers = _run_dispatcher(model, scenario, max_batch_size=1, request_timeout=1.0)
    served = [ok for ok, _ in answers]
    assert not any(isinstance(e, DeadlineExceeded) for _, e in answers), answers
    assert served[:2] == [True, True] and sum(served) <= 4, served
    assert served == sorted(served, reverse=True)  # the tail was shed
    assert all(isinstance(e, Overloaded) for ok, e in answers if not ok)


def _client(url: str, client: int, results: dict, start: threading.Barrier) -> None:
    """One keep-alive client sending distinct multi-row requests, checking each answer."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    start.wait(10)
    answers = []
    try:
        for k in range(REQUESTS_PER_CLIENT):
            rows = [[client * 1000 + k * 10 + j, 1.0] for j in range(1 + (client + k) % 3)]
            r = post_json(url + "/predict", rows, conn=conn)
            answers.append((r.status, r.json(), [row[0] for row in rows]))
    finally:
        conn.close()
    results[client] = answers


def _crowd(url: str) -> dict:
    """CLIENTS keep-alive clients (:func:`_client`) started at once: their answers."""
    results: dict = {}
    start = threading.Barrier(CLIENTS)
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(_client, url, c, results, start) for c in range(CLIENTS)]
        for f in futures:
            f.result(timeout=60)
    return results


def test_64_concurrent_clients_get_their_own_answers(serve_model):
    handle = serve_model(SlowEchoModel(delay=0.01), name="Echo")
    results = _crowd(handle.url)
    assert len(results) == CLIENTS
    for client, answers in results.items():
        assert len(answers) == REQUESTS_PER_CLIENT
        for status, body, expected in answers:
            assert status == 200
            assert body == expected, f"client {client} got someone else's answer"
    text = request(handle.url + "/metrics").body.decode()
    batches = metric_value(text, "bento_nb_batch_size_count", api="predict")
    batched = metric_value(text, "bento_nb_batch_size_sum", api="predict")
    singles = metric_value(text, "bento_nb_batch_size_bucket", api="predict", le="1.0")
    assert batched == CLIENTS * REQUESTS_PER_CLIENT
    assert singles < batches, "no batch of more than one request was formed"
    assert batched / batches > 1
    assert handle.stats()["mean_batch_size"] > 1


def test_a_fast_model_batches_concurrent_clients_instead_of_running_each_inline(serve_model):
    """A model fast enough to run inline on a lone request still batches 64 concurrent
    clients: a request counts as alone only once the loop has read what else was ready
    (the connection layer answers API requests in its own callbacks, so "alone while I
    run" would hold for each of them in turn, and every call would be a batch of one)."""
    from .conftest import EchoModel

    handle = serve_model(EchoModel(), name="FastEcho")
    for i in range(5):  # warm: the fit knows the model is fast enough to run inline
        assert post_json(handle.url + "/predict", [[i, 1.0]]).json() == [i]
    for client, answers in _crowd(handle.url).items():
        for status, body, expected in answers:
            assert status == 200 and body == expected, f"client {client}: {status} {body}"
    text = request(handle.url + "/metrics").body.decode()
    batches = metric_value(text, "bento_nb_batch_size_count", api="predict")
    batched = metric_value(text, "bento_nb_batch_size_sum", api="predict")
    assert batched == 5 + CLIENTS * REQUESTS_PER_CLIENT
    assert batched / batches >= 2, f"{batched:.0f} requests in {batches:.0f} model calls"


def test_poisoned_request_among_30_concurrent(serve_model):
    handle = serve_model(PoisonModel(delay=0.01), name="Poison")
    values = list(range(1, 31)) + [-1]
    start = threading.Barrier(len(values))

    def call(value):
        start.wait(10)
        return value, post_json(handle.url + "/predict", [[value, 0.5]])

    with ThreadPoolExecutor(len(values)) as pool:
        answers = list(pool.map(call, values, timeout=60))
    failed = [(v, r) for v, r in answers if r.status != 200]
    assert [v for v, _ in failed] == [-1]
    assert failed[0][1].status == 500
    assert failed[0][1].json()["error"] == {
        "type": "ModelError", "message": "ValueError: poisoned row: first value -1 is not allowed"}
    for value, r in answers:
        if value != -1:
            assert r.json() == [value]


_WARM_CALLS = 5  # requests through the model thread before the lone ones


class StallOnceModel:
    """Fast, but its call stalls for ``stall`` seconds while ``stalling`` is set (another
    process took the CPU): one slow call of a fast model."""

    def __init__(self, stall: float = 0.03):
        self.stall = stall
        self.stalling = False

    def predict(self, df):
        if self.stalling:
            time.sleep(self.stall)
        return df.iloc[:, 0].to_numpy()


def test_a_lone_request_still_runs_inline_after_one_stalled_call():
    """Sequential requests to a fast model are answered on the event loop (no thread
    hand-off); one call stretched by other work on the machine sends at most the next
    request to the model thread, not the following dozens."""
    model = StallOnceModel()

    async def scenario(dispatcher, api):
        async def lone(value):
            """What the server does with a lone request: (inline?, outcome)."""
            payload = api.input.parse(f"[[{value}]]".encode(), "application/json")
            outcome = dispatcher.run_inline(payload)
            if outcome is not None:
                return True, outcome
            return False, await dispatcher.submit(payload)

        for i in range(_WARM_CALLS):  # warm: the fit knows the model is fast
            ok, body = await dispatcher.submit(
                api.input.parse(f"[[{i}]]".encode(), "application/json"))
            assert ok and body == f"[{i}]".encode()
        assert await lone(7) == (True, (True, b"[7]"))
        model.stalling = True
        assert await lone(8) == (True, (True, b"[8]"))  # inline, but 30 ms
        model.stalling = False
        return [await lone(10 + i) for i in range(20)]

    answers = _run_dispatcher(model, scenario)
    assert [outcome for _inline, outcome in answers] == [
        (True, f"[{10 + i}]".encode()) for i in range(20)]
    assert sum(inline for inline, _outcome in answers) >= 18, answers


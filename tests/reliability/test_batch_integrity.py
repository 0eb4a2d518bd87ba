"""Bad or unusual inputs must not spoil a batch or turn into server errors.

Found by the Schemathesis sweep (a 500 for a split-form body) and followed up by hand
(README reliability table, R7 and R8; both fixed). Each test forces the batch it needs
with a model that sleeps until released, so the outcome does not depend on timing."""

from __future__ import annotations

import json
import threading

from polling import wait_for

from .conftest import GatedEcho, call


def _batched(serve_model, bodies: dict) -> dict:
    """Hold the model on a first request, queue ``bodies`` (name -> JSON) so that they form
    one batch, release; returns name -> Response."""
    model = GatedEcho()
    handle = serve_model(model)
    replies: dict = {}

    def send(name, body):
        replies[name] = call(handle.port, "POST", "/predict", json.dumps(body))

    first = threading.Thread(target=send, args=("first", [[0, 1, 2, 3]]), daemon=True)
    first.start()
    assert model.entered.wait(10)
    threads = [threading.Thread(target=send, args=item, daemon=True) for item in bodies.items()]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: handle.stats()["in_flight"] == 1 + len(bodies), 10)
    finally:
        model.gate.set()
    for t in [first, *threads]:
        t.join(15)
    return replies


def test_same_shape_requests_in_one_batch_get_their_own_answers(serve_model):
    replies = _batched(serve_model, {f"r{i}": [[float(i), 1, 2, 3]] for i in range(1, 6)})
    assert {k: (r.status, r.json()) for k, r in replies.items()} == {
        "first": (200, [0]), **{f"r{i}": (200, [float(i)]) for i in range(1, 6)}}


def test_mixed_body_forms_in_one_batch_get_their_own_answers(serve_model):
    """Rows, records and the split form are all documented bodies; batched together each
    must still get the prediction for its own values."""
    replies = _batched(serve_model, {
        "rows": [[22, 1, 2, 3]],
        "split": {"columns": ["a", "b", "c", "d"], "data": [[11, 1, 2, 3]]},
        "records": [{"p": 33, "q": 1, "r": 2, "s": 3}],
    })
    answers = {k: (r.status, r.json()) for k, r in replies.items()}
    assert answers == {"first": (200, [0]), "rows": (200, [22]), "split": (200, [11]),
                       "records": (200, [33])}


def test_split_form_with_wrong_columns_is_a_400(iris_bundle):
    import bento_nb

    handle = bento_nb.serve(iris_bundle.tag, port=0)
    statuses = {}
    try:
        for name, body in {
            "too few names": {"columns": ["a"], "data": [[1, 2, 3, 4], [1, 2, 3, 4]]},
            "too many names": {"columns": ["a", "b", "c", "d", "e"], "data": [[1, 2, 3, 4]]},
            "duplicate names": {"columns": ["a", "a", "b", "c"], "data": [[1, 2, 3, 4]]},
        }.items():
            reply = call(handle.port, "POST", "/predict", json.dumps(body))
            statuses[name] = (reply.status, reply.json())
    finally:
        handle.stop(timeout=5)
    assert all(status == 400 and reply["error"]["type"] == "BadInput"
               for status, reply in statuses.values()), statuses

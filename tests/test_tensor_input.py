"""TensorInput / TfTensorInput on a real server: ``{"instances": [[...]]}`` becomes an
array of the model's dtype, requests are concatenated on axis 0 and split back, and a
wrong shape or a value that is no number is a 400 naming the problem."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from netcheck import exchange

from bento_nb import BentoService, api
from bento_nb.adapters import TensorInput, TfTensorInput, adapter_from_config
from bento_nb.errors import BadInput


class Float32Model:
    """Tells the adapter its input: rows of 3 float32 numbers."""

    dtype = "float32"
    n_features_in_ = 3

    def predict(self, x):
        return x.sum(axis=1)


class TensorService(BentoService):
    @api(input=TensorInput(dtype="float32", shape=(3,)), batch=True)
    def predict(self, x):
        return [{"dtype": str(x.dtype), "row": row.tolist(), "batch": len(x)} for row in x]

    @api(input=TensorInput(dtype="int64"), batch=True)
    def images(self, x):  # any instance shape; only requests of one shape share a call
        return [{"shape": list(item.shape), "sum": int(item.sum())} for item in x]


@pytest.fixture
def server(serve_model):
    handle = serve_model(TensorService(), max_latency_ms=50)

    def post(route: str, body, content_type: str = "application/json"):
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return exchange("127.0.0.1", handle.port, "POST", f"/{route}", raw, content_type)

    return post


def test_instances_become_an_array_of_the_declared_dtype(server):
    answer = server("predict", {"instances": [[1, 2, 3], [4, 5, 6]]})
    assert answer.status == 200, answer.body
    assert [a["dtype"] for a in answer.json()] == ["float32", "float32"]
    assert [a["row"] for a in answer.json()] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    bare = server("predict", [[7, 8, 9]])
    assert bare.status == 200 and bare.json()[0]["row"] == [7.0, 8.0, 9.0]


@pytest.mark.parametrize("body, problem", [
    ({"instances": [[1, 2]]}, "each instance must have shape (3,), got (2,)"),
    ({"instances": [[1, 2, 3], [4, 5]]}, "rows of different lengths"),
    ({"instances": [["a", "b", "c"]]}, "not an array of numbers of dtype float32"),
    ({"inputs": [[1, 2, 3]]}, '"instances"'),
    ({"instances": []}, "empty"),
])
def test_bad_tensors_get_a_400_naming_the_problem(server, body, problem):
    answer = server("predict", body)
    assert answer.status == 400, answer.body
    assert problem in answer.json()["error"]["message"]


def test_concurrent_requests_are_stacked_and_split_back(server):
    def one(i: int):
        side = 2 + i % 3  # three shapes in flight at once
        return side, server("images", {"instances": [np.full((side, side), i).tolist()]})

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(64)))
    for i, (side, answer) in enumerate(answers):
        assert answer.status == 200, (i, answer.body)
        assert answer.json() == [{"shape": [side, side], "sum": i * side * side}], i


def test_the_dtype_and_shape_are_learned_from_the_model():
    adapter = TensorInput()
    adapter.configure(Float32Model())
    assert adapter.parse(b'{"instances": [[1, 2, 3]]}').value.dtype == np.float32
    with pytest.raises(BadInput, match=r"shape \(3,\), got \(4,\)"):
        adapter.parse(b"[[1, 2, 3, 4]]")
    again = adapter_from_config(json.loads(json.dumps(adapter.config())))
    assert again.dtype == np.float32 and again.shape == (3,)


def test_tf_tensor_input_hands_a_tf_tensor():
    tf = pytest.importorskip("tensorflow")

    class Svc(BentoService):
        @api(input=TfTensorInput(dtype="float32"), batch=True)
        def predict(self, x):
            assert isinstance(x, tf.Tensor)
            return tf.reduce_sum(x, axis=1).numpy()

    adapter = Svc().apis["predict"]
    payloads = [adapter.input.parse(b'{"instances": [[1, 2], [3, 4]]}'),
                adapter.input.parse(b'{"instances": [[5, 6]]}')]
    assert [r.tolist() for r in adapter.run_batch(payloads)] == [[3.0, 7.0], [11.0]]

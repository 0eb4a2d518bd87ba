"""Issue 15 item 2: signatures inferred from ``pack(..., example=...)``, enforced per request.

Unit tests of the inference and of the checks (each violation kind names its column, by
name or by position, for JSON and CSV), then a real server on 127.0.0.1 serving the bundle
from the store: each violation is a 400 naming the column, valid requests are 200 and the
model gets typed columns; /docs.json and /metadata show the signature; a bundle whose
manifest has no signature (packed before) still loads and serves.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bento_nb
from bento_nb.adapters import DataframeInput
from bento_nb.adapters.signature import ColumnSpec, Signature, infer
from bento_nb.errors import BadInput, BundleCorrupted, PackError

from netcheck import exchange

PEOPLE = pd.DataFrame({"age": [30, 41], "height": [1.8, 1.62], "city": ["Oslo", "Lima"],
                       "member": [True, False]})
GOOD = {"age": 52, "height": 1.7, "city": "Kyiv", "member": False}


class Typed:
    """predict(df): refuses columns of the wrong dtype as a real model would, so a 200
    shows the model got int64, float64, text and bool columns."""

    def predict(self, df):
        assert list(df.columns) == ["age", "height", "city", "member"], list(df.columns)
        assert df["age"].dtype == np.int64 and df["height"].dtype == np.float64
        assert df["member"].dtype == bool and pd.api.types.is_string_dtype(df["city"])
        return (df["age"] * 10 + df["member"].astype(int)).tolist()


def request(url: str, method: str = "GET", body: str | None = None,
            content_type: str = "application/json"):
    """One bounded HTTP exchange with a server on 127.0.0.1."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return exchange(parts.hostname, parts.port, method, parts.path, body, content_type)


def post_json(url: str, value):
    return request(url, "POST", json.dumps(value))


def adapter_with(example) -> DataframeInput:
    adapter = DataframeInput()
    adapter.signature = adapter.infer_signature(example)
    return adapter


def parse(adapter, body, content_type="application/json"):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return adapter.parse(raw.encode() if isinstance(raw, str) else raw, content_type)


# -- inference ------------------------------------------------------------------------------


def test_a_dataframe_example_gives_named_columns_with_their_dtypes():
    signature = DataframeInput().infer_signature(PEOPLE)
    assert signature.to_dict() == {"from": "example", "inputs": [
        {"name": "age", "type": "integer"}, {"name": "height", "type": "number"},
        {"name": "city", "type": "string"}, {"name": "member", "type": "boolean"}]}


def test_arrays_rows_and_records_give_positional_or_named_signatures():
    adapter = DataframeInput()
    assert adapter.infer_signature(np.zeros((2, 3))).to_dict()["inputs"] == [
        {"name": None, "type": "number"}] * 3
    assert [c.type for c in adapter.infer_signature([[1, 2.5, "a", True]]).inputs] == [
        "integer", "number", "string", "boolean"]
    named = adapter.infer_signature([{"a": 1, "b": "x"}, {"a": 2, "b": None}])
    assert named.inputs == (ColumnSpec("a", "integer"), ColumnSpec("b", "string", optional=True))


def test_a_signature_round_trips_through_its_manifest_form():
    signature = infer(PEOPLE)
    assert Signature.from_dict(signature.to_dict()) == signature
    with pytest.raises(ValueError, match="type"):
        Signature.from_dict({"inputs": [{"name": "a", "type": "float128"}]})


# -- enforcement ----------------------------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    ([{"age": 30, "height": 1.7, "city": "x"}], "missing column 'member'"),
    ({"columns": ["age", "height", "city"], "data": [[1, 1.5, "x"]]}, "missing column 'member'"),
    ([{**GOOD, "x": 1}], "unexpected column 'x'"),
    ([{**GOOD, "age": "30"}], "column 'age' expects integer, got string ('30') in row 1"),
    ([GOOD, {**GOOD, "age": 30.5}], "column 'age' expects integer, got number in row 2"),
    ([{**GOOD, "height": "tall"}], "column 'height' expects number, got string"),
    ([{**GOOD, "member": 1}], "column 'member' expects boolean, got integer"),
    ([{**GOOD, "city": 7}], "column 'city' expects string, got integer"),
    ([{**GOOD, "age": None}], "column 'age' expects integer, got null"),
    ([[30, 1.7, "x"]], "expected 4 columns per row"),
    ([[30, 1.7, "x", "yes"]], "column 'member' expects boolean, got string"),
])
def test_each_violation_is_bad_input_naming_the_column(body, message):
    with pytest.raises(BadInput) as caught:
        parse(adapter_with(PEOPLE), body)
    assert message in caught.value.message


@pytest.mark.parametrize("csv, message", [
    ("age,height,city\n30,1.7,Oslo\n", "missing column 'member'"),
    ("age,height,city,member,x\n30,1.7,Oslo,true,1\n", "unexpected column 'x'"),
    ("age,height,city,member\nold,1.7,Oslo,true\n",
     "column 'age' expects integer, got string ('old')"),
    ("age,height,city,member\n30,1.7,Oslo,maybe\n", "column 'member' expects boolean, got string"),
    ("age,height,city,member\n,1.7,Oslo,true\n", "column 'age' expects integer, got an empty cell"),
])
def test_csv_violations_name_the_column_too(csv, message):
    with pytest.raises(BadInput) as caught:
        parse(adapter_with(PEOPLE), csv, "text/csv")
    assert message in caught.value.message


def test_valid_bodies_of_every_form_give_the_model_typed_columns():
    adapter = adapter_with(PEOPLE)
    bodies = [([GOOD], "application/json"),
              ([{k: GOOD[k] for k in ("member", "city", "height", "age")}], "application/json"),
              ([[52, 1.7, "Kyiv", False]], "application/json"),
              ({"columns": list(GOOD), "data": [list(GOOD.values())]}, "application/json"),
              ("age,height,city,member\n52,1.7,Kyiv,false\n", "text/csv"),
              ("city,member,age,height\nKyiv,FALSE,52,1.7\n", "text/csv"),
              ("52,1.7,007,false\n", "text/csv")]
    payloads = [parse(adapter, body, media) for body, media in bodies]
    groups = {p.columns for p in payloads}
    assert groups == {("age", "height", "city", "member")}
    frame = adapter.make_batch(payloads)
    assert Typed().predict(frame) == [520] * len(bodies)
    assert frame["city"].tolist()[-1] == "007"  # CSV text stays text in a string column


def test_a_headerless_csv_row_of_text_is_data_not_a_header():
    adapter = adapter_with(pd.DataFrame({"first": ["Ada"], "last": ["Lovelace"]}))
    payload = parse(adapter, "Grace,Hopper\n", "text/csv")
    assert (payload.rows, payload.columns) == (1, ("first", "last"))
    assert parse(adapter, "last,first\nHopper,Grace\n", "text/csv").value.tolist() == [
        ["Grace", "Hopper"]]


def test_a_positional_signature_checks_width_and_kinds_by_position():
    adapter = adapter_with(np.array([[1, 2], [3, 4]]))
    assert parse(adapter, [[5, 6]]).value.tolist() == [[5, 6]]
    with pytest.raises(BadInput, match=r"column 2 expects integer, got number in row 1"):
        parse(adapter, [[5, 6.5]])
    with pytest.raises(BadInput, match="expected 2 columns per row"):
        parse(adapter, [[5, 6, 7]])
    with pytest.raises(BadInput, match=r"column 1 expects integer, got boolean in row 2"):
        parse(adapter, [[5, 6], [True, 6]])
    with pytest.raises(BadInput, match=r"column 2 expects integer, got inf"):
        parse(adapter, b"[[5, 1e400]]")
    with pytest.raises(BadInput, match=r"column 1 expects integer, got string \('x'\)"):
        parse(adapter, "x,6\n", "text/csv")


def test_an_optional_column_takes_nulls_and_others_do_not():
    adapter = adapter_with(pd.DataFrame({"a": [1.0, None], "b": ["x", "y"]}))
    assert adapter.signature.inputs[0].optional
    frame = adapter.make_batch([parse(adapter, [{"a": None, "b": "z"}])])
    assert np.isnan(frame["a"][0])
    with pytest.raises(BadInput, match="column 'b' expects string, got null"):
        parse(adapter, [{"a": 1, "b": None}])


def test_the_example_must_fit_its_own_signature_when_packed_again():
    from bento_nb.service import service_from_model

    svc = service_from_model(Typed(), name="People")
    svc.save_bundle(example=PEOPLE)
    renamed = PEOPLE.rename(columns={"age": "years"})
    with pytest.raises(PackError):  # Typed refuses the renamed column...
        svc.save_bundle(example=renamed)
    # ... and the signature of the example that worked is still the one enforced
    assert svc.apis["predict"].input.signature.names == ("age", "height", "city", "member")


# -- through a real server ------------------------------------------------------------------


@pytest.fixture
def people_server(serve_model):
    bundle = bento_nb.pack(Typed(), name="People", example=PEOPLE)
    return bundle, serve_model(bundle.tag)  # loaded from the store, as `bento-nb serve`


@pytest.mark.parametrize("body, content_type, named", [
    ([{"age": 1, "height": 1.5, "city": "x"}], "application/json", "missing column 'member'"),
    ([{**GOOD, "nickname": "Al"}], "application/json", "unexpected column 'nickname'"),
    ([{**GOOD, "age": "thirty"}], "application/json", "column 'age' expects integer, got string"),
    ("age,height,city\n1,1.5,x\n", "text/csv", "missing column 'member'"),
    ("age,height,city,member,nickname\n1,1.5,x,true,Al\n", "text/csv",
     "unexpected column 'nickname'"),
    ("age,height,city,member\n1.5,1.5,x,true\n", "text/csv",
     "column 'age' expects integer, got number"),
])
def test_the_server_answers_400_naming_the_column(people_server, body, content_type, named):
    _, handle = people_server
    raw = body if isinstance(body, str) else json.dumps(body)
    r = request(handle.url + "/predict", "POST", raw, content_type)
    assert r.status == 400, r.body
    assert r.json()["error"]["type"] == "BadInput"
    assert named in r.json()["error"]["message"]


def test_the_server_answers_valid_requests_with_typed_columns(people_server):
    _, handle = people_server
    r = post_json(handle.url + "/predict", [GOOD, {**GOOD, "age": 7, "member": True}])
    assert (r.status, r.json()) == (200, [520, 71])
    r = request(handle.url + "/predict", "POST", "age,height,city,member\n3,1.1,Rome,true\n",
                "text/csv")
    assert (r.status, r.json()) == (200, [31])


def test_docs_json_and_metadata_show_the_signature(people_server):
    from openapi_spec_validator import validate

    _, handle = people_server
    spec = request(handle.url + "/docs.json").json()
    validate(spec)
    forms = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["anyOf"]
    records = next(f for f in forms if f.get("description") == "a list of records")
    assert records["items"]["properties"] == {"age": {"type": "integer"},
                                              "height": {"type": "number"},
                                              "city": {"type": "string"},
                                              "member": {"type": "boolean"}}
    assert records["items"]["additionalProperties"] is False
    rows = next(f for f in forms if f.get("description") == "a list of rows")
    assert "age (integer)" in rows["items"]["description"]
    meta = request(handle.url + "/metadata").json()
    assert meta["apis"][0]["signature"]["inputs"][0] == {"name": "age", "type": "integer"}


def test_a_model_without_example_shows_the_signature_its_adapter_enforces(iris_bundle):
    signature = iris_bundle.apis[0]["signature"]
    assert signature == {"from": "adapter", "inputs": [{"name": None, "type": "number"}] * 4}


def test_a_bundle_without_signature_still_loads_and_serves(iris_clf, serve_model):
    """Bundles packed before signatures: no ``signature`` field, nothing more enforced."""
    from bento_nb.store.manifest import read_manifest, write_manifest

    bundle = bento_nb.pack(iris_clf, name="Old", example=[[5.1, 3.5, 1.4, 0.2]])
    manifest = read_manifest(bundle.path)
    for described in manifest["apis"]:
        described.pop("signature")
    manifest.pop("provenance")
    write_manifest(bundle.path, manifest)
    svc = bento_nb.load(bundle.tag)
    assert svc.apis["predict"].input.signature is None
    handle = serve_model(bundle.tag)
    r = post_json(handle.url + "/predict", [[5, 3, 1, 0]])  # integers: the example had floats
    assert r.status == 200


def test_a_damaged_signature_is_bundle_corrupted_naming_the_field(iris_clf):
    from bento_nb.store.manifest import read_manifest, write_manifest

    bundle = bento_nb.pack(iris_clf, name="Bad", example=[[5.1, 3.5, 1.4, 0.2]])
    manifest = read_manifest(bundle.path)
    manifest["apis"][0]["signature"]["inputs"][1]["type"] = "float128"
    write_manifest(bundle.path, manifest)
    with pytest.raises(BundleCorrupted, match=r"apis\[0\]\.signature"):
        bento_nb.load(bundle.tag)

"""Input adapters alone: JSON and CSV into the API's argument, and the documented errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bento_nb.adapters import (
    DataframeInput,
    FileInput,
    JsonInput,
    StringInput,
    adapter_from_config,
    dumps_json,
    loads_json,
    split_results,
)
from bento_nb.errors import BadInput, ModelError, UnsupportedMediaType

IRIS = DataframeInput(n_columns=4, numeric=True)
JSON = "application/json"


def frame(adapter, body, content_type=JSON):
    payload = adapter.parse(body if isinstance(body, bytes) else body.encode(), content_type)
    return adapter.make_batch([payload])


@pytest.mark.parametrize("body", [
    "[[5.1, 3.5, 1.4, 0.2]]",
    '{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
    '{"columns": ["a", "b", "c", "d"], "data": [[5.1, 3.5, 1.4, 0.2]]}',
])
def test_json_shapes_give_one_row(body):
    df = frame(IRIS, body)
    assert df.shape == (1, 4)
    assert df.iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2]


def test_records_follow_named_columns_in_schema_order():
    adapter = DataframeInput(columns=["sl", "sw", "pl", "pw"])
    df = frame(adapter, '[{"pw": 0.2, "pl": 1.4, "sw": 3.5, "sl": 5.1}, {"sl": 1, "sw": 2, "pl": 3, "pw": 4}]')
    assert list(df.columns) == ["sl", "sw", "pl", "pw"]
    assert df.iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2]
    single = frame(adapter, '{"sl": 1, "sw": 2, "pl": 3, "pw": 4}')
    assert single.shape == (1, 4)


@pytest.mark.parametrize("csv", [
    "5.1,3.5,1.4,0.2\n6.2,3.4,5.4,2.3\n",
    "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.2,3.4,5.4,2.3\n",
    "\ufeff5.1,3.5,1.4,0.2\r\n6.2,3.4,5.4,2.3\r\n\r\n",
])
def test_csv_with_and_without_header(csv):
    df = frame(IRIS, csv, "text/csv; charset=utf-8")
    assert df.shape == (2, 4)
    assert df.iloc[1].tolist() == [6.2, 3.4, 5.4, 2.3]


def test_csv_header_maps_named_columns():
    adapter = DataframeInput(columns=["a", "b"])
    df = frame(adapter, "b,a\n2,1\n", "text/csv")
    assert df.iloc[0].tolist() == [1, 2]


@pytest.mark.parametrize("first", ["5.1,3.5,,0.2", "5.1,3.5,NA,0.2", "5.1,3.5,NaN,0.2",
                                   "5.1,null,1.4,0.2", "TRUE,3.5,1.4,0.2", "5.1,3.5,1.4,false",
                                   ",,,", 'NA,"",None,n/a', "sepal_length,3.5,1.4,0.2"])
@pytest.mark.parametrize("more", ["", "6.2,3.4,5.4,2.3\n"])
def test_csv_first_row_with_a_missing_value_is_data_and_refused(first, more):
    # Regression: such a row was taken as a header and got no prediction (200, one result
    # fewer), or alone gave "CSV has a header row but no data rows".
    with pytest.raises(BadInput) as info:
        IRIS.parse(f"{first}\n{more}".encode(), "text/csv")
    assert "no data rows" not in info.value.message
    assert info.value.http_status == 400


def test_csv_empty_cell_is_refused_like_a_json_null():
    with pytest.raises(BadInput) as from_json:
        IRIS.parse(b"[[5.1, null, 1.4, 0.2]]", JSON)
    assert from_json.value.message.endswith("row 1, column 2 holds null")
    for csv, where in [("5.1,,1.4,0.2\n6.2,3.4,5.4,2.3\n", "row 1, column 2"),
                       ("5.1,3.4,5.4,2.3\n5.1,,1.4,0.2\n", "row 2, column 2"),
                       ("5.1,3.4,5.4,2.3\n,,,\n6.2,3.4,5.4,2.3\n", "row 2, column 1")]:
        with pytest.raises(BadInput) as from_csv:  # a row of empty cells is a row
            IRIS.parse(csv.encode(), "text/csv")
        assert from_csv.value.message == f"expected numbers in every column; {where} holds an empty cell"


@pytest.mark.parametrize("body, content_type, where", [
    ('[{"sl": 5.1, "sw": "wide", "pl": 1.4, "pw": 0.2}]', JSON, "column 'sw' holds the text 'wide'"),
    ('[[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, null, 0.2]]', JSON, "row 2, column 'pl' holds null"),
    ('[[5.1, 3.5, 1.4, true]]', JSON, "column 'pw' holds true"),
    ('[[false, 3.5, 1.4, 0.2]]', JSON, "column 'sl' holds false"),
    ('[[5.1, 3.5, 1.4, 123456789012345678901234567890]]', JSON,
     "column 'pw' holds an integer of 30 digits"),
    ("sl,sw,pl,pw\n5.1,3.5,1.4,0.2\n5.1,,1.4,0.2\n", "text/csv", "row 2, column 'sw' holds an empty cell"),
    ("sl,sw,pl,pw\n5.1,3.5,TRUE,0.2\n", "text/csv", "column 'pl' holds the text 'TRUE'"),
    ("sl,sw,pl,pw\n5.1,3.5,1.4,nan\n", "text/csv", "row 1, column 'pw' holds nan"),
])
def test_a_numeric_table_refuses_other_values_naming_the_cell(body, content_type, where):
    named = DataframeInput(columns=["sl", "sw", "pl", "pw"], numeric=True)
    with pytest.raises(BadInput) as info:
        named.parse(body.encode(), content_type)
    assert info.value.http_status == 400 and where in info.value.message


@pytest.mark.parametrize("adapter", [IRIS, DataframeInput(), JsonInput()], ids=repr)
@pytest.mark.parametrize("body", ["1" * 5000, "[[%s, 1, 2, 3]]" % ("7" * 5000),
                                  '{"a": [-%s]}' % ("9" * 4301)])
def test_an_integer_too_long_for_python_is_a_400(adapter, body):
    with pytest.raises(BadInput, match="more than 4300 digits") as info:
        adapter.parse(body.encode(), JSON)
    assert info.value.http_status == 400


def test_an_integer_too_long_for_python_in_csv_is_a_400_not_infinity():
    for adapter in (IRIS, DataframeInput()):
        with pytest.raises(BadInput, match="5000 digits"):
            adapter.parse(("1,2,3,%s\n" % ("1" * 5000)).encode(), "text/csv")


def nested(depth, leaf="1"):
    return "[" * depth + leaf + "]" * depth


@pytest.mark.parametrize("body", [nested(101), nested(500), nested(100000),
                                  '{"a": ' * 101 + "1" + "}" * 101,
                                  '[' * 101 + '"][{"' + ']' * 101,
                                  '[["a"], ' * 101 + "1" + "]" * 101])
def test_json_nested_deeper_than_the_limit_is_a_400_for_every_adapter(body):
    for adapter in (IRIS, DataframeInput(), JsonInput()):
        with pytest.raises(BadInput, match="nested more than 100 levels deep"):
            adapter.parse(body.encode(), JSON)


def test_json_up_to_the_depth_limit_is_accepted_and_its_echo_encoded():
    deepest = nested(100)
    brackets_in_strings = json.dumps([["]" * 300, "[" * 300], {"k": "{" * 300}])
    for body in (deepest, brackets_in_strings, json.dumps([[1, 2]] * 200)):
        value = JsonInput().parse(body.encode(), JSON).value
        assert json.loads(dumps_json(value)) == json.loads(body)


def test_model_output_that_cannot_be_json_is_a_model_error():
    deep = []
    for _ in range(5000):
        deep = [deep]
    circular = []
    circular.append(circular)
    for value, message in [(deep, "nested too deeply"), (circular, "nested too deeply"),
                           ({"n": int("9" * 4000) ** 2},
                            "cannot be written as JSON")]:
        with pytest.raises(ModelError, match=message) as info:
            dumps_json(value)
        assert info.value.http_status == 500


@pytest.mark.parametrize("adapter, csv, columns, values", [
    (IRIS, "a,b,c,d\n1,2,3,4\n", [0, 1, 2, 3], [1, 2, 3, 4]),
    (IRIS, '"sepal length","sepal width","petal length","petal width"\n1,2,3,4\n',
     [0, 1, 2, 3], [1, 2, 3, 4]),
    (IRIS, " x , y , z , w \r\n1,2,3,4\r\n", [0, 1, 2, 3], [1, 2, 3, 4]),
    (DataframeInput(), '"sl","Sw","NAME","x_1"\n1,2,3,4\n', ["sl", "Sw", "NAME", "x_1"],
     [1, 2, 3, 4]),
    # the adapter's own names are a header even when they look like values
    (DataframeInput(columns=["2020", "2021"]), "2021,2020\n1,2\n", ["2020", "2021"], [2, 1]),
    (DataframeInput(columns=["id", "NA"]), "NA,id\n1,2\n", ["id", "NA"], [2, 1]),
])
def test_csv_headers_are_still_detected(adapter, csv, columns, values):
    df = frame(adapter, csv, "text/csv")
    assert list(df.columns) == columns
    assert df.values.tolist() == [values]


def test_csv_header_with_a_numeric_name_is_data():
    # Documented choice: "2021" may be a value, so the row is data, refused by a numeric
    # adapter (never silently dropped) and kept as a row by one that takes any values.
    with pytest.raises(BadInput, match="expected numbers"):
        IRIS.parse(b"a,b,c,2021\n1,2,3,4\n", "text/csv")
    assert len(frame(DataframeInput(), "name,2021\nx,3\n", "text/csv")) == 2


@pytest.mark.parametrize("body, message", [
    ("", "empty body"),
    ("[[5.1, 3.5, 1.4", "malformed JSON"),
    ("[]", "empty input"),
    ("[[]]", "empty input"),
    ("[[5.1, 3.5, 1.4]]", "expected 4 columns"),
    ('[["a", "b", "c", "d"]]', "expected numbers"),
    ('[["5.1", 3.5, 1.4, 0.2]]', "expected numbers"),
    ("[[5.1, null, 1.4, 0.2]]", "expected numbers"),
    ("[[true, 3.5, 1.4, 0.2]]", "expected numbers"),
    ("[[1, 2, 3, 4], [1, 2]]", "different lengths"),
    ("[[[1, 2, 3, 4]]]", "two dimensions"),
    ('[[{"a": 1}, 2, 3, 4]]', "different lengths|two dimensions|expected numbers"),
    ("[5.1, 3.5, 1.4, 0.2]", "not a flat list"),
    ("[[NaN, 3.5, 1.4, 0.2]]", "NaN"),
    ("[[Infinity, 3.5, 1.4, 0.2]]", "Infinity"),
    ('"hello"', "expected a list of rows"),
    ("42", "expected a list of rows"),
    ('{"columns": "abcd", "data": [[1, 2, 3, 4]]}', "columns"),
    ("[[1e400, 3.5, 1.4, 0.2]]", "NaN and infinite"),
])
def test_bad_json_is_a_documented_400(body, message):
    with pytest.raises(BadInput, match=message) as info:
        IRIS.parse(body.encode(), JSON)
    assert info.value.http_status == 400
    assert info.value.to_json()["error"]["type"] == "BadInput"


@pytest.mark.parametrize("body", [
    b'[123456789012345678901234567890, -98765432109876543210]',  # past 64 bits: exact
    b'[9223372036854775807, -9223372036854775808, 18446744073709551615]',
    b'[0.1, 5e-324, 1.7976931348623157e308, 1e400, -0.0, 2.2250738585072014e-308]',
    b'{"a": 1, "a": 2, "\\u00e9": "\\ud83d\\ude00", "s": "\\ud800"}',
    '[1, "\u00e9"]'.encode("utf-16"), b'\xef\xbb\xbf[1]', b' [1] ',
])
def test_json_decodes_as_the_standard_library_does(body):
    """orjson decodes most bodies (it is several times faster); whatever it would read
    otherwise (integers past 64 bits it makes floats) or refuses goes to json."""
    import json

    assert repr(loads_json(body)) == repr(json.loads(body))


@pytest.mark.parametrize("csv, message", [
    ("5.1,3.5,1.4\n", "expected 4 columns"),
    ("5.1,3.5,1.4,0.2\n6.2,3.4\n", "row 2 has 2 values"),
    ("a,b,c,d\n", "no data rows"),
    ("5.1,x,1.4,0.2\n", "expected numbers"),
    ("\n\n", "empty CSV"),
])
def test_bad_csv_is_a_documented_400(csv, message):
    with pytest.raises(BadInput, match=message):
        IRIS.parse(csv.encode(), "text/csv")


def test_wrong_content_type_is_415():
    with pytest.raises(UnsupportedMediaType) as info:
        IRIS.parse(b"<xml/>", "application/xml")
    assert info.value.http_status == 415


def test_not_utf8_is_400():
    with pytest.raises(BadInput):
        IRIS.parse(b"\xff\xfe[[1]]", JSON)
    with pytest.raises(BadInput):
        IRIS.parse(b"\xff,\xfe\n", "text/csv")


def test_batch_concatenates_and_results_split_back_in_order():
    payloads = [IRIS.parse(json.dumps([[i, 0, 0, 0]] * (i % 3 + 1)).encode(), JSON) for i in range(6)]
    df = IRIS.make_batch(payloads)
    assert len(df) == sum(p.rows for p in payloads)
    results = split_results(df[0].to_numpy(), [p.rows for p in payloads])
    assert [r.tolist() for r in results] == [[i] * (i % 3 + 1) for i in range(6)]


def test_split_results_refuses_wrong_counts():
    with pytest.raises(ModelError, match="one result per input row"):
        split_results(np.zeros(3), [1, 1])
    with pytest.raises(ModelError, match="one result per input row"):
        split_results(42, [1])


def test_dataframe_results_become_records():
    out = split_results(pd.DataFrame({"p": [0.1, 0.9]}), [1, 1])
    assert json.loads(dumps_json(out[1])) == [{"p": 0.9}]


def test_dumps_json_converts_numpy_and_non_finite():
    assert dumps_json(np.array([1, 2])) == b"[1,2]"
    assert dumps_json({"a": np.float32(0.5), "b": float("nan")}) == b'{"a":0.5,"b":null}'
    with pytest.raises(ModelError, match="not JSON-serializable"):
        dumps_json(object())


def test_adapter_from_config_round_trip():
    for adapter in (IRIS, DataframeInput(columns=["a"]), JsonInput(), StringInput(), FileInput()):
        again = adapter_from_config(adapter.config())
        assert again.config() == adapter.config()
    assert isinstance(adapter_from_config("json"), JsonInput)
    with pytest.raises(BadInput):
        adapter_from_config("xml")


def test_schema_is_learnt_from_a_sklearn_model(iris_clf):
    adapter = DataframeInput()
    adapter.configure(iris_clf)
    assert adapter.config() == {"type": "DataframeInput", "n_columns": 4, "numeric": True}
    named = DataframeInput()
    named.configure(type("M", (), {"feature_names_in_": np.array(["a", "b"]), "n_features_in_": 2})())
    assert named.columns == ("a", "b")


def test_numeric_is_learnt_from_what_first_sees_a_dataframe(iris):
    from sklearn import svm
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = iris
    numbers = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    mixed = numbers.assign(pw=np.where(X[:, 3] > 1, "wide", "narrow"))
    encoded = make_column_transformer((OneHotEncoder(), ["pw"]), remainder="passthrough")
    for model, data, numeric in [
        (svm.SVC(), numbers, True),
        (make_pipeline(StandardScaler(), svm.SVC()), numbers, True),
        (GridSearchCV(svm.SVC(), {"C": [1.0]}, cv=2), numbers, True),
        (make_pipeline(encoded, LogisticRegression(max_iter=500)), mixed, False),
        (VotingClassifier([("svc", svm.SVC())]), numbers, None),  # its estimators decide
    ]:
        adapter = DataframeInput()
        adapter.configure(model.fit(data, y))
        assert (adapter.columns, adapter.numeric) == (tuple(data.columns), numeric), model
    # not numeric: values keep their JSON types, the number stays a number
    df = frame(adapter_from_config({"type": "DataframeInput", "columns": list(mixed.columns),
                                    "numeric": False}), '[[5.1, 3.5, 1.4, "wide"]]')
    assert df.iloc[0].tolist() == [5.1, 3.5, 1.4, "wide"]


def test_json_string_and_file_inputs():
    assert JsonInput().parse(b'{"text": "hi"}', JSON).value == {"text": "hi"}
    with pytest.raises(BadInput):
        JsonInput().parse(b"{", JSON)
    assert StringInput().parse("héllo".encode(), "text/plain").value == "héllo"
    assert FileInput().parse(b"\x00\x01", "application/octet-stream").value == b"\x00\x01"
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n\x00abc\r\n--XyZ--\r\n")
    assert FileInput().parse(body, "multipart/form-data; boundary=XyZ").value == b"\x00abc"


NAMED = DataframeInput(columns=["a", "b", "c", "d"], numeric=True)
RECORD = {"a": 1, "b": 2, "c": 3, "d": 4.5}


def json_schema(adapter):
    return adapter.openapi_request()["content"]["application/json"]["schema"]


@pytest.mark.parametrize("adapter", [IRIS, NAMED, DataframeInput(), DataframeInput(n_columns=2),
                                     DataframeInput(typ="series", numeric=True)])
def test_request_schema_is_valid_openapi(adapter):
    from openapi_spec_validator import validate

    validate({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/predict": {
        "post": {"requestBody": adapter.openapi_request(),
                 "responses": {"200": {"description": "ok"}}}}}})


@pytest.mark.parametrize("adapter, body", [
    (IRIS, [[5.1, 3.5, 1.4, 0.2]]),
    (IRIS, [RECORD]),  # a positional model takes any names as labels
    (IRIS, [{"": 0, "0": 0, "1": 0, "2": 0}]),
    (IRIS, [{"x0": 1, "x1": 2, "x2": 3, "x3": 4}] * 3),
    (IRIS, {"columns": ["p", "q", "r", "s"], "data": [[1, 2, 3, 4]]}),
    (IRIS, {"instances": [[5.1, 3.5, 1.4, 0.2]]}),
    (IRIS, {"instances": [RECORD]}),
    (IRIS, {"instances": {"columns": ["a", "b", "c", "d"], "data": [[1, 2, 3, 4]]}}),
    (NAMED, [RECORD, {"d": 1, "c": 2, "b": 3, "a": 4}]),
    (NAMED, {"instances": [RECORD]}),
    (NAMED, {"columns": ["d", "c", "b", "a"], "data": [[1, 2, 3, 4]]}),
])
def test_request_schema_admits_accepted_bodies(adapter, body):
    import jsonschema

    jsonschema.Draft7Validator(json_schema(adapter)).validate(body)
    assert adapter.parse(json.dumps(body).encode(), JSON).rows >= 1


@pytest.mark.parametrize("adapter, body", [
    (IRIS, [{"x0": 1, "x1": 2, "x2": 3}]),
    (IRIS, [{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}]),
    (IRIS, [RECORD, {"e": 1, "f": 2, "g": 3, "h": 4}]),  # records with different names
    (IRIS, [{"a": 1, "b": 2, "c": True, "d": 4}]),
    (IRIS, {"instances": [[1, 2, 3]]}),
    (IRIS, {"instances": []}),
    (IRIS, {"instances": [[1, 2, 3, 4]], "extra": 1}),
    (NAMED, [{"x0": 1, "x1": 2, "x2": 3, "x3": 4}]),
    (NAMED, [{"a": 1, "b": 2, "c": 3, "e": 4}]),
    (NAMED, {"columns": ["a", "b", "c", "e"], "data": [[1, 2, 3, 4]]}),
])
def test_request_schema_refuses_refused_bodies(adapter, body):
    import jsonschema

    assert not jsonschema.Draft7Validator(json_schema(adapter)).is_valid(body)
    with pytest.raises(BadInput):
        adapter.parse(json.dumps(body).encode(), JSON)


# -- properties -------------------------------------------------------------------------

def deeply_nested(children):
    """A value wrapped in 90 to 130 lists or objects: around MAX_JSON_DEPTH (100)."""
    return st.tuples(children, st.integers(90, 130), st.booleans()).map(
        lambda t: _wrap(*t))


def _wrap(value, depth, in_objects):
    for _ in range(depth):
        value = {"k": value} if in_objects else [value]
    return value


class Digits(int):
    """A leaf of a drawn JSON value: an integer written with this many 9s, around Python's
    4300-digit limit of int(str), which str() would refuse to write out."""


json_leaves = (st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers()
               | st.text(max_size=5) | st.integers(4295, 4310).map(Digits))
json_values = st.recursive(
    json_leaves,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=3), children, max_size=3)),
    max_leaves=20,
)
# Documents as drawn above, some inside 90 to 130 levels (once: deeper would only test the
# recursion limit of this file's own encoder).
json_documents = (json_values | deeply_nested(json_values)
                  | st.lists(deeply_nested(json_values), min_size=1, max_size=3))


def json_text(value) -> bytes:
    def encode(v):
        if isinstance(v, Digits):
            return "9" * v
        if isinstance(v, list):
            return "[" + ",".join(encode(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ",".join(json.dumps(k) + ":" + encode(x) for k, x in v.items()) + "}"
        return json.dumps(v)

    return encode(value).encode()


@settings(max_examples=300, deadline=None)
@given(json_documents)
def test_any_json_parses_to_a_table_or_raises_bad_input(value):
    body = json_text(value)
    for adapter in (IRIS, DataframeInput(), DataframeInput(columns=["a", "b"], numeric=True)):
        try:
            payload = adapter.parse(body, JSON)
        except BadInput as e:
            assert e.message and e.http_status == 400
            continue
        df = adapter.make_batch([payload])
        assert isinstance(df, pd.DataFrame)
        assert len(df) == payload.rows >= 1
        if adapter is IRIS:
            assert df.shape[1] == 4 and df.dtypes.map(lambda d: d.kind in "iuf").all()


@settings(max_examples=300, deadline=None)
@given(json_documents)
def test_any_json_to_a_json_api_is_its_echo_or_a_bad_input(value):
    """Whatever JsonInput accepts, an API that returns it can answer: encoded, unchanged."""
    body = json_text(value)
    try:
        payload = JsonInput().parse(body, JSON)
    except BadInput as e:
        assert e.message and e.http_status == 400
        return
    assert json.loads(dumps_json(payload.value)) == payload.value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_csv_parse_or_raise_bad_input(body):
    try:
        payload = IRIS.parse(body, "text/csv")
    except BadInput as e:
        assert e.http_status == 400
        return
    assert payload.value.shape[1] == 4 and payload.rows >= 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=4, max_size=4),
                min_size=1, max_size=20))
def test_valid_rows_round_trip_through_json_and_csv(rows):
    from_json = frame(IRIS, json.dumps(rows))
    csv = "\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n"
    from_csv = frame(IRIS, csv, "text/csv")
    np.testing.assert_array_equal(from_json.to_numpy(dtype=float), np.array(rows, dtype=float))
    np.testing.assert_array_equal(from_csv.to_numpy(dtype=float), np.array(rows, dtype=float))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=4, max_size=4),
                min_size=1, max_size=5),
       st.integers(0, 3), st.sampled_from(["", " ", "NA", "n/a", "NaN", "nan", "null", "NULL",
                                           "None", "TRUE", "false", "<NA>", "#N/A", "-nan"]))
def test_csv_first_row_is_never_dropped_for_a_missing_value(rows, column, marker):
    lines = [[repr(v) for v in r] for r in rows]
    lines[0][column] = marker
    csv = "\n".join(",".join(line) for line in lines) + "\n"
    with pytest.raises(BadInput, match="expected numbers|NaN"):
        IRIS.parse(csv.encode(), "text/csv")


multipart_bodies = st.lists(st.binary(max_size=60), max_size=4).map(
    lambda parts: b"--b\r\n" + b"\r\n--b\r\n".join(parts) + b"\r\n--b--\r\n")
content_types = st.tuples(
    st.sampled_from(["multipart/form-data; boundary=b", "multipart/form-data", JSON, "text/plain",
                     "text/csv", "application/octet-stream", "", "application/x-www-form-urlencoded"]),
    st.text(max_size=20)).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode) | multipart_bodies,
       content_types)
def test_any_body_of_any_type_to_any_adapter_parses_or_is_a_4xx(body, content_type):
    for adapter in (FileInput(), JsonInput(), StringInput(), DataframeInput(), IRIS):
        try:
            adapter.parse(body, content_type)
        except (BadInput, UnsupportedMediaType) as e:
            assert e.message and 400 <= e.http_status < 500


# -- the C parser of large CSV bodies ---------------------------------------------------------


def python_parse(adapter, body, monkeypatch):
    """What the Python CSV parser alone makes of ``body`` (payload or BadInput message)."""
    from bento_nb.adapters import csv_reading

    with monkeypatch.context() as m:
        m.setattr(csv_reading, "FAST_MIN_BYTES", 1 << 62)
        return outcome(adapter, body)


def outcome(adapter, body):
    try:
        payload = adapter.parse(body, "text/csv")
    except BadInput as e:
        return "BadInput", e.message
    return payload.value.dtype.str, repr(payload.value.tolist()), payload.columns  # NaN == NaN


NAMED = DataframeInput(columns=["sl", "sw", "pl", "pw"], numeric=True)
UNKNOWN = DataframeInput()


@pytest.mark.parametrize("adapter", [IRIS, NAMED, UNKNOWN, DataframeInput(numeric=False)],
                         ids=["positional", "named", "unknown", "not-numeric"])
@pytest.mark.parametrize("header, cell, line_end", [
    ("", None, "\n"), ("sl,sw,pl,pw\n", None, "\n"), ("pw,pl,sw,sl\n", None, "\r\n"),
    ("a,b,c,d\n", None, "\n"), ("\ufeffsl,sw,pl,pw\n", None, "\n"), ("sl,sl,pl,pw\n", None, "\n"),
    ("", "", "\n"), ("", "nan", "\n"), ("", "inf", "\n"), ("", "TRUE", "\n"),
    ("", "1" * 25, "\n"), ("", str(2 ** 63), "\n"), ("", "-7", "\n"), ("", " 3.25 ", "\n"),
    ("", '"2.5"', "\n"), ("", "1_000", "\n"), ("", "0x1f", "\n"), ("", "1e5", "\n"),
])
def test_large_csv_bodies_parse_as_the_python_parser_does(adapter, header, cell, line_end,
                                                         monkeypatch):
    """Bodies over FAST_MIN_BYTES go through pyarrow's C parser when they are tables of
    plain numbers; the result, or the error, is the Python parser's, whatever the cells."""
    rng = np.random.default_rng(3)
    rows = [[f"{v:.2f}" for v in r] for r in rng.uniform(0, 8, (400, 4))]
    rows[:50] = [[str(int(float(v))) for v in r] for r in rows[:50]]  # some integer cells
    if cell is not None:
        rows[321][2] = cell
    body = (header + line_end.join(",".join(r) for r in rows) + line_end).encode()
    assert len(body) > 4096
    assert outcome(adapter, body) == python_parse(adapter, body, monkeypatch)


def test_large_csv_bodies_with_blank_lines_and_ragged_rows_keep_their_messages(monkeypatch):
    lines = ["5.1,3.5,1.4,0.2"] * 600
    for body in ["\n\n".join(lines).encode(), ("\n".join(lines) + "\n1,2,3\n").encode(),
                 ("\n".join(lines) + "\n   \n").encode()]:
        assert outcome(IRIS, body) == python_parse(IRIS, body, monkeypatch)
    assert outcome(IRIS, ("\n".join(lines) + "\n1,2,3\n").encode()) == (
        "BadInput", "CSV row 601 has 3 values, expected 4")


def test_a_large_csv_body_of_numbers_is_not_read_cell_by_cell(monkeypatch):
    """The profile of issue 14: 4,000,000 calls of the per-cell parser for 1M rows."""
    from bento_nb.adapters import dataframe_input

    def per_cell(text):
        raise AssertionError("a table of numbers went through the per-cell Python parser")

    monkeypatch.setattr(dataframe_input, "_csv_value", per_cell)
    body = "sl,sw,pl,pw\n" + "5.1,3.5,1.4,0.2\n6.2,3.4,5.4,2.3\n" * 1000
    payload = IRIS.parse(body.encode(), "text/csv")
    assert payload.rows == 2000 and payload.value[1].tolist() == [6.2, 3.4, 5.4, 2.3]


# -- BentoML 0.x's options: orient, typ, columns, dtype / input_dtypes --------------------------

MIXED = pd.DataFrame({"age": [31, 45, 27], "city": ["Oslo", "Lima", "Pune"],
                      "score": [0.5, 1.25, 2.0]})


@pytest.mark.parametrize("orient", ["columns", "index", "records", "split", "values"])
@pytest.mark.parametrize("adapter", [DataframeInput(), DataframeInput(columns=["age", "city", "score"])],
                         ids=["unknown", "named"])
def test_each_pandas_to_json_orient_round_trips(adapter, orient):
    df = frame(adapter, MIXED.to_json(orient=orient))
    assert df.values.tolist() == MIXED.values.tolist()
    if orient != "values" or adapter.columns:
        assert list(df.columns) == list(MIXED.columns)
    # one text column leaves the others numbers
    assert [df.iloc[:, i].dtype.kind for i in (0, 2)] == ["i", "f"], df.dtypes
    # in-process (the API called from Python, %bento predict): the same
    value = json.loads(MIXED.to_json(orient=orient))
    assert adapter.make_batch([adapter.from_python(value)]).values.tolist() == MIXED.values.tolist()


@pytest.mark.parametrize("orient", ["columns", "index", "records", "split", "values"])
def test_a_frame_without_names_round_trips_each_orient_to_a_positional_model(orient):
    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3], [5.9, 3.0, 5.1, 1.8]]
    df = frame(IRIS, pd.DataFrame(rows).to_json(orient=orient))
    assert df.values.tolist() == rows


@pytest.mark.parametrize("orient", ["columns", "index"])
def test_orient_decides_a_dict_of_dicts(orient):
    square = pd.DataFrame([[1, 2], [3, 4]], columns=["0", "1"])  # both readings have 2x2
    df = frame(DataframeInput(orient=orient), square.to_json(orient=orient))
    assert df.values.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize("orient", ["index", "records", "split", "values"])
def test_a_series_round_trips_each_to_json_orient(orient):
    series = pd.Series([1.5, 2.5, 3.75])
    adapter = DataframeInput(typ="series")
    result = adapter.make_batch([adapter.parse(series.to_json(orient=orient).encode(), JSON)])
    assert isinstance(result, pd.Series) and result.tolist() == [1.5, 2.5, 3.75]
    from_csv = adapter.make_batch([adapter.parse(series.to_csv().encode(), "text/csv")])
    assert from_csv.tolist() == [1.5, 2.5, 3.75]
    import jsonschema

    jsonschema.Draft7Validator(json_schema(adapter)).validate(json.loads(series.to_json(orient=orient)))


def test_dtype_and_input_dtypes_are_applied():
    by_name = DataframeInput(columns=["age", "city", "score"],
                             dtype={"age": "float32", "city": "category", "score": "float64"})
    df = frame(by_name, MIXED.to_json(orient="records"))
    assert df.dtypes.astype(str).tolist() == ["float32", "category", "float64"]
    by_position = DataframeInput(input_dtypes=["float64", "str", "int64"])
    df = frame(by_position, '[[1, "a", 2], [3, "b", 4]]')
    assert df.dtypes.astype(str).tolist()[::2] == ["float64", "int64"]
    assert by_position.n_columns == 3
    with pytest.raises(BadInput, match="column 'age' cannot be read as float32"):
        by_name.parse(b'[{"age": "old", "city": "Oslo", "score": 1}]', JSON)
    assert adapter_from_config(by_name.config()).config() == by_name.config()


def test_mixed_table_keeps_per_column_dtypes_from_json_and_csv():
    for body, content_type in [(MIXED.values.tolist(), JSON), (MIXED.to_csv(index=False), "text/csv")]:
        text = body if isinstance(body, str) else json.dumps(body)
        df = frame(DataframeInput(), text, content_type)
        assert df.iloc[:, 0].dtype.kind == "i" and df.iloc[:, 2].dtype.kind == "f", df.dtypes
        assert df.iloc[:, 1].tolist() == ["Oslo", "Lima", "Pune"]


@pytest.mark.parametrize("adapter", [IRIS, DataframeInput(), NAMED], ids=["positional", "unknown", "named"])
def test_csv_of_pandas_labels_or_with_an_index_column_is_a_header(adapter, monkeypatch):
    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]
    columns = list(adapter.columns) if adapter.columns else None
    source = pd.DataFrame(rows, columns=columns)
    for text in (source.to_csv(index=False), source.to_csv()):
        df = frame(adapter, text, "text/csv")
        assert df.values.tolist() == rows, text
        big = (text + text.split("\n", 1)[1] * 200).encode()  # the C parser's path too
        assert len(big) > 4096
        assert adapter.parse(big, "text/csv").value.tolist()[:2] == rows


@pytest.mark.parametrize("options, message", [
    ({"orient": "table"}, "orient must be one of"),
    ({"typ": "panel"}, "typ must be"),
    ({"typ": "series", "orient": "columns"}, "orient must be one of"),
    ({"dtype": {"a": "floaty"}}, "not a dtype pandas knows"),
    ({"columns": ["a"], "dtype": {"b": "int"}}, "not in columns"),
    ({"columns": ["a", "b"], "dtype": ["int"]}, "1 dtype"),
    ({"dtype": "int", "input_dtypes": "int"}, "not both"),
    ({"typ": "series", "dtype": {"a": "int"}}, "one dtype"),
    ({"typ": "series", "columns": ["a"]}, "one column"),
])
def test_bad_options_are_a_one_line_error_at_definition(options, message):
    with pytest.raises(ValueError, match=message) as info:
        DataframeInput(**options)
    assert "\n" not in str(info.value)


def _post(url, body: bytes, content_type: str):
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class _Dtypes:
    """A service whose API answers each row with its columns' dtypes (defined lazily: the
    service module imports the store)."""

    @staticmethod
    def service():
        import bento_nb
        from bento_nb import BentoService, api

        class FrameDtypes(BentoService):
            @api(input=DataframeInput(orient="records", columns=["age", "city", "score"],
                                      dtype={"score": "float32"}), batch=True)
            def records(self, df):
                kinds = ",".join(f"{c}:{df[c].dtype}" for c in df.columns)
                return [kinds] * len(df)

            @api(input=DataframeInput(), batch=True)
            def table(self, df):
                return [[str(df[c].dtype) for c in df.columns] + df.iloc[i].tolist()
                        for i in range(len(df))]

        return bento_nb.load(FrameDtypes().save())


def test_over_http_orients_dtypes_and_csv_headers_reach_the_api(serve_model):
    handle = serve_model(_Dtypes.service())
    answer = _post(f"{handle.url}/records", MIXED.to_json(orient="records").encode(), JSON)
    assert answer == ["age:int64,city:str,score:float32"] * 3 or \
        answer == ["age:int64,city:object,score:float32"] * 3, answer
    for orient in ("columns", "index", "split"):
        again = _post(f"{handle.url}/records", MIXED.to_json(orient=orient).encode(), JSON)
        assert again == answer, orient
    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]
    for text in (pd.DataFrame(rows).to_csv(index=False), pd.DataFrame(rows).to_csv()):
        table = _post(f"{handle.url}/table", text.encode(), "text/csv")
        assert [r[4:] for r in table] == rows, (text, table)
        assert table[0][:4] == ["float64"] * 4
    mixed = _post(f"{handle.url}/table", MIXED.to_csv().encode(), "text/csv")
    assert [r[:1] + r[2:3] for r in mixed] == [["int64", "float64"]] * 3
    assert [r[3:] for r in mixed] == MIXED.values.tolist()


def test_bento_nb_run_reads_numeric_headers_and_index_columns_as_headers(iris_bundle, iris_clf,
                                                                         iris, tmp_path):
    import subprocess
    import sys

    X, _ = iris
    rows = X[:7]
    expected = iris_clf.predict(rows).tolist()
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)   # 0,1,2,3 header
    pd.DataFrame(rows).to_csv(tmp_path / "index.csv")                 # ,0,1,2,3 + index
    pd.DataFrame(rows, columns=["sl", "sw", "pl", "pw"]).to_csv(tmp_path / "named.csv")
    for name in ("labels.csv", "index.csv", "named.csv"):
        out = subprocess.run([sys.executable, "-m", "bento_nb", "run", "IrisClassifier",
                              "predict", "--input-file", str(tmp_path / name)],
                             capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, (name, out.stderr)
        assert json.loads(out.stdout) == expected, name


@pytest.mark.parametrize("body, message", [
    ("[true, 1]", "row 1 holds true"), ('[1, "x"]', "row 2 holds the text 'x'"),
    ("[[1], [2]]", "one value per row"), ("[]", "empty input"), ("1", "values of a Series"),
    ("[1, NaN]", "NaN"),
])
def test_a_numeric_series_refuses_other_bodies_naming_the_row(body, message):
    with pytest.raises(BadInput, match=message):
        DataframeInput(typ="series", numeric=True).parse(body.encode(), JSON)


def test_make_array_is_the_batch_dataframe_as_an_array():
    """A batch of unnamed rows handed to a model as an array is exactly the numbers the
    DataFrame of make_batch holds; named rows, and rows that need per-column dtypes, get
    no array (the DataFrame carries what an array cannot)."""
    import numpy as np

    adapter = DataframeInput(n_columns=2, numeric=True)
    payloads = [adapter.parse(b"[[1, 2.5]]", "application/json"),
                adapter.parse(b"[[3, 4], [5, 6]]", "application/json"),
                adapter.parse(b"7,8\n", "text/csv")]
    array = adapter.make_array(payloads)
    expected = adapter.make_batch(payloads).to_numpy()
    assert array.dtype == expected.dtype and np.array_equal(array, expected)
    ints = [adapter.parse(b"[[3, 4]]", "application/json")]
    assert adapter.make_array(ints).dtype == adapter.make_batch(ints).to_numpy().dtype

    named = DataframeInput(columns=["a", "b"], numeric=True)
    assert named.make_array([named.parse(b'[{"a": 1, "b": 2}]', "application/json")]) is None
    typed = DataframeInput()
    typed.signature = typed.infer_signature([[1, "x"]])
    assert typed.make_array([typed.parse(b'[[1, "y"]]', "application/json")]) is None


_CELLS = st.one_of(st.integers(min_value=-2 ** 70, max_value=2 ** 70),
                   st.floats(allow_nan=False), st.booleans(), st.none(), st.just("1"),
                   st.sampled_from([2 ** 63 - 1, -2 ** 63, 2 ** 63, -2 ** 63 - 1, 1e308, -0.0]))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(_CELLS, min_size=2, max_size=3), min_size=1, max_size=3),
       width=st.sampled_from([None, 3]))
def test_rows_of_numbers_read_fast_as_the_general_reader_reads_them(rows, width):
    """A list of rows a numeric adapter reads by its one-pass reader gives the payload the
    general reader gives (values, dtype, names), and every body it passes on gets the
    general reader's answer or 400 message: one result for one body, whichever path."""
    def outcome(read):
        try:
            payload = read()
        except BadInput as e:
            return "400", e.message
        return payload.value.dtype.str, payload.value.tolist(), payload.columns, payload.rows

    body = json.dumps(rows).replace("Infinity", "1e400").encode()  # JSON has no Infinity
    for adapter in (DataframeInput(n_columns=width, numeric=True),
                    DataframeInput(columns=["a", "b", "c"], numeric=True)):
        assert repr(outcome(lambda: adapter.parse(body, "application/json"))) == repr(
            outcome(lambda: adapter._from_json(loads_json(body))))

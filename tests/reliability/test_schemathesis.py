"""Issue 7 item 2: Schemathesis against the served /docs.json of the iris service.

Every operation of the spec gets generated requests (schema-valid and, Schemathesis's
default, schema-breaking ones; bounded examples), sent to a real server on 127.0.0.1.
Checked on every response: no 5xx, status code / content type / body / headers conform to
the spec, schema-breaking bodies are refused. The adapters' own property tests (any JSON or
CSV parses to the documented shape or raises the documented 400) are in
tests/test_adapters.py.

Schemathesis's default checks found three bugs here (see the README reliability
table: 405 without Allow, a request schema looser than the server, a 500 for split-form
bodies whose columns did not fit the rows); they are fixed and pinned by the tests at the
bottom and in test_batch_integrity.py.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

import bento_nb

from .conftest import call


def not_provable(case) -> list:
    """What the spec cannot promise for this case, so it is not checked:

    - a text/csv body is declared as ``{"type": "string"}``: JSON Schema cannot say what a
      CSV table looks like, so "every string is accepted" is not a promise of the spec;
    - records (a list of objects, also inside ``{"instances": ...}``) of a positional model
      may use any names, the same in every record. JSON Schema cannot say "the same keys in
      every item", so the spec describes one record with any names or many with x0, x1, ...
      and a body outside both (many records with other shared names) is still accepted:
      "schema-breaking records are refused" is not a promise of the spec either. (Bad
      values in records are refused: tests/test_adapters.py, tests/server/test_app.py.)"""
    excluded = []
    if case.media_type == "text/csv":
        excluded.append(positive_data_acceptance)
    body = case.body
    if isinstance(body, dict) and set(body) == {"instances"}:
        body = body["instances"]
    if isinstance(body, list) and body and all(isinstance(row, dict) for row in body):
        excluded.append(negative_data_rejection)
    return excluded


@pytest.fixture
def iris_api(iris_bundle):
    handle = bento_nb.serve(iris_bundle.tag, port=0)
    try:
        yield handle
    finally:
        handle.stop(timeout=5)


@pytest.fixture
def iris_schema(iris_api):
    schema = schemathesis.openapi.from_url(iris_api.docs_url + "docs.json", timeout=10)
    schema.config.base_url = iris_api.url
    return schema


@pytest.fixture
def token_api(iris_bundle):
    handle = bento_nb.serve(iris_bundle.tag, port=0, api_token="s3cret")
    try:
        yield handle
    finally:
        handle.stop(timeout=5)


@pytest.fixture
def token_schema(token_api):
    schema = schemathesis.openapi.from_url(token_api.url + "/docs.json", timeout=10)
    schema.config.base_url = token_api.url
    return schema


def run_all_operations(schema, check, max_examples: int) -> int:
    """Drive every operation of the spec with schema-valid and schema-breaking cases
    (Schemathesis strategies under Hypothesis, bounded); returns the number of cases.
    A plain loop rather than Schemathesis's pytest plugin, which follows pytest internals
    that change between releases."""
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=max_examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                nonlocal count
                count += 1
                check(case)

            try:
                run()
            except Unsatisfiable:
                # Nothing to break (e.g. a GET without parameters): no negative cases,
                # as Schemathesis's own runner reports it.
                if mode is not GenerationMode.NEGATIVE:
                    raise
    return count


def test_served_spec_holds(iris_api, iris_schema):
    def check(case):
        response = case.call_and_validate(base_url=iris_api.url, timeout=10,
                                          excluded_checks=not_provable(case))
        if case.path == "/predict" and response.status_code == 200:
            assert isinstance(json.loads(response.content), list)

    assert run_all_operations(iris_schema, check, max_examples=40) >= 40


def test_served_spec_holds_with_token(token_api, token_schema):
    """With --api-token the spec declares bearer security; with the token every check
    holds, and Schemathesis's ignored_auth check verifies requests without it get 401."""
    def check(case):
        case.call_and_validate(base_url=token_api.url, timeout=10,
                               headers={"Authorization": "Bearer s3cret"},
                               excluded_checks=not_provable(case))

    assert run_all_operations(token_schema, check, max_examples=15) >= 15


# -- regression tests for what Schemathesis found ------------------------------------------


def test_405_lists_allowed_methods(iris_api):
    for method, path, allowed in [("TRACE", "/predict", "POST"), ("GET", "/predict", "POST"),
                                  ("DELETE", "/healthz", "GET")]:
        reply = call(iris_api.port, method, path)
        assert reply.status == 405, reply
        assert reply.json()["error"]["type"] == "MethodNotAllowed"
        assert allowed in reply.headers.get("allow", ""), (method, path, reply.headers)


def test_schema_valid_bodies_are_accepted(iris_api):
    spec = call(iris_api.port, "GET", "/docs.json").json()
    schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]
    validator = jsonschema.Draft7Validator(schema)
    wrong = []
    for body in ({"columns": [""], "data": []}, [{}], [{"x0": 1}],
                 {"columns": ["a", "b", "c", "d"], "data": [[1, 2, 3, 4]]}, [[5.1, 3.5, 1.4, 0.2]]):
        reply = call(iris_api.port, "POST", "/predict", json.dumps(body))
        if validator.is_valid(body) and reply.status != 200:
            wrong.append((body, reply.status, reply.body))
        elif not validator.is_valid(body) and reply.status == 200:
            wrong.append((body, "accepted but not in the schema"))
    assert not wrong, wrong

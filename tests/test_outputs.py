"""Output adapters through a real server: ``@api(output=...)`` decides how each request's
result is written (DataframeOutput's orient, JsonOutput), and bundles keep it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from netcheck import exchange

import bento_nb
from bento_nb import BentoService, api
from bento_nb.adapters import (DataframeInput, DataframeOutput, DefaultOutput, JsonInput,
                               JsonOutput, output_from_config)


class FrameService(BentoService):
    @api(input=DataframeInput(), output=DataframeOutput(output_orient="columns"), batch=True)
    def columns(self, df):
        return pd.DataFrame({"double": df.iloc[:, 0] * 2, "label": ["x"] * len(df)})

    @api(input=DataframeInput(), output=DataframeOutput(), batch=True)
    def records(self, df):
        return df.iloc[:, 0].to_numpy() + 1  # not a DataFrame: DataFrame(result) is written

    @api(input=JsonInput(), output=JsonOutput())
    def echo(self, value):
        return {"array": np.arange(3), "value": value}

    @api(input=DataframeInput(), batch=True)
    def default(self, df):
        return pd.DataFrame({"a": df.iloc[:, 0]})


def post(port: int, route: str, body) -> object:
    return exchange("127.0.0.1", port, "POST", f"/{route}", json.dumps(body), "application/json")


def test_outputs_write_each_request_as_declared(serve_model):
    port = serve_model(FrameService()).port
    columns = post(port, "columns", [[1], [2]])
    assert columns.status == 200, columns.body
    assert columns.headers["content-type"].startswith("application/json")
    assert columns.json() == {"double": {"0": 2, "1": 4}, "label": {"0": "x", "1": "x"}}
    records = post(port, "records", [[1], [5]])
    assert records.json() == [{"0": 2}, {"0": 6}]
    echo = post(port, "echo", {"k": 1})
    assert echo.json() == {"array": [0, 1, 2], "value": {"k": 1}}
    default = post(port, "default", [[3]])
    assert default.json() == [{"a": 3}]


def test_a_bundle_keeps_its_outputs(tmp_path):
    svc = FrameService()
    path = svc.save()
    manifest_apis = {a["name"]: a for a in bento_nb.load(path).bundle.manifest["apis"]}
    assert manifest_apis["columns"]["output"] == {"type": "DataframeOutput", "ensure_ascii": False,
                                                  "output_orient": "columns"}
    loaded = bento_nb.load(path)
    assert isinstance(loaded.apis["columns"].output, DataframeOutput)
    assert loaded.apis["columns"].output.output_orient == "columns"
    assert isinstance(loaded.apis["default"].output, DefaultOutput)


def test_bad_output_options_are_refused():
    with pytest.raises(ValueError, match="output_orient must be one of"):
        DataframeOutput(output_orient="sideways")
    with pytest.raises(TypeError, match="output adapter"):
        api(output="json")
    assert isinstance(output_from_config("json"), DefaultOutput)  # what older bundles say

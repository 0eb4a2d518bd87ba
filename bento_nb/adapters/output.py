"""Output adapters: how one request's result becomes its JSON answer, as BentoML 0.x's
``@api(output=...)``::

    @api(input=DataframeInput(), output=DataframeOutput(output_orient="columns"), batch=True)
    def predict(self, df):
        return self.artifacts.model.predict_frame(df)     # each request: {"col": {...}}

:class:`JsonOutput` writes the result as JSON (numpy and pandas values made plain),
:class:`DataframeOutput` writes a DataFrame (or what ``pandas.DataFrame()`` makes of the
result) with ``DataFrame.to_json(orient=output_orient)``, :class:`DefaultOutput` (what an
API without ``output=`` gets) picks DataframeOutput for DataFrames and Series, else
JsonOutput. Each is applied to one request's slice of a batch's results; the answer's
content type is ``application/json`` for all of them.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BadInput, ModelError
from .encoding import to_jsonable

# pandas.DataFrame.to_json orients, as BentoML 0.x accepted.
ORIENTS = ("split", "records", "index", "columns", "values", "table")


class OutputAdapter:
    """Base class: :meth:`prepare` turns one request's result into a JSON-able value."""

    content_type = "application/json"

    def prepare(self, result: Any) -> Any:
        return result

    def config(self) -> dict:
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({options})"


class JsonOutput(OutputAdapter):
    """The result as JSON; ``ensure_ascii`` is accepted as in 0.x (answers are UTF-8)."""

    def __init__(self, ensure_ascii: bool = False, **_ignored: Any):
        self.ensure_ascii = bool(ensure_ascii)

    def prepare(self, result: Any) -> Any:
        return to_jsonable(result)

    def config(self) -> dict:
        return {"type": type(self).__name__, "ensure_ascii": self.ensure_ascii}


class DataframeOutput(JsonOutput):
    """The result as ``DataFrame.to_json(orient=output_orient)`` ("records" by default)."""

    def __init__(self, output_orient: str = "records", **options: Any):
        super().__init__(**options)
        if output_orient not in ORIENTS:
            raise ValueError(f"output_orient must be one of {', '.join(ORIENTS)}, "
                             f"got {output_orient!r}")
        self.output_orient = output_orient

    def prepare(self, result: Any) -> Any:
        import pandas as pd

        try:
            if not isinstance(result, (pd.DataFrame, pd.Series)):
                result = pd.DataFrame(result)
            return json.loads(result.to_json(orient=self.output_orient))
        except (TypeError, ValueError) as e:
            raise ModelError(f"DataframeOutput({self.output_orient!r}) cannot write the "
                             f"API's result {type(result).__name__}: {e}") from None

    def config(self) -> dict:
        return {**super().config(), "output_orient": self.output_orient}


class DefaultOutput(OutputAdapter):
    """DataframeOutput for pandas DataFrames and Series, JsonOutput for anything else."""

    def __init__(self, **_ignored: Any):
        pass

    def prepare(self, result: Any) -> Any:
        # The encoder writes DataFrames as records and Series as lists already (what
        # DataframeOutput() gives), and everything else as JsonOutput would.
        return result


OUTPUTS = {cls.__name__: cls for cls in (JsonOutput, DataframeOutput, DefaultOutput)}


def output_from_config(config: dict | str | None) -> OutputAdapter:
    """Rebuild an output adapter from :meth:`OutputAdapter.config` (``"json"``, what
    bundles of older versions recorded, is the default output)."""
    if config is None or config == "json":
        return DefaultOutput()
    if isinstance(config, str):
        config = {"type": config}
    options = dict(config)
    name = options.pop("type", None)
    if name not in OUTPUTS:
        raise BadInput(f"unknown output adapter {name!r}: use one of {sorted(OUTPUTS)}")
    return OUTPUTS[name](**options)

"""Input adapters: how an HTTP body, a CLI argument or a Python value becomes an API's
argument, and how results become JSON.

Each adapter parses one request into a :class:`Payload` (validated, with its row count)
and assembles many payloads into one batch argument cheaply; the server splits the batch's
results back with :func:`split_results`::

    adapter = DataframeInput(n_columns=4, numeric=True)
    p1 = adapter.parse(b"[[5.1, 3.5, 1.4, 0.2]]", "application/json")
    p2 = adapter.parse(b"5.9,3.0,5.1,1.8\\n", "text/csv")
    df = adapter.make_batch([p1, p2])        # one DataFrame of 2 rows
    split_results(model.predict(df), [p1.rows, p2.rows])   # [[0], [2]]

Anything that does not fit raises :class:`~bento_nb.errors.BadInput` (HTTP 400) or
:class:`~bento_nb.errors.UnsupportedMediaType` (415) with a message that says what was
expected.

One idea per module, each importing only those listed before it:

- :mod:`.decoding` client JSON → Python (:func:`loads_json`, :data:`MAX_JSON_DEPTH`)
- :mod:`.encoding` results → JSON (:func:`to_jsonable`, :func:`dumps_json`) and
  :func:`split_results`
- :mod:`.base` :class:`Payload` and the :class:`InputAdapter` base class
- :mod:`.signature` :class:`~.signature.Signature`: a table's columns and types, checked
  per request (inferred from a bundle's example)
- :mod:`.dataframe_input` :class:`DataframeInput`: JSON and CSV tables
- :mod:`.json_input` :class:`JsonInput`, :mod:`.string_input` :class:`StringInput`,
  :mod:`.file_input` :class:`FileInput`
- :mod:`.registry` :data:`ADAPTERS` by kind and :func:`adapter_from_config`

An adapter's OpenAPI request schema is its ``openapi_request()`` method, in the adapter's
own module beside the parsing it describes; :mod:`bento_nb.server.openapi` assembles them.
Classes are imported from this package (``from bento_nb.adapters import DataframeInput``,
as in BentoML 0.x); bundles pickled when this package was one module find them here.
"""

from .base import InputAdapter, Payload
from .dataframe_input import DataframeInput
from .decoding import MAX_JSON_DEPTH, loads_json
from .encoding import dumps_json, split_results, to_jsonable
from .file_input import FileInput
from .json_input import JsonInput
from .registry import ADAPTERS, adapter_from_config
from .string_input import StringInput

__all__ = ["ADAPTERS", "MAX_JSON_DEPTH", "DataframeInput", "FileInput", "InputAdapter",
           "JsonInput", "Payload", "StringInput", "adapter_from_config", "dumps_json",
           "loads_json", "split_results", "to_jsonable"]

"""The magic's argument handling that needs no kernel: DATA kept verbatim, --api anywhere,
names derived from variables, tables as text and HTML."""

from __future__ import annotations

import pytest

from bento_nb.actions import name_from_variable as _safe_name
from bento_nb.errors import BadInput, UsageError
from bento_nb.notebook.magics import BentoMagics, _split_predict
from bento_nb.notebook.widgets import Table, human_size


@pytest.mark.parametrize("rest, expected", [
    ("Iris [[5.1, 3.5, 1.4, 0.2]]", (None, "Iris", "[[5.1, 3.5, 1.4, 0.2]]")),
    ('Iris {"a": "x  y"}', (None, "Iris", '{"a": "x  y"}')),
    ("--api predict_proba Iris [[1, 2]]", ("predict_proba", "Iris", "[[1, 2]]")),
    ("Iris --api predict_proba [[1, 2]]", ("predict_proba", "Iris", "[[1, 2]]")),
    ("Iris [[1, 2]] --api predict_proba", ("predict_proba", "Iris", "[[1, 2]]")),
    ("Iris:2024_1 X[:3]", (None, "Iris:2024_1", "X[:3]")),
    ("--api=score 5000 rows", ("score", "5000", "rows")),
    ("clf", (None, "clf", "")),
])
def test_split_predict(rest, expected):
    assert _split_predict(rest) == expected


@pytest.mark.parametrize("rest", ["", "--api", "--bogus Iris [[1]]"])
def test_split_predict_refuses(rest):
    with pytest.raises(UsageError):
        _split_predict(rest)


@pytest.mark.parametrize("data, message", [
    ("1" * 5000, "an integer in the JSON has more than 4300 digits"),
    ("[" * 500 + "]" * 500, "JSON nested more than 100 levels deep"),
    ("[" * 100000 + "]" * 100000, "JSON nested more than 100 levels deep"),
])
def test_predict_data_that_is_json_no_api_takes_is_bad_input(data, message):
    with pytest.raises(BadInput, match=message):
        BentoMagics()._data(data)
    assert BentoMagics()._data("[[1, 2]]") == [[1, 2]]


def test_safe_name():
    assert _safe_name("clf") == "clf"
    assert _safe_name("_private_model") == "private_model"
    assert _safe_name("__") == "Model"
    assert len(_safe_name("x" * 100)) == 63


def test_table_text_and_html():
    table = Table(["tag", "url"], [["Iris:1", "http://127.0.0.1:5000"], ["<b>", None]])
    text = repr(table).splitlines()
    assert text[0].split() == ["tag", "url"] and text[1].split() == ["Iris:1", "http://127.0.0.1:5000"]
    html = table._repr_html_()
    assert '<a href="http://127.0.0.1:5000"' in html and "&lt;b&gt;" in html and "<b>" not in html
    assert repr(Table(["a"], [], empty="nothing")) == "nothing"
    assert human_size(7372) == "7.2 KB" and human_size(12) == "12 B"

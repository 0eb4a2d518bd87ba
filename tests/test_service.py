"""Service definitions: quick pack, the seed's class style, notebook-defined classes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

import bento_nb
from bento_nb import BentoService, api, artifacts, env
from bento_nb.adapters import DataframeInput, JsonInput
from bento_nb.service.artifacts import PickleArtifact
from bento_nb.errors import ModelError, PackError
from bento_nb.frameworks.sklearn import SklearnModelArtifact
from bento_nb.service import service_from_model

ROW = [[5.1, 3.5, 1.4, 0.2]]


def test_pack_and_load_quick(iris_clf, iris):
    X, _ = iris
    bundle = bento_nb.pack(iris_clf, name="Iris", apis=["predict", "decision_function"],
                           labels={"owner": "me"})
    svc = bento_nb.load(bundle.tag)
    assert svc.name == "Iris" and svc.tag == bundle.tag and svc.labels == {"owner": "me"}
    assert sorted(svc.apis) == ["decision_function", "predict"]
    assert svc.apis["predict"](X[:3]).tolist() == iris_clf.predict(X[:3]).tolist()
    assert svc.apis["predict"](pd.DataFrame(X[:2])).tolist() == [0, 0]
    assert np.allclose(svc.apis["decision_function"](ROW), iris_clf.decision_function(ROW))


def test_apis_are_attributes_and_a_loaded_service_pickles(iris_clf):
    import cloudpickle

    svc = bento_nb.load(bento_nb.pack(iris_clf, name="Iris").tag)
    assert svc.predict(ROW).tolist() == [0]  # as on a class-style service
    with pytest.raises(AttributeError, match="no attribute or API 'predict_proba'.*predict"):
        svc.predict_proba(ROW)
    again = cloudpickle.loads(cloudpickle.dumps(svc))  # e.g. to a worker process
    assert again.predict(ROW).tolist() == [0] and again.artifacts.model is not None


def test_pack_with_an_example_checks_it_and_keeps_it(iris_clf, iris):
    import shlex

    from bento_nb.adapters import FileInput, StringInput

    X, _ = iris
    bundle = bento_nb.pack(iris_clf, name="Iris", example=X[:2])
    assert bundle.manifest["example"] == {"api": "predict", "body": X[:2].tolist()}
    assert bento_nb.load(bundle.tag).example == bundle.manifest["example"]
    readme = (bundle.path / "README.md").read_text()
    assert f"--data-binary {shlex.quote(json.dumps(X[:2].tolist()))}" in readme
    assert "http://127.0.0.1:5000/predict" in readme
    with pytest.raises(PackError, match="does not work with API 'predict': expected 4 columns"):
        bento_nb.pack(iris_clf, name="Iris", example=[[1, 2]])
    with pytest.raises(PackError, match="keep it to a few rows"):
        bento_nb.pack(iris_clf, name="Iris", example=np.repeat(X, 10, axis=0))
    text = bento_nb.pack(str.upper, name="Upper", input=StringInput(), batch=False,
                         example="hi")
    assert text.manifest["example"]["body"] == "hi"
    assert "Content-Type: text/plain' --data-binary hi " in (text.path / "README.md").read_text()
    with pytest.raises(PackError, match="file API takes no documented example"):
        bento_nb.pack(len, name="Size", input=FileInput(), batch=False, example=b"x")
    assert len(bento_nb.list_bundles("Iris")) == 1  # refused examples saved nothing


def test_pack_refuses_missing_methods(iris_clf):
    with pytest.raises(PackError, match="no method 'predict_proba'"):
        bento_nb.pack(iris_clf, name="Iris", apis=["predict_proba"])


def test_plain_callable_and_json_input():
    bundle = bento_nb.pack(lambda items: [len(str(i)) for i in items], name="Len", input="json")
    svc = bento_nb.load(bundle.tag)
    inference_api = svc.apis["predict"]
    payloads = [inference_api.input.parse(json.dumps(v).encode(), "application/json")
                for v in ({"a": 1}, "hey", [1, 2])]
    assert inference_api.run_batch(payloads) == [8, 3, 6]


def test_model_errors_are_wrapped_with_the_message():
    def boom(df):
        raise ValueError("bad row")

    svc = bento_nb.load(bento_nb.pack(boom, name="Boom").tag)
    payload = svc.apis["predict"].input.parse(b"[[1]]", "application/json")
    with pytest.raises(ModelError, match="ValueError: bad row"):
        svc.apis["predict"].run_one(payload)


@env(infer_pip_packages=True, pip_packages=["requests>=2"])
@artifacts([SklearnModelArtifact("model"), PickleArtifact("scale")])
class Scaled(BentoService):
    """Two artifacts and two APIs."""

    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.model.predict(df * self.artifacts.scale)

    @api(input=JsonInput(), batch=False)
    def info(self, payload):
        return {"echo": payload, "scale": self.artifacts.scale}


def test_class_style_in_process(iris_clf):
    svc = Scaled().pack("model", iris_clf).pack("scale", 1.0)
    path = svc.save()
    assert path.endswith(svc.version)
    loaded = bento_nb.load(svc.tag)
    assert loaded.predict(pd.DataFrame(ROW)).tolist() == [0]
    assert loaded.info({"x": 1}) == {"echo": {"x": 1}, "scale": 1.0}
    assert loaded.apis["predict"].input.config()["n_columns"] == 4
    assert "requests>=2" in loaded.bundle.requirements


def test_unpacked_artifact_and_unknown_artifact_are_clear_errors(iris_clf):
    with pytest.raises(PackError, match="not packed"):
        Scaled().pack("model", iris_clf).save()
    with pytest.raises(PackError, match="no artifact named 'other'"):
        Scaled().pack("other", 1)
    with pytest.raises(PackError, match="expected a scikit-learn estimator"):
        Scaled().pack("model", 42)


NOTEBOOK_CELLS = [
    "from sklearn import svm, datasets\nX, y = datasets.load_iris(return_X_y=True)\nclf = svm.SVC().fit(X, y)",
    textwrap.dedent("""\
        import numpy as np
        from bento_nb import env, artifacts, api, BentoService
        from bento_nb.adapters import DataframeInput
        from bento_nb.frameworks.sklearn import SklearnModelArtifact

        THRESHOLD = 0  # a notebook global the class uses

        @env(infer_pip_packages=True)
        @artifacts([SklearnModelArtifact('model')])
        class NotebookIris(BentoService):
            @api(input=DataframeInput(), batch=True)
            def predict(self, df):
                return np.maximum(self.artifacts.model.predict(df), THRESHOLD)
        """),
    "svc = NotebookIris()\nsvc.pack('model', clf)\nprint(svc.save())",
]


def test_class_defined_in_a_kernel_loads_in_a_fresh_process(tmp_path, bento_home):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = nb.cells[-1].outputs[0]["text"].strip()
    assert saved.startswith(str(bento_home))
    script = ("import bento_nb; svc = bento_nb.load('NotebookIris'); "
              "print(svc.apis['predict']([[5.1, 3.5, 1.4, 0.2], [6.2, 3.4, 5.4, 2.3]]).tolist())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0, 2]"
    requirements = (bento_home / "repository" / "NotebookIris").glob("*/requirements.txt")
    pins = next(requirements).read_text()
    assert "scikit-learn==" in pins and "numpy==" in pins


def test_tables_with_different_column_names_are_never_mixed_in_one_call():
    calls = []

    def first_column(df):
        calls.append(list(df.columns))
        return df.iloc[:, 0]

    svc = service_from_model(first_column, name="First")  # live: `calls` is shared
    parse = svc.apis["predict"].input.parse
    payloads = [parse(b"[[22, 1]]", "application/json"),
                parse(b'{"columns": ["a", "b"], "data": [[11, 1]]}', "application/json"),
                parse(b'[{"p": 33, "q": 1}]', "application/json"),
                parse(b'[{"a": 44, "b": 1}]', "application/json")]
    results = svc.apis["predict"].run_batch(payloads)
    assert [r.tolist() for r in results] == [[22], [11], [33], [44]]
    assert sorted(map(str, calls)) == sorted(map(str, [[0, 1], ["a", "b"], ["p", "q"]]))


def test_bundles_pickled_before_artifacts_moved_still_load():
    """``bento_nb.artifacts`` became ``bento_nb.service.artifacts`` (BentoML 0.13's layout);
    a pickle naming the old module finds the class at its new place."""
    import io

    from bento_nb import _pickling

    old = b"\x80\x04cbento_nb.artifacts\nPickleArtifact\n."
    assert _pickling._Unpickler(io.BytesIO(old)).load() is PickleArtifact


def test_bundles_pickled_when_adapters_was_one_module_still_load():
    """``bento_nb/adapters.py`` became the package ``bento_nb/adapters/``, one module per
    adapter; a service pickled before names ``bento_nb.adapters.DataframeInput``, which the
    package re-exports, so the adapters load and parse as they did."""
    import io

    from bento_nb import _pickling
    from bento_nb.adapters import FileInput, StringInput

    # cloudpickle.dumps([DataframeInput(columns=[...], numeric=True), JsonInput(),
    # StringInput(), FileInput()], protocol=5) by bento_nb before the split.
    old = (b"\x80\x05\x95\xa9\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x11bento_nb.adapters"
           b"\x94\x8c\x0eDataframeInput\x94\x93\x94)\x81\x94}\x94(\x8c\x07columns\x94(\x8c\x02sl"
           b"\x94\x8c\x02sw\x94\x8c\x02pl\x94\x8c\x02pw\x94t\x94\x8c\tn_columns\x94K\x04\x8c\x07"
           b"numeric\x94\x88ubh\x01\x8c\tJsonInput\x94\x93\x94)\x81\x94h\x01\x8c\x0bStringInput"
           b"\x94\x93\x94)\x81\x94h\x01\x8c\tFileInput\x94\x93\x94)\x81\x94e.")
    table, document, text, file = _pickling._Unpickler(io.BytesIO(old)).load()
    assert [type(a) for a in (table, document, text, file)] == [
        DataframeInput, JsonInput, StringInput, FileInput]
    assert table.config() == {"type": "DataframeInput", "columns": ["sl", "sw", "pl", "pw"],
                              "n_columns": 4, "numeric": True}
    payload = table.parse(b"sl,sw,pl,pw\n5.1,3.5,1.4,0.2\n", "text/csv")
    assert table.make_batch([payload]).iloc[0].tolist() == [5.1, 3.5, 1.4, 0.2]
    assert document.parse(b'{"a": [1]}', "application/json").value == {"a": [1]}


def test_root_names_load_lazily_and_artifacts_is_the_decorator():
    import bento_nb
    import bento_nb.service.artifacts as artifact_classes
    from bento_nb import artifacts as decorator

    assert callable(decorator) and decorator is not artifact_classes
    assert artifact_classes.PickleArtifact is PickleArtifact
    assert {"pack", "load", "serve", "artifacts"} <= set(dir(bento_nb))
    with pytest.raises(AttributeError):
        bento_nb.no_such_name


def test_a_bundle_that_did_not_record_numeric_learns_it_when_loaded(iris):
    """Bundles packed before DataFrame-fitted models were known to be numeric say nothing
    about it in their manifest: loading asks the model again, so strings are a 400."""
    from sklearn import svm

    from bento_nb.errors import BadInput

    X, y = iris
    model = svm.SVC().fit(pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"]), y)
    svc = service_from_model(model, name="OldNamed")
    svc.apis["predict"].input.numeric = None  # what an older version recorded
    bundle = svc.save_bundle()
    assert "numeric" not in bundle.manifest["apis"][0]["input"]
    loaded = bento_nb.load(bundle.tag).apis["predict"]
    assert loaded.input.numeric is True
    with pytest.raises(BadInput, match="row 1, column 'sw' holds the text 'x'"):
        loaded.input.parse(b'[[5.1, "x", 1.4, 0.2]]', "application/json")
    assert loaded([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]


def test_requirement_pins_drop_local_version_labels():
    """``torch 2.13.0+cpu`` is pinned ``torch==2.13.0``: an index serves no local versions,
    so an image built from the bundle could never install the labelled pin."""
    from bento_nb import requirements

    assert requirements.public_version("2.13.0+cpu") == "2.13.0"
    assert requirements.public_version("1.8.0") == "1.8.0"
    assert all("+" not in pin for pin in requirements.infer({"numpy", "sklearn", "torch"}))

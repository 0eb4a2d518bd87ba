"""Issue 15 item 3 in a real kernel: ``%bento pack`` records the notebook path and the cells.

The kernel is started as jupyter-server (2.0 and later) starts one for a notebook: with
``JPY_SESSION_NAME`` set to the notebook's absolute path in its environment
(``SessionManager.get_kernel_env``), which ipykernel also puts in the namespace as
``__session__``. nbclient runs the cells, so the history is IPython's own.
"""

from __future__ import annotations

import json

import pytest

from .conftest import TRAIN, Kernel, error_outputs, kernel_env


@pytest.fixture(scope="module")
def notebook_kernel(module_home):
    notebook = module_home / "project" / "train.ipynb"
    notebook.parent.mkdir()
    notebook.write_text("{}")
    kernel = Kernel(notebook.parent, kernel_env(module_home, JPY_SESSION_NAME=str(notebook)))
    kernel.run(TRAIN)
    yield kernel, notebook
    kernel.shutdown()


def manifest_of(kernel: Kernel, tag_expression: str) -> dict:
    code = (f"import json; from bento_nb.store import Store; "
            f"print(json.dumps(Store().get({tag_expression}).manifest))")
    return json.loads(kernel.text(kernel.run(code)).strip())


def test_a_bundle_packed_in_a_kernel_carries_the_notebook_and_its_cells(notebook_kernel):
    kernel, notebook = notebook_kernel
    assert kernel.text(kernel.run("print(__session__)")).strip() == str(notebook)
    kernel.run("threshold = 0.25  # a cell of this notebook")
    outputs = kernel.magic("pack clf --name Traced")
    assert not error_outputs(outputs), kernel.text(outputs)
    recorded = manifest_of(kernel, "'Traced'")["provenance"]
    assert recorded["notebook"] == str(notebook)
    cells = recorded["cells"]
    assert "clf = svm.SVC(gamma=\"scale\").fit(X, y)" in cells  # the training cell
    assert "threshold = 0.25  # a cell of this notebook" in cells
    assert "%bento pack clf --name Traced" in cells  # as typed, magics not expanded
    assert cells.index("svm.SVC") < cells.index("threshold")  # in the order they ran
    assert recorded["cells_truncated"] is False
    assert recorded["python"].startswith("CPython")


def test_no_provenance_records_none_of_it(notebook_kernel):
    kernel, _ = notebook_kernel
    kernel.run("secret_token = 'not-for-the-bundle'")
    outputs = kernel.magic("pack clf --name Untraced --no-provenance")
    assert not error_outputs(outputs), kernel.text(outputs)
    manifest = manifest_of(kernel, "'Untraced'")
    assert "provenance" not in manifest
    assert "not-for-the-bundle" not in json.dumps(manifest)

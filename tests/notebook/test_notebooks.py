"""Every demo notebook in ``notebooks/`` runs top to bottom in a real kernel, with the
outputs a reader expects, and is stored in git with its outputs cleared."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import WIDGET_VIEW, error_outputs

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = {"quickstart.ipynb", "bentoservice.ipynb", "batching.ipynb", "containerize.ipynb",
            "batch.ipynb", "frameworks.ipynb"}


def execute(name: str, cwd: Path) -> tuple[list, NotebookClient]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()  # raises CellExecutionError on the first error output
    return [c for c in nb.cells if c.cell_type == "code"], client


def text(cell) -> str:
    """What the cell shows as text. A stream may arrive in several messages (the kernel
    flushes on its own schedule, even inside one ``print``): consecutive pieces of one
    stream are joined as they are, as the notebook shows them."""
    parts: list[str] = []
    last = None
    for o in cell.outputs:
        if o.output_type == "stream":
            if last == o.name:
                parts[-1] += o.get("text", "")
            else:
                parts.append(o.get("text", ""))
            last = o.name
        else:
            parts.append(str(o.get("data", {}).get("text/plain", "")))
            last = None
    return "\n".join(parts)


def cell_with(cells, source: str):
    return next(c for c in cells if source in c.source)


def assert_clean_run(cells, client) -> None:
    for cell in cells:
        assert not error_outputs(cell.outputs), cell.source
        assert "%bento: error" not in text(cell), (cell.source, text(cell))
    views = [o["data"][WIDGET_VIEW]["model_id"] for c in cells for o in c.outputs
             if WIDGET_VIEW in o.get("data", {})]
    for model_id in views:  # the widget state a saved notebook needs to render them
        assert model_id in client.widget_state


def test_the_demo_notebooks_are_there_with_outputs_cleared():
    names = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert EXPECTED <= names
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (path.name, cell.source)
        assert "widgets" not in nb.metadata, path.name


def test_quickstart(tmp_path):
    cells, client = execute("quickstart.ipynb", tmp_path)
    assert_clean_run(cells, client)
    pack = cell_with(cells, "%bento pack clf")
    assert any(WIDGET_VIEW in o.get("data", {}) for o in pack.outputs)
    assert "bento bundle IrisClassifier:" in text(pack)
    serve = cell_with(cells, "%bento serve")
    assert any(WIDGET_VIEW in o.get("data", {}) for o in serve.outputs)
    url = re.search(r"running at (http://127\.0\.0\.1:\d+)", text(serve)).group(1)
    assert text(cell_with(cells, "urllib.request.urlopen")).strip() == f"{url} [0]"
    assert text(cell_with(cells, "%bento predict IrisClassifier [[")).strip().endswith("[0]")
    assert text(cell_with(cells, "%bento predict IrisClassifier samples")).strip().endswith("[0, 1, 2]")
    assert "IrisClassifier:" in text(cell_with(cells, "%bento list"))
    assert "this kernel" in text(cell_with(cells, "%bento servers"))
    assert "stopped 1 server(s)" in text(cell_with(cells, "%bento stop all"))


def test_bentoservice(tmp_path):
    cells, client = execute("bentoservice.ipynb", tmp_path)
    assert_clean_run(cells, client)
    assert "repository/IrisClassifier/" in text(cell_with(cells, "saved_path = svc.save()"))
    assert text(cell_with(cells, "bento_nb.load(")).strip() == "array([0, 2])"
    assert text(cell_with(cells, "subprocess.run")).strip() == "fresh process says: [0]"
    serve = cell_with(cells, "%bento serve saved_path")
    assert any(WIDGET_VIEW in o.get("data", {}) for o in serve.outputs)
    predicted = text(cell_with(cells, "%bento predict IrisClassifier"))
    assert "answered by http://127.0.0.1:" in predicted and predicted.strip().endswith("[2]")


def test_batching(tmp_path):
    cells, client = execute("batching.ipynb", tmp_path)
    assert_clean_run(cells, client)
    widget = cell_with(cells, "ServerWidget(server)")
    assert any(WIDGET_VIEW in o.get("data", {}) for o in widget.outputs)
    run = cell_with(cells, "levels = [")
    assert "wrong or failed answers: 0" in text(run)
    table = text(run)
    rows = [line.split() for line in table.splitlines() if re.match(r"^\d+\s", line)]
    assert [int(r[0]) for r in rows] == [1, 2, 4, 8, 16, 32]
    mean_batch = [float(r[4]) for r in rows]
    assert mean_batch[0] == pytest.approx(1.0)  # a lone client is never made to wait for others
    assert max(mean_batch) > 1.0               # concurrent clients were batched together
    plot = cell_with(cells, "plt.subplots")
    png = next(o["data"]["image/png"] for o in plot.outputs if "image/png" in o.get("data", {}))
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert "'status': 'running'" in text(cell_with(cells, "server.stats()"))


def test_containerize(tmp_path):
    cells, client = execute("containerize.ipynb", tmp_path)
    assert_clean_run(cells, client)
    context = text(cell_with(cells, "--context-only"))
    assert "build it with: docker build -t irisclassifier:" in context
    listing = text(cell_with(cells, "context.iterdir()"))
    for name in ("Dockerfile", "requirements.txt", "bundle", "wheels"):
        assert f"'{name}'" in listing
    build = text(cell_with(cells, "-t iris-classifier:notebook"))
    built = "built iris-classifier:notebook" in build
    assert built or "docker build -t iris-classifier:notebook" in build, build
    if built:  # a daemon was reachable: leave no image behind
        import docker

        docker_client = docker.from_env(timeout=30)
        try:
            docker_client.images.remove("iris-classifier:notebook", force=True)
        finally:
            docker_client.close()


def test_batch(tmp_path):
    cells, client = execute("batch.ipynb", tmp_path)
    assert_clean_run(cells, client)
    failed = text(cell_with(cells, '"--input-file", "scores-in.csv", "--output", "scores.parquet")'))
    assert "scores-in.csv: expected numbers in every column; row 200001, column 'pl' holds an " \
           "empty cell" in failed and failed.strip().endswith("2")
    carried = text(cell_with(cells, '"--on-error", "null"'))
    assert "200,001 rows" in carried and "1 bad rows given null" in carried
    assert "same as forest.predict: True" in text(cell_with(cells, "same as forest.predict"))
    python = text(cell_with(cells, "bento_nb.batch.predict("))
    assert python.startswith("ndarray 200000 True") and "200,000 rows in" in python, python
    assert text(cell_with(cells, "%bento predict IrisForest big")).startswith("200000 [")
    spark = text(cell_with(cells, "bento_nb.spark.udf"))
    import importlib.util
    import shutil
    if importlib.util.find_spec("pyspark") and shutil.which("java"):
        assert "Spark UDF equals forest.predict: True" in spark, spark


def test_frameworks(tmp_path):
    for module in ("xgboost", "torch", "PIL"):  # the `frameworks` and `image` extras
        pytest.importorskip(module)
    cells, client = execute("frameworks.ipynb", tmp_path)
    assert_clean_run(cells, client)
    packed = text(cell_with(cells, "%bento pack booster"))
    assert re.search(r"requirements: .*\bxgboost==", packed), packed
    record = text(cell_with(cells, 'bundle.manifest["model"]'))
    assert "'framework': 'xgboost'" in record and "'format': 'xgboost'" in record
    assert text(cell_with(cells, "%bento predict IrisXGB")).strip().endswith("[0, 2]")
    assert "requirements: torch==" in text(cell_with(cells, "%bento pack mlp"))
    assert text(cell_with(cells, "logits = %bento predict")).strip().endswith("classes: [0, 2]")
    trained = text(cell_with(cells, "cnn = torch.nn.Sequential"))
    assert float(trained.rsplit(":", 1)[1]) >= 0.95, trained
    serve = cell_with(cells, "%bento serve saved")
    assert any(WIDGET_VIEW in o.get("data", {}) for o in serve.outputs)
    # Try it sent the PNG drawn in the notebook (a vertical bar): the server said 1
    assert text(cell_with(cells, "widget.try_button.click()")).strip() == "(200, 1)"
    predicted = text(cell_with(cells, "%bento predict BarOrientation png"))
    assert "answered by http://127.0.0.1:" in predicted and predicted.strip().endswith("1")
    refused = text(cell_with(cells, 'data=b"not an image"'))
    assert refused.startswith("400 image: the body is not an image"), refused
    assert "stopped 3 server(s)" in text(cell_with(cells, "%bento stop all"))

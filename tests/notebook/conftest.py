"""Real IPython kernels for the notebook tests, driven through nbclient.

``Kernel`` runs cells one at a time in a kernel started with the test's environment
(BENTO_NB_HOME, JUPYTER_RUNTIME_DIR from the root conftest, plus any extras) and keeps
widget state (``store_widget_state=True``). ``kernel.side_client()`` opens a second client
on the same kernel, to run a long cell while the test does something else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from nbclient import NotebookClient
from nbclient.util import run_sync

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
URL_RE = re.compile(r"running at (http://127\.0\.0\.1:(\d+))")


class Kernel:
    def __init__(self, cwd: Path, env: dict | None = None, timeout: int = 120):
        self.nb = nbformat.v4.new_notebook(metadata={"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}})
        self.client = NotebookClient(self.nb, timeout=timeout, kernel_name="python3",
                                     store_widget_state=True,
                                     resources={"metadata": {"path": str(cwd)}})
        self.client.km = self.client.create_kernel_manager()
        self.client.start_new_kernel(env=dict(os.environ if env is None else env))
        self.client.start_new_kernel_client()
        self.pid = int(self.text(self.run("import os; print(os.getpid())")).strip())

    def run(self, code: str, allow_errors: bool = False) -> list:
        """Run one cell; returns its outputs (raises CellExecutionError on an error output
        unless ``allow_errors``)."""
        cell = nbformat.v4.new_code_cell(code)
        self.nb.cells.append(cell)
        self.client.allow_errors = allow_errors
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        return cell.outputs

    def magic(self, line: str) -> list:
        return self.run(f"%bento {line}")

    @staticmethod
    def text(outputs: list, stream: str | None = None) -> str:
        """Everything a reader sees as text: streams and text/plain of results/displays."""
        parts = []
        for o in outputs:
            if o.output_type == "stream":
                if stream is None or o.name == stream:
                    parts.append(o.text)
            elif stream is None and "data" in o:
                parts.append(str(o.data.get("text/plain", "")) + "\n")
        return "".join(parts)

    def side_client(self) -> BlockingKernelClient:
        kc = BlockingKernelClient()
        kc.load_connection_info(self.client.km.get_connection_info())
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        return kc

    def restart(self) -> None:
        run_sync(self.client.km.restart_kernel)(now=False)  # graceful: shutdown_request
        run_sync(self.client.kc.wait_for_ready)(timeout=60)
        self.pid = int(self.text(self.run("import os; print(os.getpid())")).strip())

    def shutdown(self) -> None:
        self.client._cleanup_kernel()


def has_widget_view(outputs: list) -> bool:
    return any(WIDGET_VIEW in o.get("data", {}) for o in outputs)


def error_outputs(outputs: list) -> list:
    return [o for o in outputs if o.output_type == "error"]


def shown_url(outputs: list) -> tuple[str, int]:
    """The server URL a ``%bento serve`` cell shows (from the widget's text/plain)."""
    match = URL_RE.search(Kernel.text(outputs))
    assert match, f"no server URL in the outputs: {Kernel.text(outputs)!r}"
    return match.group(1), int(match.group(2))


def kernel_env(home: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(BENTO_NB_HOME=str(home), JUPYTER_RUNTIME_DIR=str(home / "jupyter_runtime"))
    env.pop("BENTO_NB_API_TOKEN", None)
    env.update(extra)
    return env


TRAIN = """\
%load_ext bento_nb
from sklearn import datasets, svm
iris = datasets.load_iris()
X, y = iris.data, iris.target
clf = svm.SVC(gamma="scale").fit(X, y)
import bento_nb.notebook
"""


@pytest.fixture(scope="module")
def module_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nb_home")


@pytest.fixture(scope="module")
def trained_kernel(module_home):
    """One kernel per test module with the iris SVC trained as ``clf`` (kernels take ~2 s
    to start; the tests of a module share one and stop their servers)."""
    kernel = Kernel(module_home, kernel_env(module_home))
    kernel.run(TRAIN)
    yield kernel
    kernel.shutdown()

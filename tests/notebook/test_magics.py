"""``%bento`` in a real kernel: pack, serve (reached from this test process while the kernel
is idle and while it is busy), predict, stop, store commands and one-line usage errors."""

from __future__ import annotations

import json
import queue
import socket
import urllib.error
import urllib.request

import pytest
from netcheck import free_port, port_is_free

from .conftest import error_outputs, has_widget_view, shown_url

SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]


def post(url: str, body, content_type: str = "application/json") -> tuple[int, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_pack_serve_predict_stop(trained_kernel):
    k = trained_kernel
    outputs = k.magic("pack clf --name IrisClassifier")
    assert has_widget_view(outputs)
    assert "bento bundle IrisClassifier:" in k.text(outputs)

    port = free_port()
    outputs = k.magic(f"serve --port {port}")
    assert has_widget_view(outputs)
    url, shown_port = shown_url(outputs)
    assert shown_port == port

    # the kernel is idle: the server thread answers
    assert post(url + "/predict", [SETOSA, VIRGINICA]) == (200, [0, 2])
    assert post(url + "/predict", b"5.1,3.5,1.4,0.2\n", "text/csv") == (200, [0])

    # the kernel is busy in another cell (blocked until this test lets it go): the server
    # still answers
    side = k.side_client()
    with socket.create_server(("127.0.0.1", 0)) as gate:
        gate.settimeout(30)
        address = ("127.0.0.1", gate.getsockname()[1])
        try:
            msg_id = side.execute(f"import socket\n"
                                  f"with socket.create_connection({address}, 30) as g:\n"
                                  f"    g.recv(1)")
            cell, _ = gate.accept()  # the kernel runs that cell now and waits for our byte
            with cell:
                assert post(url + "/predict", [VIRGINICA, SETOSA]) == (200, [2, 0])
                with pytest.raises(queue.Empty):  # ... and the blocked cell has not returned
                    side.get_shell_msg(timeout=0.01)
                cell.sendall(b"x")
            reply = side.get_shell_msg(timeout=30)
            assert reply["parent_header"]["msg_id"] == msg_id
            assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            side.stop_channels()

    outputs = k.magic("predict IrisClassifier [[5.9, 3.0, 5.1, 1.8]]")
    assert "[2]" in k.text(outputs)
    assert f"answered by {url}/predict" in k.text(outputs)

    outputs = k.magic("stop all")
    assert f"stopped 1 server(s) on port(s) {port}" in k.text(outputs)
    assert port_is_free(port)
    with pytest.raises(OSError):
        post(url + "/predict", [SETOSA])


def test_predict_in_process_without_server(trained_kernel):
    k = trained_kernel
    k.magic("pack clf --name InProcess")
    outputs = k.magic("predict InProcess [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]")
    assert k.text(outputs).strip() == "[0, 2]"  # no "answered by": loaded in-process
    outputs = k.run("samples = X[[0, 50, 100]]\n%bento predict InProcess samples")
    assert k.text(outputs).strip() == "[0, 1, 2]"
    outputs = k.magic("predict clf [[6.7, 3.0, 5.2, 2.3]]")  # a live variable
    assert k.text(outputs).strip() == "[2]"


def test_predict_of_a_large_dataframe_runs_in_chunks_in_process(trained_kernel):
    """More rows than one batch chunk: scored in-process by bento_nb.batch (bounded memory),
    not sent to the running server as one request; a bad row is named by its row."""
    k = trained_kernel
    k.magic("pack clf --name Big")
    k.magic(f"serve Big --port {free_port()}")
    try:
        text = k.text(k.run(
            "import numpy as np, pandas as pd\n"
            "big = pd.DataFrame(np.tile(X, (400, 1)))\n"
            "result = %bento predict Big big\n"
            "print(len(result), result == clf.predict(big.to_numpy()).tolist())"))
        assert text.strip() == "60000 True", text
        text = k.text(k.run("big.iloc[55000, 2] = np.nan\n%bento predict Big big"))
        assert "DataFrame: NaN and infinite values are not allowed; row 55001, column 3" in text, text
    finally:
        k.magic("stop all")  # the kernel is shared by the module's tests


def test_rerunning_serve_replaces_the_server(trained_kernel):
    k = trained_kernel
    k.magic("pack clf --name Rerun")
    port = free_port()
    first = k.magic(f"serve Rerun --port {port}")
    second = k.magic(f"serve Rerun --port {port}")
    assert shown_url(first)[1] == shown_url(second)[1] == port
    out = k.text(k.run(
        "from bento_nb.server import running_servers\n"
        "print(sorted(h.port for h in running_servers()))\n"
        "print(bento_nb.notebook.current().server_widgets[-2].note.value)"))
    assert f"[{port}]" in out  # one server, not two
    assert "replaced" in out
    # without --port, serving again keeps the URL the notebook already shows
    third = k.magic("serve Rerun")
    assert shown_url(third)[1] == port
    k.magic("stop all")
    assert port_is_free(port)


def test_busy_port_moves_to_the_next_free_one(trained_kernel):
    k = trained_kernel
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        outputs = k.magic(f"serve clf --port {busy}")
        url, port = shown_url(outputs)
        assert port != busy
        assert f"port {busy} was busy" in k.text(outputs)
        out = k.text(k.run("print(bento_nb.notebook.last_widget().note.value)"))
        assert f"port {busy} was busy: serving on port {port} instead" in out
        assert post(url + "/predict", [VIRGINICA]) == (200, [2])
    k.magic("stop all")
    assert port_is_free(port)


def test_serve_a_variable_at_once_and_stop_by_port(trained_kernel):
    k = trained_kernel
    k.run("live = clf")  # a variable that was never packed: served as the live object
    outputs = k.magic("serve live --port 0 --request-timeout 7.5")
    url, port = shown_url(outputs)
    assert "live (live object)" in outputs[0]["data"]["text/html"]
    assert post(url + "/predict", [SETOSA]) == (200, [0])
    with urllib.request.urlopen(url + "/metadata", timeout=10) as answer:
        assert json.load(answer)["config"]["request_timeout"] == 7.5
    outputs = k.magic("predict live [[6.7, 3.0, 5.2, 2.3]]")
    assert f"answered by {url}/predict" in k.text(outputs)
    outputs = k.magic("servers")
    assert str(port) in k.text(outputs) and "this kernel" in k.text(outputs)
    outputs = k.magic(f"stop {port}")
    assert f"on port {port}" in k.text(outputs)
    assert port_is_free(port)
    assert "no servers running" in k.text(k.magic("stop"))


def test_a_packed_variable_means_its_bundle_until_it_changes(trained_kernel):
    """`%bento pack clf` then `%bento serve clf`: the bundle just packed (Containerize works,
    the pack's options hold), not a fresh wrap of the object; once `clf` holds something
    else, the live object again."""
    k = trained_kernel
    k.run("double = lambda rows: [[2 * v for v in row] for row in rows]")
    k.magic("pack double --input json --no-batch")
    assert k.text(k.magic("predict double [[1, 2, 3]]")).strip() == "[[2, 4, 6]]"
    k.magic("pack clf --name PackedClf")
    k.run("model = clf")
    k.magic("pack model")
    outputs = k.magic("serve model --port 0")
    html = outputs[0]["data"]["text/html"]
    assert "model:" in html and "live object" not in html
    out = k.text(k.run("print(bento_nb.notebook.last_widget().containerize_button.disabled)"))
    assert out.strip() == "False"
    k.run("from sklearn.svm import SVC\nmodel = SVC().fit(X, y)")  # retrained
    outputs = k.magic("serve model --port 0")
    assert "model (live object)" in outputs[0]["data"]["text/html"]
    k.magic("stop all")


def test_list_export_delete(trained_kernel, tmp_path):
    k = trained_kernel
    k.magic("pack clf --name Shelf --label stage=test")
    assert "Shelf:" in k.text(k.magic("list"))
    archive = tmp_path / "shelf.tar.gz"
    outputs = k.magic(f"export Shelf {archive}")
    assert "exported Shelf:" in k.text(outputs)  # with the version
    assert archive.stat().st_size > 0
    outputs = k.magic("delete Shelf")
    assert "deleted Shelf:" in k.text(outputs)
    assert "no bundle named 'Shelf'" in k.text(k.magic("list Shelf"))


def test_help(trained_kernel):
    text = trained_kernel.text(trained_kernel.run("%bento"))
    for command in ("pack", "serve", "predict", "list", "servers", "stop", "delete", "export",
                    "containerize"):
        assert f"%bento {command}" in text
    assert "--port" in trained_kernel.text(trained_kernel.magic("serve -h"))


@pytest.mark.parametrize("line, message", [
    ("serve NoSuchModel", "'NoSuchModel' is neither a variable of this notebook nor a bundle"),
    ("pack undefined_var", "name 'undefined_var' is not defined in the notebook"),
    ("serve --bogus", "unrecognized arguments: --bogus"),
    ("pack clf --bogus 1", "unrecognized arguments: --bogus 1"),
    ("serve clf --port notanumber", "argument --port: invalid int value"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
    ("predict", "usage: %bento predict TARGET DATA"),
    ("predict clf", "missing DATA"),
    ("predict clf [[1, 2]]", "expected 4 columns per row, got 2"),
    ("predict clf {not json", "DATA must be a JSON literal or a variable name"),
    ("predict clf " + "1" * 5000, "an integer in the JSON has more than 4300 digits"),
    ("predict clf " + "[" * 500 + "]" * 500, "JSON nested more than 100 levels deep"),
    ("stop 1", "no server of this kernel on port 1"),
    ("delete a/b", "invalid name 'a/b'"),
    ("pack clf --label nokey", "--label expects KEY=VALUE"),
    ("predict clf undefined_rows", "name 'undefined_rows' is not defined in the notebook"),
    ("containerize clf -t Iris:1", "invalid image name 'Iris:1'"),
    ("serve selfref", "'selfref' is neither a variable of this notebook nor a bundle"),
])
def test_usage_errors_print_one_line(trained_kernel, line, message):
    trained_kernel.run("selfref = 'selfref'")  # a string variable naming itself: no loop
    outputs = trained_kernel.magic(line)
    assert not has_widget_view(outputs)
    assert not error_outputs(outputs)
    stderr = trained_kernel.text(outputs, stream="stderr")
    assert "Traceback" not in trained_kernel.text(outputs)
    assert stderr.count("\n") == 1 and stderr.startswith("%bento: error: "), stderr
    assert message in stderr


def test_help_lists_every_serve_and_containerize_flag(trained_kernel):
    """The one-page help names every flag the parser takes (from the declarations)."""
    from bento_nb.containerize import ContainerizeOptions
    from bento_nb.options import flag_fields
    from bento_nb.server.config import ServerConfig

    text = trained_kernel.text(trained_kernel.magic(""))
    for cls in (ServerConfig, ContainerizeOptions):
        for field in flag_fields(cls):
            assert field.metadata["bento_nb.option"]["flag"] in text, field.name


def test_serve_a_word_means_the_tag_even_beside_a_folder_of_that_name(trained_kernel):
    """``%bento serve Iris`` with a folder ``./Iris`` (another bundle) in the kernel's
    working directory serves the store's Iris, as ``load("Iris")`` and the CLI do."""
    k = trained_kernel
    k.run("import os, shutil, tempfile, numpy as np, bento_nb\n"
          "class Doubler:\n"
          "    def predict(self, rows):\n"
          "        return np.asarray(rows).sum(axis=1) * 2\n"
          "bento_nb.pack(clf, name='Iris')\n"
          "_decoy = bento_nb.pack(Doubler(), name='Decoy')\n"
          "_old_cwd = os.getcwd(); _here = tempfile.mkdtemp()\n"
          "shutil.copytree(_decoy.path, os.path.join(_here, 'Iris')); os.chdir(_here)")
    try:
        port = free_port()
        outputs = k.magic(f"serve Iris --port {port}")
        url, _ = shown_url(outputs)
        assert post(url + "/predict", [SETOSA]) == (200, [0])   # not the decoy's 2 * sum
        outputs = k.magic(f"serve ./Iris --port {free_port()}")
        folder_url, _ = shown_url(outputs)
        assert post(folder_url + "/predict", [[1, 2]]) == (200, [6])
    finally:
        k.magic("stop all")
        k.run("os.chdir(_old_cwd)")


def test_notebook_errors_name_notebook_commands(trained_kernel):
    """A missing bundle in the notebook points to %bento list, never to the CLI."""
    outputs = trained_kernel.magic("delete Nope:20260101_000000_000_aaaaaa")
    stderr = trained_kernel.text(outputs, stream="stderr")
    assert "see %bento list" in stderr and "bento-nb" not in stderr, stderr


@pytest.mark.parametrize("line, suggestion", [
    ("srve", "did you mean 'serve'?"),
    ("serve --prot 5001", "did you mean '--port'?"),
    ("containerize --bse-image x", "did you mean '--base-image'?"),
])
def test_a_mistyped_command_or_flag_gets_a_suggestion(trained_kernel, line, suggestion):
    stderr = trained_kernel.text(trained_kernel.magic(line), stream="stderr")
    assert stderr.startswith("%bento: error: ") and suggestion in stderr, stderr


def test_a_variable_that_is_no_model_says_so(trained_kernel):
    trained_kernel.run("not_a_model = 5\nsome_text = 'some text'")
    stderr = trained_kernel.text(trained_kernel.magic("serve not_a_model"), stream="stderr")
    assert "holds a 'int' object, which is neither a model" in stderr, stderr
    stderr = trained_kernel.text(trained_kernel.magic("serve some_text"), stream="stderr")
    assert "holds the text 'some text', which is neither a model" in stderr, stderr


def test_start_dev_server_serves_from_the_kernel_itself(trained_kernel):
    """BentoML 0.x's ``svc.start_dev_server()`` in a notebook: a server thread of the
    kernel (its pid answers), listed by ``%bento servers``, gone after stop_dev_server()."""
    port = free_port()
    trained_kernel.run(
        "from bento_nb import BentoService, api\n"
        "from bento_nb.adapters import JsonInput\n"
        "class Dev(BentoService):\n"
        "    @api(input=JsonInput())\n"
        "    def predict(self, value):\n"
        "        return {'got': value}\n"
        "dev = Dev()\n"
        f"dev_url = dev.start_dev_server(port={port})\n")
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=b"[1, 2]",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"got": [1, 2]}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=10) as response:
            assert json.loads(response.read())["pid"] == trained_kernel.pid
        assert str(port) in trained_kernel.text(trained_kernel.magic("servers"))
    finally:
        trained_kernel.run("dev.stop_dev_server()")
    assert port_is_free(port)


def test_predict_takes_pandas_to_json_forms(trained_kernel):
    """``%bento predict`` reads a DataFrame's ``to_json()`` forms (as a JSON literal or a
    variable) as the server does; the ``index`` form too: rows of the model's width."""
    k = trained_kernel
    k.magic("pack clf --name Forms")
    k.run("import json\nimport pandas as pd\nforms = pd.DataFrame(X[[0, 50, 100]])")
    for orient in ("columns", "index", "split", "records", "values"):
        literal = k.text(k.run(f"print(forms.to_json(orient={orient!r}))")).strip()
        outputs = k.magic(f"predict Forms {literal}")
        assert k.text(outputs).strip() == "[0, 1, 2]", (orient, k.text(outputs))
        outputs = k.run(f"body = json.loads(forms.to_json(orient={orient!r}))\n"
                        "%bento predict clf body")
        assert k.text(outputs).strip() == "[0, 1, 2]", (orient, k.text(outputs))

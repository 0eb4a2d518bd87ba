"""Terminal IPython has no widget frontend: the magic still works and every widget shows
its plain-text representation (tag, status, URL), containerize prints its outcome."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = r"""
%load_ext bento_nb
from sklearn import datasets, svm
iris = datasets.load_iris()
clf = svm.SVC(gamma="scale").fit(iris.data, iris.target)
%bento pack clf --name TermIris
%bento serve --port 0
predicted = %bento predict TermIris [[6.7, 3.0, 5.2, 2.3]]
print("PREDICTED", predicted)
%bento containerize TermIris -t term-iris:1
%bento stop all
"""


def test_terminal_ipython_shows_plain_text(tmp_path):
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/bento-nb-test-docker.sock",
               IPYTHONDIR=str(tmp_path / "ipython"))
    script = tmp_path / "flow.ipy"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner",
                           "--colors=NoColor", str(script)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Traceback" not in out
    assert "bento bundle TermIris:" in out and "requirements: " in out
    assert "bento server TermIris:" in out and "running at http://127.0.0.1:" in out
    assert "PREDICTED [2]" in out
    assert "docker build -t term-iris:1" in out
    assert "stopped 1 server(s)" in out

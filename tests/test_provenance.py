"""Issue 15 item 3: provenance in the manifest (git state, environment hash, cells).

A real git repository in tmp_path (clean, then with a dirty file), a real IPython shell for
the cell history and its cap, the manifest's check of the field, and how ``bento-nb get``
shows it. A bundle packed from a real Jupyter kernel: tests/notebook/test_provenance_kernel.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

import bento_nb
from bento_nb import provenance
from bento_nb.errors import BundleCorrupted

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(folder, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                           *args], cwd=folder, check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


@needs_git
def test_git_commit_and_dirty_flag(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git(tmp_path, "add", "train.py")
    git(tmp_path, "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "sub").mkdir()
    assert provenance.git_state(tmp_path / "sub") == {"commit": head, "dirty": False}
    (tmp_path / "train.py").write_text("print(2)\n")
    assert provenance.collect(cwd=tmp_path)["git"] == {"commit": head, "dirty": True}
    git(tmp_path, "commit", "-qam", "second")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert provenance.git_state(tmp_path)["dirty"] is True  # untracked files count


def test_no_git_outside_a_repository(tmp_path):
    assert provenance.git_state(tmp_path) is None
    assert "git" not in provenance.collect(cwd=tmp_path)


def test_the_package_hash_is_stable_and_covers_every_distribution():
    from importlib import metadata

    digest, count = provenance.packages_hash()
    assert (digest, count) == provenance.packages_hash()
    assert len(digest) == 64 and count >= 10
    names = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
    assert {"numpy", "pandas", "pyyaml"} <= names
    lines = sorted({f"{n}=={metadata.version(n)}" for n in ("numpy", "pandas")})
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() != digest  # all, not some


@pytest.fixture
def shell():
    """A real IPython shell (history in memory) that runs cells."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell(config=config)
    yield shell
    shell.history_manager.end_session()


def test_cells_run_so_far_are_kept_latest_first_within_the_cap(shell):
    for i in range(30):
        shell.run_cell(f"value_{i} = {i}  # {'x' * 100}", store_history=True)
    text, truncated = provenance.cell_sources(shell)
    assert not truncated and text.startswith("# In[1]:\nvalue_0 = 0")
    assert text.count("# In[") == 30
    text, truncated = provenance.cell_sources(shell, limit=1000)
    assert truncated and len(text.encode()) <= 1000
    assert "value_29 = 29" in text and "value_0 = 0" not in text
    assert text.startswith("# In[")  # whole cells only


def test_a_single_cell_over_the_cap_keeps_its_end(shell):
    shell.run_cell("big = '" + "y" * 5000 + "'  # end-marker", store_history=True)
    text, truncated = provenance.cell_sources(shell, limit=1000)
    assert truncated and len(text.encode()) <= 1000 and text.endswith("# end-marker\n")


def test_a_terminal_ipython_shell_has_cells_but_no_notebook(shell):
    shell.run_cell("token_used = 1", store_history=True)
    collected = provenance.collect(shell=shell)
    assert "notebook" not in collected  # no kernel: JPY_SESSION_NAME is not looked at
    assert "token_used = 1" in collected["cells"]


def test_pack_records_provenance_unless_told_not_to(iris_clf, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/not/a/kernel.ipynb")  # inherited by a script
    bundle = bento_nb.pack(iris_clf, name="Prov")
    recorded = bundle.manifest["provenance"]
    assert set(recorded) >= {"python", "packages_sha256", "packages"}
    assert "notebook" not in recorded and "cells" not in recorded  # not in a kernel
    assert recorded["python"].endswith(sys.version.split()[0])
    assert bento_nb.load(bundle.tag).bundle.provenance == recorded
    assert "provenance" not in bento_nb.pack(iris_clf, name="Prov", provenance=False).manifest


def test_a_damaged_provenance_is_bundle_corrupted_naming_the_field(iris_clf):
    from bento_nb.store.manifest import read_manifest, write_manifest

    bundle = bento_nb.pack(iris_clf, name="Prov")
    manifest = read_manifest(bundle.path)
    manifest["provenance"]["git"] = {"commit": "not hex; rm -rf", "dirty": True}
    write_manifest(bundle.path, manifest)
    with pytest.raises(BundleCorrupted, match=r"provenance\.git\.commit"):
        bento_nb.load(bundle.tag)


@needs_git
def test_bento_nb_get_shows_provenance_and_signature(iris_clf, iris, tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "empty")
    (tmp_path / "dirty.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    X, _ = iris
    bundle = bento_nb.pack(iris_clf, name="Prov", example=X[:2])
    run = [sys.executable, "-m", "bento_nb", "get", bundle.tag]
    text = subprocess.run(run, capture_output=True, text=True, timeout=120).stdout
    head = git(tmp_path, "rev-parse", "HEAD")
    assert f"# git: {head}, uncommitted changes" in text
    assert "# signature predict: 4 columns: number (from the example)" in text
    assert "# environment: CPython" in text
    got = json.loads(subprocess.run(run + ["--json"], capture_output=True, text=True,
                                    timeout=120).stdout)
    assert got["provenance"]["git"] == {"commit": head, "dirty": True}
    assert got["manifest"]["provenance"]["packages_sha256"] == provenance.packages_hash()[0]

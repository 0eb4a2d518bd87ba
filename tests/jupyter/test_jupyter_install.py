"""The install enables both extensions: ``jupyter server extension list`` shows bento_nb
enabled and ``jupyter labextension list`` shows the prebuilt bento-nb extension enabled, in
this environment and in a fresh venv after ``pip install -e .``."""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = pytest.mark.timeout(600)


def run(command: list[str], env: dict | None = None, timeout: float = 300) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    return ANSI.sub("", result.stdout + result.stderr)


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTER_", "BENTO_NB_JUPYTER_"))}
    env.update(extra)
    return env


def assert_enabled(python: str, env: dict) -> None:
    servers = run([python, "-m", "jupyter_server", "extension", "list"], env)
    assert re.search(r"bento_nb\s+enabled", servers), servers
    assert re.search(r"bento_nb [\d.]+\s+OK", servers), servers
    labs = run([python, "-m", "jupyterlab.labextensions", "list"], env)
    assert re.search(r"bento-nb v[\d.]+\s+enabled\s+OK\s+\(python, bento-nb\)", labs), labs


def test_extensions_enabled_in_this_environment(tmp_path):
    assert_enabled(sys.executable, clean_env(JUPYTER_CONFIG_DIR=str(tmp_path / "config")))


def venv_seeing_these_packages(venv: Path) -> str:
    """A new venv whose interpreter also imports what the running one imports (so nothing
    big is downloaded), whether the tests run in a venv or on the system Python: a ``.pth``
    file appends this environment's site-packages after the venv's own (``--system-site-
    packages`` would show the base interpreter's instead, not an enclosing venv's). What
    ``pip install`` puts in the new venv stays there. Returns its python."""
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    own = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip()
    ours = [p for p in {*site.getsitepackages(), sysconfig.get_path("purelib"),
                        sysconfig.get_path("platlib")} if Path(p).is_dir()]
    (Path(own) / "_enclosing_environment.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


@pytest.mark.slow
def test_extensions_enabled_after_pip_install_e_in_a_fresh_venv(tmp_path):
    """A new venv (sharing this environment's dependencies) gets the server-extension switch
    and the prebuilt Lab extension from ``pip install -e .``."""
    venv = tmp_path / "venv"
    python = venv_seeing_these_packages(venv)
    env = clean_env(JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
                    PIP_DISABLE_PIP_VERSION_CHECK="1")
    run([python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)], env, timeout=500)
    assert (venv / "etc/jupyter/jupyter_server_config.d/bento_nb.json").is_file()
    assert (venv / "share/jupyter/labextensions/bento-nb/package.json").is_file()
    assert_enabled(python, env)

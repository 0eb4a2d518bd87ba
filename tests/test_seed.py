"""The seed tutorial's three files, with only `bentoml` renamed, then its CLI calls."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SEED = Path(__file__).parent / "seed"
IRIS_ROWS = "5.1,3.5,1.4,0.2\n4.9,3.0,1.4,0.2\n6.2,3.4,5.4,2.3\n5.9,3.0,5.1,1.8\n"


def run(args, cwd, **kw):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, **kw)


def test_seed_files_pack_and_run(tmp_path):
    work = tmp_path / "tutorial"
    shutil.copytree(SEED, work)
    # train.py and bento_packer.py share one namespace, as in the tutorial's session.
    packed = run([sys.executable, "-c", "import runpy; g = runpy.run_path('train.py'); "
                  "runpy.run_path('bento_packer.py', init_globals=g)"], cwd=work)
    assert packed.returncode == 0, packed.stderr

    elsewhere = tmp_path / "elsewhere"  # bento_service.py is not importable from here
    elsewhere.mkdir()
    cli = [sys.executable, "-m", "bento_nb"]
    out = run(cli + ["run", "IrisClassifier:latest", "predict", "--input", "[[5.1, 3.5, 1.4, 0.2]]"],
              cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0]"

    for name, text in {"iris_data.csv": IRIS_ROWS,
                       "iris_header.csv": "sepal_length,sepal_width,petal_length,petal_width\n" + IRIS_ROWS}.items():
        (elsewhere / name).write_text(text)
        out = run(cli + ["run", "IrisClassifier:latest", "predict", "--input-file", f"./{name}"], cwd=elsewhere)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[0, 0, 2, 2]"

    bundle = next((Path(os.environ["BENTO_NB_HOME"]) / "repository" / "IrisClassifier").iterdir())
    assert "class IrisClassifier(BentoService)" in (bundle / "service.py").read_text()
    assert "pandas==" in (bundle / "requirements.txt").read_text()

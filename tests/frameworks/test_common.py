"""JSONArtifact, TextFileArtifact, PickleArtifact(pickle_module=...), checksums of native
files, and lazy framework imports (``import bento_nb`` never imports a framework)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

import bento_nb
from bento_nb import BentoService, api, artifacts
from bento_nb.adapters import JsonInput
from bento_nb.service.artifacts import JSONArtifact, PickleArtifact, TextFileArtifact
from bento_nb.errors import BundleCorrupted, PackError

FRAMEWORKS = ["torch", "tensorflow", "keras", "xgboost", "lightgbm", "catboost", "onnx",
              "onnxruntime", "transformers", "lightning"]


@artifacts([JSONArtifact("labels"), TextFileArtifact("prompt", file_extension=".md"),
            PickleArtifact("table", pickle_module="pickle")])
class Lookup(BentoService):
    @api(input=JsonInput())
    def predict(self, body):
        return {"label": self.artifacts.labels[str(body["i"])], "prompt": self.artifacts.prompt,
                "row": self.artifacts.table[body["i"]]}


def _saved():
    svc = Lookup()
    svc.pack("labels", {"0": "setosa", "1": "versicolor"})
    svc.pack("prompt", "Grüße — classify this\n")
    svc.pack("table", {0: (1, 2), 1: (3, 4)})
    return svc.save_bundle()


def test_json_text_and_pickle_module_artifacts_round_trip():
    bundle = _saved()
    files = {a["name"]: [f["file"] for f in a.get("files", [])] or [a["file"]]
             for a in bundle.manifest["artifacts"]}
    assert files == {"labels": ["artifacts/labels.json"], "prompt": ["artifacts/prompt.md"],
                     "table": ["artifacts/table.pkl"]}
    assert json.loads((bundle.path / "artifacts/labels.json").read_text()) == {"0": "setosa", "1": "versicolor"}
    assert (bundle.path / "artifacts/prompt.md").read_bytes() == "Grüße — classify this\n".encode()
    with open(bundle.path / "artifacts/table.pkl", "rb") as f:
        assert pickle.load(f) == {0: (1, 2), 1: (3, 4)}  # plain pickle, as asked

    svc = bento_nb.load(bundle.tag)
    assert svc.predict({"i": 1}) == {"label": "versicolor", "prompt": "Grüße — classify this\n",
                                     "row": (3, 4)}


def test_native_artifact_files_are_checksummed():
    bundle = _saved()
    (bundle.path / "artifacts/labels.json").write_text('{"0": "tampered"}')
    with pytest.raises(BundleCorrupted, match="checksum mismatch in artifacts/labels.json"):
        bento_nb.load(bundle.tag)


def test_pack_refuses_values_the_format_cannot_hold():
    svc = Lookup()
    with pytest.raises(PackError, match="JSONArtifact 'labels': the value cannot be written as JSON"):
        svc.pack("labels", {"x": object()})
    with pytest.raises(PackError, match="TextFileArtifact 'prompt' expects a str, got bytes"):
        svc.pack("prompt", b"raw")


def test_importing_bento_nb_imports_no_framework():
    code = ("import sys, bento_nb, bento_nb.frameworks, bento_nb.service, bento_nb.server, "
            "bento_nb.cli, bento_nb.frameworks.xgboost, bento_nb.frameworks.pytorch, "
            "bento_nb.frameworks.keras, bento_nb.frameworks.tensorflow, bento_nb.frameworks.onnx, "
            "bento_nb.frameworks.transformers, bento_nb.frameworks.lightgbm, "
            "bento_nb.frameworks.catboost\n"
            f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

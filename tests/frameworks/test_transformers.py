"""TransformersModelArtifact: a tiny BERT built from a config (random weights, a WordLevel
tokenizer made here: nothing downloaded), as a pipeline and as {"model", "tokenizer"},
saved with save_pretrained and loaded offline in a fresh process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import assert_pins, pack_in_subprocess

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

TINY = """
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from bento_nb.adapters import JsonInput
from bento_nb.frameworks.transformers import TransformersModelArtifact

words = [f"w{i}" for i in range(40)]
vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
core.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer = transformers.PreTrainedTokenizerFast(
    tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
torch.manual_seed(0)
config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=3)
model = transformers.BertForSequenceClassification(config).eval()
texts = [f"w{i % 40} w{(i * 7) % 40} w{(i * 3 + 1) % 40}" for i in range(64)]
"""

PIPELINE = TINY + """
pipe = transformers.pipeline("text-classification", model=model, tokenizer=tokenizer)
expected = [r["score"] for r in pipe(texts)]
labels = [r["label"] for r in pipe(texts)]

@env(infer_pip_packages=True)
@artifacts([TransformersModelArtifact("model")])
class Sentiment(BentoService):
    @api(input=JsonInput(), batch=True)
    def predict(self, texts):
        return self.artifacts.model(texts)

svc = Sentiment()
svc.pack("model", pipe)
done(svc, texts, expected, labels=labels)
"""

DICT = TINY + """
def logits(parts, texts):
    encoded = parts["tokenizer"](texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return parts["model"](**encoded).logits.numpy()

expected = [logits({"model": model, "tokenizer": tokenizer}, [t])[0] for t in texts]

@env(infer_pip_packages=True)
@artifacts([TransformersModelArtifact("model")])
class Logits(BentoService):
    @api(input=JsonInput(), batch=False)
    def predict(self, text):
        parts = self.artifacts.model
        encoded = parts["tokenizer"]([text], return_tensors="pt")
        with torch.no_grad():
            return parts["model"](**encoded).logits.numpy()[0]

svc = Logits()
svc.pack("model", {"model": model, "tokenizer": tokenizer})
done(svc, texts, expected)
"""


def _concurrently(server, texts):
    from concurrent.futures import ThreadPoolExecutor

    def one(text):
        response = server.post("predict", json.dumps(text))
        assert response.status == 200, response.body
        return json.loads(response.body)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, texts))


@pytest.mark.slow
def test_transformers_pipeline_round_trip(tmp_path, served, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # any download attempt fails the test
    packed = pack_in_subprocess(tmp_path, PIPELINE)
    server = served(packed["tag"])
    answers = _concurrently(server, packed["rows"])
    assert [a["label"] for a in answers] == packed["labels"]
    np.testing.assert_allclose([a["score"] for a in answers], packed["expected"], rtol=1e-4)
    assert len({a["score"] for a in answers}) > 1
    bad = server.post("predict", "3")
    assert bad.status == 400, bad.body
    assert "expects a non-empty string per input, got int" in json.loads(bad.body)["error"]["message"]
    assert_pins(packed, "transformers", "torch", "tokenizers")


@pytest.mark.slow
def test_transformers_model_and_tokenizer_round_trip(tmp_path, served, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    packed = pack_in_subprocess(tmp_path, DICT)
    server = served(packed["tag"])
    answers = _concurrently(server, packed["rows"])
    np.testing.assert_allclose(answers, packed["expected"], rtol=1e-4, atol=1e-6)
    assert_pins(packed, "transformers", "torch")


def test_transformers_pack_refuses_other_objects():
    from bento_nb.errors import PackError
    from bento_nb.frameworks.transformers import TransformersModelArtifact

    with pytest.raises(PackError, match='expects a transformers Pipeline, a dict .*got int'):
        TransformersModelArtifact("model").check(3)
    with pytest.raises(PackError, match='exactly the keys "model" and "tokenizer"'):
        TransformersModelArtifact("model").check({"model": None})


def test_transformers_packs_a_local_folder_with_its_head(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a folder, never the hub
    from bento_nb.frameworks.transformers import TransformersModelArtifact

    scope: dict = {}
    exec(TINY, scope)
    scope["model"].save_pretrained(tmp_path / "tiny")
    scope["tokenizer"].save_pretrained(tmp_path / "tiny")
    parts = TransformersModelArtifact("model").check(tmp_path / "tiny")
    assert type(parts["model"]).__name__ == "BertForSequenceClassification"  # not a bare AutoModel
    assert parts["tokenizer"]("w1 w2")["input_ids"] == scope["tokenizer"]("w1 w2")["input_ids"]

"""Hugging Face transformers: ``TransformersModelArtifact('model')``, as in BentoML 0.x.

Packs a ``transformers.Pipeline``, a dict ``{"model": ..., "tokenizer": ...}`` (0.x's
form), or the path of a local ``save_pretrained`` folder (loaded with
``local_files_only=True``: nothing is downloaded). Saved with ``save_pretrained`` into
``artifacts/<name>/`` and loaded offline (``local_files_only=True``) into the same model
class, tokenizer and, for a pipeline, the same task.

The API sees the dict, or for a pipeline a :class:`TransformersPipeline`: the pipeline
(every attribute is the pipeline's) that refuses, with a 400, inputs a text pipeline
cannot read::

    @artifacts([TransformersModelArtifact("model")])
    class Sentiment(BentoService):
        @api(input=JsonInput(), batch=True)
        def predict(self, texts):           # one JSON string per request
            return self.artifacts.model(texts)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..service.artifacts import NativeArtifact
from ..errors import BadInput, PackError
from ._common import is_instance, require, type_name


class TransformersModelArtifact(NativeArtifact):
    """A transformers pipeline, or a model with its tokenizer."""

    framework_modules = ("transformers", "tokenizers", "torch")

    def check(self, obj: Any) -> Any:
        if isinstance(obj, TransformersPipeline):
            return obj
        if isinstance(obj, (str, os.PathLike)):
            return _load_folder(Path(obj), {"kind": "dict"}, self)
        if is_instance(obj, "transformers", "Pipeline"):
            return TransformersPipeline(obj)
        if isinstance(obj, dict):
            if set(obj) != {"model", "tokenizer"}:
                raise PackError('TransformersModelArtifact expects a dict with exactly the keys '
                                f'"model" and "tokenizer", got keys {sorted(map(str, obj))}')
            for key in ("model", "tokenizer"):
                if not callable(getattr(obj[key], "save_pretrained", None)):
                    raise PackError(f'TransformersModelArtifact: {key!r} has no save_pretrained(); '
                                    f"got {type_name(obj[key])}")
            return obj
        raise PackError("TransformersModelArtifact expects a transformers Pipeline, a dict "
                        '{"model": ..., "tokenizer": ...} or a save_pretrained folder, '
                        f"got {type_name(obj)}")

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        target = folder / self.name
        if isinstance(obj, TransformersPipeline):
            pipe = obj.pipeline
            model, tokenizer = pipe.model, pipe.tokenizer
            extra = {"kind": "pipeline", "task": pipe.task}
        else:
            model, tokenizer = obj["model"], obj["tokenizer"]
            extra = {"kind": "dict"}
        model.save_pretrained(str(target))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(target))
        extra.update({"format": "save_pretrained", "model_class": type(model).__name__,
                      "tokenizer_class": type(tokenizer).__name__ if tokenizer is not None else None})
        return [target], extra

    def read(self, folder: Path, record: dict) -> Any:
        return _load_folder(folder / self.name, record, self)


def _load_folder(path: Path, record: dict, artifact: NativeArtifact) -> Any:
    transformers = require("transformers", type(artifact).__name__)
    if not (path / "config.json").is_file():
        raise PackError(f"TransformersModelArtifact: {path} is not a save_pretrained folder "
                        "(no config.json)")
    name = record.get("model_class") or _architecture(path)
    model_class = getattr(transformers, name or "", None) or transformers.AutoModel
    model = model_class.from_pretrained(str(path), local_files_only=True)
    tokenizer = None
    if record.get("tokenizer_class") is not None or record.get("kind") == "dict":
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if record.get("kind") == "pipeline":
        return TransformersPipeline(transformers.pipeline(record["task"], model=model,
                                                          tokenizer=tokenizer))
    return {"model": model, "tokenizer": tokenizer}


def _architecture(path: Path) -> str | None:
    """The model class a save_pretrained folder names (``architectures`` in config.json)."""
    import json

    with open(path / "config.json", encoding="utf-8") as f:
        architectures = json.load(f).get("architectures") or [None]
    return architectures[0]


class TransformersPipeline:
    """A pipeline that answers inputs a text pipeline cannot read with BadInput (400)."""

    def __init__(self, pipeline: Any):
        self.pipeline = pipeline
        self._text = (getattr(pipeline, "tokenizer", None) is not None
                      and getattr(pipeline, "image_processor", None) is None
                      and getattr(pipeline, "feature_extractor", None) is None)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if self._text:
            items = inputs if isinstance(inputs, list) else [inputs]
            for item in items:
                if not isinstance(item, str) or not item:
                    raise BadInput(f"the {self.pipeline.task} pipeline expects a non-empty string "
                                   f"per input, got {type(item).__name__} {str(item)[:40]!r}")
        return self.pipeline(inputs, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["pipeline"], attr)

    def __repr__(self) -> str:
        return f"<TransformersPipeline {self.pipeline.task}>"

"""PyTorch models: ``PytorchModelArtifact('net')`` and ``PytorchLightningModelArtifact``,
as in BentoML 0.x.

A TorchScript module (``torch.jit.trace`` or ``torch.jit.script``) is saved with
``torch.jit.save`` as ``artifacts/<name>.pt`` and loaded with ``torch.jit.load``: no Python
code needed. A plain ``nn.Module`` is saved as its ``state_dict`` in ``<name>.pt``
(``torch.save``; loaded with ``weights_only=True``) beside ``<name>.module.pkl``, the
module's structure without its tensors, pickled with its classes by value when they live
in the notebook or a local file, so the serving process needs no training code.

The API sees a :class:`TorchModule`: the model in ``eval()`` mode, called under
``torch.no_grad()``. Given a DataFrame, rows or an array it converts them to a tensor of the
model's dtype and returns numpy; given tensors it returns what the model returns::

    @artifacts([PytorchModelArtifact("net")])
    class Classifier(BentoService):
        @api(input=DataframeInput(), batch=True)
        def predict(self, df):
            return self.artifacts.net(df).argmax(axis=1)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cloudpickle

from .. import _pickling
from ..service.artifacts import NativeArtifact
from ..errors import PackError
from ._common import is_instance, require, to_array, type_name


class PytorchModelArtifact(NativeArtifact):
    """A ``torch.nn.Module`` or TorchScript module."""

    framework_modules = ("torch",)

    def __init__(self, name: str, file_extension: str = ".pt"):
        super().__init__(name)
        if not file_extension.startswith(".") or "/" in file_extension:
            raise ValueError(f"file_extension must look like '.pt', got {file_extension!r}")
        self.file_extension = file_extension

    def check(self, obj: Any) -> Any:
        torch = require("torch", type(self).__name__)
        if isinstance(obj, TorchModule):
            return obj
        if not isinstance(obj, torch.nn.Module):
            raise PackError(f"{type(self).__name__} expects a torch.nn.Module or a TorchScript "
                            f"module (torch.jit.trace/script), got {type_name(obj)}")
        return TorchModule(obj)

    def _path(self, folder: Path) -> Path:
        return folder / f"{self.name}{self.file_extension}"

    def write(self, obj: Any, folder: Path) -> tuple[list[Path], dict]:
        import torch

        module = obj.module
        if isinstance(module, torch.jit.ScriptModule):
            torch.jit.save(module, str(self._path(folder)))
            return [self._path(folder)], {"format": "torchscript"}
        torch.save(module.state_dict(), str(self._path(folder)))
        structure = folder / f"{self.name}.module.pkl"
        with _pickling.pickle_by_value(_local_classes(module)), open(structure, "wb") as f:
            cloudpickle.dump(_without_tensors(module), f, protocol=5)
        return [self._path(folder), structure], {"format": "state_dict"}

    def read(self, folder: Path, record: dict) -> Any:
        torch = require("torch", type(self).__name__)
        if record.get("format") == "torchscript":
            return TorchModule(torch.jit.load(str(self._path(folder)), map_location="cpu"))
        with open(folder / f"{self.name}.module.pkl", "rb") as f:
            module = cloudpickle.load(f)
        state = torch.load(str(self._path(folder)), map_location="cpu", weights_only=True)
        module.load_state_dict(state, assign=True)  # the loaded tensors replace meta ones
        return TorchModule(module)


class PytorchLightningModelArtifact(PytorchModelArtifact):
    """A LightningModule, saved as TorchScript (``to_torchscript()``), as in BentoML 0.x;
    served without lightning installed (only torch)."""

    def check(self, obj: Any) -> Any:
        require("torch", type(self).__name__)
        if isinstance(obj, TorchModule):
            return obj
        if not (is_instance(obj, "lightning.pytorch", "LightningModule")
                or is_instance(obj, "pytorch_lightning", "LightningModule")):
            raise PackError(f"PytorchLightningModelArtifact expects a LightningModule, "
                            f"got {type_name(obj)}")
        return TorchModule(obj.to_torchscript())


def _local_classes(module: Any) -> list:
    """Local modules defining the classes of ``module`` and its submodules."""
    return _pickling.local_modules(*module.modules())


def _without_tensors(module: Any) -> Any:
    """A deep copy of ``module`` whose parameters and persistent buffers are empty "meta"
    tensors (no data): the state_dict file holds the values. Non-persistent buffers, which
    no state_dict holds, are copied as they are."""
    import torch

    memo: dict[int, Any] = {}
    for sub in module.modules():
        for _, param in sub.named_parameters(recurse=False):
            memo[id(param)] = torch.nn.Parameter(torch.empty_like(param, device="meta"),
                                                 requires_grad=param.requires_grad)
        for name, buffer in sub.named_buffers(recurse=False):
            if buffer is not None and name not in sub._non_persistent_buffers_set:
                memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(module, memo)


class TorchModule:
    """What an API sees: the module in ``eval()`` mode, called under ``torch.no_grad()``.

    ``net(df)`` / ``net.predict(df)``: a DataFrame, rows or array → a tensor of the model's
    dtype → the output as numpy. ``net(tensor)`` returns the model's own output (tensors).
    Every other attribute is the module's (``net.module`` is the module itself).
    """

    def __init__(self, module: Any):
        module.eval()
        self.module = module
        self.dtype = _input_dtype(module)
        width = _input_width(module)
        if width is not None:
            self.n_features_in_ = width

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        if any(isinstance(a, torch.Tensor) for a in (*args, *kwargs.values())):
            with torch.no_grad():
                return self.module(*args, **kwargs)
        return self.predict(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        import numpy as np
        import torch

        numpy_dtype = np.dtype(str(self.dtype).replace("torch.", ""))
        tensors = [a if isinstance(a, torch.Tensor) else torch.from_numpy(to_array(a, numpy_dtype))
                   for a in args]
        with torch.no_grad():
            return _to_numpy(self.module(*tensors, **kwargs))

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["module"], attr)

    def __repr__(self) -> str:
        return f"<TorchModule {type(self.module).__name__}>"


def _to_numpy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [_to_numpy(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return value


def _input_dtype(module: Any) -> Any:
    import torch

    for param in module.parameters():
        if param.dtype.is_floating_point:
            return param.dtype
    return torch.float32


def _input_width(module: Any) -> int | None:
    """Columns per row the model takes, when its format tells: the example shape of a
    traced module's input, else the first layer when it is a ``Linear``."""
    graph = getattr(module, "graph", None)
    if graph is not None and hasattr(module, "_c") and type(module).__name__.endswith("TracedModule"):
        inputs = list(graph.inputs())[1:]
        if len(inputs) == 1:
            sizes = getattr(inputs[0].type(), "sizes", lambda: None)()
            if sizes and len(sizes) == 2:
                return int(sizes[1])
    for sub in module.modules():
        params = list(sub.named_parameters(recurse=False))
        if not params:
            continue
        kind = getattr(sub, "original_name", type(sub).__name__)
        weight = dict(params).get("weight")
        if kind == "Linear" and weight is not None and weight.dim() == 2:
            return int(weight.shape[1])
        return None
    return None

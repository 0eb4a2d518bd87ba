"""PytorchModelArtifact: an nn.Module (state_dict + its structure, class by value) and
TorchScript modules (traced, scripted; torch.jit.save), served from a fresh process."""

from __future__ import annotations

import pytest

from .conftest import artifact_files, assert_pins, check_served, pack_in_subprocess

torch = pytest.importorskip("torch")

TRAIN = """
import torch
from bento_nb.frameworks.pytorch import PytorchModelArtifact

class Net(torch.nn.Module):  # defined here only: the server never sees this file
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.drop = torch.nn.Dropout(0.5)  # eval() must switch it off when serving
        self.out = torch.nn.Linear(8, 2)
        self.register_buffer("scale", torch.tensor(3.0), persistent=False)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.hidden(x)))) * self.scale

torch.manual_seed(0)
net = Net().eval()
X = torch.rand(64, 4)
with torch.no_grad():
    expected = net(X).numpy()
KIND = "{kind}"
model = {{"module": net, "traced": lambda: torch.jit.trace(net, X[:1]),
          "scripted": lambda: torch.jit.script(net)}}[KIND]
model = model if KIND == "module" else model()
net.train()  # the packed model is served in eval() mode whatever its state here

@env(infer_pip_packages=True)
@artifacts([PytorchModelArtifact("net")])
class TorchService(BentoService):
    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.net(df)

svc = TorchService()
svc.pack("net", model)
done(svc, X.numpy(), expected)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["module", "traced", "scripted"])
def test_pytorch_round_trip(tmp_path, served, kind):
    packed = pack_in_subprocess(tmp_path, TRAIN.format(kind=kind))
    expected_files = (["artifacts/net.module.pkl", "artifacts/net.pt"] if kind == "module"
                      else ["artifacts/net.pt"])
    assert sorted(artifact_files(packed)) == expected_files
    check_served(served, packed)
    assert_pins(packed, "torch")


def test_pytorch_module_serves_under_no_grad_in_eval_mode():
    from bento_nb.frameworks.pytorch import PytorchModelArtifact

    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.9))
    served = PytorchModelArtifact("net").check(net)
    assert not net.training and served.n_features_in_ == 3
    rows = [[1.0, 2.0, 3.0]]
    assert served(rows).tolist() == served(rows).tolist()  # no dropout
    out = served(torch.tensor(rows))
    assert isinstance(out, torch.Tensor) and not out.requires_grad


def test_pytorch_pack_refuses_other_objects():
    from bento_nb import BentoService, artifacts
    from bento_nb.errors import PackError
    from bento_nb.frameworks.pytorch import PytorchModelArtifact

    @artifacts([PytorchModelArtifact("net")])
    class Svc(BentoService):
        pass

    with pytest.raises(PackError, match="expects a torch.nn.Module or a TorchScript module .*got dict"):
        Svc().pack("net", {})


THREADS = """
import torch
from bento_nb.adapters import JsonInput

class Threads(BentoService):
    @api(input=JsonInput())
    def threads(self, _body):
        return {"torch": torch.get_num_threads()}

svc = Threads()
done(svc, [], [])
"""


@pytest.mark.slow
def test_bento_nb_serve_leaves_a_core_to_its_event_loop_unless_told(tmp_path, served, monkeypatch):
    """OpenMP's thread per core spin-waits against the server's own event loop (2.3 ms
    instead of 0.12 ms per batch on 2 busy cores): ``bento-nb serve`` gives torch
    ``cpu_count - 1`` threads (at least 1), and ``OMP_NUM_THREADS`` when the user sets it."""
    import json
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    packed = pack_in_subprocess(tmp_path, THREADS)
    answer = served(packed["tag"]).post("threads", {})
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == {"torch": max(1, os.cpu_count() - 1)}

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    answer = served(packed["tag"]).post("threads", {})
    assert json.loads(answer.body) == {"torch": min(2, os.cpu_count())}  # torch's own cap

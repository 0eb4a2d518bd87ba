"""PytorchLightningModelArtifact: a LightningModule saved as TorchScript, served from a
fresh process that needs only torch."""

from __future__ import annotations

import pytest

from .conftest import artifact_files, assert_pins, check_served, pack_in_subprocess

pytest.importorskip("torch")
pytest.importorskip("lightning")

TRAIN = """
import torch
import lightning
from bento_nb.frameworks.pytorch import PytorchLightningModelArtifact

class Regressor(lightning.LightningModule):  # defined here only
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.layer(x) * 2

torch.manual_seed(0)
model = Regressor().eval()
X = torch.rand(64, 4)
with torch.no_grad():
    expected = model(X).numpy()

@env(infer_pip_packages=True)
@artifacts([PytorchLightningModelArtifact("model")])
class LightningService(BentoService):
    @api(input=DataframeInput(), batch=True)
    def predict(self, df):
        return self.artifacts.model(df)

svc = LightningService()
svc.pack("model", model)
done(svc, X.numpy(), expected)
"""


@pytest.mark.slow
def test_lightning_round_trip(tmp_path, served):
    packed = pack_in_subprocess(tmp_path, TRAIN)
    assert artifact_files(packed) == ["artifacts/model.pt"]
    check_served(served, packed)
    assert_pins(packed, "torch")


def test_lightning_refuses_a_plain_module():
    import torch

    from bento_nb.errors import PackError
    from bento_nb.frameworks.pytorch import PytorchLightningModelArtifact

    with pytest.raises(PackError, match="expects a LightningModule, got torch.nn.modules.linear.Linear"):
        PytorchLightningModelArtifact("model").check(torch.nn.Linear(2, 2))

"""Functions that take a model move their inputs to the model's device (and hand back CPU results): checked with a
model whose parameters sit on ``meta``, a device the inputs (CPU arrays) are not on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rewinterp_utils.attribution import gradient_saliency


class SpyMaze(nn.Module):
    """R(s, s') on ``device``; records the device of the inputs it is given."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(11, 11, device=device))
        self.seen: list[torch.device] = []

    def forward(self, s, s_next):
        self.seen += [s.device, s_next.device]
        return (s * self.w).sum((1, 2)) + (s_next * self.w).sum((1, 2))


def test_gradient_saliency_moves_its_inputs_to_the_model():
    grids = np.random.default_rng(0).integers(0, 4, (3, 11, 11))
    spy = SpyMaze("meta")
    with pytest.raises(NotImplementedError):  # a meta tensor has no data to copy back to the CPU
        gradient_saliency(spy, grids, torch.as_tensor(grids))
    assert spy.seen == [torch.device("meta")] * 2  # the inputs went to the model's device
    cpu = SpyMaze("cpu")
    sal_s, sal_next = gradient_saliency(cpu, grids, grids)
    assert sal_s.device.type == "cpu" and torch.equal(sal_s, torch.ones(3, 11, 11))  # |dR/ds| = w


def test_the_feature_probe_moves_its_inputs_to_the_model():
    from rewinterp_utils.reward_models import AtariRewardCNN

    model = AtariRewardCNN()
    stacks = np.random.default_rng(0).integers(0, 256, (5, 84, 84, 4), dtype=np.uint8)
    features = model.feature_activations(stacks, batch_size=2)
    with torch.no_grad():
        expected = model.features(torch.as_tensor(stacks).permute(0, 3, 1, 2).float() / 255).numpy()
    assert features.shape == (5, 512) and np.allclose(features, expected, atol=1e-6)
    seen = []
    meta = AtariRewardCNN().to("meta")
    meta.features.register_forward_pre_hook(lambda mod, args: seen.append(args[0].device))
    with pytest.raises(NotImplementedError):
        meta.feature_activations(stacks)
    assert seen == [torch.device("meta")]


def test_the_audit_loads_a_model_onto_the_chosen_device(tmp_path, monkeypatch):
    """``rewinterp audit`` loads a saved model where ``REWINTERP_DEVICE`` says (``meta`` stands in for a GPU), not
    always on the CPU."""
    from rewinterp_utils import audit, audit_inputs, reward_models
    from rewinterp_utils.reward_models import MazeRewardMLP, save_model

    save_model(MazeRewardMLP(), tmp_path / "m.pt")
    devices = []
    real = reward_models.load_model

    def spy(path, device=None):
        devices.append(device)
        return real(path, "cpu")

    monkeypatch.setattr(audit_inputs, "load_model", spy)
    audit.load_audited(str(tmp_path / "m.pt"), "EmptyMaze-10x10-CoinFlipGoal-v3")
    assert devices == [None]  # None: load_model's default, REWINTERP_DEVICE

"""Saliency of Atari reward models (rewinterp_utils.attribution): occlusion, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import random_stacks as stacks
from torch import nn

from rewinterp_utils.attribution import (
    METHODS,
    attribute,
    blur_frames,
    gradient_attribution,
    integrated_gradients_attribution,
    mask_centres,
    occlusion_masks,
    occlusion_saliency,
    upsample_saliency,
)
from rewinterp_utils.reward_models import RewardModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class SmallCNN(RewardModel):
    """A small random CNN on channels-last (N, 84, 84, 4) stacks; ``act`` = Tanh makes it smooth."""

    inputs = ("s_next",)

    def __init__(self, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(4, 4, 8, stride=4), act(), nn.Conv2d(4, 4, 4, stride=4), act(),
                                 nn.Flatten(), nn.Linear(4 * 5 * 5, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2).to(self.net[0].weight.dtype) / 255.0).squeeze(-1)


class RegionLinear(RewardModel):
    """R(I) = sum of w * I over rows/cols [0, 10) of every frame, 0 elsewhere (float64)."""

    inputs = ("s_next",)

    def __init__(self) -> None:
        super().__init__()
        w = torch.zeros(84, 84, 4, dtype=torch.float64)
        w[:10, :10] = torch.rand(10, 10, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.w.dtype) * self.w).sum(dim=(1, 2, 3))


# ------------------------------------------------------------------------------------------- occlusion
def test_mask_grid():
    assert list(mask_centres()) == list(range(0, 84, 5)) and len(mask_centres()) == 17
    masks = occlusion_masks()
    assert masks.shape == (17, 17, 84, 84)
    for a, b in [(0, 0), (3, 7), (16, 16)]:
        m = masks[a, b]
        assert m.max() == 1.0 and divmod(int(m.argmax()), 84) == (5 * a, 5 * b)
        assert m[5 * a, min(5 * b + 5, 83) if b < 16 else 5 * b - 5] == pytest.approx(np.exp(-0.5), rel=1e-6)
    assert occlusion_masks() is masks  # cached


# batched, chunked and loop occlusion against a plain per-position loop: tests/test_oracles.py
def test_occlusion_of_region_model():
    """A linear model on the top-left 10x10 corner: exact scores, ~0 far from the corner."""
    model, obs = RegionLinear(), stacks(1)[0]
    scores = occlusion_saliency(model, obs)

    image, blurred, w = obs.astype(np.float64), blur_frames(obs), model.w.detach().numpy()
    masks = occlusion_masks(dtype=torch.float64).numpy()[..., None]
    expected = 0.5 * ((w * masks * (image - blurred)).sum(axis=(2, 3, 4))) ** 2
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-12 * expected.max())
    assert scores.max() > 0
    far = np.hypot(*np.meshgrid(mask_centres(), mask_centres(), indexing="ij")) > 50 + 9 * np.sqrt(2)
    assert far.any() and scores[far].max() <= 1e-12 * scores.max()


def test_upsample_saliency():
    scores = np.random.default_rng(0).random((2, 17, 17))
    up = upsample_saliency(scores)
    assert up.shape == (2, 84, 84)
    np.testing.assert_allclose(up[:, ::5, ::5], scores)  # exact at the mask centres
    np.testing.assert_allclose(up[:, 81:, 81:], scores[:, -1:, -1:].repeat(3, 1).repeat(3, 2))
    np.testing.assert_allclose(upsample_saliency(np.ones((17, 17)), (210, 160)), 1.0)


# ------------------------------------------------------------------------------------------- gradients
class TwoPixels(nn.Module):
    """R depends on pixel (10, 20) of frame 0 and pixel (40, 41) of frame 3 only (float64)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([0.7, -1.3], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = x[:, 10, 20, 0] / 255, x[:, 40, 41, 3] / 255
        return self.a[0] * torch.tanh(3 * p) + self.a[1] * p * q**2


def test_gradient_matches_finite_differences():
    model, obs = TwoPixels(), stacks(2).astype(np.float64)
    grad = gradient_attribution(model, obs)
    assert grad.shape == (2, 84, 84, 4)
    h = 1e-4
    for idx in [(10, 20, 0), (40, 41, 3)]:
        plus, minus = obs.copy(), obs.copy()
        plus[(slice(None), *idx)] += h
        minus[(slice(None), *idx)] -= h
        with torch.no_grad():
            fd = (model(torch.from_numpy(plus)) - model(torch.from_numpy(minus))).numpy() / (2 * h)
        np.testing.assert_allclose(grad[(slice(None), *idx)], np.abs(fd), rtol=1e-6)
    assert np.count_nonzero(grad) <= 4
    np.testing.assert_allclose(attribute(model, obs, "gradient"), grad.sum(-1))


def test_integrated_gradients_completeness():
    torch.manual_seed(0)
    model, obs = SmallCNN(nn.Tanh).double(), stacks(2).astype(np.float64)
    attr = integrated_gradients_attribution(model, obs, n_steps=64)
    assert attr.shape == (2, 84, 84, 4)
    with torch.no_grad():
        delta = (model(torch.from_numpy(obs)) - model(torch.zeros(1, 84, 84, 4, dtype=torch.float64))).numpy()
    np.testing.assert_allclose(attr.sum(axis=(1, 2, 3)), delta, rtol=1e-3)
    np.testing.assert_allclose(attribute(model, obs, "integrated_gradients", n_steps=64).sum(axis=(1, 2)), delta,
                               rtol=1e-3)


@pytest.mark.parametrize("method", ["occlusion", "gradient", "integrated_gradients"])
def test_attribute_shapes(method):
    torch.manual_seed(0)
    model, obs = SmallCNN(), stacks(2)
    kwargs = {"n_steps": 4} if method == "integrated_gradients" else {}
    assert attribute(model, obs, method, **kwargs).shape == (2, 84, 84)
    assert attribute(model, obs[0], method, **kwargs).shape == (84, 84)


def test_attribute_bad_inputs():
    model = SmallCNN()
    with pytest.raises(ValueError, match="valid methods: " + ", ".join(METHODS)):
        attribute(model, stacks(1), method="lime")
    for shape in [(84, 84), (2, 4, 84, 84), (2, 84, 84, 3)]:
        with pytest.raises(ValueError, match=r"expected observations of shape \(N, 84, 84, 4\)"):
            attribute(model, np.zeros(shape, dtype=np.uint8))

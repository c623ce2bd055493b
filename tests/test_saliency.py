"""gradient_saliency equals |dR/dx| computed by central finite differences."""

from __future__ import annotations

import pytest
import torch

from rewinterp_utils.reward_models import MazeRewardMLP
from rewinterp_utils.attribution import gradient_saliency


def finite_difference_saliency(model, s, s_next, h=1e-5):
    """|(R(x + h e_i) - R(x - h e_i)) / 2h| for every element of s and of s_next, per batch item."""
    out = []
    n = s[0].numel()
    eye = torch.eye(n, dtype=s.dtype).reshape(n, *s.shape[1:])
    with torch.no_grad():
        for which in (0, 1):
            maps = []
            for b in range(s.shape[0]):
                base = [s[b].expand(n, *s.shape[1:]).clone(), s_next[b].expand(n, *s.shape[1:]).clone()]
                plus, minus = [x.clone() for x in base], [x.clone() for x in base]
                plus[which] += h * eye
                minus[which] -= h * eye
                grad = (model(*plus) - model(*minus)) / (2 * h)
                maps.append(grad.abs().reshape(s.shape[1:]))
            out.append(torch.stack(maps))
    return tuple(out)


@pytest.mark.parametrize("seed", [0, 1])
def test_saliency_matches_finite_differences_float64(seed):
    torch.manual_seed(seed)
    model = MazeRewardMLP().double()
    batch = 3
    s = torch.randint(0, 4, (batch, 11, 11)).double()
    s_next = torch.randint(0, 4, (batch, 11, 11)).double() + 0.3 * torch.rand(batch, 11, 11, dtype=torch.float64)
    sal = gradient_saliency(model, s, s_next)
    assert isinstance(sal, tuple) and len(sal) == 2
    for a in sal:
        assert a.shape == (batch, 11, 11) and a.dtype == torch.float64
        assert not a.requires_grad
    fd = finite_difference_saliency(model, s, s_next)
    for a, f in zip(sal, fd):
        torch.testing.assert_close(a, f, rtol=1e-6, atol=1e-8)
    # the two maps really differ (s and s' enter the model through different weights)
    assert not torch.allclose(sal[0], sal[1])
    # per-example: each row depends only on its own example
    one = gradient_saliency(model, s[1:2], s_next[1:2])
    torch.testing.assert_close(one[0][0], sal[0][1], rtol=1e-12, atol=1e-15)


def test_saliency_inputs_not_modified_and_model_eval():
    torch.manual_seed(0)
    model = MazeRewardMLP().double().train()
    s = torch.randint(0, 4, (2, 11, 11)).double()
    s2 = s.clone()
    s_copy = s.clone()
    gradient_saliency(model, s, s2)
    assert not model.training
    assert torch.equal(s, s_copy) and not s.requires_grad and s.grad is None
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_saliency_uint8_inputs_are_cast():
    torch.manual_seed(0)
    model = MazeRewardMLP()
    s = torch.randint(0, 4, (4, 11, 11), dtype=torch.uint8)
    s_next = torch.randint(0, 4, (4, 11, 11), dtype=torch.uint8)
    sal = gradient_saliency(model, s, s_next)
    assert len(sal) == 2
    for a in sal:
        assert a.shape == (4, 11, 11) and a.dtype == torch.get_default_dtype() == torch.float32
    ref = gradient_saliency(model, s.float(), s_next.float())
    for a, r in zip(sal, ref):
        torch.testing.assert_close(a, r, rtol=0, atol=0)
    # uint8 grids against a float64 model: cast, then the gradient agrees with the float64 one
    model64 = MazeRewardMLP().double()
    sal64 = gradient_saliency(model64, s, s_next)
    ref64 = gradient_saliency(model64, s.double(), s_next.double())
    for a, r in zip(sal64, ref64):
        assert a.shape == (4, 11, 11)
        torch.testing.assert_close(a.double(), r, rtol=1e-5, atol=1e-7)


def test_saliency_single_input_model():
    class Quad(torch.nn.Module):
        def forward(self, x):
            return (x ** 2).sum(dim=(1, 2)) * 0.5 - 3 * x[:, 0, 0]

    x = torch.randn(2, 11, 11, dtype=torch.float64)
    (sal,) = gradient_saliency(Quad(), x)
    expected = x.abs().clone()
    expected[:, 0, 0] = (x[:, 0, 0] - 3).abs()
    torch.testing.assert_close(sal, expected)

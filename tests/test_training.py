"""The gridworld's regression recipe: fit_maze_reward_model against the recipe written out with fit_regression,
its shuffled-target and nudged variants, and the one-ulp nudge against numpy's nextafter."""

from __future__ import annotations

import numpy as np
import torch

from rewinterp_utils.reward_models import MazeRewardMLP, fit_regression
from rewinterp_utils.training import fit_maze_reward_model, nudge_weights


def _data(n: int = 31) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"s": rng.integers(0, 4, (n, 11, 11)).astype(np.float32),
            "s_next": rng.integers(0, 4, (n, 11, 11)).astype(np.float32),
            "reward": rng.integers(0, 2, n).astype(np.float32)}


def _state(model: torch.nn.Module) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in model.parameters()]


def test_fit_maze_reward_model_is_the_written_out_recipe():
    d = _data()
    ours, history = fit_maze_reward_model(d, 8, epochs=2, batch_size=5, learning_rate=1e-3, seed=7)
    torch.manual_seed(7)
    plain = MazeRewardMLP(hidden=8)
    fit_regression(plain, (torch.as_tensor(d["s"]), torch.as_tensor(d["s_next"])), torch.as_tensor(d["reward"]),
                   2, 5, 1e-3, seed=7)
    assert len(history) == 2 and not ours.training
    for a, b in zip(_state(ours), _state(plain)):
        np.testing.assert_array_equal(a, b)
    shuffled, _ = fit_maze_reward_model(d, 8, 2, 5, 1e-3, seed=7, targets=d["reward"][::-1].copy())
    assert any((a != b).any() for a, b in zip(_state(shuffled), _state(plain)))


def test_nudge_moves_every_weight_by_one_ulp():
    torch.manual_seed(0)
    model = MazeRewardMLP(hidden=8)
    before = _state(model)
    nudge_weights(model)
    for a, b in zip(before, _state(model)):
        np.testing.assert_array_equal(b, np.nextafter(a, np.float32(np.inf)))
    d = _data()
    nudged, _ = fit_maze_reward_model(d, 8, 1, 5, 1e-3, seed=0, nudge=True)
    plain, _ = fit_maze_reward_model(d, 8, 1, 5, 1e-3, seed=0)
    assert any((a != b).any() for a, b in zip(_state(nudged), _state(plain)))

"""The gridworld's regression recipe in one place: a fresh maze reward model fitted to a transition dataset.

The reward-model stage, the seeds page's refits and the sanity page's shuffled-reward control all train with
:func:`fit_maze_reward_model`, so they share one recipe (initialisation seed, sizes, minibatch order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from rewinterp_utils.reward_models import MazeRewardMLP, fit_regression


def nudge_weights(model: nn.Module) -> nn.Module:
    """Move every parameter of ``model`` up by one unit in the last place (towards +inf), in place: the smallest
    change another machine's rounding makes. Returns ``model``."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, np.inf)))
    return model


def fit_maze_reward_model(train: Mapping[str, np.ndarray], hidden: int, epochs: int, batch_size: int,
                          learning_rate: float, seed: int, targets: np.ndarray | None = None,
                          nudge: bool = False, evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
                          desc: str = "epoch") -> tuple[MazeRewardMLP, list[dict]]:
    """A :class:`~rewinterp_utils.reward_models.MazeRewardMLP` initialised under ``torch.manual_seed(seed)`` and
    fitted by :func:`~rewinterp_utils.reward_models.fit_regression` (minibatch order from ``seed``) to
    ``targets`` (default: ``train["reward"]``) on the grids ``train["s"]``, ``train["s_next"]``. ``nudge``: the
    initial weights moved by one ulp first (:func:`nudge_weights`). Returns the model, in eval mode, and the
    per-epoch history."""
    torch.manual_seed(seed)
    model = MazeRewardMLP(hidden=hidden)
    if nudge:
        nudge_weights(model)
    x = tuple(torch.as_tensor(train[k], dtype=torch.float32) for k in ("s", "s_next"))
    y = torch.as_tensor(train["reward"] if targets is None else targets, dtype=torch.float32)
    history = fit_regression(model, x, y, epochs, batch_size, learning_rate, seed=seed, evaluate=evaluate,
                             desc=desc)
    return model.eval(), history

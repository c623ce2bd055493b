"""The regression recipes in one place: a fresh reward model fitted to a dataset, and its held-out error per class.

The gridworld's reward-model stage, the seeds page's refits and the sanity page's shuffled-reward control train with
:func:`fit_maze_reward_model`; the Atari reward-model stage trains with :func:`fit_atari_reward_model`. Both are
:func:`fit_reward_model`, so they share one recipe (initialisation seed, minibatch order). The reward-model pages and
the audit read held-out error per class (rewarded, unrewarded) from :func:`heldout_errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from rewinterp_utils.reward_models import AtariRewardCNN, MazeRewardMLP, RewardModel, fit_regression

Evaluate = Callable[[nn.Module], dict[str, float]]
"""What a fit calls after each epoch: the model -> the numbers its history records for that epoch."""


def nudge_weights(model: nn.Module) -> nn.Module:
    """Move every parameter of ``model`` up by one unit in the last place (towards +inf), in place: the smallest
    change another machine's rounding makes. Returns ``model``."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.nextafter(p, torch.full_like(p, np.inf)))
    return model


def fit_reward_model(build: Callable[[], RewardModel], inputs: tuple[np.ndarray, ...], targets: np.ndarray,
                     epochs: int, batch_size: int, learning_rate: float, seed: int, nudge: bool = False,
                     evaluate: Evaluate | None = None, desc: str = "epoch") -> tuple[RewardModel, list[dict]]:
    """A fresh model ``build()`` made under ``torch.manual_seed(seed)`` and fitted by
    :func:`~rewinterp_utils.reward_models.fit_regression` (minibatch order from ``seed``) to ``targets`` (as float32)
    on ``inputs`` (as tensors of their own dtype). ``nudge``: the initial weights moved by one ulp first
    (:func:`nudge_weights`). Returns the model, in eval mode, and the per-epoch history."""
    torch.manual_seed(seed)
    model = build()
    if nudge:
        nudge_weights(model)
    x = tuple(torch.as_tensor(a) for a in inputs)
    y = torch.as_tensor(targets, dtype=torch.float32)
    history = fit_regression(model, x, y, epochs, batch_size, learning_rate, seed=seed, evaluate=evaluate,
                             desc=desc)
    return model.eval(), history


def fit_maze_reward_model(train: Mapping[str, np.ndarray], hidden: int, epochs: int, batch_size: int,
                          learning_rate: float, seed: int, targets: np.ndarray | None = None,
                          nudge: bool = False, evaluate: Evaluate | None = None,
                          desc: str = "epoch") -> tuple[MazeRewardMLP, list[dict]]:
    """:func:`fit_reward_model` of a :class:`~rewinterp_utils.reward_models.MazeRewardMLP` (``hidden`` units) on the
    grids ``train["s"]``, ``train["s_next"]`` (as float32) and ``targets`` (default: ``train["reward"]``)."""
    grids = tuple(np.asarray(train[k], dtype=np.float32) for k in ("s", "s_next"))
    model, history = fit_reward_model(lambda: MazeRewardMLP(hidden=hidden), grids,
                                      train["reward"] if targets is None else targets, epochs, batch_size,
                                      learning_rate, seed, nudge, evaluate, desc)
    return model, history  # type: ignore[return-value]


def fit_atari_reward_model(obs: np.ndarray, reward: np.ndarray, epochs: int, batch_size: int, learning_rate: float,
                           seed: int, evaluate: Evaluate | None = None, desc: str = "epoch",
                           train_precision: str = "fp32") -> tuple[AtariRewardCNN, list[dict]]:
    """:func:`fit_reward_model` of an :class:`~rewinterp_utils.reward_models.AtariRewardCNN` on the ``(N, 84, 84,
    4)`` uint8 stacks ``obs`` and their clipped ``reward`` (the Atari reward-model stage; ``seed`` is its
    ``model_seed``), its convolutions trained in ``train_precision`` (head and loss in float32; the fitted
    model predicts in float32)."""
    model, history = fit_reward_model(lambda: AtariRewardCNN(train_precision=train_precision), (np.asarray(obs),),
                                      reward, epochs, batch_size, learning_rate, seed, evaluate=evaluate, desc=desc)
    return model, history  # type: ignore[return-value]


def mean_squared_error(pred: np.ndarray, target: np.ndarray) -> float:
    """``mean((pred - target)^2)`` computed in the precision of ``pred - target`` (float32 predictions against
    float32 rewards stay float32, as the reward-model pages have always computed them); NaN when empty."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape or pred.ndim != 1:
        raise ValueError(f"pred and target must be 1-d arrays of one length, got shapes {pred.shape}, {target.shape}")
    return float(np.mean((pred - target) ** 2)) if len(pred) else float("nan")


def heldout_errors(pred: np.ndarray, reward: np.ndarray) -> pd.DataFrame:
    """Held-out error per class: rows ``rewarded`` (``reward != 0``) and ``unrewarded`` (``reward == 0``), columns
    ``n`` (inputs in the class), ``mean R`` (the model's mean reward there) and ``MSE``
    (:func:`mean_squared_error` against ``reward``, in the inputs' precision); NaN for an empty class. A model can
    be accurate on the frequent class and wrong on the rare one, which one pooled error hides."""
    pred, reward = np.asarray(pred), np.asarray(reward)
    if pred.shape != reward.shape or pred.ndim != 1:
        raise ValueError(f"pred and reward must be 1-d arrays of one length, got shapes {pred.shape}, {reward.shape}")
    rows = {}
    for name, sel in (("rewarded", reward != 0), ("unrewarded", reward == 0)):
        n = int(sel.sum())
        rows[name] = {"n": n, "mean R": float(pred[sel].mean()) if n else float("nan"),
                      "MSE": mean_squared_error(pred[sel], reward[sel])}
    return pd.DataFrame(rows).T.astype({"n": int})


__all__ = ["Evaluate", "fit_atari_reward_model", "fit_maze_reward_model", "fit_reward_model", "heldout_errors",
           "mean_squared_error", "nudge_weights"]

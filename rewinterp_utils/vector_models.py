"""Reward models of vector-observation environments: an MLP of chosen transition groups, fitted by regression.

:class:`TransitionMLP` reads the groups it is given (``s``, ``a``, ``s_next``; its ``forward`` takes the four
of a transition, ``(s, a, s_next, done)``, like every reward :func:`~rewinterp_utils.adapters.transition_reward`
takes) and :func:`fit_transition_model` fits it to recorded rewards with
:func:`~rewinterp_utils.reward_models.fit_regression`, the book's regression.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from rewinterp_utils.reward_models import fit_regression

READABLE: tuple[str, ...] = ("s", "a", "s_next")
"""The groups a :class:`TransitionMLP` may read."""


class TransitionMLP(nn.Module):
    """``R = MLP(concat(groups read))``: two tanh layers of ``hidden`` units; ``done`` is never read."""

    def __init__(self, widths: Mapping[str, int], reads: Sequence[str], hidden: int = 64) -> None:
        super().__init__()
        bad = [g for g in reads if g not in READABLE] or ([] if reads else ["nothing"])
        if bad:
            raise ValueError(f"a TransitionMLP reads some of {', '.join(READABLE)}, got {', '.join(map(str, bad))}")
        self.reads = tuple(reads)
        self.net = nn.Sequential(nn.Linear(sum(int(widths[g]) for g in self.reads), hidden), nn.Tanh(),
                                 nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """One reward per transition, shape ``(batch,)``."""
        given = {"s": s, "a": a, "s_next": s_next}
        x = torch.cat([given[g].reshape(len(s), -1).float() for g in self.reads], dim=1)
        return self.net(x).squeeze(-1)


def widths(data: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Features per transition of each readable group (a discrete action counts one)."""
    return {g: int(np.prod(np.asarray(data[g]).shape[1:], dtype=int)) for g in READABLE}


def fit_transition_model(data: Mapping[str, np.ndarray], reads: Sequence[str], epochs: int, batch_size: int,
                         learning_rate: float, hidden: int, seed: int) -> tuple[TransitionMLP, list[dict]]:
    """A :class:`TransitionMLP` of ``reads`` fitted to ``data["reward"]`` (MSE, Adam), initialised from ``seed``;
    returns the model (in eval mode) and its per-epoch history."""
    torch.manual_seed(seed)
    model = TransitionMLP(widths(data), reads, hidden)
    tensors = tuple(torch.as_tensor(np.asarray(data[g], dtype=np.float32).reshape(len(data["s"]), -1))
                    for g in ("s", "a", "s_next", "done"))
    target = torch.as_tensor(np.asarray(data["reward"], dtype=np.float32))
    history = fit_regression(model, tensors, target, epochs, batch_size, learning_rate, seed, desc="epoch")
    return model.eval(), history


__all__ = ["READABLE", "TransitionMLP", "fit_transition_model", "widths"]

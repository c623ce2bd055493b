"""Preference learning of a maze reward model (Christiano et al. 2017, "Deep RL from human preferences").

Pairs of equal-length segments are cut from episodes (:func:`sample_segment_pairs`), labelled by a simulated
annotator that prefers the segment with the higher true return (:func:`boltzmann_labels`), and a reward model
``R(s, s')`` is fitted by the Bradley-Terry model: ``P(a > b) = sigmoid(sum_a R - sum_b R)``
(:func:`bradley_terry_loss`, :func:`train_preference_model`). Preferences fix a reward only up to a shift and
a positive scale: :func:`standardise_rewards` pins them down without the true reward (zero mean and unit standard
deviation of the model's own output over the dataset's transitions, as reward-learning libraries normalise);
:func:`true_reward_fit` reads a model in the true reward's units with a map fitted *with* the true reward, so it is
a labelled diagnostic only: no verdict may read it (it would turn a model that pays the opposite of the truth into
the truth).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from rewinterp_utils.device import torch_device
from scipy.special import expit
from torch import nn

from rewinterp_utils.envs.maze import MAX_EPISODE_STEPS
from rewinterp_utils.reward_models import Normalised, RewardModel

SEGMENT_KEYS: tuple[str, ...] = ("s_a", "s_next_a", "s_b", "s_next_b")
"""The grid arrays of a batch of segment pairs, each ``(n_pairs, segment_len, H, W)``."""


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_episode(i: int, ep: Mapping[str, np.ndarray]) -> int:
    for key in ("s", "s_next", "reward"):
        if key not in ep:
            raise ValueError(f"episodes[{i}] must have arrays 's', 's_next' and 'reward' (missing {key!r})")
    s, s_next, reward = np.asarray(ep["s"]), np.asarray(ep["s_next"]), np.asarray(ep["reward"])
    if s.ndim != 3 or s.shape != s_next.shape or reward.shape != (len(s),):
        raise ValueError(f"episodes[{i}] must have s, s_next of shape (T, H, W) and reward of shape (T,), got "
                         f"{s.shape}, {s_next.shape}, {reward.shape}")
    return len(s)


def sample_segment_pairs(episodes: Sequence[Mapping[str, np.ndarray]], segment_len: int, n_pairs: int,
                         rng: np.random.Generator | int | None = None) -> dict[str, np.ndarray]:
    """``n_pairs`` pairs of segments of ``segment_len`` consecutive transitions, with their true returns.

    As the ``imitation`` library's random fragmenter: episodes shorter than ``segment_len`` are skipped, each
    segment comes from an episode drawn with probability proportional to its length (with replacement), and
    starts uniformly in it. Returns ``s_a``, ``s_next_a``, ``s_b``, ``s_next_b`` ``(n_pairs, segment_len, H, W)``,
    ``return_a``, ``return_b`` ``(n_pairs,)`` undiscounted true segment returns, and ``episode_a``,
    ``start_a``, ``episode_b``, ``start_b`` ``(n_pairs,)`` where each segment was cut.
    """
    if len(episodes) == 0:
        raise ValueError("episodes must be a non-empty list of episode dicts")
    lengths = np.array([_check_episode(i, ep) for i, ep in enumerate(episodes)])
    longest = int(lengths.max())
    if (isinstance(segment_len, bool) or not isinstance(segment_len, (int, np.integer))
            or not 1 <= segment_len <= min(longest, MAX_EPISODE_STEPS)):
        raise ValueError(f"segment_len must be between 1 and the longest episode's length L = {longest} "
                         f"(and at most the maze time limit {MAX_EPISODE_STEPS}), got {segment_len!r}")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise ValueError(f"n_pairs must be an integer >= 1, got {n_pairs!r}")
    gen = _rng(rng)
    eligible = np.flatnonzero(lengths >= segment_len)
    probs = lengths[eligible] / lengths[eligible].sum()
    out: dict[str, list] = {k: [] for k in (*SEGMENT_KEYS, "return_a", "return_b", "episode_a", "start_a",
                                            "episode_b", "start_b")}
    for _ in range(n_pairs):
        for side in ("a", "b"):
            i = int(gen.choice(eligible, p=probs))
            start = int(gen.integers(0, lengths[i] - segment_len, endpoint=True))
            ep, cut = episodes[i], slice(start, start + segment_len)
            out[f"s_{side}"].append(np.asarray(ep["s"])[cut])
            out[f"s_next_{side}"].append(np.asarray(ep["s_next"])[cut])
            out[f"return_{side}"].append(float(np.sum(np.asarray(ep["reward"], dtype=np.float64)[cut])))
            out[f"episode_{side}"].append(i)
            out[f"start_{side}"].append(start)
    return {k: np.stack(v) if k in SEGMENT_KEYS else np.array(v) for k, v in out.items()}


def boltzmann_labels(return_a: np.ndarray, return_b: np.ndarray, beta: float,
                     rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Labels ``P(a preferred)`` of a Boltzmann-rational annotator with inverse temperature ``beta``.

    ``beta = np.inf``: noiseless, 1.0 where a's return is higher, 0.0 where lower, 0.5 on ties. Finite
    ``beta > 0``: one Bernoulli(sigmoid(beta * (R_a - R_b))) draw per pair, as 0.0/1.0 floats.
    """
    if not isinstance(beta, (int, float, np.floating, np.integer)) or not float(beta) > 0:
        raise ValueError(f"beta must be > 0 (np.inf for noiseless labels), got {beta!r}")
    ra, rb = np.asarray(return_a, dtype=np.float64), np.asarray(return_b, dtype=np.float64)
    if ra.ndim != 1 or ra.shape != rb.shape:
        raise ValueError(f"return_a and return_b must be 1-D arrays of one shape, got {ra.shape} and {rb.shape}")
    diff = ra - rb
    if math.isinf(beta):
        return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    return (_rng(rng).random(len(diff)) < expit(float(beta) * diff)).astype(np.float64)


def _as_float(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).to(torch.float32)


def segment_returns(model: nn.Module, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
    """``sum_t R(s_t, s'_t)`` over each segment of ``(B, L, H, W)`` grids; shape ``(B,)``."""
    b, length = s.shape[:2]
    r = model(_as_float(s).reshape(b * length, *s.shape[2:]), _as_float(s_next).reshape(b * length, *s.shape[2:]))
    return r.reshape(b, length).sum(dim=1)


def bradley_terry_loss(model: nn.Module, batch: Mapping[str, np.ndarray | torch.Tensor]) -> torch.Tensor:
    """Mean over pairs of the cross-entropy between ``labels`` and ``P(a > b) = sigmoid(G_a - G_b)``.

    ``batch``: ``s_a``, ``s_next_a``, ``s_b``, ``s_next_b`` ``(B, L, H, W)`` and ``labels`` ``(B,)`` in [0, 1]
    (``P(a preferred)``, fractional labels allowed); ``G`` is the model's summed reward over a segment.
    """
    logits = (segment_returns(model, batch["s_a"], batch["s_next_a"])
              - segment_returns(model, batch["s_b"], batch["s_next_b"]))
    labels = _as_float(batch["labels"]).to(logits.device)
    return nn.functional.binary_cross_entropy_with_logits(logits, labels)


def train_preference_model(model: RewardModel, pairs: Mapping[str, np.ndarray], labels: np.ndarray,
                           epochs: int = 10, batch_size: int = 32, learning_rate: float = 1e-3,
                           seed: int = 0) -> list[float]:
    """Fit ``model`` to preference ``labels`` with Adam; the mean Bradley-Terry loss of each epoch.

    ``pairs`` as from :func:`sample_segment_pairs`; ``labels`` ``(n_pairs,)`` in [0, 1]. The minibatch order
    depends only on ``seed``, so a run is deterministic given the model's initial weights and ``seed``.
    The model is left in eval mode.
    """
    for name, v, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
    device = torch_device()  # REWINTERP_DEVICE
    model.to(device)
    data = {k: _as_float(pairs[k]).to(device) for k in SEGMENT_KEYS}
    n = len(data["s_a"])
    y = _as_float(np.asarray(labels, dtype=np.float64)).to(device)
    if y.shape != (n,) or not bool(((y >= 0) & (y <= 1)).all()):
        raise ValueError(f"labels must be an array of shape ({n},) with values in [0, 1]")
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=float(learning_rate))
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v[idx] for k, v in data.items()}
            batch["labels"] = y[idx]
            loss = bradley_terry_loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    model.eval()
    return losses


def standardise_rewards(model: RewardModel, s: np.ndarray, s_next: np.ndarray) -> tuple[float, float, Normalised]:
    """Shift and scale that give the model's rewards zero mean and unit standard deviation over the transitions
    ``s``, ``s_next`` ``(N, H, W)`` (the coverage distribution: the dataset the preferences were cut from).

    With ``mu`` and ``sd`` the mean and (population) standard deviation of the model's rewards there:
    ``shift = -mu``, ``scale = 1 / sd``; ``(R + shift) * scale`` is the standardised reward
    (:class:`~rewinterp_utils.reward_models.Normalised`). No true reward is used, so the scale is positive and a
    model that ranks goals below other transitions stays that way. Returns ``(shift, scale, Normalised(...))``.
    """
    if np.asarray(s).shape != np.asarray(s_next).shape or np.ndim(s) < 1 or len(s) == 0:
        raise ValueError(f"s and s_next must be non-empty (N, H, W) arrays of one shape, got {np.shape(s)}, "
                         f"{np.shape(s_next)}")
    pred = model.predict(s, s_next).astype(np.float64)
    mu, sd = float(pred.mean()), float(pred.std())
    if not sd > 0:
        raise ValueError("the model's reward is constant on these transitions; no scale standardises it")
    return -mu, 1.0 / sd, Normalised(model, -mu, 1.0 / sd)


def true_reward_fit(model: RewardModel, s: np.ndarray, s_next: np.ndarray, reward: np.ndarray,
                    ) -> tuple[float, float, Normalised]:
    """A diagnostic, never a verdict's input: the shift and scale that map the model's mean reward on non-goal
    transitions to 0 and on goal ones to 1, i.e. the model read in the true reward's units. It is fitted with the
    true reward, so it is no normalisation to retrain on, and no audit may judge the model through it: with the
    scale's sign kept, ``-R*`` maps exactly onto ``R*`` (audits read models by a convention fixed without the true
    reward instead, :func:`~rewinterp_utils.audit.in_reference_units`).

    ``s``, ``s_next`` ``(N, H, W)`` a reference batch (e.g.
    :func:`~rewinterp_utils.envs.maze_transitions.maze_transitions`) and ``reward`` its true rewards; goal
    transitions are those with ``reward > 0``. With ``mu0``/``mu1`` the model's means on non-goal/goal
    transitions: ``shift = -mu0``, ``scale = 1 / (mu1 - mu0)``, and ``(R + shift) * scale`` is the normalised
    reward (:class:`~rewinterp_utils.reward_models.Normalised`). The scale keeps its sign: negative means the
    model ranks goal transitions below the others on average. Returns ``(shift, scale, Normalised(model, shift, scale))``.

    The shift matters to :func:`~rewinterp_utils.epic.dynamics_aware_distance` on the episodic maze transitions
    (a constant reward there is a living bonus or penalty; :func:`~rewinterp_utils.epic.epic_distance` ignores
    it), while Bradley-Terry on equal-length segments cannot identify it: here the true reward sets it, which is
    why retraining and distances use :func:`standardise_rewards` instead.
    """
    reward = np.asarray(reward, dtype=np.float64)
    if reward.shape != (len(s),) or np.asarray(s).shape != np.asarray(s_next).shape:
        raise ValueError(f"s, s_next must be (N, H, W) of one shape and reward (N,), got {np.shape(s)}, "
                         f"{np.shape(s_next)}, {reward.shape}")
    goal = reward > 0
    if goal.all() or not goal.any():
        raise ValueError("reward must mark at least one goal (reward > 0) and one non-goal transition")
    pred = model.predict(s, s_next).astype(np.float64)
    mu0, mu1 = float(pred[~goal].mean()), float(pred[goal].mean())
    if mu1 == mu0:
        raise ValueError("the model's mean reward is the same on goal and non-goal transitions; no scale fixes it")
    shift, scale = -mu0, 1.0 / (mu1 - mu0)
    return shift, scale, Normalised(model, shift, scale)

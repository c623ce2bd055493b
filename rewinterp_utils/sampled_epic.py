"""EPIC by sampling, for any environment: the distance of :mod:`~rewinterp_utils.epic` without enumerating states.

Gleave et al. 2021 ("Quantifying Differences in Reward Functions") canonicalise a reward with ``S``, ``S'`` drawn
independently from a state distribution ``D_S`` and ``A`` from an action distribution ``D_A``::

    C(R)(s, a, s') = R(s, a, s') + gamma * m(s') - m(s) - gamma * E[m(S)],     m(x) = E[R(x, A, S')],

and compare two canonicalised rewards by the Pearson distance ``sqrt((1 - rho) / 2)`` over a coverage
distribution of transitions. :mod:`~rewinterp_utils.epic` computes this exactly on the maze's finite sets. Here
``m(x)`` is a mean over ``n_samples`` draws ``(A_j, S'_j)`` (``S'_j`` from ``D_S``: by default the states of the
given transitions, ``s`` and ``s'`` pooled; ``A_j`` from ``D_A``: the action space's own sampler when one is
given, else the transitions' actions), the coverage is the given transitions, and the last term, a constant,
is dropped (the Pearson distance ignores constants).

With the same draws for both rewards, potential shaping and positive rescaling cancel exactly: ``C(k R + gamma
Phi(s') - Phi(s))`` is ``k C(R)`` plus a constant whatever the draws, so a shaped, rescaled copy is at distance 0
and the negation at 1, up to rounding (tested). What the draws change is the estimate of ``m`` for a reward that
is not shaping: the interval repeats the estimate ``n_resamples`` times with new draws (and, with
``bootstrap=True``, transitions resampled with replacement) and takes the central ``level`` share of the
distances. Tested against the exact maze EPIC, which it agrees with within its interval.

Rewards are any kind :func:`~rewinterp_utils.adapters.transition_reward` takes (a function of batches, a
:class:`~rewinterp_utils.reward_models.RewardModel`, a torch module, an ``imitation``-style reward net). ``m`` is computed once per distinct state of the transitions, so a finite
environment (the maze) costs its number of states, not of transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewinterp_utils.adapters import transition_reward
from rewinterp_utils.stats import pearson_distance

SampledReward = Any
"""A reward for :func:`sampled_epic`: any kind :func:`~rewinterp_utils.adapters.transition_reward` takes."""


class ConstantReward(ValueError):
    """A reward equivalent to a zero reward on the transitions (its canonicalised reward is constant): its EPIC
    distance is undefined. ``which``: ``"reward_a"`` or ``"reward_b"``."""

    def __init__(self, which: str) -> None:
        super().__init__(f"{which} is equivalent to a zero reward on these transitions (its canonicalised reward is "
                         "constant), so its EPIC distance is undefined")
        self.which = which


@dataclass(frozen=True)
class SampledEpic:
    """A sampled EPIC distance: the estimate, its interval over resamples, and how it was made."""

    distance: float  #: the estimate from all transitions and the first draws
    low: float  #: the interval's lower end (the ``(1 - level) / 2`` quantile of the resampled distances)
    high: float  #: its upper end
    level: float  #: the interval's coverage, e.g. 0.9
    n_samples: int  #: draws ``(A, S')`` per mean ``m(x)``
    n_transitions: int  #: transitions compared (the coverage)
    resampled: tuple[float, ...]  #: every resampled distance


def _check(transitions: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [k for k in ("s", "a", "s_next") if k not in transitions]
    if missing:
        raise ValueError(f"transitions need 's', 'a' and 's_next' (missing {', '.join(map(repr, missing))})")
    s, a, s_next = (np.asarray(transitions[k]) for k in ("s", "a", "s_next"))
    if not len(s) == len(a) == len(s_next) or len(s) < 3:
        raise ValueError(f"transitions must hold at least 3 of each of s, a, s_next, got {len(s)}, {len(a)}, "
                         f"{len(s_next)}")
    if s.shape[1:] != s_next.shape[1:]:
        raise ValueError(f"s and s_next must have the same shape per sample, got {s.shape[1:]} and {s_next.shape[1:]}")
    return s, a, s_next


def _means(fn, states: np.ndarray, draws_a: np.ndarray, draws_s: np.ndarray, chunk: int) -> np.ndarray:
    """``m(x) = mean_j R(x, A_j, S'_j)`` for each row of ``states`` (distinct rows computed once)."""
    flat = states.reshape(len(states), -1)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    uniq = uniq.reshape(len(uniq), *states.shape[1:]).astype(states.dtype, copy=False)
    k = len(draws_a)
    out = np.empty(len(uniq))
    per = max(1, chunk // k)  # states per batch of chunk evaluations
    for i in range(0, len(uniq), per):
        x = uniq[i:i + per]
        rows = np.repeat(x, k, axis=0)
        r = fn(rows, np.tile(draws_a, (len(x),) + (1,) * (draws_a.ndim - 1)),
               np.tile(draws_s, (len(x),) + (1,) * (draws_s.ndim - 1)))
        out[i:i + len(x)] = r.reshape(len(x), k).mean(axis=1)
    return out[inverse.reshape(-1)]


def sampled_epic(reward_a: SampledReward, reward_b: SampledReward, transitions: Mapping[str, np.ndarray], *,
                 gamma: float = 0.99, n_samples: int = 1024, n_resamples: int = 20, level: float = 0.9,
                 states: np.ndarray | None = None, action_space: Any = None, bootstrap: bool = True,
                 seed: int = 0, chunk: int = 65_536) -> SampledEpic:
    """The EPIC distance of ``reward_a`` and ``reward_b`` estimated by sampling (see the module docstring).

    ``transitions``: ``{"s", "a", "s_next"}`` arrays of one length (the coverage). ``states``: the states ``D_S``
    draws from (default: ``s`` and ``s_next`` pooled). ``action_space``: a Gymnasium space ``D_A`` samples
    (seeded with ``seed``; default: the transitions' actions). ``n_samples`` draws per mean, ``n_resamples``
    repetitions for the interval at ``level``; ``bootstrap``: resample the transitions too. ``chunk``: reward
    evaluations per call. ``ValueError`` for missing or mismatched arrays, a reward that fails, gives the wrong
    shape or a non-finite value, and a reward whose canonicalised values are constant (equivalent to no reward:
    the distance is undefined)."""
    if not 0.0 < float(gamma) <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    for name, value in (("n_samples", n_samples), ("n_resamples", n_resamples)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    s, a, s_next = _check(transitions)
    pool = np.concatenate([s, s_next]) if states is None else np.asarray(states)
    if pool.shape[1:] != s.shape[1:] or not len(pool):
        raise ValueError(f"states must be a non-empty array of states shaped like s, got {pool.shape}")
    fns = {"reward_a": transition_reward(reward_a, "reward_a"), "reward_b": transition_reward(reward_b, "reward_b")}
    rng = np.random.default_rng(seed)
    if action_space is not None:
        action_space.seed(int(rng.integers(2**31)))

    def draws() -> tuple[np.ndarray, np.ndarray]:
        picked = pool[rng.integers(len(pool), size=int(n_samples))]
        if action_space is None:
            acts = a[rng.integers(len(a), size=int(n_samples))]
        else:
            acts = np.asarray([action_space.sample() for _ in range(int(n_samples))])
        return acts, picked

    direct = {name: fn(s, a, s_next) for name, fn in fns.items()}

    def distance(draws_a: np.ndarray, draws_s: np.ndarray, rows: np.ndarray) -> float:
        canon = []
        for name, fn in fns.items():
            m = _means(fn, np.concatenate([s[rows], s_next[rows]]), draws_a, draws_s, chunk)
            c = direct[name][rows] + gamma * m[len(rows):] - m[:len(rows)]
            if np.std(c) <= 1e-12 * (1.0 + np.abs(direct[name]).max()):
                raise ConstantReward(name)
            canon.append(c)
        return pearson_distance(canon[0], canon[1])

    everything = np.arange(len(s))
    first = distance(*draws(), everything)
    resampled = tuple(distance(*draws(), rng.integers(len(s), size=len(s)) if bootstrap else everything)
                      for _ in range(int(n_resamples)))
    tail = (1.0 - float(level)) / 2.0
    low, high = (float(np.quantile(resampled, q)) for q in (tail, 1.0 - tail))
    return SampledEpic(first, min(low, first), max(high, first), float(level), int(n_samples), len(s), resampled)


__all__ = ["ConstantReward", "SampledEpic", "sampled_epic"]

"""Gymnasium's classic-control rewards written as functions of transition batches ``R(s, a, s_next, done)``.

The reference rewards of :mod:`~rewinterp_utils.env_audit`'s book page and tests, each written from the
observations alone (the env's hidden state is not needed) and tested against the reward the env itself records.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def pendulum_reward(s: np.ndarray, a: np.ndarray, s_next: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Pendulum-v1: ``-(theta^2 + 0.1 thetadot^2 + 0.001 u^2)`` of the state before the step (``s`` is
    ``[cos theta, sin theta, thetadot]``) and the torque ``u`` clipped to [-2, 2]."""
    s = np.asarray(s, dtype=np.float64)
    th, thdot = np.arctan2(s[:, 1], s[:, 0]), s[:, 2]
    u = np.clip(np.asarray(a, dtype=np.float64).reshape(len(s), -1)[:, 0], -2.0, 2.0)
    return -(th**2 + 0.1 * thdot**2 + 0.001 * u**2)


def acrobot_reward(s: np.ndarray, a: np.ndarray, s_next: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Acrobot-v1: 0 on the step that lifts the tip above the bar (``-cos t1 - cos(t1 + t2) > 1`` in ``s_next``),
    else -1."""
    c1, s1, c2, s2 = (np.asarray(s_next, dtype=np.float64)[:, i] for i in range(4))
    return np.where(-c1 - (c1 * c2 - s1 * s2) > 1.0, 0.0, -1.0)


CLASSIC_REWARDS: dict[str, Callable[..., np.ndarray]] = {"Pendulum-v1": pendulum_reward,
                                                          "Acrobot-v1": acrobot_reward}
"""The env ids whose own reward is written here."""


def classic_reward(env_id: str) -> Callable[..., np.ndarray]:
    """The reward of ``env_id`` written as a function, or ``ValueError`` naming the envs that have one."""
    if env_id not in CLASSIC_REWARDS:
        raise ValueError(f"no reward written for {env_id!r}; written: {', '.join(CLASSIC_REWARDS)}")
    return CLASSIC_REWARDS[env_id]


__all__ = ["CLASSIC_REWARDS", "acrobot_reward", "classic_reward", "pendulum_reward"]

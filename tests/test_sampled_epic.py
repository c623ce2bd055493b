"""Sampled EPIC against the exact EPIC of the maze (the oracle: every state and action enumerated) and against
its stated properties on a continuous environment: a shaped, rescaled copy at 0, the negation at 1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rewinterp_utils  # noqa: F401  (registers the maze ids)
from rewinterp_utils import epic
from rewinterp_utils.envs import maze_transitions as mt
from rewinterp_utils.envs.maze import AGENT, GOAL
from rewinterp_utils.sampled_epic import sampled_epic

GAMMA = 0.97


@pytest.fixture(scope="module")
def maze():
    tr = mt.maze_transitions()
    batch = {"s": tr["s"], "a": tr["action"], "s_next": tr["s_next"]}
    return tr, batch


def goal_reward(s, s_next):
    """The maze's true reward from the grids: the agent ends where a goal was."""
    return ((np.asarray(s_next) == AGENT) & (np.asarray(s) == GOAL)).any(axis=(1, 2)).astype(float)


def wiggly(s, s_next):
    """Another reward: the goal reward plus a bump pattern over the agent's cell in s' (EPIC 0.56 from it)."""
    cells = np.argwhere(np.asarray(s_next) == AGENT)
    return goal_reward(s, s_next) + 0.3 * np.sin(3 * cells[:, 1] + 7 * cells[:, 2])


def three_arg(fn):
    return lambda s, a, s_next: fn(s, s_next)


def test_the_sampled_distance_agrees_with_the_exact_maze_epic_within_its_interval(maze):
    tr, batch = maze
    exact = epic.epic_distance(goal_reward, wiggly, tr, gamma=GAMMA)
    est = sampled_epic(three_arg(goal_reward), three_arg(wiggly), batch, gamma=GAMMA, n_samples=4096,
                       n_resamples=20, states=tr["states"], action_space=gym.spaces.Discrete(4), bootstrap=False,
                       seed=0)
    assert est.low <= exact <= est.high, (exact, est.low, est.high)
    assert abs(est.distance - exact) < 0.02 and est.high - est.low < 0.05
    assert 0.3 < exact < 0.7 and abs(exact - 0.5 ** 0.5) > 0.05, "neither equivalent, opposite nor uncorrelated"


def test_shaping_and_rescaling_cancel_exactly_and_the_negation_is_at_one(maze):
    tr, batch = maze
    rng = np.random.default_rng(0)
    phi = dict(zip(map(bytes, tr["states"]), rng.normal(scale=3.0, size=len(tr["states"]))))

    def potential(grids):
        return np.array([phi[bytes(g)] for g in np.asarray(grids)])

    def shaped(s, a, s_next):
        return 2.5 * goal_reward(s, s_next) + GAMMA * potential(s_next) - potential(s)

    kwargs = dict(gamma=GAMMA, n_samples=64, n_resamples=5, seed=1)
    same = sampled_epic(three_arg(goal_reward), shaped, batch, **kwargs)
    assert same.distance < 1e-6 and same.high < 1e-6
    opposite = sampled_epic(three_arg(goal_reward), lambda s, a, sn: -goal_reward(s, sn), batch, **kwargs)
    assert opposite.distance > 1 - 1e-6 and opposite.low > 1 - 1e-6


@pytest.fixture(scope="module")
def pendulum():
    """Transitions of Pendulum-v1 (continuous state and action) under random actions, with its own reward."""
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    rows = {"s": [], "a": [], "s_next": [], "r": []}
    for _ in range(600):
        a = env.action_space.sample()
        nxt, r, term, trunc, _ = env.step(a)
        for k, v in (("s", obs), ("a", a), ("s_next", nxt), ("r", r)):
            rows[k].append(v)
        obs = env.reset()[0] if term or trunc else nxt
    return {k: np.asarray(v, dtype=np.float64) for k, v in rows.items()}, env.action_space


def pendulum_reward(s, a, s_next):
    """Pendulum-v1's reward written from its definition: -(theta^2 + 0.1 thetadot^2 + 0.001 u^2) at s."""
    theta = np.arctan2(s[:, 1], s[:, 0])
    return -(theta ** 2 + 0.1 * s[:, 2] ** 2 + 0.001 * np.clip(a[:, 0], -2, 2) ** 2)


def test_on_pendulum_the_envs_reward_is_itself_and_a_shaped_copy_is_at_zero(pendulum):
    data, space = pendulum
    assert np.allclose(pendulum_reward(data["s"], data["a"], data["s_next"]), data["r"], atol=1e-4), \
        "the oracle reward is the env's own"
    kwargs = dict(gamma=0.99, n_samples=128, n_resamples=5, action_space=space, seed=0)

    def shaped(s, a, s_next):
        return 0.3 * pendulum_reward(s, a, s_next) + 0.99 * np.cos(s_next[:, 2]) - np.cos(s[:, 2])

    assert sampled_epic(pendulum_reward, shaped, data, **kwargs).distance < 1e-6
    torque_only = sampled_epic(pendulum_reward, lambda s, a, sn: -a[:, 0] ** 2, data, **kwargs)
    assert 0.3 < torque_only.distance < 1 and torque_only.low <= torque_only.distance <= torque_only.high


def test_bad_input_says_what_is_wrong(pendulum):
    data, space = pendulum
    with pytest.raises(ValueError, match="missing 'a'"):
        sampled_epic(pendulum_reward, pendulum_reward, {"s": data["s"], "s_next": data["s_next"]})
    with pytest.raises(ValueError, match="equivalent to a zero reward"):
        sampled_epic(pendulum_reward, lambda s, a, sn: np.full(len(s), 2.0), data, n_samples=8, n_resamples=2)
    with pytest.raises(ValueError, match=r"one reward per transition, shape \(600,\)"):
        sampled_epic(pendulum_reward, lambda s, a, sn: np.zeros((len(s), 2)), data, n_samples=8, n_resamples=2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        sampled_epic(pendulum_reward, lambda s, a, sn: np.full(len(s), np.nan), data, n_samples=8, n_resamples=2)
    with pytest.raises(ValueError, match="reward_b failed"):
        sampled_epic(pendulum_reward, lambda s, a, sn: 1 / 0, data, n_samples=8, n_resamples=2)
    with pytest.raises(ValueError, match="n_samples"):
        sampled_epic(pendulum_reward, pendulum_reward, data, n_samples=0)

"""Transition data: rollouts of the maze (against the reward oracle) and their files."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import maze_reward_oracle as oracle
from stable_baselines3.common.env_util import make_vec_env

from rewinterp_utils.data import load_transitions, rollout_transitions, save_transitions
from rewinterp_utils.envs.maze import AGENT, GOAL
from rewinterp_utils.wrappers import LearnedRewardVecEnv

COINFLIP_ID = "EmptyMaze-10x10-CoinFlipGoal-v3"


# -- transition data -----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", [COINFLIP_ID, "Maze-10x10-TwoGoals-v3"])
def test_rollout_transitions_random_policy(env_id):
    n_envs, n = 4, 2_001
    venv = make_vec_env(env_id, n_envs=n_envs, seed=0)
    d = rollout_transitions(None, venv, n)
    assert set(d) == {"s", "s_next", "reward", "done", "learned_reward"}
    assert d["s"].shape == d["s_next"].shape == (n, 11, 11)
    assert d["s"].dtype == d["s_next"].dtype == np.uint8
    for k in ("reward", "done", "learned_reward"):
        assert d[k].shape == (n,)
    assert d["reward"].dtype == np.float32 and d["done"].dtype == bool
    assert set(np.unique(d["reward"]).tolist()) == {0.0, 1.0}
    assert np.array_equal(d["learned_reward"], d["reward"])  # no wrapper: the env's own reward
    # every row: exactly one agent in s and s', the agent moved at most one cell
    for key in ("s", "s_next"):
        assert ((d[key] == AGENT).sum(axis=(1, 2)) == 1).all()
    pos = np.argwhere(d["s"] == AGENT)[:, 1:]
    pos_next = np.argwhere(d["s_next"] == AGENT)[:, 1:]
    assert (np.abs(pos - pos_next).sum(axis=1) <= 1).all()
    # terminating variant: reward 1 exactly on goal-entering steps, which all end their episode
    np.testing.assert_array_equal(d["reward"], oracle(d["s"], d["s_next"]))
    ones = d["reward"] == 1
    assert ones.sum() >= 5 and d["done"][ones].all()
    assert (d["reward"][~d["done"]] == 0).all()
    for k in np.flatnonzero(ones):
        r, c = pos_next[k]
        assert d["s"][k, r, c] == GOAL and d["s_next"][k, r, c] == AGENT
    # rows are step-major: row k + n_envs continues row k's episode unless row k ended it
    for k in range(n - n_envs):
        if d["done"][k]:
            assert ((d["s"][k + n_envs] == GOAL).sum() >= 1)
        else:
            assert np.array_equal(d["s"][k + n_envs], d["s_next"][k]), k
    assert d["done"].sum() >= 5


def test_random_rollouts_with_a_seed_repeat():
    """A random policy's actions follow ``seed`` when it is given: the same seed repeats the rollouts, another seed
    gives others from the same seeded venv (whose own seed alone would repeat them). The oracle is the first run."""
    def roll(seed: int) -> dict[str, np.ndarray]:
        return rollout_transitions(None, make_vec_env(COINFLIP_ID, n_envs=2, seed=5), 300, seed=seed)

    first = roll(0)
    for key, value in roll(0).items():
        np.testing.assert_array_equal(first[key], value, err_msg=key)
    assert not np.array_equal(first["s_next"], roll(1)["s_next"])


def test_rollout_transitions_wrapped_and_io(tmp_path):
    venv = LearnedRewardVecEnv(make_vec_env(COINFLIP_ID, n_envs=3, seed=1), lambda s, s2: 2 * oracle(s, s2) + 0.25)
    d = rollout_transitions(None, venv, 700)
    assert d["s"].shape == (700, 11, 11)
    np.testing.assert_array_equal(d["learned_reward"], 2 * d["reward"] + 0.25)
    assert (d["reward"] == 1).any()
    path = tmp_path / "t.npz"
    save_transitions(path, d)
    back = load_transitions(path)
    assert back.keys() == d.keys()
    for k in d:
        assert back[k].dtype == d[k].dtype and np.array_equal(back[k], d[k])
    with pytest.raises(ValueError):
        rollout_transitions(None, venv, 0)



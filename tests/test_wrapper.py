"""LearnedRewardVecEnv: an exact oracle reward reproduces the environment's reward, and PPO cannot tell."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import maze_reward_oracle as oracle
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import rewinterp_utils  # noqa: F401  (registers the ids)
from rewinterp_utils.envs.maze import AGENT, GOAL
from rewinterp_utils.reward_models import MazeRewardMLP, RewardModel
from rewinterp_utils.wrappers import LearnedRewardVecEnv, next_observations

COINFLIP = "EmptyMaze-10x10-CoinFlipGoal-v3"
TWOGOALS = "EmptyMaze-10x10-TwoGoals-v3"


def test_oracle_itself():
    s = np.zeros((2, 11, 11), np.uint8)
    s[:, 1, 1] = GOAL
    s[:, 1, 2] = AGENT
    s_next = s.copy()
    s_next[0, 1, 2], s_next[0, 1, 1] = 0, AGENT  # moved onto the goal
    s_next[1, 1, 2], s_next[1, 2, 2] = 0, AGENT  # moved away
    assert oracle(s, s_next).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("env_id", [COINFLIP, TWOGOALS])
def test_oracle_wrapper_reproduces_true_reward(env_id):
    n_envs, n_vec_steps = 4, 2_500
    raw = make_vec_env(env_id, n_envs=n_envs, seed=0)
    wrapped = LearnedRewardVecEnv(make_vec_env(env_id, n_envs=n_envs, seed=0), oracle)
    actions = np.random.default_rng(0).integers(4, size=(n_vec_steps, n_envs))
    obs_raw, obs_w = raw.reset(), wrapped.reset()
    assert np.array_equal(obs_raw, obs_w)
    n_done = n_done_goal = n_wrong_differs = n_ones = 0
    for a in actions:
        prev = obs_w
        obs_raw, r_raw, d_raw, _ = raw.step(a)
        obs_w, r_w, d_w, infos = wrapped.step(a)
        assert r_w.dtype == np.float32 and r_w.shape == (n_envs,)
        assert np.array_equal(obs_raw, obs_w) and np.array_equal(d_raw, d_w)
        true = np.array([info["true_reward"] for info in infos])
        assert np.array_equal(r_w, true)
        assert np.array_equal(r_w, r_raw)
        n_ones += int((r_w == 1).sum())
        assert set(np.unique(r_w).tolist()) <= {0.0, 1.0}
        for i in np.flatnonzero(d_w):
            n_done += 1
            term = infos[i]["terminal_observation"]
            assert not np.array_equal(term, obs_w[i])  # obs[i] is already the next episode's first obs
            if r_w[i] == 1:
                n_done_goal += 1
                # reward 1 <=> the episode ended on a goal, not by the time limit
                assert not infos[i].get("TimeLimit.truncated", False)
                assert (term == GOAL).sum() == (1 if env_id == TWOGOALS else 0)
            else:
                assert infos[i]["TimeLimit.truncated"] is True
            wrong = oracle(prev[i:i + 1], obs_w[i:i + 1])[0]  # s' taken from the post-reset obs
            n_wrong_differs += int(wrong != r_w[i])
        # non-done steps never get reward 1 in the terminating variants
        assert (r_w[~d_w] == 0).all()
    assert n_done >= 40, n_done
    assert n_done_goal >= 20 and n_ones == n_done_goal, (n_done_goal, n_ones)
    assert n_wrong_differs >= 1, "a wrapper that used obs instead of terminal_observation would pass this test"


def _policy_params(env_id, reward_fn=None):
    torch.manual_seed(0)
    venv = make_vec_env(env_id, n_envs=4, seed=0)
    if reward_fn is not None:
        venv = LearnedRewardVecEnv(venv, reward_fn)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(total_timesteps=1024)
    return before, {k: v.clone() for k, v in model.policy.state_dict().items()}


def test_ppo_learns_identically_with_oracle_reward():
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        before_raw, raw = _policy_params(COINFLIP)
        before_w, wrapped = _policy_params(COINFLIP, oracle)
        _, shifted = _policy_params(COINFLIP, lambda s, s2: oracle(s, s2) + 0.5)
    finally:
        torch.set_num_threads(n_threads)
    assert raw.keys() == wrapped.keys() and len(raw) > 0
    for k in raw:
        assert torch.equal(before_raw[k], before_w[k]), k
        assert torch.equal(raw[k], wrapped[k]), k
    # training really happened, and a different reward gives different weights: the check is sensitive
    assert any(not torch.equal(before_raw[k], raw[k]) for k in raw)
    assert any(not torch.equal(raw[k], shifted[k]) for k in raw)


def test_wrapper_feeds_a_maze_mlp_s_and_s_next_in_order():
    torch.manual_seed(0)
    model = MazeRewardMLP()
    venv = LearnedRewardVecEnv(make_vec_env(COINFLIP, n_envs=3, seed=0), model)
    obs = venv.reset()
    nxt, r, dones, infos = venv.step(np.array([0, 1, 2]))
    s_next = next_observations(nxt, dones, infos)
    assert isinstance(r, np.ndarray) and r.dtype == np.float32 and r.shape == (3,)
    with torch.no_grad():  # oracle: one plain forward pass per environment
        expected = [float(model(torch.as_tensor(obs[i:i + 1]).float(), torch.as_tensor(s_next[i:i + 1]).float()))
                    for i in range(3)]
        swapped = [float(model(torch.as_tensor(s_next[i:i + 1]).float(), torch.as_tensor(obs[i:i + 1]).float()))
                   for i in range(3)]
    np.testing.assert_allclose(r, expected, rtol=1e-6, atol=1e-7)
    # the reward of (s, s') is not that of (s', s): both inputs are used, in order
    assert not np.allclose(r, swapped)


def test_wrapper_feeds_a_next_state_model_only_s_next():
    class NextOnly(RewardModel):
        inputs = ("s_next",)

        def forward(self, *xs):
            (s_next,) = xs  # the agent's flat position in s'
            return (s_next == AGENT).flatten(1).double().argmax(dim=1).double()

    venv = LearnedRewardVecEnv(make_vec_env(COINFLIP, n_envs=4, seed=0), NextOnly())
    obs = venv.reset()
    nxt, r, dones, infos = venv.step(np.array([0, 1, 2, 3]))
    s_next = next_observations(nxt, dones, infos)
    where = lambda grids: [float(np.flatnonzero(g == AGENT)[0]) for g in grids]  # noqa: E731
    assert r.dtype == np.float32 and r.tolist() == where(s_next) != where(obs)


def test_wrapper_with_mlp_rewards_and_reset_required():
    torch.manual_seed(0)
    venv = LearnedRewardVecEnv(make_vec_env(COINFLIP, n_envs=2, seed=0), MazeRewardMLP())
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.array([0, 0]))
    venv2 = LearnedRewardVecEnv(make_vec_env(COINFLIP, n_envs=2, seed=0), MazeRewardMLP())
    venv2.reset()
    _, r, d, infos = venv2.step(np.array([0, 1]))
    assert r.dtype == np.float32 and r.shape == (2,)
    assert all("true_reward" in i for i in infos)
    assert (r != 0).all()  # a random MLP without output bias is almost surely nonzero here


def test_next_observations():
    obs = np.arange(3 * 11 * 11, dtype=np.uint8).reshape(3, 11, 11)
    orig = obs.copy()
    term = np.full((11, 11), 7, np.uint8)
    infos = [{}, {"terminal_observation": term}, {"terminal_observation": np.zeros((11, 11), np.uint8)}]
    out = next_observations(obs, np.array([False, True, False]), infos)
    assert out.shape == obs.shape and out.dtype == obs.dtype
    assert np.array_equal(out[0], orig[0]) and np.array_equal(out[2], orig[2])
    assert np.array_equal(out[1], term)
    assert np.array_equal(obs, orig), "the input must not be modified"
    out2 = next_observations(obs, np.array([False, False, False]), [{}, {}, {}])
    assert np.array_equal(out2, orig) and out2 is not obs
    with pytest.raises(KeyError):
        next_observations(obs, np.array([True, False, False]), [{}, {}, {}])

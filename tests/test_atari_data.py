"""The Atari dataset: balanced, aligned across score settings, split by time, and a clear error without rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewinterp_utils.agents import atari_ppo, load_policy
from rewinterp_utils.data import collect_balanced, split_by_time
from rewinterp_utils.envs.atari import SCORE_BOXES, make_atari_venv
from rewinterp_utils.pipeline.profiles import resolve
from rewinterp_utils.pipeline.stages import STAGES

ENV = "BreakoutNoFrameskip-v4"


def venvs(seed: int = 3, n_envs: int = 2):
    return {s: make_atari_venv(ENV, n_envs=n_envs, seed=seed, score=s) for s in ("shown", "hidden")}


@pytest.fixture(scope="module")
def data():
    return collect_balanced(None, venvs(), n_rewarded=5, n_unrewarded=7, max_steps=20_000, seed=0)


def test_balanced_shapes_and_types(data):
    assert data["obs_shown"].shape == data["obs_hidden"].shape == (12, 84, 84, 4)
    assert data["obs_shown"].dtype == data["obs_hidden"].dtype == np.uint8
    assert data["screen"].shape == (12, 210, 160, 3) and data["screen"].dtype == np.uint8
    assert (data["reward"] != 0).sum() == 5 and (data["reward"] == 0).sum() == 7
    assert np.all(np.diff(data["step"][7:]) >= 0)  # rewarded samples in the order they came


def test_settings_differ_only_in_the_score_box(data):
    rs, cs = SCORE_BOXES["Breakout"].obs_slices(84, inner=False)
    outside = np.ones((84, 84), bool)
    outside[rs, cs] = False
    assert np.array_equal(data["obs_shown"][:, outside], data["obs_hidden"][:, outside])
    inner = SCORE_BOXES["Breakout"].obs_slices(84, inner=True)
    box = data["obs_hidden"][:, inner[0], inner[1]]
    assert (box == box.reshape(-1)[0]).all()  # painted over: one flat colour
    assert not np.array_equal(data["obs_shown"][:, inner[0], inner[1]], box)  # the digits are there when shown


def test_screens_are_the_frames_behind_the_observations(data):
    import cv2

    grey = cv2.cvtColor(data["screen"][0], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (84, 84), interpolation=cv2.INTER_AREA).astype(int)
    # the last stacked frame max-pools the last two raw frames, so it is at least the resized last screen
    assert np.mean(np.abs(small - data["obs_shown"][0, :, :, -1].astype(int))) < 10


def test_split_by_time_is_balanced_and_ordered():
    reward = np.array([0, 1, 0, 1, 0, 1, 0, 1], np.float32)
    step = np.array([8, 7, 6, 5, 4, 3, 2, 1])
    train, test = split_by_time(reward, step, n_train=4)
    assert sorted(reward[train]) == [0, 0, 1, 1] and sorted(reward[test]) == [0, 0, 1, 1]
    assert step[train].max() < step[test].min()
    with pytest.raises(ValueError, match="class"):
        split_by_time(reward, step, n_train=8)


def test_no_reward_within_budget_is_a_clear_error():
    with pytest.raises(RuntimeError, match="max_steps=64.*total_timesteps"):
        collect_balanced(None, venvs(), n_rewarded=50, n_unrewarded=5, max_steps=64)


def test_diverging_settings_are_detected():
    pair = {"shown": make_atari_venv(ENV, n_envs=1, seed=1), "hidden": make_atari_venv(ENV, n_envs=1, seed=2,
                                                                                        score="hidden")}
    with pytest.raises(RuntimeError, match="diverged"):
        collect_balanced(None, pair, n_rewarded=20, n_unrewarded=5, max_steps=20_000)


@pytest.mark.parametrize("bad", [dict(n_rewarded=0), dict(n_unrewarded=-1), dict(max_steps=0)])
def test_bad_sizes(bad):
    kwargs = dict(n_rewarded=1, n_unrewarded=1, max_steps=10) | bad
    with pytest.raises(ValueError, match="positive"):
        collect_balanced(None, venvs(), **kwargs)


def test_expert_policy_loads_without_reseeding_the_env(tmp_path):
    torch.manual_seed(0)
    venv = make_atari_venv(ENV, n_envs=1, seed=5)
    ppo = atari_ppo(venv, resolve("atari_expert", "smoke"), seed=0)
    torch.save(ppo.policy.state_dict(), tmp_path / "policy.pt")
    fresh = make_atari_venv(ENV, n_envs=1, seed=5)
    obs = fresh.reset()
    policy = load_policy(tmp_path / "policy.pt", fresh)
    ref = make_atari_venv(ENV, n_envs=1, seed=5).reset()
    assert np.array_equal(obs, ref)
    a1, _ = policy.predict(obs, deterministic=True)
    a2, _ = ppo.policy.predict(obs, deterministic=True)
    assert np.array_equal(a1, a2)


def test_book_pages_of_atari_stages():
    assert list(STAGES["atari_expert"].pages("default")) == ["atari_expert_Breakout", "atari_expert_Seaquest"]
    assert "atari_reward_model_Seaquest_hidden" in STAGES["atari_reward_model"].pages("default")
    assert list(STAGES["maze_retrain"].pages("default")) == ["maze_retrain"]


def test_maze_policy_loads_without_reseeding_the_env(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    from rewinterp_utils.agents import maze_ppo

    ppo = maze_ppo(make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=1, seed=0), 1e-4, 0.97, seed=0)
    torch.save(ppo.policy.state_dict(), tmp_path / "policy.pt")
    fresh = make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=2, seed=7)
    obs = fresh.reset()
    policy = load_policy(tmp_path / "policy.pt", fresh)
    assert np.array_equal(obs, make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=2, seed=7).reset())
    for _ in range(5):
        a1, _ = policy.predict(obs, deterministic=True)
        a2, _ = ppo.policy.predict(obs, deterministic=True)
        assert np.array_equal(a1, a2)
        obs, *_ = fresh.step(a1)

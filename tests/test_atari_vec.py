"""How :func:`make_atari_venv` vectorises: worker processes only when a core is spare, and the same game either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from rewinterp_utils import device
from rewinterp_utils.envs.atari import make_atari_venv, vec_env_class

BREAKOUT = "BreakoutNoFrameskip-v4"


@pytest.mark.parametrize(("cores", "share", "threads", "n_envs", "subproc"), [
    (2, "", 1, 8, True), (2, "", 2, 8, False), (16, "", 4, 8, True), (1, "", 1, 8, False), (4, "", 1, 1, False),
    # the runner's share: two parallel jobs on 2 cores get one each, so neither starts worker processes
    (2, "1", 1, 8, False), (16, "8", 4, 8, True), (16, "4", 4, 8, False), (2, "8", 1, 8, True),
])
def test_worker_processes_only_with_a_spare_core(monkeypatch, cores, share, threads, n_envs, subproc):
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setenv(device.CORES_ENV, share)
    cls = vec_env_class(n_envs)
    assert (getattr(cls, "func", cls) is SubprocVecEnv) == subproc


@pytest.mark.parametrize("share", ["0", "-1", "two", "1.5"])
def test_a_core_share_that_is_not_a_positive_integer_is_a_valueerror(monkeypatch, share):
    monkeypatch.setenv(device.CORES_ENV, share)
    with pytest.raises(ValueError, match="REWINTERP_CORES must be a positive integer"):
        vec_env_class(8)


def test_worker_processes_play_the_same_game_as_one_process():
    """Random actions (seeded) for 300 steps: observations, rewards, dones and game scores equal
    ``DummyVecEnv``'s (the oracle) bit for bit."""
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 4, size=(300, 3))
    runs = {}
    for cls in (DummyVecEnv, SubprocVecEnv):
        venv = make_atari_venv(BREAKOUT, n_envs=3, seed=5, vec_env_cls=cls)
        assert isinstance(venv.unwrapped, cls)
        frames = [venv.reset()]
        rewards, dones, scores = [], [], []
        for a in actions:
            obs, r, d, infos = venv.step(a)
            frames.append(obs)
            rewards.append(r)
            dones.append(d)
            scores += [(i, info["episode"]["r"]) for i, info in enumerate(infos) if "episode" in info]
        raw = venv.get_attr("last_raw_frame")
        venv.close()
        runs[cls] = (np.stack(frames), np.stack(rewards), np.stack(dones), scores, np.stack(raw))
    (a, b) = runs.values()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a[2].any()  # a life was lost: resets were compared too

"""Transition datasets: roll a policy out in a vector env and keep (s, s', r)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from rewinterp_utils.wrappers import next_observations


def rollout_transitions(policy: BaseAlgorithm | None, venv: VecEnv, n: int, deterministic: bool = False,
                        desc: str = "transitions") -> dict[str, np.ndarray]:
    """Collect exactly ``n`` transitions ``s, s_next, reward, done`` (true s' on episode ends).

    ``policy=None`` takes uniformly random actions. Rewards are the environment's, or the true reward
    kept in ``info["true_reward"]`` when ``venv`` is a :class:`~rewinterp_utils.wrappers.LearnedRewardVecEnv`
    (its learned reward is then returned as ``learned_reward``).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    keys = ("s", "s_next", "reward", "done", "learned_reward")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    obs, got = venv.reset(), 0
    with tqdm(total=n, desc=desc) as bar:
        while got < n:
            if policy is None:
                actions = np.array([venv.action_space.sample() for _ in range(venv.num_envs)])
            else:
                actions, _ = policy.predict(obs, deterministic=deterministic)
            new_obs, rewards, dones, infos = venv.step(actions)
            true = np.array([info.get("true_reward", r) for info, r in zip(infos, rewards)], dtype=np.float32)
            for k, v in zip(keys, (obs, next_observations(new_obs, dones, infos), true, dones, rewards)):
                out[k].append(np.asarray(v))
            obs, got = new_obs, got + venv.num_envs
            bar.update(venv.num_envs)
    return {k: np.concatenate(v)[:n] for k, v in out.items()}


def save_transitions(path: Path, data: dict[str, np.ndarray]) -> None:
    """Write a transition dict compressed (``.npz``)."""
    with open(path, "wb") as f:
        np.savez_compressed(f, **data)


def load_transitions(path: Path) -> dict[str, np.ndarray]:
    """Read a transition dict written by :func:`save_transitions` (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}

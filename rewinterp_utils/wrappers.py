"""Replace an environment's reward by a learned reward model, inside SB3's vectorised API."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

MAZE_REWARDS: tuple[str, ...] = ("true", "learned")
"""What a maze agent is trained on: the environment's reward, or the learned reward model's."""
ATARI_REWARDS: tuple[str, ...] = ("true", "learned_shown", "learned_hidden")
"""What an Atari agent is trained on (Table 1): the game's clipped reward, or the reward model trained with the
score shown (the paper's) or hidden."""

RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Batched reward: ``(obs, next_obs) -> rewards`` with leading dimension ``n_envs``."""


def next_observations(obs: np.ndarray, dones: np.ndarray, infos: list[dict]) -> np.ndarray:
    """The true s' of every environment after a vectorised step.

    SB3 vector envs reset finished episodes at once, so ``obs[i]`` of a finished episode is already the
    first observation of the next one; the real last observation is ``infos[i]["terminal_observation"]``.
    """
    nxt = np.array(obs, copy=True)
    for i in np.flatnonzero(dones):
        nxt[i] = infos[i]["terminal_observation"]
    return nxt


def torch_reward_fn(model: torch.nn.Module, device: str = "cpu") -> RewardFn:
    """Wrap a reward model (``model(s, s')`` if ``model.uses_state`` else ``model(s')``) as a :data:`RewardFn`."""
    model = model.to(device).eval()

    @torch.no_grad()
    def reward(obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        nxt = torch.as_tensor(next_obs, device=device)
        out = model(torch.as_tensor(obs, device=device), nxt) if getattr(model, "uses_state", True) else model(nxt)
        return out.float().cpu().numpy()

    return reward


class LearnedRewardVecEnv(VecEnvWrapper):
    """Rewards become ``reward_fn(s, s')``; the environment's own reward is kept in ``info["true_reward"]``.

    Episode statistics from an inner ``Monitor`` (``info["episode"]``) still report the *true* return.
    """

    def __init__(self, venv: VecEnv, reward_fn: RewardFn) -> None:
        super().__init__(venv)
        self.reward_fn = reward_fn
        self._obs: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        obs, true_rewards, dones, infos = self.venv.step_wait()
        rewards = np.asarray(self.reward_fn(self._obs, next_observations(obs, dones, infos)), dtype=np.float32)
        for info, r in zip(infos, true_rewards):
            info["true_reward"] = float(r)
        self._obs = obs
        return obs, rewards.reshape(true_rewards.shape), dones, infos

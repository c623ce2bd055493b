"""Replace an environment's reward by a learned reward model, inside SB3's vectorised API."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rewinterp_utils.reward_models import RewardModel, as_reward_model

MAZE_REWARDS: tuple[str, ...] = ("true", "learned")
"""What a maze agent is trained on: the environment's reward, or the learned reward model's."""
ATARI_REWARDS: tuple[str, ...] = ("true", "learned_shown", "learned_hidden")
"""What an Atari agent is trained on (Table 1): the game's clipped reward, or the reward model trained with the
score shown (the paper's) or hidden."""


def next_observations(obs: np.ndarray, dones: np.ndarray, infos: list[dict]) -> np.ndarray:
    """The true s' of every environment after a vectorised step.

    SB3 vector envs reset finished episodes at once, so ``obs[i]`` of a finished episode is already the
    first observation of the next one; the real last observation is ``infos[i]["terminal_observation"]``.
    """
    nxt = np.array(obs, copy=True)
    for i in np.flatnonzero(dones):
        nxt[i] = infos[i]["terminal_observation"]
    return nxt


class LearnedRewardVecEnv(VecEnvWrapper):
    """Rewards become the reward model's on ``(s, s')`` (or ``s'`` only, as the model reads); the environment's
    own reward is kept in ``info["true_reward"]``.

    ``reward``: a :class:`~rewinterp_utils.reward_models.RewardModel`, or a plain function ``fn(s, s_next)`` of
    the batched observations (wrapped by :func:`~rewinterp_utils.reward_models.as_reward_model`). Episode
    statistics from an inner ``Monitor`` (``info["episode"]``) still report the *true* return.
    """

    def __init__(self, venv: VecEnv, reward: RewardModel | Callable[..., Any]) -> None:
        super().__init__(venv)
        self.reward_model = as_reward_model(reward)
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
        rewards = self.reward_model.predict(s=self._obs, s_next=next_observations(obs, dones, infos))
        rewards = rewards.astype(np.float32)
        for info, r in zip(infos, true_rewards):
            info["true_reward"] = float(r)
        self._obs = obs
        return obs, rewards.reshape(true_rewards.shape), dones, infos

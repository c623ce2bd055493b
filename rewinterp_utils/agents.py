"""PPO agents: the paper's recipe, best-checkpoint saving as plain weights, safe loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv


def maze_ppo(venv: VecEnv, learning_rate: float, gamma: float, seed: int) -> PPO:
    """PPO (MlpPolicy) as in PAPER.md section 1: learning rate decayed linearly from ``learning_rate``."""
    return PPO("MlpPolicy", venv, learning_rate=lambda remaining: remaining * learning_rate, gamma=gamma,
               seed=seed, device="cpu", verbose=0)


class SaveBestPolicy(BaseCallback):
    """Called by ``EvalCallback`` on a new best mean reward: saves the policy's state dict to ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)

    def _on_step(self) -> bool:
        torch.save(self.model.policy.state_dict(), self.path)
        return True


def evaluator(eval_env: VecEnv, eval_freq: int, n_eval_episodes: int, best_path: Path | None = None,
              log_path: Path | None = None) -> EvalCallback:
    """SB3's ``EvalCallback`` (deterministic actions); optionally keeps the best policy's weights at ``best_path``."""
    return EvalCallback(eval_env, n_eval_episodes=n_eval_episodes, eval_freq=eval_freq, deterministic=True,
                        callback_on_new_best=SaveBestPolicy(best_path) if best_path else None,
                        log_path=str(log_path) if log_path else None, verbose=0)


def load_policy(algo: PPO, path: Path) -> PPO:
    """Load weights saved by :class:`SaveBestPolicy` into ``algo`` (``weights_only=True``)."""
    algo.policy.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    algo.policy.set_training_mode(False)
    return algo


def eval_curve(log_dir: Path) -> dict[str, Any]:
    """The evaluation curve ``EvalCallback`` wrote: timesteps, per-episode returns, lengths, successes."""
    with np.load(Path(log_dir) / "evaluations.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}

"""Train PPO on a reward (the env's own, or a reward model's) and score it on the true reward as it learns: the one
procedure behind the experts, Figure 3, Table 1, Part VI's retraining and the audit's ``retrain``.

The agent is trained on :class:`~rewinterp_utils.wrappers.LearnedRewardVecEnv` (the model's reward) or on the env
itself, and evaluated every ``cfg.eval_freq`` steps on new episodes of the env with its true reward, in envs whose
seeds (:mod:`~rewinterp_utils.seeding`) no other run or role shares: the maze with SB3's ``EvalCallback``
(deterministic actions, the paper's 10 episodes), Atari with :class:`~rewinterp_utils.agents.AtariEvalCallback`
(stochastic actions, whole new games in a new venv at each evaluation, scored both by the paper's clipped per-life
return and by the game score).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from rewinterp_utils.reward_models import RewardModel
from rewinterp_utils.seeding import seed_sub_envs, seeded_vec_env, sub_env_seeds


@dataclass
class Trained:
    """What :func:`train_agent` returns: the agent and its true-reward curve, one row per evaluation
    (``timesteps``, ``true_return``: mean over the evaluation's episodes, the paper's clipped per-life return on
    Atari; Atari adds ``game_score``), and the evaluations' episodes one row each (``timesteps``, ``true_return``;
    Atari: per life, with ``game_score`` on the rows that end a game)."""

    ppo: PPO
    curve: pd.DataFrame
    episodes: pd.DataFrame


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is one of the paper's Atari games (else a Gymnasium id such as the mazes')."""
    from rewinterp_utils.envs.atari import ATARI_IDS  # lazily: maze users need no ALE

    return env_id in ATARI_IDS


def _maze_curve(callback: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    steps = np.asarray(callback.evaluations_timesteps)
    results = np.asarray(callback.evaluations_results, dtype=float)
    curve = pd.DataFrame({"timesteps": steps, "true_return": results.mean(axis=1),
                          "episode_length": np.asarray(callback.evaluations_length, dtype=float).mean(axis=1)})
    episodes = pd.DataFrame({"timesteps": np.repeat(steps, results.shape[1]), "true_return": results.ravel()})
    return curve, episodes


def _atari_curve(callback: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    curve = pd.DataFrame([{"timesteps": r["timesteps"], "true_return": r["clipped_return"],
                           "game_score": r["game_score"]} for r in callback.curve])
    episodes = pd.DataFrame([{"timesteps": r["timesteps"], "true_return": x} for r in callback.curve
                             for x in r["clipped_returns"]])
    return curve, episodes


def train_agent(env_id: str, cfg: Any, seed: int, reward: RewardModel | None = None, *, score: str = "shown",
                decay: bool = False, best_path: Path | None = None, log_dir: Path | None = None,
                callbacks: list[BaseCallback] | None = None) -> Trained:
    """PPO from scratch on ``env_id`` rewarded by ``reward`` (``None``: the env's own reward), evaluated on the true
    reward; returns :class:`Trained`.

    ``cfg``: the maze's ``profiles.MazeExpert``/``MazeRetrain``/``MazePrefRetrain`` (MlpPolicy, one env, learning
    rate decayed linearly when ``decay``, else constant; evaluated every ``cfg.eval_freq`` steps, or once at the end
    when it has none) or Atari's ``profiles.AtariExpert``/``AtariRetrain`` (the paper's recipe; ``score``: the game
    shown or hidden). ``best_path``: keep the best evaluation's policy weights there. ``log_dir`` (maze): SB3's
    ``evaluations.npz`` there too. ``callbacks``: more SB3 callbacks (e.g. a progress bar). Training envs use seed
    stream ``"train"``, evaluation envs ``"eval"``; torch is seeded with ``seed``.
    """
    from rewinterp_utils.wrappers import LearnedRewardVecEnv

    torch.manual_seed(seed)
    atari = is_atari(env_id)
    scratch = None
    if atari:
        from rewinterp_utils.agents import AtariEvalCallback, atari_ppo
        from rewinterp_utils.envs.atari import make_atari_venv

        venv = make_atari_venv(env_id, n_envs=cfg.n_envs, seed=seed, score=score, stream="train")
        ppo = atari_ppo(LearnedRewardVecEnv(venv, reward) if reward is not None else venv, cfg, seed)
        evaluation: BaseCallback = AtariEvalCallback(
            lambda: make_atari_venv(env_id, n_envs=min(4, cfg.n_eval_episodes), seed=seed, score=score,
                                    stream="eval"),
            cfg.eval_freq, cfg.n_eval_episodes, best_path)
    else:
        from rewinterp_utils.agents import evaluator, maze_ppo

        venv = seeded_vec_env(env_id, 1, seed, "train")
        ppo = maze_ppo(LearnedRewardVecEnv(venv, reward) if reward is not None else venv, cfg.learning_rate,
                       cfg.gamma, seed, decay=decay)
        eval_env = seeded_vec_env(env_id, 1, seed, "eval")
        # no eval_freq (Part VI): the final policy alone is evaluated, after the last update. EvalCallback records
        # its evaluations only when it has a log path: a temporary one when log_dir is not given
        scratch = tempfile.TemporaryDirectory() if log_dir is None else None
        evaluation = evaluator(eval_env, getattr(cfg, "eval_freq", 0), cfg.n_eval_episodes, best_path,
                               Path(scratch.name) if scratch else log_dir)
    seed_sub_envs(ppo.get_env(), sub_env_seeds(seed, venv.num_envs, "train"))  # PPO(seed=) reset them to seed + rank
    try:
        ppo.learn(cfg.total_timesteps, callback=[evaluation, *(callbacks or [])])
    finally:
        venv.close()
        if scratch is not None:
            scratch.cleanup()
    if not atari and not evaluation.eval_freq:
        from stable_baselines3.common.evaluation import evaluate_policy

        returns, lengths = evaluate_policy(ppo, eval_env, n_eval_episodes=cfg.n_eval_episodes, deterministic=True,
                                           return_episode_rewards=True)
        evaluation.evaluations_timesteps.append(ppo.num_timesteps)
        evaluation.evaluations_results.append(returns)
        evaluation.evaluations_length.append(lengths)
    curve, episodes = _atari_curve(evaluation) if atari else _maze_curve(evaluation)
    return Trained(ppo, curve, episodes)


__all__ = ["Trained", "is_atari", "train_agent"]

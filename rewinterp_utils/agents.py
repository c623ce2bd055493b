"""PPO agents: the paper's recipe, best-checkpoint saving as plain weights, safe loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv

from rewinterp_utils.device import policy_device
from rewinterp_utils.features import RawImageCnnPolicy, cnn_policy_kwargs


def maze_ppo(venv: VecEnv, learning_rate: float, gamma: float, seed: int, decay: bool = True) -> PPO:
    """PPO (MlpPolicy, SB3's other defaults) for the maze: the learning rate decays linearly from ``learning_rate``
    to 0 (the paper's expert recipe) or, with ``decay=False``, stays constant (SB3's default schedule)."""
    lr = (lambda remaining: remaining * learning_rate) if decay else learning_rate
    return PPO("MlpPolicy", venv, learning_rate=lr, gamma=gamma, seed=seed, device=policy_device(False), verbose=0)


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


def load_policy(path: Path, venv: VecEnv, precision: str = "fp32") -> Any:
    """A PPO policy for ``venv``'s spaces with the weights saved at ``path`` (by :class:`SaveBestPolicy` or
    :class:`AtariEvalCallback`), loaded safely (``weights_only=True``), in eval mode.

    Image observations (Atari) get SB3's ``ActorCriticCnnPolicy`` (``precision="fp32"``, the stock policy) or,
    with ``precision="bf16"``, the same network computing its convolutions in bfloat16 from the raw uint8
    observations (:class:`~rewinterp_utils.features.RawImageCnnPolicy`, the experts' training policy; the same
    parameter names, so the same file loads); others (the maze grids) SB3's MLP policy, as ``PPO("CnnPolicy" |
    "MlpPolicy")`` builds them. Built without a PPO object on purpose: constructing PPO on an env reseeds that env
    with PPO's seed. ``policy.predict`` takes the env's observations as PPO's own does.
    """
    from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy
    from stable_baselines3.common.preprocessing import is_image_space
    from stable_baselines3.common.vec_env import VecTransposeImage

    from rewinterp_utils.features import RawImageCnnPolicy, cnn_policy_kwargs

    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    space = venv.observation_space
    image = is_image_space(space, check_channels=False) and len(space.shape) == 3
    if image and precision == "bf16":
        policy = RawImageCnnPolicy(VecTransposeImage.transpose_space(space), venv.action_space, lambda _: 0.0,
                                   **cnn_policy_kwargs("bf16"))
    elif image:
        policy = ActorCriticCnnPolicy(VecTransposeImage.transpose_space(space), venv.action_space, lambda _: 0.0)
    else:
        policy = ActorCriticPolicy(space, venv.action_space, lambda _: 0.0)
    policy.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    policy.set_training_mode(False)
    return policy.to(policy_device(image))


def eval_curve(log_dir: Path) -> dict[str, Any]:
    """The evaluation curve ``EvalCallback`` wrote: timesteps, per-episode returns, lengths, successes."""
    with np.load(Path(log_dir) / "evaluations.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class TqdmCallback(BaseCallback):
    """A tqdm progress bar over PPO's environment steps (silenced by ``TQDM_DISABLE=1``, as the runner sets)."""

    def __init__(self, total: int, desc: str = "PPO") -> None:
        super().__init__()
        self.total, self.desc, self.bar = total, desc, None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc=self.desc, unit="step")

    def _on_step(self) -> bool:
        self.bar.update(self.model.n_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def atari_ppo(venv: VecEnv, cfg: Any, seed: int) -> PPO:
    """PPO (CnnPolicy) with the paper's Atari recipe; ``cfg`` is a ``profiles.AtariExpert``.

    Learning rate and clip range decay linearly to 0 over training, as in the original PPO Atari setting. The
    Nature CNN computes in ``REWINTERP_PRECISION`` (:class:`~rewinterp_utils.features.AutocastNatureCNN`: bf16
    where the hardware has it), scaling the uint8 observations itself
    (:class:`~rewinterp_utils.features.RawImageCnnPolicy`); all else is fp32. Its weights have the stock parameter
    names, so :func:`load_policy` (fp32) reads the checkpoints.
    """
    lr, clip = cfg.learning_rate, cfg.clip_range
    return PPO(RawImageCnnPolicy, venv, n_steps=cfg.n_steps, n_epochs=cfg.n_epochs, batch_size=cfg.batch_size,
               learning_rate=lambda remaining: remaining * lr, clip_range=lambda remaining: remaining * clip,
               ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, seed=seed, device=policy_device(True),
               policy_kwargs=cnn_policy_kwargs(), verbose=0)


class AtariEvalCallback(BaseCallback):
    """Every ``eval_freq`` steps, play ``n_games`` new whole games with
    :func:`~rewinterp_utils.evaluation.evaluate_atari` (stochastic actions, as the dataset is collected); keep the
    weights with the best clipped per-life return.

    ``make_eval_env`` builds the evaluation venv; each evaluation gets a new one (closed afterwards). Reusing one
    venv would continue old games: SB3's ``EpisodicLifeEnv.reset`` only takes a no-op step while the game has lives
    left, so a game an earlier evaluation stopped at its target would be finished by the next evaluation, whose
    score would then count play of an older policy. Every evaluation builds its venv with the same seeds: each
    checkpoint meets the same game starts (common random numbers), and what differs between evaluations is the
    policy alone.

    ``curve`` holds one row per evaluation: timesteps, clipped per-life return, game score, and the games' clipped
    per-life returns and scores (lists).
    """

    def __init__(self, make_eval_env: Callable[[], VecEnv], eval_freq: int, n_games: int,
                 best_path: Path | None = None) -> None:
        super().__init__()
        if isinstance(make_eval_env, VecEnv) or not callable(make_eval_env):
            raise TypeError("AtariEvalCallback takes a function that builds a new evaluation venv (each evaluation "
                            "plays new games), not a venv")
        self.make_eval_env, self.eval_freq, self.n_games = make_eval_env, eval_freq, n_games
        self.best_path = Path(best_path) if best_path is not None else None
        self.curve: list[dict[str, Any]] = []
        self.best = -np.inf
        self._next = 0

    def _evaluate(self) -> None:
        from rewinterp_utils.evaluation import evaluate_atari  # here: maze users of agents need no ALE

        eval_env = self.make_eval_env()
        try:
            res = evaluate_atari(self.model, eval_env, self.n_games, deterministic=False,
                                 max_steps=20_000 * self.n_games)
        finally:
            eval_env.close()
        self.curve.append({"timesteps": self.num_timesteps, "clipped_return": res["clipped_return_mean"],
                           "game_score": res["game_score_mean"], "clipped_returns": res["clipped_returns"],
                           "game_scores": res["game_scores"]})
        if res["clipped_return_mean"] > self.best:  # NaN (nothing finished) never counts as best
            self.best = res["clipped_return_mean"]
            if self.best_path is not None:
                torch.save(self.model.policy.state_dict(), self.best_path)

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._evaluate()
            self._next = self.num_timesteps + self.eval_freq
        return True

    def _on_training_end(self) -> None:
        self._evaluate()

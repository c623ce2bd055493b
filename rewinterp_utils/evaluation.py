"""Playing a policy in the paper's Atari env and scoring it two ways: the paper's clipped per-life return and
the full game score (Michaud, Gleave and Russell 2020, "Understanding Learned Reward Functions", section 3).

Kept apart from :mod:`rewinterp_utils.agents` (which builds, trains and loads PPO agents, maze and Atari alike)
because playing needs the Atari env (:func:`~rewinterp_utils.envs.atari.make_atari_venv`, hence the ALE), which
the maze's users of ``agents`` should not have to import.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from rewinterp_utils.envs.atari import make_atari_venv


def _predict_fn(policy: Any, venv: VecEnv, deterministic: bool, seed: int) -> Callable:
    if policy is None:
        rng = np.random.default_rng(seed)
        n = venv.action_space.n  # type: ignore[attr-defined]

        def random_actions(obs, state, episode_start):
            return rng.integers(0, n, size=venv.num_envs), None

        return random_actions
    if hasattr(policy, "predict"):
        def predict(obs, state, episode_start):
            return policy.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)

        return predict
    if callable(policy):
        return lambda obs, state, episode_start: (policy(obs), None)
    raise TypeError("policy must be None (random), have an SB3-style .predict, or be a callable obs -> actions")


def _check_new_games(venv: VecEnv) -> None:
    """``ValueError`` when a sub-env of ``venv`` is inside a game (lost a life but not the game): its ``reset`` would
    continue that game, and the evaluation would count play from before it."""
    ongoing = [i for i, real in enumerate(venv.get_attr("was_real_done")) if not real]
    if ongoing:
        raise ValueError(f"evaluate_atari: sub-envs {ongoing} of this venv are inside a game an earlier run started "
                         "(reset would continue it, not start a new game); evaluate on a new venv each time")


def evaluate_atari(
    policy: Any,
    env: str | VecEnv,
    n_episodes: int = 10,
    deterministic: bool = True,
    *,
    n_envs: int = 1,
    seed: int = 0,
    score: str = "shown",
    n_stack: int = 4,
    max_steps: int = 100_000,
    stream: str = "eval",
) -> dict[str, Any]:
    """Play ``n_episodes`` whole games and record both the clipped per-life return and the game score.

    ``policy``: ``None`` (uniformly random actions, seeded by ``seed``), an object with SB3's
    ``predict(obs, state=, episode_start=, deterministic=)`` (an algorithm or a policy), or a callable
    ``obs -> actions``. ``env``: an env id (built with :func:`make_atari_venv` from ``n_envs``, ``seed``,
    ``score``, ``n_stack`` and seed stream ``stream``, and closed afterwards) or a venv of :func:`make_atari_venv`,
    never played before: a venv that already played continues its games (``EpisodicLifeEnv`` resets to a new
    life, not a new game), so build a new one for each evaluation. As in SB3's
    ``evaluate_policy``, the games are split evenly over the sub-envs beforehand. At most ``max_steps`` env
    steps (agent steps summed over sub-envs) are taken; if they run out, ``truncated`` is True and only
    finished lives and games are counted.

    Returns ``clipped_return_mean`` (mean over life-episodes of the sum of clipped rewards: the paper's
    metric), ``clipped_returns``, ``game_score_mean`` (mean over games of the unclipped score, Monitor's
    ``info["episode"]["r"]``), ``game_scores``, ``game_lengths`` (raw frames), ``n_lives``, ``n_games``,
    ``steps`` and ``truncated``. Means are NaN when nothing was finished.
    """
    if int(n_episodes) != n_episodes or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    own = isinstance(env, str)
    venv = make_atari_venv(env, n_envs=n_envs, seed=seed, score=score, n_stack=n_stack, stream=stream) if own else env
    try:
        if not own:
            _check_new_games(venv)
        act = _predict_fn(policy, venv, deterministic, seed)
        n = venv.num_envs
        targets = np.array([(n_episodes + i) // n for i in range(n)], dtype=int)
        games = np.zeros(n, dtype=int)
        life_return = np.zeros(n)
        clipped_returns: list[float] = []
        game_scores: list[float] = []
        game_lengths: list[int] = []
        obs = venv.reset()
        state = None
        episode_start = np.ones(n, dtype=bool)
        steps = 0
        while (games < targets).any() and steps < max_steps:
            actions, state = act(obs, state, episode_start)
            obs, rewards, dones, infos = venv.step(np.asarray(actions))
            steps += n
            life_return += rewards
            episode_start = dones
            for i in np.flatnonzero(dones):
                if games[i] < targets[i]:
                    clipped_returns.append(float(life_return[i]))
                    if "episode" in infos[i]:
                        game_scores.append(float(infos[i]["episode"]["r"]))
                        game_lengths.append(int(infos[i]["episode"]["l"]))
                        games[i] += 1
                life_return[i] = 0.0
        truncated = bool((games < targets).any())
        if truncated:
            warnings.warn(f"evaluate_atari: max_steps={max_steps} reached after {int(games.sum())} of "
                          f"{n_episodes} games", RuntimeWarning, stacklevel=2)
    finally:
        if own:
            venv.close()

    def mean(xs: Sequence[float]) -> float:
        return float(np.mean(xs)) if len(xs) else float("nan")

    return {
        "clipped_return_mean": mean(clipped_returns),
        "clipped_returns": clipped_returns,
        "game_score_mean": mean(game_scores),
        "game_scores": game_scores,
        "game_lengths": game_lengths,
        "n_lives": len(clipped_returns),
        "n_games": len(game_scores),
        "steps": steps,
        "truncated": truncated,
    }


__all__ = ["evaluate_atari"]

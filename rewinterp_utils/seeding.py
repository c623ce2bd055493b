"""Seeds of vectorised environments: every (seed, stream) pair gets sub-env seeds that no other pair shares.

SB3's ``make_vec_env`` and ``VecEnv.seed`` give sub-env ``rank`` the seed ``seed + rank``, so runs with seeds 0 and
1 of 8 sub-envs share 7 of their 8 environments (the same game starts, the same no-op resets), and an offset such as
``seed + 10_000`` for an evaluation env only moves the overlap. Here the seeds of one venv come from
``numpy.random.SeedSequence((seed, stream))``: independent 32-bit draws for each (seed, stream), so two runs, or
two roles of one run (training, evaluation, on-policy rollouts, ...), share an environment seed only by a 32-bit
collision (checked in the tests for the seeds the book uses).
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

STREAMS: tuple[str, ...] = ("train", "eval", "check", "onpolicy", "dataset", "dataset_test", "play", "audit")
"""The roles an environment plays in a run; each draws its own seeds. Add a new role at the end (the seeds of a role
depend on its position here)."""


def sub_env_seeds(seed: int, n_envs: int, stream: str = "train") -> list[int]:
    """``n_envs`` seeds for the sub-envs of one venv playing role ``stream`` (one of :data:`STREAMS`) in run
    ``seed``; the same arguments give the same seeds, on every machine."""
    if stream not in STREAMS:
        raise ValueError(f"unknown seed stream {stream!r}; one of {', '.join(STREAMS)}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if int(n_envs) != n_envs or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    state = np.random.SeedSequence((int(seed), STREAMS.index(stream))).generate_state(int(n_envs), dtype=np.uint32)
    return [int(s) for s in state]


def seed_sub_envs(venv: VecEnv, seeds: list[int]) -> VecEnv:
    """Seed each sub-env of ``venv`` (any wrapping of a ``DummyVecEnv`` or ``SubprocVecEnv``) with its own seed at
    its next reset, as ``VecEnv.seed`` does with ``seed + rank``; returns ``venv``.

    Needed again after building PPO on a venv: ``PPO(seed=...)`` calls ``venv.seed(seed)``, which would put back
    ``seed + rank``."""
    if len(seeds) != venv.num_envs:
        raise ValueError(f"{len(seeds)} seeds for {venv.num_envs} sub-envs")
    venv.unwrapped._seeds = [int(s) for s in seeds]  # what VecEnv.seed sets, read (then cleared) by the next reset
    return venv


def seeded_vec_env(env_id: str, n_envs: int, seed: int, stream: str = "train") -> VecEnv:
    """SB3's ``make_vec_env(env_id, n_envs)`` (``DummyVecEnv`` of ``Monitor``-wrapped envs: the maze's) with sub-env
    and action-space seeds from :func:`sub_env_seeds` instead of ``seed + rank``."""
    from stable_baselines3.common.env_util import make_vec_env

    seeds = sub_env_seeds(seed, n_envs, stream)
    venv = make_vec_env(env_id, n_envs=n_envs, seed=None)
    for env, s in zip(venv.envs, seeds):  # type: ignore[attr-defined]
        env.action_space.seed(s)
    return seed_sub_envs(venv, seeds)


__all__ = ["STREAMS", "seed_sub_envs", "seeded_vec_env", "sub_env_seeds"]

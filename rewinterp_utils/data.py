"""Transition datasets: roll a policy out in a vector env and keep (s, s', r); balanced Atari observations."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

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


def split_episodes(data: dict[str, np.ndarray], n_envs: int, tails: bool = False) -> list[dict[str, np.ndarray]]:
    """The episodes in transitions collected by :func:`rollout_transitions` from ``n_envs`` parallel environments
    (step-major: transition ``i`` comes from environment ``i % n_envs``), each a dict of ``s``, ``s_next``,
    ``reward`` ending with a ``done`` step; with ``tails`` the unfinished last stretch of each environment too
    (a fragment of an episode)."""
    if n_envs < 1 or len(data["done"]) % n_envs:
        raise ValueError(f"n_envs must be >= 1 and divide the number of transitions ({len(data['done'])}), "
                         f"got {n_envs}")
    episodes = []
    for env in range(n_envs):
        idx = np.arange(env, len(data["done"]), n_envs)
        ends = np.flatnonzero(data["done"][idx])
        spans = list(zip(np.r_[0, ends[:-1] + 1], ends + 1))
        if tails and (not len(ends) or ends[-1] + 1 < len(idx)):
            spans.append((ends[-1] + 1 if len(ends) else 0, len(idx)))
        for start, end in spans:
            sel = idx[start:end]
            episodes.append({k: data[k][sel] for k in ("s", "s_next", "reward")})
    return episodes


def save_transitions(path: Path, data: dict[str, np.ndarray]) -> None:
    """Write a transition dict compressed (``.npz``)."""
    with open(path, "wb") as f:
        np.savez_compressed(f, **data)


def load_transitions(path: Path) -> dict[str, np.ndarray]:
    """Read a transition dict written by :func:`save_transitions` (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _actions(policy: Any, venv: VecEnv, obs: np.ndarray, deterministic: bool) -> np.ndarray:
    """The policy's actions for ``obs`` (``policy=None``: uniformly random)."""
    if policy is None:
        return np.array([venv.action_space.sample() for _ in range(venv.num_envs)])
    return policy.predict(obs, deterministic=deterministic)[0]


def play_lockstep(policy: Any, venvs: dict[str, VecEnv], deterministic: bool = False
                  ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """Play ``policy`` on the first of ``venvs`` and replay the same actions in the others, forever.

    The venvs must be built alike and with the same seed (e.g. the score shown and hidden versions of one
    game from :func:`~rewinterp_utils.envs.atari.make_atari_venv`), so that they play the same game. Yields
    after every step ``(obs, rewards, dones)``: the new observation of every venv by name, and the lead venv's
    rewards and dones (``RuntimeError`` the moment another venv's rewards or dones differ).
    """
    names = list(venvs)
    lead = venvs[names[0]]
    obs = {k: v.reset() for k, v in venvs.items()}
    while True:
        actions = _actions(policy, lead, obs[names[0]], deterministic)
        results = {k: v.step(actions) for k, v in venvs.items()}
        rewards, dones = results[names[0]][1], results[names[0]][2]
        for k in names[1:]:
            if not np.array_equal(results[k][1], rewards) or not np.array_equal(results[k][2], dones):
                raise RuntimeError(f"venv {k!r} diverged from {names[0]!r}: build them with the same seed")
        obs = {k: r[0] for k, r in results.items()}
        yield obs, rewards, dones


def collect_balanced(policy: BaseAlgorithm | None, venvs: dict[str, VecEnv], n_rewarded: int, n_unrewarded: int,
                     max_steps: int, seed: int = 0, deterministic: bool = False,
                     desc: str = "rewarded observations") -> dict[str, np.ndarray]:
    """Observations s' that earned a reward and as many that did not, from ``policy``'s play (Atari).

    ``venvs`` maps a name (``"shown"``, ``"hidden"``) to envs of :func:`~rewinterp_utils.envs.atari.make_atari_venv`
    built with the *same* seed: the policy acts on the first one and the same actions are replayed in the
    others, so every kept sample exists in every score setting (rewards are checked to agree at each step).
    Every rewarded s' is kept until ``n_rewarded``; unrewarded s' are a uniform reservoir sample of
    ``n_unrewarded`` over the same period, so both classes span the same stretch of play. Steps that end a
    life are skipped (their s' is a terminal frame the figures cannot show).

    Returns ``obs_<name>`` (N, 84, 84, 4) uint8 for each venv, ``reward`` (N,) float32 (clipped reward),
    ``step`` (N,) int64 (when it was collected, in env steps summed over sub-envs) and ``screen``
    (N, 210, 160, 3) uint8, the unmasked RGB screen behind each s'. ``RuntimeError`` if ``max_steps`` pass
    before ``n_rewarded`` rewarded observations were seen.
    """
    for name, value in (("n_rewarded", n_rewarded), ("n_unrewarded", n_unrewarded), ("max_steps", max_steps)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    names = list(venvs)
    lead = venvs[names[0]]
    n = n_rewarded + n_unrewarded
    rng = np.random.default_rng(seed)
    out = {f"obs_{k}": np.zeros((n, *lead.observation_space.shape), np.uint8) for k in names}
    out |= {"reward": np.zeros(n, np.float32), "step": np.zeros(n, np.int64),
            "screen": np.zeros((n, 210, 160, 3), np.uint8)}  # the raw ALE screen
    got_r, seen_u, steps = 0, 0, 0
    with tqdm(total=n_rewarded, desc=desc) as bar:
        for obs, rewards, dones in play_lockstep(policy, venvs, deterministic):
            screens = lead.get_attr("last_raw_frame")
            steps += lead.num_envs
            for i in np.flatnonzero(~dones):
                if rewards[i] != 0:
                    slot = n_unrewarded + got_r if got_r < n_rewarded else None
                    got_r += slot is not None
                    bar.update(slot is not None)
                else:
                    slot = seen_u if seen_u < n_unrewarded else int(rng.integers(seen_u + 1))
                    slot = slot if slot < n_unrewarded else None
                    seen_u += 1
                if slot is not None:
                    for k in names:
                        out[f"obs_{k}"][slot] = obs[k][i]
                    out["reward"][slot], out["step"][slot], out["screen"][slot] = rewards[i], steps, screens[i]
            if got_r >= n_rewarded and seen_u >= n_unrewarded:
                break
            if steps >= max_steps:
                raise RuntimeError(
                    f"the policy earned a reward on {got_r} of the {n_rewarded} observations needed within "
                    f"max_steps={max_steps} env steps: train the expert longer (atari_expert total_timesteps) "
                    f"or raise atari_dataset max_steps")
    return out


def split_by_time(reward: np.ndarray, step: np.ndarray, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices for :func:`collect_balanced`'s output: in each class (rewarded, unrewarded) the
    earliest ``n_train // 2`` samples train, the later ones test (held-out play, not neighbours of training
    frames). Indices, not copies, so that large arrays are copied once."""
    rewarded = reward != 0
    train_idx, test_idx = [], []
    for cls in (rewarded, ~rewarded):
        idx = np.flatnonzero(cls)[np.argsort(step[cls], kind="stable")]
        if len(idx) <= n_train // 2:
            raise ValueError(f"only {len(idx)} samples in a class, {n_train // 2} wanted for training")
        train_idx.append(idx[: n_train // 2])
        test_idx.append(idx[n_train // 2:])
    return np.concatenate(train_idx), np.concatenate(test_idx)

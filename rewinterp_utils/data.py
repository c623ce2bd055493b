"""Transition datasets: roll a policy out in a vector env and keep (s, s', r); balanced Atari observations."""

from __future__ import annotations

import zipfile
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from rewinterp_utils.envs.atari import SCREEN_SHAPE
from rewinterp_utils.wrappers import next_observations


def rollout_transitions(policy: BaseAlgorithm | None, venv: VecEnv, n: int, deterministic: bool = False,
                        desc: str = "transitions", seed: int | None = None) -> dict[str, np.ndarray]:
    """Collect exactly ``n`` transitions ``s, s_next, reward, done`` (true s' on episode ends).

    ``policy=None`` takes uniformly random actions; ``seed`` seeds the actions (:func:`seed_actions`). Rewards
    are the environment's, or the true reward kept in ``info["true_reward"]`` when ``venv`` is a
    :class:`~rewinterp_utils.wrappers.LearnedRewardVecEnv` (its learned reward is then returned as
    ``learned_reward``).
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if seed is not None:
        seed_actions(venv, seed)
    keys = ("s", "s_next", "reward", "done", "learned_reward")
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    obs, got = venv.reset(), 0
    with tqdm(total=n, desc=desc) as bar:
        while got < n:
            actions = _actions(policy, venv, obs, deterministic)
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


def save_transitions(path: Path, data: dict[str, np.ndarray], rows: np.ndarray | None = None,
                     chunk_bytes: int = 1 << 24) -> None:
    """Write a transition dict compressed (``.npz``, read by :func:`load_transitions`).

    With ``rows`` (integer indices, e.g. from :func:`split_by_time`) the file holds ``data[k][rows]`` for every
    ``k``, gathered and written ``chunk_bytes`` at a time: a split of a large dataset reaches the disk without a
    copy of it in memory. ``ValueError`` (nothing written) for object arrays, arrays of different lengths when
    ``rows`` is given, or rows that are not integers within those lengths.
    """
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive integer, got {chunk_bytes!r}")
    arrays = {k: np.asarray(v) for k, v in data.items()}
    for k, a in arrays.items():
        if a.dtype.hasobject:
            raise ValueError(f"{k!r} holds Python objects ({a.dtype}); save_transitions writes plain arrays only")
    if rows is not None:
        rows = np.asarray(rows)
        lengths = {k: (len(a) if a.ndim else None) for k, a in arrays.items()}
        if len(set(lengths.values())) > 1 or None in lengths.values():
            raise ValueError(f"rows select from arrays of one length; got lengths {lengths}")
        n = next(iter(lengths.values()), 0)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(f"rows must be a 1-d array of integers, got {rows.dtype} of shape {rows.shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"rows must lie in [0, {n}), got rows from {rows.min()} to {rows.max()}")
        rows = rows.astype(np.int64)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for k, a in arrays.items():
            shape = a.shape if rows is None or a.ndim == 0 else (len(rows), *a.shape[1:])
            header = {"descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False, "shape": shape}
            with zf.open(f"{k}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, header)
                if a.ndim == 0:
                    f.write(np.ascontiguousarray(a).reshape(1).view(np.uint8).data)
                    continue
                n_rows = len(a) if rows is None else len(rows)
                step = max(1, chunk_bytes // max(1, a[:1].nbytes))
                for start in range(0, n_rows, step):
                    part = a[start:start + step] if rows is None else a[rows[start:start + step]]
                    f.write(np.ascontiguousarray(part).reshape(-1).view(np.uint8).data)


def load_transitions(path: Path) -> dict[str, np.ndarray]:
    """Read a transition dict written by :func:`save_transitions` (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def seed_actions(venv: VecEnv, seed: int) -> None:
    """Seed what actions are drawn from: torch's global generator, which a stochastic SB3 policy samples from, and
    ``venv``'s action space, which a random policy (``policy=None``) samples from. Without it, a stochastic
    policy plays another game each time the same seeded venv is replayed."""
    torch.manual_seed(seed)
    venv.action_space.seed(seed)


def _actions(policy: Any, venv: VecEnv, obs: np.ndarray, deterministic: bool) -> np.ndarray:
    """The policy's actions for ``obs`` (``policy=None``: uniformly random)."""
    if policy is None:
        return np.array([venv.action_space.sample() for _ in range(venv.num_envs)])
    return policy.predict(obs, deterministic=deterministic)[0]


def play_lockstep(policy: Any, venvs: dict[str, VecEnv], deterministic: bool = False, seed: int | None = None,
                  with_infos: bool = False) -> Iterator[tuple]:
    """Play ``policy`` on the first of ``venvs`` and replay the same actions in the others, forever.

    ``seed`` seeds the actions (:func:`seed_actions` on the lead venv).

    The venvs must be built alike and with the same seed (e.g. the score shown and hidden versions of one
    game from :func:`~rewinterp_utils.envs.atari.make_atari_venv`), so that they play the same game. Yields
    after every step ``(obs, rewards, dones)``: the observation s' each step led to in every venv by name (on a
    step that ends an episode, the true last observation, ``terminal_observation``, not the next episode's first
    one that the venv returns), and the lead venv's rewards and dones (``RuntimeError`` the moment another
    venv's rewards or dones differ); with ``with_infos``, the lead venv's infos too (a whole game ended where a
    done sub-env's info holds Monitor's ``"episode"``).
    """
    names = list(venvs)
    lead = venvs[names[0]]
    if seed is not None:
        seed_actions(lead, seed)
    obs = {k: v.reset() for k, v in venvs.items()}
    while True:
        actions = _actions(policy, lead, obs[names[0]], deterministic)
        results = {k: v.step(actions) for k, v in venvs.items()}
        rewards, dones = results[names[0]][1], results[names[0]][2]
        for k in names[1:]:
            if not np.array_equal(results[k][1], rewards) or not np.array_equal(results[k][2], dones):
                raise RuntimeError(f"venv {k!r} diverged from {names[0]!r}: build them with the same seed")
        obs = {k: r[0] for k, r in results.items()}  # the policy acts on the reset observation next
        reached = {k: r[0].copy() for k, r in results.items()}
        for k, r in results.items():
            for i in np.flatnonzero(dones):
                reached[k][i] = r[3][i]["terminal_observation"]
        yield (reached, rewards, dones, results[names[0]][3]) if with_infos else (reached, rewards, dones)


def collect_balanced(policy: BaseAlgorithm | None, venvs: dict[str, VecEnv], n_rewarded: int, n_unrewarded: int,
                     max_steps: int, seed: int = 0, deterministic: bool = False, n_screens: int = 0,
                     desc: str = "rewarded observations") -> dict[str, np.ndarray]:
    """Observations s' that earned a reward and as many that did not, from ``policy``'s play (Atari).

    ``venvs`` maps a name (``"shown"``, ``"hidden"``) to envs of :func:`~rewinterp_utils.envs.atari.make_atari_venv`
    built with the *same* seed: the policy acts on the first one and the same actions are replayed in the
    others, so every kept sample exists in every score setting (rewards are checked to agree at each step).
    Every rewarded s' is kept until ``n_rewarded``; unrewarded s' are a uniform reservoir sample of
    ``n_unrewarded`` over the same period, so both classes span the same stretch of play. Steps that end a
    life are skipped (their s' is a terminal frame the figures cannot show). ``seed`` seeds both the policy's
    actions (:func:`play_lockstep`) and the reservoir sample: the same seed, expert and venvs give the same data.

    Raw screens (100 kB each) are kept for ``n_screens`` samples only: the last ``n_screens // 2`` rewarded
    samples and the last ``n_screens - n_screens // 2`` unrewarded ones still in the reservoir at the end, the
    latest of each class (held out by :func:`split_by_time` when each class holds out at least that many plus
    one step's worth, ``num_envs``).

    Returns ``obs_<name>`` (N, 84, 84, 4) uint8 for each venv, ``reward`` (N,) float32 (clipped reward),
    ``step`` (N,) int64 (when it was collected, in env steps summed over sub-envs), ``env`` (N,) int64 (which
    sub-env, 0 to ``num_envs - 1``, played it), ``game`` (N,) int64 (which game: sub-env ``i``'s ``k``-th game is
    ``k * num_envs + i``; the score edits of :mod:`~rewinterp_utils.score_edits` take their donor from the same
    game, whose score only grows), ``screen``
    (n_screens, 210, 160, 3) uint8, the unmasked RGB screens behind the s' of rows ``screen_index``
    (n_screens,) int64 (rewarded first; each class in the order collected). ``RuntimeError`` if ``max_steps``
    pass before ``n_rewarded`` rewarded observations were seen.
    """
    for name, value in (("n_rewarded", n_rewarded), ("n_unrewarded", n_unrewarded), ("max_steps", max_steps)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(n_screens, bool) or int(n_screens) != n_screens or n_screens < 0:
        raise ValueError(f"n_screens must be a non-negative integer, got {n_screens!r}")
    k_r, k_u = n_screens // 2, n_screens - n_screens // 2
    if k_r > n_rewarded or k_u > n_unrewarded:
        raise ValueError(f"n_screens={n_screens} wants {k_r} rewarded and {k_u} unrewarded screens, more than the "
                         f"{n_rewarded} and {n_unrewarded} samples collected")
    names = list(venvs)
    lead = venvs[names[0]]
    n = n_rewarded + n_unrewarded
    rng = np.random.default_rng(seed)
    out = {f"obs_{k}": np.zeros((n, *lead.observation_space.shape), np.uint8) for k in names}
    out |= {"reward": np.zeros(n, np.float32), "step": np.zeros(n, np.int64), "env": np.zeros(n, np.int64),
            "game": np.zeros(n, np.int64)}
    games = np.zeros(lead.num_envs, np.int64)  # games each sub-env finished so far
    # the raw ALE screens of the latest kept samples: rewarded ones in order, unrewarded ones by reservoir slot
    # (an entry leaves when its slot is refilled, the oldest when more than k_u are held)
    shots_r: deque[tuple[int, np.ndarray]] = deque(maxlen=k_r)
    shots_u: OrderedDict[int, np.ndarray] = OrderedDict()
    got_r, seen_u, steps = 0, 0, 0

    def screen_of(i: int) -> np.ndarray:  # fetched only for a kept sample (a worker process would send all 8)
        return np.array(lead.get_attr("last_raw_frame", indices=[int(i)])[0], copy=True)

    with tqdm(total=n_rewarded, desc=desc) as bar:
        for obs, rewards, dones, infos in play_lockstep(policy, venvs, deterministic, seed, with_infos=True):
            steps += lead.num_envs
            for i in np.flatnonzero(~dones):
                if rewards[i] != 0:
                    slot = n_unrewarded + got_r if got_r < n_rewarded else None
                    got_r += slot is not None
                    bar.update(slot is not None)
                    if slot is not None and k_r:
                        shots_r.append((slot, screen_of(i)))
                else:
                    slot = seen_u if seen_u < n_unrewarded else int(rng.integers(seen_u + 1))
                    slot = slot if slot < n_unrewarded else None
                    seen_u += 1
                    if slot is not None:
                        shots_u.pop(slot, None)  # its sample left the reservoir
                        if k_u:
                            shots_u[slot] = screen_of(i)
                            if len(shots_u) > k_u:
                                shots_u.popitem(last=False)
                if slot is not None:
                    for k in names:
                        out[f"obs_{k}"][slot] = obs[k][i]
                    out["reward"][slot], out["step"][slot], out["env"][slot] = rewards[i], steps, i
                    out["game"][slot] = games[i] * lead.num_envs + i
            # a done sub-env lost a life; it also ended its game when Monitor (under the life episodes) recorded the
            # game in its info. (EpisodicLifeEnv's was_real_done cannot tell: FireResetEnv's reset has stepped it
            # again by the time the venv returns, so it reads False after every game over.)
            games += np.array(["episode" in info for info in infos], bool) & dones
            if got_r >= n_rewarded and seen_u >= n_unrewarded:
                break
            if steps >= max_steps:
                raise RuntimeError(
                    f"the policy earned a reward on {got_r} of the {n_rewarded} observations needed within "
                    f"max_steps={max_steps} env steps: train the expert longer (atari_expert total_timesteps) "
                    f"or raise atari_dataset max_steps")
    shots = [*shots_r, *shots_u.items()]
    out["screen_index"] = np.array([row for row, _ in shots], np.int64)
    out["screen"] = np.stack([s for _, s in shots]) if shots else np.zeros((0, *SCREEN_SHAPE, 3), np.uint8)
    return out


def positions_in(split: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Where each of ``rows`` sits in ``split`` (indices, e.g. from :func:`split_by_time`): ``split[p] == rows``.

    ``ValueError`` naming the rows that ``split`` does not hold."""
    where = {int(r): i for i, r in enumerate(np.asarray(split))}
    missing = [int(r) for r in np.asarray(rows) if int(r) not in where]
    if missing:
        raise ValueError(f"rows {missing} are not in the split (of {len(where)} rows)")
    return np.array([where[int(r)] for r in np.asarray(rows)], np.int64)


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


def seen_in_training(train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> np.ndarray:
    """For each test transition, whether the same ``(s, s_next)`` pair (byte for byte) occurs in ``train``.

    On a small maze most held-out transitions also occur in training; the share and the error on the others
    say how much a held-out error measures generalisation. ``ValueError`` when the splits' arrays differ in
    shape beyond the first axis or a split lacks ``s``/``s_next``."""
    for name, d in (("train", train), ("test", test)):
        if "s" not in d or "s_next" not in d:
            raise ValueError(f"{name} needs arrays 's' and 's_next', got {sorted(d)}")
    if train["s"].shape[1:] != test["s"].shape[1:] or train["s_next"].shape[1:] != test["s_next"].shape[1:]:
        raise ValueError(f"train and test transitions differ in shape: s {train['s'].shape[1:]} vs "
                         f"{test['s'].shape[1:]}, s_next {train['s_next'].shape[1:]} vs {test['s_next'].shape[1:]}")

    def keys(d: dict[str, np.ndarray]) -> list[bytes]:
        s, s_next = np.ascontiguousarray(d["s"]), np.ascontiguousarray(d["s_next"])
        return [a.tobytes() + b"|" + b.tobytes() for a, b in zip(s, s_next)]

    seen = set(keys(train))
    return np.array([k in seen for k in keys(test)], dtype=bool)

"""The Atari dataset: balanced, aligned across score settings, screens only for the samples shown, split by time and
written by index, and a clear error without rewards."""

from __future__ import annotations

import tracemalloc

import gymnasium as gym
import numpy as np
import pytest
import torch

from rewinterp_utils.agents import atari_ppo, load_policy
from rewinterp_utils.data import collect_balanced, load_transitions, positions_in, save_transitions, split_by_time
from rewinterp_utils.envs.atari import SCORE_BOXES, make_atari_venv
from rewinterp_utils.pipeline.profiles import resolve
from rewinterp_utils.pipeline.stages import STAGES

ENV = "BreakoutNoFrameskip-v4"


def venvs(seed: int = 3, n_envs: int = 2):
    return {s: make_atari_venv(ENV, n_envs=n_envs, seed=seed, score=s) for s in ("shown", "hidden")}


@pytest.fixture(scope="module")
def data():
    return collect_balanced(None, venvs(), n_rewarded=5, n_unrewarded=7, max_steps=20_000, seed=0, n_screens=4)


def test_the_same_seed_collects_the_same_data_from_a_stochastic_expert():
    """An expert samples its actions from torch's generator: the same seed and venvs give the same dataset whatever
    the caller drew from that generator before (once they did not, so each build of the book had other Atari data),
    and another seed gives other data. The oracle is the first collection."""
    from stable_baselines3 import PPO

    expert = PPO("CnnPolicy", venvs()["shown"], n_steps=16, batch_size=16, seed=0)  # untrained: near-uniform sampling

    def collect(seed: int) -> dict[str, np.ndarray]:
        return collect_balanced(expert, venvs(), n_rewarded=3, n_unrewarded=5, max_steps=20_000, seed=seed)

    first = collect(0)
    torch.rand(7)  # the caller's draws move the generator on
    again = collect(0)
    assert first.keys() == again.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert not np.array_equal(first["step"], collect(1)["step"])


def test_balanced_shapes_and_types(data):
    assert data["obs_shown"].shape == data["obs_hidden"].shape == (12, 84, 84, 4)
    assert data["obs_shown"].dtype == data["obs_hidden"].dtype == np.uint8
    assert data["screen"].shape == (4, 210, 160, 3) and data["screen"].dtype == np.uint8
    assert data["screen_index"].shape == (4,)
    assert (data["reward"] != 0).sum() == 5 and (data["reward"] == 0).sum() == 7
    assert np.all(np.diff(data["step"][7:]) >= 0)  # rewarded samples in the order they came
    assert data["env"].shape == (12,) and data["env"].dtype == np.int64 and set(data["env"]) <= {0, 1}


def test_settings_differ_only_in_the_score_box(data):
    rs, cs = SCORE_BOXES["Breakout"].obs_slices(84, inner=False)
    outside = np.ones((84, 84), bool)
    outside[rs, cs] = False
    assert np.array_equal(data["obs_shown"][:, outside], data["obs_hidden"][:, outside])
    inner = SCORE_BOXES["Breakout"].obs_slices(84, inner=True)
    box = data["obs_hidden"][:, inner[0], inner[1]]
    assert (box == box.reshape(-1)[0]).all()  # painted over: one flat colour
    assert not np.array_equal(data["obs_shown"][:, inner[0], inner[1]], box)  # the digits are there when shown


def test_screens_are_the_frames_behind_the_observations(data):
    import cv2

    for screen, row in zip(data["screen"], data["screen_index"]):
        grey = cv2.cvtColor(screen, cv2.COLOR_RGB2GRAY)
        small = cv2.resize(grey, (84, 84), interpolation=cv2.INTER_AREA).astype(int)
        # the last stacked frame max-pools the last two raw frames, so it is at least the resized last screen
        assert np.mean(np.abs(small - data["obs_shown"][row, :, :, -1].astype(int))) < 10


class Tagged:
    """A stand-in for an Atari vec env whose every observation and screen carries the (step, sub-env) it came from
    (bytes 0-3 of the first row), so that an oracle can tell which step each kept sample and screen is from.
    Rewards and episode ends follow a fixed pattern over (step, sub-env); every instance plays the same game."""

    def __init__(self, n_envs: int = 3) -> None:
        self.num_envs, self.t = n_envs, 0
        self.observation_space = gym.spaces.Box(0, 255, (84, 84, 4), np.uint8)
        self.action_space = gym.spaces.Discrete(4)

    @staticmethod
    def _tag(shape: tuple[int, ...], t: int, i: int) -> np.ndarray:
        x = np.zeros(shape, np.uint8)
        x.reshape(-1)[:4] = (t >> 8, t & 255, i, 7)
        return x

    def reset(self) -> np.ndarray:
        self.t = 0
        return np.stack([self._tag((84, 84, 4), 0, i) for i in range(self.num_envs)])

    def step(self, actions: np.ndarray):
        self.t += 1
        ids = self.t * self.num_envs + np.arange(self.num_envs)
        rewards = (ids % 5 == 0).astype(np.float32)
        dones = ids % 11 == 3
        obs = np.stack([self._tag((84, 84, 4), self.t, i) for i in range(self.num_envs)])
        # as an SB3 VecEnv: a finished episode's last observation in its info (here: the same tag); every other life
        # lost ends the game, which Monitor records in the info as "episode"
        infos = [{"terminal_observation": o} if d else {} for o, d in zip(obs, dones)]
        for i, info in enumerate(infos):
            if dones[i] and Tagged.game_over(self.t, i, self.num_envs):
                info["episode"] = {"r": 0.0, "l": self.t}
        return obs, rewards, dones, infos

    def get_attr(self, name: str, indices=None) -> list:
        assert name == "last_raw_frame"
        indices = range(self.num_envs) if indices is None else indices
        return [self._tag((210, 160, 3), self.t, i) for i in indices]

    @staticmethod
    def game_over(t: int, i: int, n: int) -> bool:
        return (t * n + i) % 22 == 3


def _when(x: np.ndarray) -> tuple[int, int]:
    """The (step, sub-env) a Tagged observation or screen carries."""
    b = x.reshape(-1)[:3].astype(int)
    return b[0] * 256 + b[1], b[2]


@pytest.mark.parametrize("n_screens", [0, 1, 5, 8])
def test_screens_are_kept_only_for_the_latest_samples_of_each_class(n_screens):
    """Many more unrewarded steps than reservoir slots (samples leave the reservoir): the screens kept are those of
    the latest kept samples of each class (an oracle sorts the kept samples by the step they carry), and each screen
    is the one of its row's step."""
    data = collect_balanced(None, {"shown": Tagged(), "hidden": Tagged()}, n_rewarded=20, n_unrewarded=6,
                            max_steps=10_000, seed=1, n_screens=n_screens)
    assert data["screen"].shape == (n_screens, 210, 160, 3) and data["screen_index"].shape == (n_screens,)
    when = [_when(o) for o in data["obs_shown"]]
    expected = []
    for cls, k in ((data["reward"] != 0, n_screens // 2), (data["reward"] == 0, n_screens - n_screens // 2)):
        rows = sorted(np.flatnonzero(cls), key=lambda r: when[r])
        expected += rows[len(rows) - k:]
    assert list(data["screen_index"]) == expected
    for screen, row in zip(data["screen"], data["screen_index"]):
        assert _when(screen) == when[row], "a screen belongs to its row's step"
    assert all(_when(o) == (s // 3, i) for o, s, (_, i) in zip(data["obs_shown"], data["step"], when))
    assert data["env"].tolist() == [i for _, i in when], "env: the sub-env each kept sample was played in"
    assert len(set(data["env"][data["reward"] != 0])) == 3, "rewarded samples come from every sub-env"
    # game: the games sub-env i finished before the sample's step, times the sub-envs, plus i (a plain count)
    games = [sum(Tagged.game_over(u, i, 3) for u in range(1, t)) * 3 + i for t, i in when]
    assert data["game"].tolist() == games and len(set(games)) > 3, "game: the game each kept sample was played in"


def test_too_many_screens_is_a_clear_error():
    with pytest.raises(ValueError, match="n_screens=11"):
        collect_balanced(None, {"shown": Tagged()}, n_rewarded=4, n_unrewarded=5, max_steps=100, n_screens=11)
    with pytest.raises(ValueError, match="n_screens"):
        collect_balanced(None, {"shown": Tagged()}, n_rewarded=4, n_unrewarded=5, max_steps=100, n_screens=-1)


def _dataset(n: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"obs_shown": rng.integers(0, 256, (n, 84, 84, 4), dtype=np.uint8),
            "reward": rng.integers(0, 2, n).astype(np.float32), "step": rng.permutation(n).astype(np.int64),
            "done": rng.random(n) < 0.5}


@pytest.mark.parametrize("chunk_bytes", [1, 30_000, 1 << 26])
def test_a_split_is_written_by_index(tmp_path, chunk_bytes):
    """The file of a split holds, row for row, what plain indexing of each sample gives (rows out of order, chunks of
    one row, of a few rows and of all)."""
    data = _dataset()
    train, test = split_by_time(data["reward"], data["step"], n_train=20)
    for name, rows in (("train", train), ("test", test)):
        save_transitions(tmp_path / f"{name}.npz", data, rows, chunk_bytes=chunk_bytes)
        back = load_transitions(tmp_path / f"{name}.npz")
        assert set(back) == set(data)
        for k, v in data.items():
            oracle = np.array([v[i] for i in rows.tolist()])
            assert back[k].dtype == v.dtype and back[k].shape == oracle.shape and np.array_equal(back[k], oracle)
    save_transitions(tmp_path / "all.npz", data | {"seed": np.int64(3)}, chunk_bytes=chunk_bytes)
    back = load_transitions(tmp_path / "all.npz")
    assert all(np.array_equal(back[k], v) for k, v in data.items()) and back["seed"] == 3


def test_a_split_is_written_without_a_copy_of_it():
    """Writing a 32 MB split of a 32 MB array allocates a chunk at a time (numpy reports its buffers to tracemalloc)."""
    import io

    obs = np.zeros((1_000, 84, 84, 4), np.uint8)
    tracemalloc.start()
    try:
        save_transitions(io.BytesIO(), {"obs": obs}, np.arange(1_000)[::-1], chunk_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < obs.nbytes / 8, f"{peak / 2**20:.1f} MiB allocated to write {obs.nbytes / 2**20:.1f} MiB"


@pytest.mark.parametrize("rows, match", [(np.array([0, 50]), r"\[0, 50\)"), (np.array([-1]), r"\[0, 50\)"),
                                         (np.array([0.0, 1.0]), "integers"), (np.zeros((2, 2), int), "1-d")])
def test_bad_rows_write_nothing(tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        save_transitions(tmp_path / "x.npz", _dataset(), rows)
    with pytest.raises(ValueError, match="one length"):
        save_transitions(tmp_path / "x.npz", {"a": np.zeros(3), "b": np.zeros(4)}, np.array([0]))
    assert not (tmp_path / "x.npz").exists()


def test_positions_in_a_split():
    split = np.array([7, 3, 9, 1])
    assert positions_in(split, np.array([9, 7, 1])).tolist() == [2, 0, 3]
    with pytest.raises(ValueError, match=r"\[4\]"):
        positions_in(split, np.array([3, 4]))


def test_split_by_time_is_balanced_and_ordered():
    reward = np.array([0, 1, 0, 1, 0, 1, 0, 1], np.float32)
    step = np.array([8, 7, 6, 5, 4, 3, 2, 1])
    train, test = split_by_time(reward, step, n_train=4)
    assert sorted(reward[train]) == [0, 0, 1, 1] and sorted(reward[test]) == [0, 0, 1, 1]
    assert step[train].max() < step[test].min()
    with pytest.raises(ValueError, match="class"):
        split_by_time(reward, step, n_train=8)


def test_no_reward_within_budget_is_a_clear_error():
    with pytest.raises(RuntimeError, match="max_steps=64.*total_timesteps"):
        collect_balanced(None, venvs(), n_rewarded=50, n_unrewarded=5, max_steps=64)


def test_diverging_settings_are_detected():
    pair = {"shown": make_atari_venv(ENV, n_envs=1, seed=1), "hidden": make_atari_venv(ENV, n_envs=1, seed=2,
                                                                                        score="hidden")}
    with pytest.raises(RuntimeError, match="diverged"):
        collect_balanced(None, pair, n_rewarded=20, n_unrewarded=5, max_steps=20_000)


@pytest.mark.parametrize("bad", [dict(n_rewarded=0), dict(n_unrewarded=-1), dict(max_steps=0)])
def test_bad_sizes(bad):
    kwargs = dict(n_rewarded=1, n_unrewarded=1, max_steps=10) | bad
    with pytest.raises(ValueError, match="positive"):
        collect_balanced(None, venvs(), **kwargs)


def test_expert_policy_loads_without_reseeding_the_env(tmp_path):
    torch.manual_seed(0)
    venv = make_atari_venv(ENV, n_envs=1, seed=5)
    ppo = atari_ppo(venv, resolve("atari_expert", "smoke"), seed=0)
    torch.save(ppo.policy.state_dict(), tmp_path / "policy.pt")
    fresh = make_atari_venv(ENV, n_envs=1, seed=5)
    obs = fresh.reset()
    policy = load_policy(tmp_path / "policy.pt", fresh)
    ref = make_atari_venv(ENV, n_envs=1, seed=5).reset()
    assert np.array_equal(obs, ref)
    a1, _ = policy.predict(obs, deterministic=True)
    a2, _ = ppo.policy.predict(obs, deterministic=True)
    assert np.array_equal(a1, a2)


def test_book_pages_of_atari_stages():
    assert list(STAGES["atari_expert"].pages("default")) == ["atari_expert_Breakout", "atari_expert_Seaquest"]
    assert "atari_reward_model_Seaquest_hidden" in STAGES["atari_reward_model"].pages("default")
    assert list(STAGES["maze_retrain"].pages("default")) == ["maze_retrain"]


def test_maze_policy_loads_without_reseeding_the_env(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    from rewinterp_utils.agents import maze_ppo

    ppo = maze_ppo(make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=1, seed=0), 1e-4, 0.97, seed=0)
    torch.save(ppo.policy.state_dict(), tmp_path / "policy.pt")
    fresh = make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=2, seed=7)
    obs = fresh.reset()
    policy = load_policy(tmp_path / "policy.pt", fresh)
    assert np.array_equal(obs, make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=2, seed=7).reset())
    for _ in range(5):
        a1, _ = policy.predict(obs, deterministic=True)
        a2, _ = ppo.policy.predict(obs, deterministic=True)
        assert np.array_equal(a1, a2)
        obs, *_ = fresh.step(a1)


def test_play_lockstep_yields_the_true_last_observation_of_an_episode():
    """A counter env whose episodes end after 3 steps (obs = steps taken): on the step that ends an episode the
    venv returns the next episode's first observation (0); play_lockstep must yield the state reached (3), and
    the next step must go on from the reset (1). Oracle: the counts written out by hand."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rewinterp_utils.data import play_lockstep

    class Counter(gym.Env):
        observation_space = gym.spaces.Box(0, 10, (1,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            self.t = 0
            return np.array([0.0], np.float32), {}

        def step(self, action):
            self.t += 1
            return np.array([float(self.t)], np.float32), 1.0 if self.t == 3 else 0.0, self.t == 3, False, {}

    venvs = {name: DummyVecEnv([Counter]) for name in ("shown", "hidden")}
    seen = []
    for t, (obs, rewards, dones) in enumerate(play_lockstep(None, venvs)):
        seen.append((float(obs["shown"][0, 0]), float(obs["hidden"][0, 0]), float(rewards[0]), bool(dones[0])))
        if t == 6:
            break
    assert seen == [(1, 1, 0, False), (2, 2, 0, False), (3, 3, 1, True), (1, 1, 0, False), (2, 2, 0, False),
                    (3, 3, 1, True), (1, 1, 0, False)]


def test_seen_in_training_against_a_plain_loop():
    from rewinterp_utils.data import seen_in_training

    rng = np.random.default_rng(0)
    grids = rng.integers(0, 3, size=(6, 4, 4)).astype(np.float32)
    pick = lambda idx: {"s": grids[[i for i, _ in idx]], "s_next": grids[[j for _, j in idx]]}  # noqa: E731
    train_pairs = [(0, 1), (1, 2), (2, 3), (3, 3)]
    test_pairs = [(0, 1), (1, 0), (3, 3), (4, 5), (2, 3), (0, 2)]
    expected = [any(np.array_equal(grids[a], grids[c]) and np.array_equal(grids[b], grids[d])
                    for c, d in train_pairs) for a, b in test_pairs]
    assert expected == [True, False, True, False, True, False]
    assert seen_in_training(pick(train_pairs), pick(test_pairs)).tolist() == expected
    with pytest.raises(ValueError, match="differ in shape"):
        seen_in_training(pick(train_pairs), {"s": grids[:2, :3], "s_next": grids[:2, :3]})
    with pytest.raises(ValueError, match="needs arrays"):
        seen_in_training({"s": grids}, pick(test_pairs))


# ------------------------------------------------------------------------- the sampler, against its definition
class Scheduled:
    """A stand-in vec env with rewards and episode ends given in advance, ``rewards[t, i]`` and ``dones[t, i]`` for
    step ``t + 1`` of sub-env ``i``; each observation is the (step, sub-env) it came from, in three bytes (cheap:
    a thousand collections take about 1.5 s)."""

    def __init__(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        self.rewards, self.dones = rewards.astype(np.float32), dones.astype(bool)
        self.num_envs, self.t = rewards.shape[1], 0
        self.observation_space = gym.spaces.Box(0, 255, (3,), np.uint8)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        return np.array([(self.t >> 8, self.t & 255, i) for i in range(self.num_envs)], np.uint8)

    def reset(self) -> np.ndarray:
        self.t = 0
        return self._obs()

    def step(self, actions: np.ndarray):
        self.t += 1
        obs, dones = self._obs(), self.dones[self.t - 1]
        return obs, self.rewards[self.t - 1], dones, [{"terminal_observation": o} if d else {}
                                                      for o, d in zip(obs, dones)]

    def get_attr(self, name: str) -> list:
        assert name in ("last_raw_frame", "was_real_done")
        return [name == "was_real_done"] * self.num_envs


def _schedule() -> tuple[np.ndarray, np.ndarray]:
    """Four sub-envs, 40 steps: about one step in five rewarded (some -1: a clipped loss), one in seven ending a
    life, and rewarded steps that end a life too (which the sampler must skip)."""
    rng = np.random.default_rng(11)
    rewards = np.where(rng.random((40, 4)) < 0.2, rng.choice([1.0, -1.0], (40, 4), p=[0.8, 0.2]), 0.0)
    dones = rng.random((40, 4)) < 0.15
    assert (dones & (rewards != 0)).any() and (dones & (rewards == 0)).any()
    return rewards, dones


def _tag(obs: np.ndarray) -> tuple[int, int]:
    return int(obs[0]) * 256 + int(obs[1]), int(obs[2])


@pytest.mark.parametrize("n_rewarded, n_unrewarded, runs", [
    (6, 2, 1000),  # 20 candidates for 2 slots
    (12, 5, 300),  # 35 candidates for 5 slots
    (2, 30, 5),  # the unrewarded class completes last: the period ends at its 30th step, which all are kept
])
def test_the_unrewarded_sample_is_uniform_over_the_period_it_spans(n_rewarded, n_unrewarded, runs):
    """Oracle: a plain walk over the schedule in time order (step, then sub-env) finds the period (from the first
    step to the one where both classes are complete), the rewarded samples (the first ``n_rewarded`` rewarded steps
    that end no life, in order) and the candidates (the unrewarded steps of the period that end no life). Over
    ``runs`` seeds every unrewarded sample is a candidate, none twice, and each candidate is kept as often as the
    others (chi-square of the inclusion counts, with the covariance of sampling without replacement): a sampler that
    favours early or late play (a reservoir off by one, keeping the latest, counting skipped steps) fails. Each
    sample's reward, step and sub-env (``env``) are those of the step it carries."""
    from scipy.stats import chi2

    rewards, dones = _schedule()
    n_envs = rewards.shape[1]
    rewarded, candidates = [], []
    for t in range(1, len(rewards) + 1):
        for i in range(n_envs):
            if dones[t - 1, i]:
                continue
            if rewards[t - 1, i] != 0:
                rewarded.append((t, i))
            else:
                candidates.append((t, i))
        if len(rewarded) >= n_rewarded and len(candidates) >= n_unrewarded:
            break
    rewarded = rewarded[:n_rewarded]
    n = len(candidates)
    assert t < len(rewards) and n >= n_unrewarded

    counts = dict.fromkeys(candidates, 0)
    for seed in range(runs):
        venv = Scheduled(rewards, dones)
        data = collect_balanced(None, {"shown": venv}, n_rewarded, n_unrewarded, max_steps=10_000, seed=seed)
        tags = [_tag(o) for o in data["obs_shown"]]
        is_rewarded = data["reward"] != 0
        got_r = [w for w, r in zip(tags, is_rewarded) if r]
        got_u = [w for w, r in zip(tags, is_rewarded) if not r]
        assert sorted(got_r) == rewarded, "the first rewarded steps, none that ends a life"
        assert len(got_u) == len(set(got_u)) == n_unrewarded and set(got_u) <= set(counts)
        for (step, i), r, when, env in zip(tags, data["reward"], data["step"], data["env"]):
            assert r == rewards[step - 1, i] and when == step * n_envs and env == i
        for w in got_u:
            counts[w] += 1
        assert venv.t == t, "collection stops at the step where both classes are complete"
    observed = np.array(list(counts.values()), float)
    if n == n_unrewarded:
        assert (observed == runs).all()
        return
    p = n_unrewarded / n
    # k of n without replacement, `runs` times: the counts have covariance runs p (1-p) n/(n-1) (I - J/n)
    stat = ((observed - runs * p) ** 2).sum() / (runs * p * (1 - p)) * (n - 1) / n
    assert chi2.sf(stat, n - 1) > 1e-3, f"chi-square {stat:.1f} on {n - 1} df: not uniform over the period"


# ------------------------------------------------------------------- the hidden view of one emulator
@pytest.mark.parametrize("game", ["Breakout", "Seaquest"])
def test_the_hidden_view_of_one_emulator_is_the_replayed_hidden_emulator_bit_for_bit(game):
    """The oracle: the same games played twice, with the score shown and with it hidden (two emulators, the same
    actions). One emulator with ``hidden_view`` gives the same dataset, every array equal: observations in both
    settings, rewards, steps, sub-envs, games (lives lost and whole games over included) and screens."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rewinterp_utils.envs.atari import HiddenView, atari_id

    env_id = atari_id(game)
    two = {s: make_atari_venv(env_id, n_envs=2, seed=1, score=s, vec_env_cls=DummyVecEnv) for s in ("shown", "hidden")}
    lead = make_atari_venv(env_id, n_envs=2, seed=1, score="shown", vec_env_cls=DummyVecEnv, hidden_view=True)
    kwargs = dict(n_rewarded=40, n_unrewarded=30, max_steps=100_000, seed=0, n_screens=6)
    replayed = collect_balanced(None, two, **kwargs)
    viewed = collect_balanced(None, {"shown": lead, "hidden": HiddenView(lead)}, **kwargs)
    assert replayed["game"].max() >= 2, "whole games ended in the stretch compared (game 1 of a sub-env or later)"
    assert replayed.keys() == viewed.keys()
    assert [k for k in replayed if not np.array_equal(replayed[k], viewed[k])] == []
    assert not np.array_equal(viewed["obs_shown"], viewed["obs_hidden"]), "the views differ where the score is"


def test_a_hidden_view_needs_a_lead_built_for_it():
    from rewinterp_utils.envs.atari import HiddenView

    with pytest.raises(ValueError, match="hidden_view=True"):
        HiddenView(make_atari_venv(ENV, n_envs=1))
    with pytest.raises(ValueError, match="score='shown'"):
        make_atari_venv(ENV, n_envs=1, score="hidden", hidden_view=True)


def test_the_bf16_expert_loads_the_same_file_and_acts_almost_as_the_fp32_one(tmp_path):
    """``load_policy(..., "bf16")`` reads the file the experts write (the same parameter names) and its action
    probabilities are within bf16's rounding of fp32's."""
    from rewinterp_utils.features import RawImageCnnPolicy

    venv = make_atari_venv(ENV, n_envs=2, seed=0)
    ppo = atari_ppo(venv, resolve("atari_expert", "smoke"), seed=0)
    torch.save(ppo.policy.state_dict(), tmp_path / "policy.pt")
    p32, p16 = load_policy(tmp_path / "policy.pt", venv), load_policy(tmp_path / "policy.pt", venv, "bf16")
    assert isinstance(p16, RawImageCnnPolicy) and not isinstance(p32, RawImageCnnPolicy)
    obs = venv.reset()
    with torch.no_grad():
        t = p32.obs_to_tensor(obs)[0]
        gap = (p32.get_distribution(t).distribution.probs - p16.get_distribution(t).distribution.probs).abs().max()
    assert 0 < float(gap) < 0.02
    with pytest.raises(ValueError, match="fp32 or bf16"):
        load_policy(tmp_path / "policy.pt", venv, "fp16")


def test_the_game_of_each_sample_is_the_games_monitor_recorded_before_it():
    """The oracle is the env's own record: the same seeded random play, replayed in a plain loop, counting per
    sub-env the games Monitor closed (``info["episode"]``) before each step. Each sample's ``game`` is that count
    times the number of sub-envs plus its sub-env. (EpisodicLifeEnv's ``was_real_done``, read after the venv has
    reset, never saw a game end in Breakout or Seaquest: every sample was labelled game 0 of its sub-env.)"""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rewinterp_utils.data import seed_actions

    def venv():
        return make_atari_venv(ENV, n_envs=2, seed=1, vec_env_cls=DummyVecEnv)

    data = collect_balanced(None, {"shown": venv()}, n_rewarded=40, n_unrewarded=30, max_steps=100_000, seed=0)
    plain = venv()
    seed_actions(plain, 0)
    plain.reset()
    games, at_step, steps = np.zeros(2, np.int64), {}, 0
    while steps < data["step"].max():
        _, _, dones, infos = plain.step(np.array([plain.action_space.sample() for _ in range(2)]))
        steps += 2
        at_step[steps] = games.copy()  # the games finished before this step
        games += np.array([d and "episode" in info for d, info in zip(dones, infos)])
    expected = np.array([at_step[s][e] * 2 + e for s, e in zip(data["step"], data["env"])])
    assert games.sum() >= 2, "the stretch compared holds whole games"
    assert np.array_equal(data["game"], expected)
    assert data["game"].max() >= 2

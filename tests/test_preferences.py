"""Preference learning of a maze reward: segment sampling, simulated labels, the Bradley-Terry loss against
hand-computed values, and the acceptance test (a model trained from preferences is closer to the true reward
in dynamics-aware distance than untrained models)."""

from __future__ import annotations

import math
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy.special import expit
from torch import nn

import rewinterp_utils  # noqa: F401  (registers the maze ids)
from rewinterp_utils import epic
from rewinterp_utils.envs.maze_transitions import maze_transitions
from rewinterp_utils import preferences as pref
from rewinterp_utils.envs.maze import AGENT, COINFLIP, GOAL
from rewinterp_utils.reward_models import MazeRewardMLP, RewardModel

N, S, W, E = 0, 1, 2, 3


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class Linear(nn.Module):
    """R(s, s') = 0.1 * sum(s') - 0.05 * sum(s): a model with a known output."""

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        return 0.1 * s_next.sum(dim=(1, 2)) - 0.05 * s.sum(dim=(1, 2))


def toy_episode(length: int, goal_at_end: bool = True, side: int = 2) -> dict:
    s = np.arange(length * side * side, dtype=np.float32).reshape(length, side, side) % 4
    reward = np.zeros(length, np.float32)
    if goal_at_end:
        reward[-1] = 1.0
    return {"s": s, "s_next": (s + 1) % 4, "reward": reward}


# -- Bradley-Terry ------------------------------------------------------------------------------------
def test_bradley_terry_loss_by_hand():
    s_a = np.array([[[[1, 0], [0, 0]], [[2, 1], [0, 0]]],
                    [[[0, 0], [0, 0]], [[3, 3], [3, 3]]]], dtype=np.float32)  # (2 pairs, 2 steps, 2, 2)
    s_next_a = np.array([[[[1, 1], [1, 1]], [[0, 0], [0, 3]]],
                         [[[2, 0], [0, 0]], [[1, 0], [0, 0]]]], dtype=np.float32)
    s_b, s_next_b = s_next_a[::-1].copy(), s_a.copy()
    labels = np.array([1.0, 0.25])

    def ret(s, sn):  # hand: sum over the segment of 0.1 * sum(s') - 0.05 * sum(s)
        return sum(0.1 * float(sn[t].sum()) - 0.05 * float(s[t].sum()) for t in range(len(s)))

    expected = 0.0
    for i in range(2):
        d = ret(s_a[i], s_next_a[i]) - ret(s_b[i], s_next_b[i])
        p = 1 / (1 + math.exp(-d))
        expected += -(labels[i] * math.log(p) + (1 - labels[i]) * math.log(1 - p))
    expected /= 2
    batch = {"s_a": s_a, "s_next_a": s_next_a, "s_b": s_b, "s_next_b": s_next_b, "labels": labels}
    loss = pref.bradley_terry_loss(Linear(), batch)
    assert loss.ndim == 0 and float(loss) == pytest.approx(expected, rel=1e-6)
    # a pair with equal returns and label 1/2 costs log 2
    tie = {"s_a": s_a[:1], "s_next_a": s_next_a[:1], "s_b": s_a[:1], "s_next_b": s_next_a[:1], "labels": [0.5]}
    assert float(pref.bradley_terry_loss(Linear(), tie)) == pytest.approx(math.log(2), rel=1e-6)


# -- labels -------------------------------------------------------------------------------------------
def test_noiseless_labels():
    labels = pref.boltzmann_labels(np.array([1.0, 0.0, 2.0, -1.0]), np.array([0.0, 1.0, 2.0, -3.0]), np.inf)
    np.testing.assert_array_equal(labels, [1.0, 0.0, 0.5, 1.0])


def test_boltzmann_label_frequencies():
    beta, diffs, reps = 1.5, np.array([-1.0, 0.0, 0.5, 2.0]), 20000
    ra = np.tile(diffs, reps)
    labels = pref.boltzmann_labels(ra, np.zeros_like(ra), beta, np.random.default_rng(0))
    assert set(np.unique(labels).tolist()) <= {0.0, 1.0}
    freq = labels.reshape(reps, len(diffs)).mean(axis=0)
    # binomial standard error <= 0.5 / sqrt(20000) = 0.0035: allow 5 of them
    np.testing.assert_allclose(freq, expit(beta * diffs), atol=0.018)
    same = pref.boltzmann_labels(ra, np.zeros_like(ra), beta, np.random.default_rng(0))
    np.testing.assert_array_equal(labels, same)


@pytest.mark.parametrize("beta", [0, 0.0, -1.0, float("nan"), -np.inf])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match=r"beta must be > 0 \(np.inf for noiseless labels\)"):
        pref.boltzmann_labels(np.zeros(2), np.zeros(2), beta)


# -- segments -----------------------------------------------------------------------------------------
def test_sample_segment_pairs():
    episodes = [toy_episode(3), toy_episode(8), toy_episode(12, goal_at_end=False), toy_episode(20)]
    for i, ep in enumerate(episodes):
        ep["reward"] = ep["reward"] + np.arange(len(ep["reward"]), dtype=np.float32) * (i + 1) * 0.01
    pairs = pref.sample_segment_pairs(episodes, 5, 300, np.random.default_rng(0))
    for key in pref.SEGMENT_KEYS:
        assert pairs[key].shape == (300, 5, 2, 2)
    for side in "ab":
        assert pairs[f"return_{side}"].shape == (300,)
        assert 0 not in pairs[f"episode_{side}"], "an episode shorter than the segment is never used"
        for j in range(300):
            ep, start = episodes[pairs[f"episode_{side}"][j]], pairs[f"start_{side}"][j]
            assert 0 <= start <= len(ep["s"]) - 5
            np.testing.assert_array_equal(pairs[f"s_{side}"][j], ep["s"][start:start + 5])
            np.testing.assert_array_equal(pairs[f"s_next_{side}"][j], ep["s_next"][start:start + 5])
            assert pairs[f"return_{side}"][j] == pytest.approx(float(ep["reward"][start:start + 5].sum()))
    # longer episodes are drawn more often (probability proportional to length: 8 : 12 : 20)
    counts = np.bincount(np.concatenate([pairs["episode_a"], pairs["episode_b"]]), minlength=4)[1:] / 600
    np.testing.assert_allclose(counts, np.array([8, 12, 20]) / 40, atol=0.06)
    again = pref.sample_segment_pairs(episodes, 5, 300, np.random.default_rng(0))
    np.testing.assert_array_equal(again["start_a"], pairs["start_a"])


def test_bad_segments():
    episodes = [toy_episode(4), toy_episode(9)]
    for segment_len in (0, -1, 10, 2.5):
        with pytest.raises(ValueError, match=r"segment_len must be between 1 and the longest episode's length L = 9"):
            pref.sample_segment_pairs(episodes, segment_len, 5, 0)
    long = [toy_episode(250)]
    with pytest.raises(ValueError, match="segment_len .* at most the maze time limit 200"):
        pref.sample_segment_pairs(long, 201, 5, 0)
    pref.sample_segment_pairs(long, 200, 1, 0)
    for n_pairs in (0, -3):
        with pytest.raises(ValueError, match="n_pairs must be an integer >= 1"):
            pref.sample_segment_pairs(episodes, 3, n_pairs, 0)
    with pytest.raises(ValueError, match="episodes"):
        pref.sample_segment_pairs([], 3, 5, 0)
    with pytest.raises(ValueError, match=r"episodes\[0\]"):
        pref.sample_segment_pairs([{"s": np.zeros((3, 2, 2))}], 1, 5, 0)


# -- training and normalisation ------------------------------------------------------------------------
def collect_episodes(n: int, seed: int, eps: float = 0.3) -> list[dict]:
    """Episodes of an epsilon-greedy walk toward the visible goal on the CoinFlip maze (the gym env)."""
    env = gym.make(COINFLIP)
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        obs, _ = env.reset(seed=seed * 10_000 + i)
        s, s_next, rewards = [], [], []
        done = False
        while not done:
            agent, goal = np.argwhere(obs == AGENT)[0], np.argwhere(obs == GOAL)[0]
            greedy = [a for a, ok in ((N, goal[0] < agent[0]), (S, goal[0] > agent[0]), (W, goal[1] < agent[1]),
                                      (E, goal[1] > agent[1])) if ok]
            action = int(rng.integers(4)) if rng.random() < eps else int(rng.choice(greedy))
            nxt, reward, terminated, truncated, _ = env.step(action)
            s.append(obs)
            s_next.append(nxt)
            rewards.append(reward)
            obs, done = nxt, terminated or truncated
        episodes.append({"s": np.array(s), "s_next": np.array(s_next), "reward": np.array(rewards, np.float32)})
    return episodes


@pytest.fixture(scope="module")
def episodes() -> list[dict]:
    return collect_episodes(60, seed=0)


def test_training_is_deterministic_given_seed(episodes, one_thread):
    pairs = pref.sample_segment_pairs(episodes, 5, 64, np.random.default_rng(0))
    labels = pref.boltzmann_labels(pairs["return_a"], pairs["return_b"], np.inf)
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(0)
        model = MazeRewardMLP(hidden=16)
        runs.append((pref.train_preference_model(model, pairs, labels, epochs=3, batch_size=16, learning_rate=1e-3,
                                                 seed=seed), model.net[1].weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]
    assert len(runs[0][0]) == 3 and all(math.isfinite(x) for x in runs[0][0])
    with pytest.raises(ValueError, match="labels"):
        pref.train_preference_model(model, pairs, labels[:-1], epochs=1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        pref.train_preference_model(model, pairs, labels, epochs=0)


def test_true_reward_fit():
    tr = maze_transitions()
    torch.manual_seed(0)
    model = MazeRewardMLP(hidden=16)
    shift, scale, normalised = pref.true_reward_fit(model, tr["s"], tr["s_next"], tr["reward"])
    out = normalised.predict(tr["s"], tr["s_next"]).astype(np.float64)
    goal = tr["reward"] > 0
    assert out[~goal].mean() == pytest.approx(0.0, abs=1e-5) and out[goal].mean() == pytest.approx(1.0, abs=1e-5)
    raw = model.predict(tr["s"], tr["s_next"]).astype(np.float64)
    np.testing.assert_allclose(out, (raw + shift) * scale, rtol=1e-4, atol=1e-5)
    assert normalised.inputs == ("s", "s_next") and normalised.model is model
    # the scale: invisible to both distances when positive, a flip otherwise; the shift is invisible to EPIC but
    # not to the dynamics-aware distance (episodic: a living reward)
    expected = 0.0 if scale > 0 else 1.0
    assert epic.dynamics_aware_distance(normalised, raw + shift, tr) == pytest.approx(expected, abs=1e-5)
    assert epic.dynamics_aware_distance(normalised, raw, tr) > 1e-3
    assert epic.epic_distance(normalised, model, tr) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="goal"):
        pref.true_reward_fit(model, tr["s"], tr["s_next"], np.zeros(len(tr["reward"])))


class _Linear(RewardModel):
    """R(s, s') = w * (number of goal cells in s - in s'), a model whose output is computed here by hand."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = w

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        count = lambda g: (g == GOAL).flatten(1).sum(1).to(torch.float64)  # noqa: E731
        return self.w * (count(s) - count(s_next))


def test_standardise_rewards_by_hand_and_keeps_a_reversed_model_reversed():
    s = np.zeros((4, 2, 2), np.int64)
    s[0, 0, 0] = s[1, 0, 0] = GOAL  # transitions 0 and 1 lose a goal: raw rewards w, w, 0, 0
    s_next = np.zeros_like(s)
    shift, scale, model = pref.standardise_rewards(_Linear(3.0), s, s_next)
    # raw rewards 3, 3, 0, 0: mean 1.5, population sd 1.5
    assert (shift, scale) == pytest.approx((-1.5, 1 / 1.5))
    np.testing.assert_allclose(model.predict(s, s_next), [1, 1, -1, -1], atol=1e-6)
    shift, scale, reversed_ = pref.standardise_rewards(_Linear(-2.0), s, s_next)
    assert (shift, scale) == pytest.approx((1.0, 1.0))  # raw -2, -2, 0, 0: mean -1, sd 1
    out = reversed_.predict(s, s_next)
    np.testing.assert_allclose(out, [-1, -1, 1, 1], atol=1e-6)
    assert scale > 0 and out[:2].max() < out[2:].min()  # goals still ranked below the rest
    with pytest.raises(ValueError, match="constant"):
        pref.standardise_rewards(_Linear(0.0), s, s_next)
    # a standardised model standardised again is left as it is (Part VI standardises every kind before retraining)
    shift, scale, again = pref.standardise_rewards(model, s, s_next)
    assert (shift, scale) == pytest.approx((0.0, 1.0), abs=1e-6)
    np.testing.assert_allclose(again.predict(s, s_next), model.predict(s, s_next), atol=1e-6)


# -- acceptance ---------------------------------------------------------------------------------------
def test_preference_model_is_closer_to_the_true_reward_than_untrained_models(episodes, one_thread):
    """Train MazeRewardMLP(64) from noiseless preferences; compare dynamics-aware distances to the true reward.

    Two comparisons, both with uniform coverage over the CoinFlip transitions, gamma 0.97:

    * raw outputs: the trained model must beat the mean over 10 randomly initialised models by >= 0.1;
    * with the shift fixed by a convention that uses no true reward (mean 0 over the transitions): it must beat
      the *best* of the 10 random models by >= 0.1. Bradley-Terry on equal-length segments cannot identify
      the shift, and on this episodic transition set a constant reward is a (negative) multiple of the goal
      reward up to shaping, so the raw comparison alone could be won by a lucky living penalty.
    """
    start = time.perf_counter()
    tr = maze_transitions()
    true = tr["reward"]
    pairs = pref.sample_segment_pairs(episodes, 6, 1000, np.random.default_rng(1))
    labels = pref.boltzmann_labels(pairs["return_a"], pairs["return_b"], np.inf)
    assert 0.1 < np.mean(labels != 0.5) < 0.9, "both informative and tied pairs"
    torch.manual_seed(100)
    model = MazeRewardMLP(hidden=64)
    losses = pref.train_preference_model(model, pairs, labels, epochs=20, batch_size=32, learning_rate=1e-3, seed=0)
    assert losses[-1] < losses[0]

    def distances(m: nn.Module) -> tuple[float, float]:
        out = m.predict(tr["s"], tr["s_next"]).astype(np.float64)
        return epic.dynamics_aware_distance(true, out, tr), epic.dynamics_aware_distance(true, out - out.mean(), tr)

    trained_raw, trained_centred = distances(model)
    random = np.array([distances((torch.manual_seed(seed), MazeRewardMLP(hidden=64))[1]) for seed in range(10)])
    print(f"\ndynamics-aware distance to the true reward (uniform coverage, gamma 0.97), "
          f"{time.perf_counter() - start:.1f} s:"
          f"\n  trained raw {trained_raw:.3f}   random raw mean {random[:, 0].mean():.3f} "
          f"(min {random[:, 0].min():.3f}, max {random[:, 0].max():.3f})"
          f"\n  trained centred {trained_centred:.3f}   random centred mean {random[:, 1].mean():.3f} "
          f"(min {random[:, 1].min():.3f})\n  losses {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert trained_raw <= random[:, 0].mean() - 0.1
    assert trained_centred <= random[:, 1].min() - 0.1

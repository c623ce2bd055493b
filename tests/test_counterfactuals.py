"""Counterfactual families for any R(s, s'), against hand-built rewards whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from rewinterp_utils.counterfactuals import counterfactual_scores, draw_placements, families
from rewinterp_utils.data import split_episodes
from rewinterp_utils.envs.maze import AGENT, GOAL


def true_reward(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """The maze's reward by hand: 1 when the agent's cell in s' held a goal in s."""
    out = np.zeros(len(s))
    for i in range(len(s)):
        r, c = np.argwhere(s_next[i] == AGENT)[0]
        out[i] = float(s[i, r, c] == GOAL)
    return out


def no_goal_visible(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """The rule the paper's model learned: pay when no goal is visible in s'."""
    return (s_next == GOAL).sum(axis=(1, 2)) == 0


def test_the_true_reward_scores_every_family_at_its_true_reward():
    scores = counterfactual_scores(true_reward, max_placements=40)
    for name, fam in families().items():
        assert scores.loc[name, "R mean"] == fam.true_reward, name
        assert scores.loc[name, "R (canonical)"] == fam.true_reward, name


def test_the_papers_rule_errs_where_the_paper_found_it():
    scores = counterfactual_scores(lambda s, sn: no_goal_visible(s, sn).astype(float))
    assert scores.loc["no_goal", "R mean"] == 1  # true 0
    assert scores.loc["two_goals", "R mean"] == 0  # true 1
    assert scores.loc["goal_vanishes", "R mean"] == 1  # true 0


def test_placements_draw_what_they_say():
    fam = families()["two_goals"]
    s, s_next = draw_placements([fam.canonical])
    assert (s[0] == GOAL).sum() == 2 and (s_next[0] == GOAL).sum() == 1  # the agent hides the goal it entered
    assert tuple(np.argwhere(s_next[0] == AGENT)[0]) == (9, 9)


@pytest.mark.parametrize("bad, match", [
    (lambda s, sn: np.zeros(len(s) + 1), "shape"),
    (lambda s, sn: np.full(len(s), np.nan), "NaN"),
])
def test_bad_reward_callables_are_valueerrors(bad, match):
    with pytest.raises(ValueError, match=match):
        counterfactual_scores(bad)
    with pytest.raises(ValueError, match="max_placements"):
        counterfactual_scores(true_reward, max_placements=0)


@pytest.mark.parametrize("tails", [False, True])
def test_split_episodes_against_a_plain_loop(tails):
    rng = np.random.default_rng(0)
    n_envs, steps = 4, 40
    done = rng.random(n_envs * steps) < 0.15
    done[n_envs * (steps - 1)] = True  # environment 0's last step ends an episode: it has no unfinished tail
    done[1::n_envs] = False  # environment 1 never finishes an episode: all of it is a tail
    done[n_envs * (steps - 1) + 2] = False  # environment 2 ends with a tail
    data = {"done": done, "reward": np.arange(n_envs * steps, dtype=float),
            "s": np.zeros((n_envs * steps, 2, 2)), "s_next": np.zeros((n_envs * steps, 2, 2))}
    expected = []
    for env in range(n_envs):  # oracle: walk each environment's transitions in order
        current = []
        for t in range(steps):
            i = t * n_envs + env
            current.append(data["reward"][i])
            if done[i]:
                expected.append(current)
                current = []
        if tails and current:
            expected.append(current)
    got = [e["reward"].tolist() for e in split_episodes(data, n_envs, tails=tails)]
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected))
    with pytest.raises(ValueError, match="n_envs"):
        split_episodes(data, 7)

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


# ------------------------------------------------------------------ placements, enumerated by hand on a small maze
def _key(p) -> tuple:
    """A placement as a hashable value; goal order does not change the grids."""
    (a, goals_s), (b, goals_next) = p
    return a, tuple(sorted(goals_s)), b, tuple(sorted(goals_next))


def test_each_familys_placements_on_a_small_maze_enumerated_by_hand():
    """Eight free cells, both corners among them; ordered steps between free neighbours, by hand:
    (1,1)<->(1,2), (1,2)<->(1,3), (1,1)<->(2,1), (5,5)<->(5,6), (9,8)<->(9,9). The checkerboard cells
    ((r + c) even) are (1,1), (1,3), (5,5), (9,9). Each family is listed from its definition, not from the code."""
    from rewinterp_utils.envs.maze import FREE, WALL

    layout = np.full((11, 11), WALL, np.uint8)
    for cell in ((1, 1), (1, 2), (1, 3), (2, 1), (5, 5), (5, 6), (9, 8), (9, 9)):
        layout[cell] = FREE
    A, B = (1, 1), (9, 9)
    steps = [((1, 1), (1, 2)), ((1, 2), (1, 1)), ((1, 2), (1, 3)), ((1, 3), (1, 2)), ((1, 1), (2, 1)),
             ((2, 1), (1, 1)), ((5, 5), (5, 6)), ((5, 6), (5, 5)), ((9, 8), (9, 9)), ((9, 9), (9, 8))]
    checker = [(1, 1), (1, 3), (5, 5), (9, 9)]
    expected = {
        # (a) every step, no goal in s or s'
        "no_goal": [(a, [], b, []) for a, b in steps],
        # (b) both corners hold a goal, the agent steps onto one of them
        "two_goals": [((1, 2), [A, B], A, [A, B]), ((2, 1), [A, B], A, [A, B]), ((9, 8), [A, B], B, [A, B])],
        # (c) the checkerboard's goals, the agent steps from a cell off it onto one on it
        "many_goals": [(a, checker, b, checker) for a, b in
                       (((1, 2), (1, 1)), ((1, 2), (1, 3)), ((2, 1), (1, 1)), ((5, 6), (5, 5)), ((9, 8), (9, 9)))],
        # one goal on any free cell but a corner, the agent steps onto it from a neighbour
        "center_goal": [(a, [g], g, [g]) for a, g in
                        (((1, 1), (1, 2)), ((1, 3), (1, 2)), ((1, 2), (1, 3)), ((1, 1), (2, 1)), ((5, 6), (5, 5)),
                         ((5, 5), (5, 6)), ((9, 9), (9, 8)))],
        # a corner goal in s, none in s', while the agent takes any step that neither starts nor ends on that
        # corner: next to it too ((1,2) -> (1,3) with the goal at (1,1))
        "goal_vanishes": [(a, [A], b, []) for a, b in
                          (((1, 2), (1, 3)), ((1, 3), (1, 2)), ((5, 5), (5, 6)), ((5, 6), (5, 5)), ((9, 8), (9, 9)),
                           ((9, 9), (9, 8)))]
                         + [(a, [B], b, []) for a, b in steps[:8]],
    }
    got = families(layout)
    assert list(got) == list(expected)
    for name, hand in expected.items():
        want = sorted(_key(((a, gs), (b, gn))) for a, gs, b, gn in hand)
        assert sorted(map(_key, got[name].placements)) == want, name
    true = {"no_goal": 0, "two_goals": 1, "many_goals": 1, "center_goal": 1, "goal_vanishes": 0}
    assert {name: fam.true_reward for name, fam in got.items()} == true


def test_placement_counts_on_the_empty_maze_by_hand():
    """The 9 x 9 free cells of the empty maze have 2 x 2 x 9 x 8 = 288 ordered steps; each corner has 2 free
    neighbours; every step joins a checkerboard cell and one off it, so half of them (144) start off it; a corner
    goal vanishes during the 288 - 2 x 2 steps that do not touch it. Each canonical example is a placement."""
    got = families()
    counts = {name: len(fam.placements) for name, fam in got.items()}
    assert counts == {"no_goal": 288, "two_goals": 4, "many_goals": 144, "center_goal": 288 - 4,
                      "goal_vanishes": 2 * (288 - 4)}
    for name, fam in got.items():
        assert len(set(map(_key, fam.placements))) == counts[name], f"{name}: a placement twice"
        assert _key(fam.canonical) in set(map(_key, fam.placements)), name

"""Reward-model unit tests (rewinterp_utils.checks) on hand-built models whose behaviour is known exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import random_stacks as stacks

from rewinterp_utils.checks import (
    KINDS,
    Check,
    assert_checks,
    atari_checks,
    maze_check_inputs,
    maze_checks,
    run_checks,
)
from rewinterp_utils.envs.atari import score_box
from rewinterp_utils.envs.maze import AGENT, GOAL, WALL
from rewinterp_utils.reward_models import RewardModel

AGENT_F, GOAL_F = float(AGENT), float(GOAL)
MAZE_NAMES = ["far goal vanishes", "stepping onto the goal raises R", "far goal erased from s and s'",
              "distant second goal"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def maze_inputs():
    return maze_check_inputs(150, np.random.default_rng(0))


class TrueMazeReward(RewardModel):
    """The true reward: 1 if the agent's cell in s' was a goal cell in s."""

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        return ((s_next == AGENT_F) & (s == GOAL_F)).flatten(1).any(dim=1).float()


class NoGoalVisible(RewardModel):
    """The paper's learned rule: pays 1 when no goal is visible in s'."""

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        return 1.0 - (s_next == GOAL_F).flatten(1).any(dim=1).float()


class GoalDisappeared(RewardModel):
    """Pays 1 when fewer goals are visible in s' than in s."""

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        count = lambda g: (g == GOAL_F).flatten(1).sum(dim=1)  # noqa: E731
        return (count(s_next) < count(s)).float()


class Constant(RewardModel):
    """Ignores its input."""

    inputs = ("s", "s_next")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.full((len(inputs[0]),), 0.3)


class BoxReader(RewardModel):
    """Reads only the score box of the last frame: its pixel sum, in units of 10 full-white pixels."""

    inputs = ("s_next",)

    def __init__(self, game: str) -> None:
        super().__init__()
        self.rows, self.cols = score_box(game).obs_slices(84, inner=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs[:, self.rows, self.cols, -1].flatten(1).sum(dim=1) / 2550.0


class BoxBlind(RewardModel):
    """A fixed random linear read-out of all four frames with the score box (all frames) zeroed."""

    inputs = ("s_next",)

    def __init__(self, game: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        weight = torch.randn(84, 84, 4, generator=g) / 84
        rows, cols = score_box(game).obs_slices(84, inner=False)
        weight[rows, cols, :] = 0.0
        self.register_buffer("weight", weight)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs / 255.0 * self.weight).flatten(1).sum(dim=1)


# --------------------------------------------------------------------------------------------------- maze
def test_maze_check_inputs_are_valid_transitions(maze_inputs):
    s, s_next = maze_inputs
    assert s.shape == s_next.shape == (150, 11, 11) and s.dtype == np.uint8
    for grids in (s, s_next):
        assert ((grids == AGENT).sum(axis=(1, 2)) == 1).all()
        assert (grids[:, [0, -1], :] == WALL).all() and (grids[:, :, [0, -1]] == WALL).all()
        assert ((grids[:, 1:-1, 1:-1] == WALL).sum(axis=(1, 2)) == 0).all()  # the empty maze
    a0, a1 = np.argwhere(s == AGENT)[:, 1:], np.argwhere(s_next == AGENT)[:, 1:]
    assert (np.abs(a0 - a1).sum(axis=1) <= 1).all()  # one step at most
    assert ((s == GOAL).sum(axis=(1, 2)) == 1).all()  # one goal, visible in s
    reached = np.array([s[i][tuple(a1[i])] == GOAL for i in range(150)])
    np.testing.assert_array_equal(reached, np.arange(150) % 3 == 2)
    again = maze_check_inputs(150, np.random.default_rng(0))
    assert all(np.array_equal(x, y) for x, y in zip(maze_inputs, again))


def test_true_reward_passes_the_maze_checks(maze_inputs):
    table = assert_checks(maze_checks(), TrueMazeReward(), maze_inputs)
    assert list(table["name"]) == MAZE_NAMES
    assert table["passed"].all() and (table["n"] == 50).all()
    assert table.set_index("name").loc["stepping onto the goal raises R", "effect"] == pytest.approx(1.0)


def test_no_goal_visible_rule_fails_far_goal_vanishes(maze_inputs):
    table = run_checks(maze_checks(), NoGoalVisible(), maze_inputs).set_index("name")
    assert not table.loc["far goal vanishes", "passed"]
    assert table.loc["far goal vanishes", "effect"] == pytest.approx(1.0)  # pays once the far goal is gone
    assert not table.loc["distant second goal", "passed"]  # the paper's TwoGoals failure
    assert table.loc["distant second goal", "effect"] == pytest.approx(-1.0)
    assert table.loc["stepping onto the goal raises R", "passed"]
    with pytest.raises(AssertionError, match="far goal vanishes"):
        assert_checks(maze_checks(), NoGoalVisible(), maze_inputs)


def test_goal_erased_from_both_separates_the_two_rules(maze_inputs):
    table = run_checks(maze_checks(), GoalDisappeared(), maze_inputs).set_index("name")
    assert not table.loc["far goal vanishes", "passed"]
    assert table.loc["far goal erased from s and s'", "passed"]
    assert table.loc["distant second goal", "passed"]


def test_input_ignoring_model_fails_stepping_onto_goal(maze_inputs):
    table = run_checks(maze_checks(), Constant(), maze_inputs).set_index("name")
    row = table.loc["stepping onto the goal raises R"]
    assert not row["passed"] and row["effect"] == 0.0 and row["n"] == 50
    assert table.drop(index="stepping onto the goal raises R")["passed"].all()  # invariants hold trivially
    with pytest.raises(AssertionError, match=r"'stepping onto the goal raises R' \(increases, tolerance 0.5\): "
                                             r"effect \+0"):
        assert_checks(maze_checks(), Constant(), maze_inputs)


def test_maze_edits_leave_inputs_unchanged(maze_inputs):
    copies = tuple(x.copy() for x in maze_inputs)
    for check in maze_checks():
        edited = check.edit(maze_inputs)
        assert all(e.shape == x.shape for e, x in zip(edited, maze_inputs))
    assert all(np.array_equal(x, c) for x, c in zip(maze_inputs, copies))


def test_maze_shape_validation(maze_inputs):
    s, s_next = maze_inputs
    check = maze_checks()[0]
    with pytest.raises(ValueError, match=r"expects inputs \(n, 11, 11\) and \(n, 11, 11\)"):
        check.run(TrueMazeReward(), (s[:, :10, :10], s_next[:, :10, :10]))
    with pytest.raises(ValueError, match="expects inputs"):
        check.run(TrueMazeReward(), s)
    with pytest.raises(ValueError, match="differ in length"):
        check.run(TrueMazeReward(), (s, s_next[:5]))
    no_agent = s.copy()
    no_agent[0][no_agent[0] == AGENT] = 0
    with pytest.raises(ValueError, match="exactly one AGENT"):
        check.run(TrueMazeReward(), (no_agent, s_next))


# -------------------------------------------------------------------------------------------------- atari
@pytest.mark.parametrize("game", ["Breakout", "Seaquest"])
def test_score_box_reader_fails_and_blind_model_passes(game):
    obs = stacks(8)
    (check,) = atari_checks(game)
    assert check.name == "score digits change only" and check.kind == "invariant"
    reader = check.run(BoxReader(game), obs)
    assert not reader.passed and reader.n == 8 and reader.mean_abs_change > 0.05
    blind = check.run(BoxBlind(game), (obs,))
    assert blind.passed and blind.mean_abs_change == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(AssertionError, match="score digits change only"):
        assert_checks(atari_checks(game), BoxReader(game), obs)


def test_atari_edit_touches_only_the_last_frame_score_box():
    obs = stacks(3)
    (edited,) = atari_checks("Breakout")[0].edit((obs,))
    rows, cols = score_box("Breakout").obs_slices(84, inner=False)
    diff = edited != obs
    assert diff[..., rows, cols, -1].any() and not diff[..., :-1].any()
    diff[:, rows, cols, -1] = False
    assert not diff.any()
    np.testing.assert_array_equal(edited[1, rows, cols, -1], obs[0, rows, cols, -1])  # donor: the previous stack


def test_atari_shape_validation():
    with pytest.raises(ValueError, match=r"expects inputs \(n, 84, 84, 4\)"):
        atari_checks("Breakout")[0].run(BoxBlind("Breakout"), np.zeros((2, 84, 84), np.uint8))
    with pytest.raises(ValueError, match="supported games"):
        atari_checks("Pong")


# ---------------------------------------------------------------------------------------------------- API
def shift(delta: float) -> Check:
    return Check(f"shift {delta:+g}", lambda xs: (xs[0] + delta,), "invariant", 0.5)


def test_kinds_judge_the_effect():
    x = (np.zeros((4, 3)),)
    total = lambda x: x.sum(axis=1)  # noqa: E731
    up = lambda xs: (xs[0] + 1.0,)  # noqa: E731  (R rises by 3 per input)
    down = lambda xs: (xs[0] - 1.0,)  # noqa: E731
    assert Check("up", up, "increases", 2.9).run(total, x).passed
    assert not Check("up", up, "increases", 3.1).run(total, x).passed
    assert not Check("down", down, "increases", 0.1).run(total, x).passed
    assert Check("down", down, "decreases", 2.9).run(total, x).passed
    assert not Check("up", up, "decreases", 0.1).run(total, x).passed
    res = Check("up", up, "invariant", 3.0).run(total, x)
    assert res.passed and res.effect == 3.0 and res.mean_abs_change == 3.0 and res.n == 4
    # invariant judges the mean absolute change, not the mean effect (+1 and -1 cancel)
    alternate = lambda xs: (xs[0] + np.array([1.0, -1.0, 1.0, -1.0])[:, None],)  # noqa: E731
    res = Check("alt", alternate, "invariant", 0.5).run(total, x)
    assert res.effect == 0.0 and res.mean_abs_change == 3.0 and not res.passed


def test_edit_that_changes_nothing_fails():
    res = Check("noop", lambda xs: xs, "invariant", 1.0).run(lambda x: x.sum(axis=1), (np.ones((3, 2)),))
    assert not res.passed and res.n == 0 and np.isnan(res.effect)
    with pytest.raises(AssertionError, match="changed no input"):
        assert_checks([Check("noop", lambda xs: xs, "invariant", 1.0)], lambda x: x.sum(axis=1), np.ones((3, 2)))


def test_assert_checks_lists_every_failure():
    x = np.zeros((2, 3))
    checks = [shift(0.1), shift(1.0), shift(-2.0)]
    with pytest.raises(AssertionError) as info:
        assert_checks(checks, lambda x: x.sum(axis=1), x)
    message = str(info.value)
    assert "2 of 3" in message and "'shift +1'" in message and "'shift -2'" in message
    assert "'shift +0.1'" not in message and "effect +3" in message and "effect -6" in message
    table = assert_checks(checks[:1], lambda x: x.sum(axis=1), x)
    assert list(table.columns) == ["name", "kind", "effect", "mean_abs_change", "tolerance", "passed", "n",
                                   "description"]


@pytest.mark.parametrize("tolerance", [0, -0.1])
def test_bad_tolerance(tolerance):
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        Check("bad", lambda xs: xs, "invariant", tolerance)


def test_unknown_kind():
    with pytest.raises(ValueError, match="valid kinds: " + ", ".join(KINDS)):
        Check("bad", lambda xs: xs, "equal", 0.1)


def test_reward_fn_shape_and_edit_shape_are_checked():
    x = (np.zeros((4, 3)),)
    with pytest.raises(ValueError, match=r"one reward per sample, shape \(4,\)"):
        shift(1.0).run(lambda x: x, x)
    with pytest.raises(ValueError, match="changed the shapes"):
        Check("crop", lambda xs: (xs[0][:, :2],), "invariant", 0.1).run(lambda x: x.sum(axis=1), x)


def test_run_checks_on_stacks_models_and_unit_check_claim_counts_them():
    from rewinterp_utils.checks import Check, run_checks_on
    from rewinterp_utils.claims import unit_check_claim

    def add_one(inputs):
        (x,) = inputs
        return (x + 1,)

    check = Check("shift", add_one, "invariant", 0.01, "R is invariant to a shift by one")
    flat = lambda x: np.zeros(len(x))  # noqa: E731 (passes)
    slope = lambda x: x.sum(axis=1)  # noqa: E731 (fails: R rises by 3)
    table = run_checks_on([check], {"flat": flat, "slope": slope}, (np.zeros((4, 3)),))
    assert list(table.model) == ["flat", "slope"] and list(table.passed) == [True, False]
    assert table.effect.tolist() == [0.0, 3.0]
    claim = unit_check_claim("shift", "shift", table.passed, "here", n_changed=table.n)
    assert (claim.verdict.outcome, claim.measured) == ("undecided", "1 of 2 models pass")
    assert unit_check_claim("shift", "shift", [True, True], "here").verdict.outcome == "holds"
    with pytest.raises(ValueError):
        unit_check_claim("shift", "shift", [], "here")


def test_check_metrics_names_every_model_and_check():
    from rewinterp_utils.checks import check_metrics

    table = pd.DataFrame({"model": ["pref_full.model0", "model1"], "name": ["stepping onto the goal raises R",
                                                                          "far goal erased from s and s'"],
                          "effect": [0.25, -0.5], "passed": [True, False]})
    assert check_metrics(table, "sanity", "checks") == {
        "sanity.checks.pref_full.model0.stepping_onto_the_goal_raises_r.effect": 0.25,
        "sanity.checks.pref_full.model0.stepping_onto_the_goal_raises_r.passed": True,
        "sanity.checks.model1.far_goal_erased_from_s_and_s.effect": -0.5,
        "sanity.checks.model1.far_goal_erased_from_s_and_s.passed": False,
    }


@pytest.mark.parametrize("passed, n_changed, outcome, measured", [
    ([False, False], [0, 0], "undecided", "the edit changed no input of 2 models"),  # a check on no input fails
    ([True, False], [5, 0], "holds", "1 of 1 models pass (1 untested)"),  # the untested one does not count
    ([False, True], [5, 3], "undecided", "1 of 2 models pass"),
    ([False, False], [5, 3], "does not hold", "0 of 2 models pass"),
])
def test_unit_check_claim_leaves_out_models_the_edit_did_not_test(passed, n_changed, outcome, measured):
    from rewinterp_utils.claims import unit_check_claim

    claim = unit_check_claim("k", "c", passed, "w", n_changed=n_changed)
    assert (claim.verdict.outcome, claim.measured) == (outcome, measured)
    with pytest.raises(ValueError, match="input counts"):
        unit_check_claim("k", "c", passed, "w", n_changed=[1])


# ------------------------------------------------------------------ the exact inputs each check builds, by hand
def _grid(agent: tuple[int, int], goals: list[tuple[int, int]]) -> np.ndarray:
    from rewinterp_utils.envs.maze import draw, empty_layout

    return draw(empty_layout(), agent, goals)


def _pairs(*transitions) -> tuple[np.ndarray, np.ndarray]:
    """``(s, s')`` batches from ``((agent, goals), (agent, goals))`` pairs."""
    return (np.stack([_grid(*before) for before, _ in transitions]),
            np.stack([_grid(*after) for _, after in transitions]))


# far: Manhattan distance >= 4 from the agent in s AND in s'
FAR_CASES = [
    # (5,5) is 4 from the agent in s but 3 in s': not far, kept; (9,9) far in both: erased
    (((5, 1), [(5, 5), (9, 9)]), ((5, 2), [(5, 5), (9, 9)])),
    # the goal reached at (2,3) is hidden in s' (not visible in both); (8,8) far in both: erased
    (((2, 2), [(2, 3), (8, 8)]), ((2, 3), [(8, 8)])),
    # the agent bumps into the wall at (1,1); (1,5) and (4,2) are exactly 4 away: erased; (3,2) is 3 away: kept
    (((1, 1), [(1, 5), (4, 2), (3, 2)]), ((1, 1), [(1, 5), (4, 2), (3, 2)])),
    # no goal far: unchanged
    (((5, 5), [(5, 7)]), ((5, 6), [(5, 7)])),
]
FAR_NEXT = [  # what "far goal vanishes" makes of them: the far goals gone from s' only
    (((5, 1), [(5, 5), (9, 9)]), ((5, 2), [(5, 5)])),
    (((2, 2), [(2, 3), (8, 8)]), ((2, 3), [])),
    (((1, 1), [(1, 5), (4, 2), (3, 2)]), ((1, 1), [(3, 2)])),
    (((5, 5), [(5, 7)]), ((5, 6), [(5, 7)])),
]
FAR_BOTH = [  # what "far goal erased from s and s'" makes of them
    (((5, 1), [(5, 5)]), ((5, 2), [(5, 5)])),
    (((2, 2), [(2, 3)]), ((2, 3), [])),
    (((1, 1), [(3, 2)]), ((1, 1), [(3, 2)])),
    (((5, 5), [(5, 7)]), ((5, 6), [(5, 7)])),
]
STEP_CASES = [
    # next to goals south (6,5) and east (5,6), stepping away west: s' becomes the agent on the first of
    # north, south, west, east, the south one, the east goal still there
    (((5, 5), [(5, 6), (6, 5)]), ((5, 4), [(5, 6), (6, 5)])),
    # a goal reached (and another next to the start): unchanged
    (((5, 5), [(5, 6), (4, 5)]), ((5, 6), [(4, 5)])),
    # no goal next to the agent: unchanged
    (((2, 2), [(8, 8)]), ((2, 3), [(8, 8)])),
    # next to the goal west, stepping east
    (((1, 2), [(1, 1)]), ((1, 3), [(1, 1)])),
]
STEP_ONTO = [
    (((5, 5), [(5, 6), (6, 5)]), ((6, 5), [(5, 6), (6, 5)])),
    (((5, 5), [(5, 6), (4, 5)]), ((5, 6), [(4, 5)])),
    (((2, 2), [(8, 8)]), ((2, 3), [(8, 8)])),
    (((1, 2), [(1, 1)]), ((1, 1), [(1, 1)])),
]
SECOND_CASES = [
    # reaching (1,1): the farthest free cell from the agent in s' is (9,9), alone
    (((1, 2), [(1, 1)]), ((1, 1), [])),
    # reaching (5,5): the four corners tie at 8; the first in row-major order is (1,1)
    (((5, 4), [(5, 5)]), ((5, 5), [])),
    # the same with a goal already on (1,1): it is not free, so the next corner in row-major order, (1,9)
    (((5, 4), [(5, 5), (1, 1)]), ((5, 5), [(1, 1)])),
    # no goal reached: unchanged
    (((5, 4), [(7, 7)]), ((5, 3), [(7, 7)])),
]
SECOND_GOAL = [
    (((1, 2), [(1, 1), (9, 9)]), ((1, 1), [(9, 9)])),
    (((5, 4), [(5, 5), (1, 1)]), ((5, 5), [(1, 1)])),
    (((5, 4), [(5, 5), (1, 1), (1, 9)]), ((5, 5), [(1, 1), (1, 9)])),
    (((5, 4), [(7, 7)]), ((5, 3), [(7, 7)])),
]


@pytest.mark.parametrize("name, cases, expected", [
    ("far goal vanishes", FAR_CASES, FAR_NEXT),
    ("far goal erased from s and s'", FAR_CASES, FAR_BOTH),
    ("stepping onto the goal raises R", STEP_CASES, STEP_ONTO),
    ("distant second goal", SECOND_CASES, SECOND_GOAL),
])
def test_each_maze_check_builds_exactly_the_inputs_drawn_by_hand(name, cases, expected):
    """Oracle: the edited transitions drawn by hand from each check's definition (the module docstring of
    :func:`maze_checks`), on cases at the edges of it: a goal exactly 4 away, far in s but not in s', hidden
    under the agent, several adjacent goals, ties for the farthest cell, a farthest cell already taken."""
    (check,) = [c for c in maze_checks() if c.name == name]
    inputs = _pairs(*cases)
    copies = tuple(x.copy() for x in inputs)
    got = check.edit(inputs)
    want = _pairs(*expected)
    for k in range(len(cases)):
        for part, g, w in zip(("s", "s'"), got, want):
            np.testing.assert_array_equal(g[k], w[k], err_msg=f"{name}, case {k}, {part}")
    assert all(np.array_equal(x, c) for x, c in zip(inputs, copies)), "the inputs are not modified"
    changed = [not all(np.array_equal(a, b) for a, b in zip(_pairs(c), _pairs(e))) for c, e in zip(cases, expected)]
    assert check.run(TrueMazeReward(), inputs).n == sum(changed)


# the score box on the 84 x 84 observation, by hand from the resize of a screen lit only in the box
# (tests/test_atari_env.py checks these pixels against cv2 and WarpFrame)
OBS_BOX = {"Breakout": (range(1, 7), range(18, 44)), "Seaquest": (range(2, 8), range(36, 64))}


@pytest.mark.parametrize("game", list(OBS_BOX))
def test_the_score_digits_check_builds_exactly_the_pasted_stacks(game):
    """Oracle: a plain loop over pixels. Stack i's last frame takes, inside the box, the last frame of stack
    i - 1 (stack 0 that of the last stack); every other pixel of every frame is unchanged."""
    obs = stacks(4, seed=3)
    copy = obs.copy()
    (check,) = atari_checks(game)
    (edited,) = check.edit((obs,))
    rows, cols = OBS_BOX[game]
    want = obs.copy()
    for i in range(len(obs)):
        for r in rows:
            for c in cols:
                want[i, r, c, 3] = obs[i - 1, r, c, 3]
    np.testing.assert_array_equal(edited, want)
    np.testing.assert_array_equal(obs, copy)


def test_maze_check_inputs_are_of_the_three_kinds_by_distance(maze_inputs):
    """Kind 0 starts at distance >= 5 from the goal (far for the far-goal checks after any step), kinds 1 and 2
    next to it; kind 1 does not enter it, kind 2 does (the rewarded pattern is checked above)."""
    s, s_next = maze_inputs
    for i in range(len(s)):
        agent = np.argwhere(s[i] == AGENT)[0]
        goal = np.argwhere(s[i] == GOAL)[0]
        d = int(np.abs(agent - goal).sum())
        assert (d >= 5) if i % 3 == 0 else (d == 1), (i, d)

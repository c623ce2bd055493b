"""Unit tests for reward models: an invariance or a required sensitivity stated as an executable check.

A :class:`Check` edits a batch of inputs (a counterfactual) and compares the rewards before and after::

    checks = maze_checks()
    run_checks(checks, model, maze_check_inputs(300, rng))     # a DataFrame, one row per check
    assert_checks(checks, model, maze_check_inputs(300, rng))  # in pytest: AssertionError naming the failures

Kinds (``d = R(edited) - R(original)`` per input, over the inputs the edit changes):

* ``"invariant"``: passes when ``mean |d| <= tolerance``;
* ``"increases"``: passes when ``mean d >= tolerance``;
* ``"decreases"``: passes when ``mean d <= -tolerance``.

A check is measured only on the inputs its edit actually changes (``n`` in the result); an edit that changes
no input tests nothing and the check FAILS with a NaN effect.

Ready-made checks: :func:`maze_checks` (the paper's maze, ``R(s, s')`` on 11 x 11 grids, true reward "the
agent's cell in s' held a goal in s") with :func:`maze_check_inputs` to build transitions they apply to, and
:func:`atari_checks` (the displayed score must not matter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from rewinterp_utils.adapters import transition_reward
from rewinterp_utils.envs.atari import score_box, score_edit
from rewinterp_utils.envs.maze import ACTIONS, AGENT, FREE, GOAL, WALL, draw, empty_layout
from rewinterp_utils.keys import metric_key
from rewinterp_utils.reward_models import RewardModel, as_reward_model

Inputs = tuple[np.ndarray, ...]
KINDS: tuple[str, ...] = ("invariant", "increases", "decreases")
"""The kinds a :class:`Check` may have."""
FAR = 4
"""Manhattan distance from the agent (in s and in s') at which a maze cell counts as far."""
MAZE_SHAPE: tuple[int, int] = (11, 11)
ATARI_SHAPE: tuple[int, int, int] = (84, 84, 4)


# ------------------------------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class CheckResult:
    """What :meth:`Check.run` measured: mean effect ``R(edited) - R(original)``, mean absolute change, and
    whether the check passed, over the ``n`` inputs the edit changed."""

    name: str
    kind: str
    effect: float
    mean_abs_change: float
    tolerance: float
    passed: bool
    n: int


@dataclass(frozen=True)
class Check:
    """An executable statement about a reward model.

    ``edit(inputs) -> edited`` maps the batch (a tuple of numpy arrays, first axis = inputs) to an edited batch
    of the same shapes, leaving inputs it does not apply to unchanged. ``kind``: one of :data:`KINDS`;
    ``tolerance > 0``. ``shapes`` (optional): the per-input shape of every array of the tuple, e.g.
    ``((11, 11), (11, 11))`` for maze ``(s, s')`` pairs; inputs that do not match raise ``ValueError``.
    """

    name: str
    edit: Callable[[Inputs], Inputs]
    kind: str
    tolerance: float
    description: str = ""
    shapes: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown check kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be > 0, got {self.tolerance}")

    def validate(self, inputs: Any) -> Inputs:
        """``inputs`` as a tuple of numpy arrays (one array becomes a 1-tuple), checked against ``shapes``."""
        xs = tuple(np.asarray(x) for x in inputs) if isinstance(inputs, (tuple, list)) else (np.asarray(inputs),)
        if self.shapes is not None:
            want = " and ".join(f"(n, {', '.join(map(str, s))})" for s in self.shapes)
            got = " and ".join(str(x.shape) for x in xs)
            if len(xs) != len(self.shapes) or any(x.shape[1:] != tuple(s) for x, s in zip(xs, self.shapes)):
                raise ValueError(f"check {self.name!r} expects inputs {want}, got {got}")
        if len({len(x) for x in xs}) > 1:
            lengths = ", ".join(str(len(x)) for x in xs)
            raise ValueError(f"check {self.name!r}: the input arrays differ in length ({lengths})")
        return xs

    def run(self, reward: RewardModel | Callable[..., Any], inputs: Any) -> CheckResult:
        """Edit ``inputs``, evaluate the reward model on the changed inputs before and after, and judge.

        ``reward``: a reward model, or a plain function of the batch's arrays, ``fn(s, s_next)`` for a pair and
        ``fn(s_next)`` for one array (wrapped by :func:`~rewinterp_utils.reward_models.as_reward_model`); for a
        batch of 3 or 4 arrays ``(s, a, s_next[, done])``, any reward
        :func:`~rewinterp_utils.adapters.transition_reward` takes (an environment's transitions)."""
        xs = self.validate(inputs)
        if isinstance(reward, RewardModel):
            predict = reward.predict
        elif len(xs) <= 2:
            predict = as_reward_model(reward, ("s", "s_next")[-len(xs):]).predict
        else:  # a transition (s, a, s_next[, done]) batch: any reward transition_reward takes
            predict = transition_reward(reward, "the reward")
        edited = tuple(np.asarray(x) for x in self.edit(xs))
        if len(edited) != len(xs) or any(e.shape != x.shape for e, x in zip(edited, xs)):
            raise ValueError(f"the edit of check {self.name!r} changed the shapes of the inputs")
        changed = np.zeros(len(xs[0]), dtype=bool)
        for e, x in zip(edited, xs):
            changed |= (e != x).reshape(len(x), -1).any(axis=1)
        n = int(changed.sum())
        if n == 0:
            return CheckResult(self.name, self.kind, float("nan"), float("nan"), self.tolerance, False, 0)
        r0 = predict(*(x[changed] for x in xs)).astype(np.float64)
        r1 = predict(*(e[changed] for e in edited)).astype(np.float64)
        d = r1 - r0
        effect, mean_abs = float(d.mean()), float(np.abs(d).mean())
        if self.kind == "invariant":
            passed = mean_abs <= self.tolerance
        elif self.kind == "increases":
            passed = effect >= self.tolerance
        else:
            passed = effect <= -self.tolerance
        return CheckResult(self.name, self.kind, effect, mean_abs, self.tolerance, bool(passed), n)


def run_checks(checks: Sequence[Check], reward: RewardModel | Callable[..., Any], inputs: Any) -> pd.DataFrame:
    """Run every check on the same inputs: one row per check with columns name, kind, effect,
    mean_abs_change, tolerance, passed, n, description."""
    rows = [{**vars(c.run(reward, inputs)), "description": c.description} for c in checks]
    return pd.DataFrame(rows, columns=["name", "kind", "effect", "mean_abs_change", "tolerance", "passed", "n",
                                       "description"])


def run_checks_on(checks: Sequence[Check], models: Mapping[str, RewardModel | Callable[..., Any]],
                  inputs: Any) -> pd.DataFrame:
    """:func:`run_checks` for every named model on the same inputs, stacked with a ``model`` column first."""
    if not models:
        raise ValueError("run_checks_on needs at least one model")
    return pd.concat([run_checks(checks, m, inputs).assign(model=name) for name, m in models.items()],
                     ignore_index=True)[["model", "name", "kind", "effect", "mean_abs_change", "tolerance",
                                         "passed", "n", "description"]]


def check_metrics(table: pd.DataFrame, *prefix: str) -> dict[str, float | bool]:
    """Summary keys of a :func:`run_checks_on` table: ``<prefix>.<model>.<check>.effect`` and ``.passed`` for
    every row, each component a :func:`~rewinterp_utils.keys.metric_key` part (a model named ``"a.b"`` gives two
    components)."""
    out: dict[str, float | bool] = {}
    for r in table.itertuples():
        key = metric_key(*prefix, *str(r.model).split("."), r.name)
        out |= {f"{key}.effect": float(r.effect), f"{key}.passed": bool(r.passed)}
    return out


def assert_checks(checks: Sequence[Check], reward: RewardModel | Callable[..., Any], inputs: Any) -> pd.DataFrame:
    """Pytest helper: :func:`run_checks`, raising ``AssertionError`` that lists every failed check with its
    measured effect; returns the table when all pass."""
    table = run_checks(checks, reward, inputs)
    failed = table[~table["passed"]]
    if len(failed):
        lines = [f"- {r.name!r} ({r.kind}, tolerance {r.tolerance:g}): effect {r.effect:+.4g}, mean |change| "
                 f"{r.mean_abs_change:.4g} over {r.n} inputs" + ("" if r.n else " (the edit changed no input)")
                 for r in failed.itertuples()]
        raise AssertionError(f"{len(failed)} of {len(table)} reward-model checks failed:\n" + "\n".join(lines))
    return table


# --------------------------------------------------------------------------------------------------- maze
def _agents(grids: np.ndarray) -> np.ndarray:
    """``(n, 2)`` agent cells; ``ValueError`` unless every grid shows exactly one agent."""
    counts = (grids == AGENT).reshape(len(grids), -1).sum(axis=1)
    if (counts != 1).any():
        raise ValueError(f"every maze grid must contain exactly one AGENT ({AGENT}) cell; "
                         f"grid {int(np.argmax(counts != 1))} has {int(counts[counts != 1][0])}")
    return np.argwhere(grids == AGENT)[:, 1:]


def _distance(grids: np.ndarray, agents: np.ndarray) -> np.ndarray:
    """``(n, H, W)`` Manhattan distance of every cell from each grid's agent."""
    i, j = np.indices(grids.shape[1:])
    return np.abs(i[None] - agents[:, 0, None, None]) + np.abs(j[None] - agents[:, 1, None, None])


def _far(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """Cells at distance >= :data:`FAR` from the agent in both s and s'."""
    return (_distance(s, _agents(s)) >= FAR) & (_distance(s_next, _agents(s_next)) >= FAR)


def _far_goals(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """Goals visible in both s and s' and far from the agent in both."""
    return (s == GOAL) & (s_next == GOAL) & _far(s, s_next)


def _reached(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """The true reward's event: the agent's cell in s' held a goal in s, ``(n,)`` bool."""
    a = _agents(s_next)
    return s[np.arange(len(s)), a[:, 0], a[:, 1]] == GOAL


def erase_far_goal_next(inputs: Inputs) -> Inputs:
    """Far goals (visible in s and s', distance >= 4 from the agent in both) erased from s' only."""
    s, s_next = inputs
    out = s_next.copy()
    out[_far_goals(s, s_next)] = FREE
    return s, out


def erase_far_goal_both(inputs: Inputs) -> Inputs:
    """Far goals erased from both s and s'."""
    s, s_next = inputs
    far = _far_goals(s, s_next)
    s2, n2 = s.copy(), s_next.copy()
    s2[far] = FREE
    n2[far] = FREE
    return s2, n2


def step_onto_goal(inputs: Inputs) -> Inputs:
    """On transitions that do not reach a goal but start next to one, s' replaced by s with the agent moved
    onto the first adjacent goal (north, south, west, east), drawn over it; other transitions unchanged."""
    s, s_next = inputs
    out = s_next.copy()
    agents, reached = _agents(s), _reached(s, s_next)
    h, w = s.shape[1:]
    for k in np.flatnonzero(~reached):
        r, c = agents[k]
        for dr, dc in ACTIONS.values():
            t = (r + dr, c + dc)
            if 0 <= t[0] < h and 0 <= t[1] < w and s[k][t] == GOAL:
                out[k] = s[k]
                out[k][r, c] = FREE
                out[k][t] = AGENT
                break
    return s, out


def add_far_goal(inputs: Inputs) -> Inputs:
    """On transitions that reach a goal, a second goal on the free cell farthest from the agent in s' (first
    in row-major order among ties; free and far in both s and s'), added to both s and s'."""
    s, s_next = inputs
    s2, n2 = s.copy(), s_next.copy()
    free = (s == FREE) & (s_next == FREE) & _far(s, s_next)
    dist = np.where(free, _distance(s_next, _agents(s_next)), -1)
    for k in np.flatnonzero(_reached(s, s_next) & free.reshape(len(s), -1).any(axis=1)):
        cell = np.unravel_index(int(np.argmax(dist[k])), dist.shape[1:])
        s2[k][cell] = GOAL
        n2[k][cell] = GOAL
    return s2, n2


def maze_checks(grid_shape: tuple[int, int] = MAZE_SHAPE) -> list[Check]:
    """The maze checks; the true reward ``R*(s, s') = [the agent's cell in s' held a goal in s]`` passes all.

    * ``"far goal vanishes"`` (invariant, 0.1): a far goal (visible in s and s', distance >= 4 from the agent
      in both) is erased from s' only. An impossible transition, but ``R*`` does not change; a model paying
      for "no goal visible in s'" or "a goal disappeared" (the paper's learned rule) does.
    * ``"stepping onto the goal raises R"`` (increases, 0.5): on transitions that start next to a goal but do
      not reach one, s' becomes the grid where the agent stepped onto the goal. ``R*`` rises by 1; a model
      ignoring its input does not.
    * ``"far goal erased from s and s'"`` (invariant, 0.1): the far goal removed from both grids, a consistent
      maze with one goal fewer. ``R*`` does not change; "no goal visible in s'" does (it pays once the only
      goal is gone), while "a goal disappeared between s and s'" passes: this check separates the two rules.
    * ``"distant second goal"`` (invariant, 0.1): on transitions that reach a goal, a second goal is added far
      away in both grids (the paper's TwoGoals test). ``R*`` stays 1; "no goal visible in s'" drops to 0.
    """
    shapes = (tuple(grid_shape), tuple(grid_shape))
    return [
        Check("far goal vanishes", erase_far_goal_next, "invariant", 0.1,
              "a goal far from the agent is erased from s' only; the true reward does not change", shapes),
        Check("stepping onto the goal raises R", step_onto_goal, "increases", 0.5,
              "next to a goal, s' replaced by the agent standing on it; the true reward rises by 1", shapes),
        Check("far goal erased from s and s'", erase_far_goal_both, "invariant", 0.1,
              "a goal far from the agent is removed from both grids; the true reward does not change", shapes),
        Check("distant second goal", add_far_goal, "invariant", 0.1,
              "when the agent reaches a goal, a second far goal in both grids; the true reward stays 1", shapes),
    ]


def maze_check_inputs(n: int, rng: np.random.Generator | int | None = None) -> Inputs:
    """``(s, s_next)``, each ``(n, 11, 11)`` uint8: one-goal transitions on the empty 10 x 10 maze (border walls
    at rows/cols 0 and 10), built by hand and cycling through three kinds so every :func:`maze_checks` check
    applies to about a third of them:

    * ``i % 3 == 0``: agent at distance >= 5 from the goal, a random move (walls stop it): far goal;
    * ``i % 3 == 1``: agent next to the goal, a random move that does not enter it: step-onto-goal;
    * ``i % 3 == 2``: agent next to the goal, stepping onto it (reward 1): distant second goal.
    """
    rng = np.random.default_rng(rng)
    layout = empty_layout(MAZE_SHAPE[0])
    cells = [tuple(map(int, c)) for c in np.argwhere(layout == FREE)]
    moves = list(ACTIONS.values())
    s, s_next = np.empty((2, n, *layout.shape), dtype=np.uint8)

    def move(a: tuple[int, int], d: tuple[int, int]) -> tuple[int, int]:
        t = (a[0] + d[0], a[1] + d[1])
        return a if layout[t] == WALL else t

    for i in range(n):
        goal = cells[rng.integers(len(cells))]
        if i % 3 == 0:
            options = [c for c in cells if abs(c[0] - goal[0]) + abs(c[1] - goal[1]) >= FAR + 1]
            agent = options[rng.integers(len(options))]
            nxt = move(agent, moves[rng.integers(4)])
        else:
            options = [c for c in cells if abs(c[0] - goal[0]) + abs(c[1] - goal[1]) == 1]
            agent = options[rng.integers(len(options))]
            if i % 3 == 2:
                nxt = goal
            else:
                away = [m for m in moves if move(agent, m) != goal]
                nxt = move(agent, away[rng.integers(len(away))])
        s[i] = draw(layout, agent, [goal])
        s_next[i] = draw(layout, nxt, [goal])
    return s, s_next


# -------------------------------------------------------------------------------------------------- atari
def atari_checks(game: str, tolerance: float = 0.05) -> list[Check]:
    """The Atari checks for ``game`` (``ValueError`` naming the supported games for an unknown one).

    * ``"score digits change only"`` (invariant, ``tolerance``): the score box of the last frame of each
      ``(84, 84, 4)`` stack is replaced by that of the previous stack's last frame in the batch (the batch rolled
      by one; :func:`~rewinterp_utils.envs.atari.score_edit`). The game state is untouched, so a reward model
      that does not read the displayed score is unchanged; measured on the stacks whose box the paste changes.
    """
    score_box(game)

    def paste_score(inputs: Inputs) -> Inputs:
        (obs,) = inputs
        return (score_edit(obs, np.roll(obs[..., -1], 1, axis=0), game),)

    return [Check("score digits change only", paste_score, "invariant", tolerance,
                  f"{game}: another frame's score pasted into the last frame; the true reward does not change",
                  (ATARI_SHAPE,))]


__all__ = [
    "ATARI_SHAPE", "FAR", "KINDS", "MAZE_SHAPE", "Check", "CheckResult", "add_far_goal",
    "assert_checks", "atari_checks", "erase_far_goal_both", "erase_far_goal_next", "maze_check_inputs",
    "maze_checks", "run_checks", "step_onto_goal",
]

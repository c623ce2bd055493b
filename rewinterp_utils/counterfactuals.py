"""Counterfactual inputs for any maze reward model ``R(s, s')``: the paper's Figure-2 families and ours.

A *placement* puts the agent and the goals by hand in s and in s': ``((agent, goals) in s, (agent, goals) in s')``
on the empty 10x10 maze. A :class:`Family` lists every placement of one kind (e.g. "the agent steps onto one of
two goals") with its true reward and the canonical example the book draws. :func:`counterfactual_scores` runs a
reward model (:class:`~rewinterp_utils.reward_models.RewardModel`), or any function ``R(s, s_next) -> (n,)`` on
``(n, 11, 11)`` grids, on every family::

    scores = counterfactual_scores(my_reward_model)          # a DataFrame, one row per family
    scores.loc["two_goals", "R mean"]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from rewinterp_utils.envs.maze import ACTIONS, CORNERS, Square, draw, empty_layout
from rewinterp_utils.reward_models import RewardModel, as_reward_model

Placement = tuple[tuple[Square, list[Square]], tuple[Square, list[Square]]]


@dataclass(frozen=True)
class Family:
    """One kind of counterfactual transition."""

    name: str
    description: str  #: what the transitions are, in words
    true_reward: float  #: what the true reward pays for every one of them
    canonical: Placement  #: the example the book draws
    placements: tuple[Placement, ...]  #: every placement of the agent


def _free(layout: np.ndarray) -> list[Square]:
    return [tuple(map(int, c)) for c in np.argwhere(layout == 0)]


def families(layout: np.ndarray | None = None) -> dict[str, Family]:
    """The counterfactual families on ``layout`` (default: the empty 10x10 maze): the paper's (a) ``no_goal``,
    (b) ``two_goals``, (c) ``many_goals`` and ours, ``center_goal`` and ``goal_vanishes``. A family's placements
    are every step of the agent to a free neighbour that fits its description (``goal_vanishes``: every step that
    does not start or end on the vanishing corner goal, however near it; only its canonical example is far away)."""
    layout = empty_layout() if layout is None else layout
    free = _free(layout)
    free_set = set(free)
    checker = [c for c in free if (c[0] + c[1]) % 2 == 0]

    def neighbours(cell: Square) -> list[Square]:
        """The free cells one step away from ``cell``."""
        return [(cell[0] + dr, cell[1] + dc) for dr, dc in ACTIONS.values() if (cell[0] + dr, cell[1] + dc) in free_set]

    corners = list(CORNERS)
    return {f.name: f for f in (
        Family("no_goal", "(a) the goal erased from s and s': every step, no goal anywhere", 0,
               (((5, 4), []), ((5, 5), [])), tuple(((a, []), (b, [])) for a in free for b in neighbours(a))),
        Family("two_goals", "(b) both corners hold a goal and the agent steps onto one", 1,
               (((9, 8), corners), ((9, 9), corners)),
               tuple(((a, corners), (g, corners)) for g in CORNERS for a in neighbours(g))),
        Family("many_goals", "(c) goals on a checkerboard, the agent steps onto one", 1,
               (((5, 4), checker), ((5, 5), checker)),
               tuple(((a, checker), (b, checker)) for a in free if a not in checker for b in neighbours(a))),
        Family("center_goal", "ours: one goal where training never put one, reached as usual", 1,
               (((5, 4), [(5, 5)]), ((5, 5), [(5, 5)])),
               tuple(((a, [g]), (g, [g])) for g in free if g not in CORNERS for a in neighbours(g))),
        Family("goal_vanishes", "ours: a corner goal vanishes from s' during any step that neither starts nor ends on "
               "it, next to it included (impossible; canonical example: the agent far away)", 0,
               (((5, 4), [CORNERS[1]]), ((5, 5), [])),
               tuple(((a, [g]), (b, [])) for g in CORNERS for a in free for b in neighbours(a) if g not in (a, b))),
    )}


def draw_placements(placements: list[Placement] | tuple[Placement, ...],
                    layout: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The grids ``(s, s_next)``, each ``(n, H, W)`` uint8, of a list of placements."""
    layout = empty_layout() if layout is None else layout
    s = np.stack([draw(layout, *before) for before, _ in placements])
    s_next = np.stack([draw(layout, *after) for _, after in placements])
    return s, s_next


def _rewards(model: RewardModel, s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """The model's rewards as float64; ``ValueError`` if one is NaN or infinite."""
    out = model.predict(s, s_next).astype(np.float64)
    if not np.isfinite(out).all():
        raise ValueError("the reward model returned NaN or infinite rewards")
    return out


def counterfactual_scores(reward: RewardModel | Callable[..., Any], max_placements: int = 81, seed: int = 0,
                          layout: np.ndarray | None = None) -> pd.DataFrame:
    """Per family: true reward, the reward of the canonical example, mean and standard deviation over up to
    ``max_placements`` placements (drawn at random with ``seed`` when there are more) and their number.
    ``reward``: a reward model of ``(s, s')`` or a function of the grids (see
    :func:`~rewinterp_utils.reward_models.as_reward_model`)."""
    if max_placements < 1:
        raise ValueError(f"max_placements must be >= 1, got {max_placements}")
    model = as_reward_model(reward, ("s", "s_next"))
    rng = np.random.default_rng(seed)
    rows = []
    for name, fam in families(layout).items():
        placements = fam.placements
        if len(placements) > max_placements:
            placements = [placements[i] for i in sorted(rng.choice(len(placements), max_placements, replace=False))]
        values = _rewards(model, *draw_placements(placements, layout))
        canonical = float(_rewards(model, *draw_placements([fam.canonical], layout))[0])
        rows.append({"counterfactual": name, "true reward": fam.true_reward, "R (canonical)": canonical,
                     "R mean": values.mean(), "R std": values.std(), "placements": len(values)})
    return pd.DataFrame(rows).set_index("counterfactual")

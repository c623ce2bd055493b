"""The maze's finite transition set, enumerated on the grids, and coverage distributions over it.

:func:`maze_transitions` lists every transition ``(s, a, s')`` of a terminating maze of the paper (Michaud, Gleave
and Russell 2020, "Understanding Learned Reward Functions", section 2) with its true reward and an index into the
table of unique states; :func:`maze_true_reward` is that reward as a function of any pair of grids;
:func:`visitation_coverage` turns observed transitions (e.g. an expert dataset) into a distribution over the set;
:func:`coverage_weights` normalises a coverage given by name or by weights.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from rewinterp_utils.envs.maze import (
    ACTIONS,
    AGENT,
    COINFLIP,
    CORNERS,
    FREE,
    GOAL,
    WALL,
    check_maze_id,
    draw,
    empty_layout,
    walled_layout,
)
from rewinterp_utils.stats import distribution

GOAL_LAYOUTS: dict[str, tuple[tuple[tuple[int, int], ...], ...]] = {
    "coinflip": ((CORNERS[0],), (CORNERS[1],)),
    "twogoals": (CORNERS,),
    "fixed": ((CORNERS[1],),),
}
"""Goal layouts a transition set enumerates: each layout is the tuple of goal cells present in one episode."""
_MODE_LAYOUTS = {"CoinFlipGoal": "coinflip", "TwoGoals": "twogoals", "FixedGoal": "fixed"}


def maze_transitions(env_id: str = COINFLIP, goal_layouts: str | None = None) -> dict[str, np.ndarray]:
    """Every transition ``(s, a, s')`` of a terminating maze, built directly on the grids.

    ``env_id`` picks the layout (``EmptyMaze-*``: border walls only; ``Maze-*``: the walled maze) and, unless
    ``goal_layouts`` is given, the goal layouts from its goal mode (CoinFlipGoal -> ``"coinflip"``: the goal
    at (1,1) or at (9,9); TwoGoals -> ``"twogoals"``: both corners at once; FixedGoal -> ``"fixed"``: (9,9)).

    For every goal layout, every free cell the agent can stand on that is not a goal (an agent on a goal has
    ended its episode), and every action 0 N, 1 S, 2 W, 3 E: the agent moves one cell unless the target is a
    wall (then it stays); ``s'`` draws the agent over the goal it may have entered (so that goal is hidden);
    the true reward is 1 when the agent ends on a goal (the episode then ends, ``done``), else 0.

    Returns arrays over the N transitions: ``s``, ``s_next`` ``(N, 11, 11)`` uint8; ``action`` ``(N,)`` int64;
    ``reward`` ``(N,)`` float32; ``done`` ``(N,)`` bool; ``agent``, ``next_agent`` ``(N, 2)`` cells;
    ``layout_id`` ``(N,)`` index into ``goals``; ``state_id``, ``next_state_id`` ``(N,)`` int64 indices into
    ``states`` ``(M, 11, 11)``, the unique grids among ``s`` and ``s_next`` (terminal next states included);
    ``terminal`` ``(M,)`` bool, the states no transition leaves; ``goals`` ``(n_layouts, k, 2)`` goal cells.
    """
    check_maze_id(env_id)
    prefix, _, mode, *rest = env_id.split("-")
    if rest[0] == "NonTerminating":
        raise ValueError(f"env_id must be a terminating maze id (no '-NonTerminating'), got {env_id!r}")
    if goal_layouts is None:
        if mode not in _MODE_LAYOUTS:
            raise ValueError(f"env_id's goal mode must be one of {tuple(_MODE_LAYOUTS)} when goal_layouts "
                             f"is not given, got {mode!r}")
        goal_layouts = _MODE_LAYOUTS[mode]
    if goal_layouts not in GOAL_LAYOUTS:
        raise ValueError(f"goal_layouts must be one of {tuple(GOAL_LAYOUTS)}, got {goal_layouts!r}")
    layout = walled_layout() if prefix == "Maze" else empty_layout()
    free = [(int(r), int(c)) for r, c in np.argwhere(layout == FREE)]

    rows: dict[str, list] = defaultdict(list)
    for lid, goals in enumerate(GOAL_LAYOUTS[goal_layouts]):
        for agent in free:
            if agent in goals:
                continue
            s = draw(layout, agent, goals)
            for action, (dr, dc) in ACTIONS.items():
                target = (agent[0] + dr, agent[1] + dc)
                nxt = agent if layout[target] == WALL else target
                rows["s"].append(s)
                rows["s_next"].append(draw(layout, nxt, goals))
                rows["action"].append(action)
                rows["reward"].append(float(nxt in goals))
                rows["agent"].append(agent)
                rows["next_agent"].append(nxt)
                rows["layout_id"].append(lid)
    out = {
        "s": np.stack(rows["s"]).astype(np.uint8),
        "s_next": np.stack(rows["s_next"]).astype(np.uint8),
        "action": np.array(rows["action"], dtype=np.int64),
        "reward": np.array(rows["reward"], dtype=np.float32),
        "agent": np.array(rows["agent"], dtype=np.int64),
        "next_agent": np.array(rows["next_agent"], dtype=np.int64),
        "layout_id": np.array(rows["layout_id"], dtype=np.int64),
        "goals": np.array(GOAL_LAYOUTS[goal_layouts], dtype=np.int64),
    }
    out["done"] = out["reward"] > 0
    n = len(out["s"])
    flat = np.concatenate([out["s"], out["s_next"]]).reshape(2 * n, -1)
    states, inverse = np.unique(flat, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1).astype(np.int64)
    out["states"] = states.reshape(-1, *layout.shape).astype(np.uint8)
    out["state_id"], out["next_state_id"] = inverse[:n], inverse[n:]
    out["terminal"] = ~np.isin(np.arange(len(states)), out["state_id"])
    return out


def _n_transitions(transitions: dict) -> int:
    for key in ("state_id", "next_state_id"):
        if key not in transitions:
            raise ValueError(f"transitions must be a dict from maze_transitions (missing {key!r})")
    return len(transitions["state_id"])


def maze_true_reward(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """The maze's reward on any batch of grid pairs ``(n, H, W)``: 1 where ``s_next`` puts the agent on a cell
    that is a goal in ``s``, else 0 (float64 ``(n,)``). On the enumerated transitions it is their ``reward``;
    it is also defined on pairs the maze cannot produce (a jump across the grid), as EPIC needs."""
    s, s_next = np.asarray(s), np.asarray(s_next)
    if s.ndim != 3 or s.shape != s_next.shape:
        raise ValueError(f"s and s_next must be grid batches of one shape (n, H, W), got {s.shape} and "
                         f"{s_next.shape}")
    on_agent = s_next == AGENT
    if not (on_agent.sum(axis=(1, 2)) == 1).all():
        raise ValueError("every s_next must show exactly one agent")
    return ((s == GOAL) & on_agent).any(axis=(1, 2)).astype(np.float64)


def visitation_coverage(s: np.ndarray, s_next: np.ndarray, transitions: dict,
                        actions: np.ndarray | None = None) -> np.ndarray:
    """How often each enumerated transition occurs among observed ``(s, s_next)`` pairs, normalised to sum 1.

    Transitions never observed get 0. Without ``actions`` a pair that matches several enumerated transitions
    (bumping into a wall in a corner can leave the agent in place by two actions) spreads its count evenly
    over them; with ``actions`` only the transition with that action counts. A pair that is not in the set
    raises ``ValueError``.
    """
    n = _n_transitions(transitions)
    s, s_next = np.asarray(s), np.asarray(s_next)
    states = transitions["states"]
    if s.ndim != 3 or s.shape != s_next.shape or s.shape[1:] != states.shape[1:] or len(s) == 0:
        raise ValueError(f"s and s_next must be non-empty arrays of shape (n, {states.shape[1]}, "
                         f"{states.shape[2]}), got {s.shape} and {s_next.shape}")
    if actions is not None:
        actions = np.asarray(actions).reshape(-1)
        if len(actions) != len(s):
            raise ValueError(f"actions must have one entry per pair ({len(s)}), got {len(actions)}")
    state_index = {row.tobytes(): i for i, row in enumerate(states.astype(np.uint8))}
    by_pair: dict[tuple[int, int], list[int]] = defaultdict(list)
    for t, (a, b) in enumerate(zip(transitions["state_id"], transitions["next_state_id"])):
        by_pair[int(a), int(b)].append(t)
    counts = np.zeros(n, dtype=np.float64)
    for i in range(len(s)):
        key = (state_index.get(s[i].astype(np.uint8).tobytes(), -1),
               state_index.get(s_next[i].astype(np.uint8).tobytes(), -1))
        match = by_pair.get(key, [])
        if actions is not None:
            match = [t for t in match if transitions["action"][t] == actions[i]]
        if not match:
            raise ValueError(f"pair {i} of s/s_next (and actions, if given) is not a transition of "
                             "`transitions`; every observed pair must be one of its enumerated transitions")
        counts[match] += 1.0 / len(match)
    return counts / counts.sum()


def coverage_weights(coverage: str | np.ndarray, transitions: dict) -> np.ndarray:
    """The coverage as weights over the N transitions summing to 1 (``"uniform"``: all equal)."""
    return distribution(coverage, _n_transitions(transitions), "coverage", per="transition")


__all__ = ["GOAL_LAYOUTS", "coverage_weights", "maze_true_reward", "maze_transitions", "visitation_coverage"]

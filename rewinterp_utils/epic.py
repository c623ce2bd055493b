"""EPIC distance (Gleave et al. 2021, "Quantifying Differences in Reward Functions"), exact on a finite
set of maze transitions.

EPIC compares two rewards after removing what cannot change the optimal policy: potential shaping
``gamma * Phi(s') - Phi(s)`` and positive rescaling. It first maps each reward to a *canonically shaped*
reward ``C(R)``, then takes the Pearson distance ``sqrt((1 - rho) / 2)`` between ``C(R_a)`` and ``C(R_b)``
under a coverage distribution ``D`` over transitions.

The definition used here (:func:`canonicalize`). ``D`` induces a Markov chain on the states of the transition
set: from state ``x`` a transition ``t`` leaving ``x`` is drawn with probability ``D(t) / D(leaving x)``.
``V_R`` is the discounted value of ``R`` along that chain, with value 0 at *terminal* states (states no
enumerated transition leaves: here the agent standing on a goal, where the episode ends)::

    V_R(x) = sum_{t leaving x} D(t | x) * (R(t) + gamma * V_R(s'_t)),      V_R(terminal) = 0,
    C(R)(s, a, s') = R(s, a, s') + gamma * V_R(s') - V_R(s).

``C(R)`` is the advantage of ``R`` under the coverage policy. It is the EPIC paper's canonicalisation with
the paper's "next state drawn from D_S independently of s" dynamics replaced by the dynamics the finite
transition set actually has: if every state led to the same next-state distribution ``D_S``, then
``V_R(x) = m(x) + gamma / (1 - gamma) * E_{D_S}[m]`` with ``m(x) = E[R(x, A, S')]`` and ``C(R)`` reduces to the
paper's ``R + gamma * m(s') - m(s) - gamma * E[m(S)]``. The one-step formula itself, with ``m(x)`` averaged over
the transitions leaving ``x``, is *not* shaping invariant on this set (a residual
``gamma^2 E[Phi(S')|s'] - gamma E[Phi(S')|s]`` remains); the value version is exactly invariant:

    ``C(k * R + gamma * Phi(s') - Phi(s)) = k * C(R)`` for every ``k > 0`` and every potential ``Phi`` with
    ``Phi = 0`` at terminal states (the episodic form of shaping, Ng et al. 1999),

because ``V_{kR + F} = k V_R - Phi``. A potential that is non-zero at terminal states is *not* an invariance
here, and cannot be one: no transition leaves a terminal state, so ``Phi(goal) = 1 / gamma`` (0 elsewhere)
turns the zero reward into exactly the maze's goal reward. Constant shifts are not invariances either (in an
episodic task a constant is a living bonus or penalty); the Pearson step still ignores an overall constant
of ``C(R)``.

``C(R)`` is only meaningful on transitions with ``D > 0``; every distance here weighs transitions by ``D``.
The canonicalisation needs, for every covered transition whose ``s'`` is not terminal, some coverage mass on
the transitions leaving ``s'`` (:func:`epic_distance` raises ``ValueError`` otherwise).

Also: :func:`maze_transitions` (the finite transition set of a maze), :func:`visitation_coverage` (coverage
from observed transitions, e.g. an expert dataset), and the plain comparisons :func:`mse`, :func:`spearman`,
:func:`pearson_distance`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from rewinterp_utils.envs.maze import (
    ACTIONS,
    COINFLIP,
    CORNERS,
    FREE,
    WALL,
    check_maze_id,
    draw,
    empty_layout,
    walled_layout,
)
from rewinterp_utils.reward_models import RewardModel, as_reward_model

GOAL_LAYOUTS: dict[str, tuple[tuple[tuple[int, int], ...], ...]] = {
    "coinflip": ((CORNERS[0],), (CORNERS[1],)),
    "twogoals": (CORNERS,),
    "fixed": ((CORNERS[1],),),
}
"""Goal layouts a transition set enumerates: each layout is the tuple of goal cells present in one episode."""
_MODE_LAYOUTS = {"CoinFlipGoal": "coinflip", "TwoGoals": "twogoals", "FixedGoal": "fixed"}


# ------------------------------------------------------------------------------------------ transitions
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


def _n_states(transitions: dict) -> int:
    if "states" in transitions:
        return len(transitions["states"])
    return int(max(transitions["state_id"].max(), transitions["next_state_id"].max())) + 1


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


# ------------------------------------------------------------------------------------------- validation
def _check_gamma(gamma: float) -> float:
    if not isinstance(gamma, (int, float, np.floating, np.integer)) or not (0.0 < float(gamma) <= 1.0):
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    return float(gamma)


def coverage_weights(coverage: str | np.ndarray, transitions: dict) -> np.ndarray:
    """The coverage as weights over the N transitions summing to 1 (``"uniform"``: all equal)."""
    n = _n_transitions(transitions)
    if isinstance(coverage, str):
        if coverage != "uniform":
            raise ValueError(f"coverage must be 'uniform' or an array of {n} non-negative weights, got {coverage!r}")
        return np.full(n, 1.0 / n)
    w = np.asarray(coverage, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"coverage must have one weight per transition, shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("coverage must be finite and non-negative (every weight in [0, inf))")
    total = w.sum()
    if total <= 0:
        raise ValueError("coverage must have a positive total (sum > 0)")
    return w / total


def _check_1d(x: np.ndarray, name: str, n: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or (n is not None and len(x) != n):
        raise ValueError(f"{name} must be a 1-D array" + (f" of length {n}" if n is not None else "") +
                         f", got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    w = _check_1d(weights, "weights", n)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    return w / w.sum()


# ---------------------------------------------------------------------------------------- comparisons
def pearson_distance(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """``sqrt((1 - rho) / 2)`` with ``rho`` the (weighted) Pearson correlation of ``a`` and ``b``; in [0, 1].

    ``ValueError`` if either has zero (weighted) variance: the correlation is then undefined.
    """
    a = _check_1d(a, "a")
    b = _check_1d(b, "b", len(a))
    w = _weights(weights, len(a))
    a = a - np.dot(w, a)
    b = b - np.dot(w, b)
    va, vb = np.dot(w, a * a), np.dot(w, b * b)
    for name, v in (("a", va), ("b", vb)):
        if not v > 0:
            raise ValueError(f"{name} must have positive (weighted) variance for a Pearson distance")
    rho = float(np.clip(np.dot(w, a * b) / np.sqrt(va * vb), -1.0, 1.0))
    return float(np.sqrt(max(0.0, (1.0 - rho) / 2.0)))


def mse(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """(Weighted) mean squared difference of ``a`` and ``b``; no invariance at all."""
    a = _check_1d(a, "a")
    b = _check_1d(b, "b", len(a))
    return float(np.dot(_weights(weights, len(a)), (a - b) ** 2))


def _mid_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mid-ranks: cumulative weight below a value plus half the weight of its ties."""
    uniq, inv = np.unique(x, return_inverse=True)
    mass = np.bincount(inv.reshape(-1), weights=w, minlength=len(uniq))
    below = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    return (below + mass / 2)[inv.reshape(-1)]


def spearman(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Spearman rank correlation of ``a`` and ``b`` (invariant to monotone maps, not to shaping).

    Unweighted: ``scipy.stats.spearmanr``. Weighted: the weighted Pearson correlation of weighted mid-ranks
    (equal weights give the same value as scipy).
    """
    a = _check_1d(a, "a")
    b = _check_1d(b, "b", len(a))
    if weights is None:
        from scipy.stats import spearmanr

        return float(spearmanr(a, b).statistic)
    w = _weights(weights, len(a))
    ra, rb = _mid_ranks(a, w), _mid_ranks(b, w)
    return 1.0 - 2.0 * pearson_distance(ra, rb, w) ** 2


# --------------------------------------------------------------------------------------------- EPIC
def _rewards(reward: np.ndarray | RewardModel | Callable[..., Any], transitions: dict, name: str) -> np.ndarray:
    """``reward`` on every transition as a float64 ``(N,)`` array: values (an array) as given, a reward model (or a plain
    function of ``(s, s_next)``, :func:`~rewinterp_utils.reward_models.as_reward_model`) run by its
    ``predict`` on the transitions' grids. ``ValueError`` naming ``name`` for a wrong shape or NaN/inf."""
    n = _n_transitions(transitions)
    if not callable(reward):
        out = reward
    else:
        try:
            model = as_reward_model(reward)
            out = model.predict(**{k: transitions[k] for k in model.inputs})
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    out = np.asarray(out, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"{name} must give one reward per transition, shape ({n},), got {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must give finite rewards (no NaN or inf)")
    return out


def canonicalize(rewards: np.ndarray, transitions: dict, coverage: str | np.ndarray = "uniform",
                 gamma: float = 0.97) -> np.ndarray:
    """The canonically shaped reward ``C(R) = R + gamma * V_R(s') - V_R(s)`` (see the module docstring).

    ``V_R`` is the value of ``R`` along the chain in which state ``x`` moves by a transition leaving ``x``
    drawn in proportion to ``coverage``; terminal states (no enumerated transition leaves them) have value 0.
    Values at transitions with zero coverage are not meaningful. ``ValueError`` if a covered transition leads
    to a non-terminal state whose leaving transitions all have zero coverage, or if ``gamma == 1`` and some
    covered state cannot reach a terminal state (the undiscounted value is then infinite or undefined).
    """
    gamma = _check_gamma(gamma)
    n = _n_transitions(transitions)
    r = _check_1d(rewards, "rewards", n)
    w = coverage_weights(coverage, transitions)
    sid = np.asarray(transitions["state_id"], dtype=np.int64)
    nsid = np.asarray(transitions["next_state_id"], dtype=np.int64)
    m = _n_states(transitions)

    has_leaving = np.bincount(sid, minlength=m) > 0
    out_mass = np.bincount(sid, weights=w, minlength=m)
    covered = w > 0
    starved = covered & has_leaving[nsid] & (out_mass[nsid] <= 0)
    if starved.any():
        t = int(np.flatnonzero(starved)[0])
        raise ValueError(
            f"coverage must put positive mass on some transition leaving every non-terminal state that a covered "
            f"transition leads to (the canonicalisation needs that state's value); transition {t} leads to state "
            f"{int(nsid[t])}, whose leaving transitions all have coverage 0")

    live = np.flatnonzero(out_mass > 0)  # states with a value to solve for
    pos = np.full(m, -1, dtype=np.int64)
    pos[live] = np.arange(len(live))
    k = len(live)
    mean_r = np.bincount(pos[sid[covered]], weights=w[covered] * r[covered], minlength=k) / out_mass[live]
    to_live = covered & (pos[nsid] >= 0)
    trans = np.zeros((k, k))
    np.add.at(trans, (pos[sid[to_live]], pos[nsid[to_live]]), w[to_live])
    trans /= out_mass[live][:, None]
    if gamma == 1.0:
        _check_reaches_terminal(trans)
    value = np.zeros(m)
    value[live] = np.linalg.solve(np.eye(k) - gamma * trans, mean_r)
    return r + gamma * value[nsid] - value[sid]


def _check_reaches_terminal(trans: np.ndarray) -> None:
    """``ValueError`` unless every state of the sub-stochastic chain ``trans`` can leak to a terminal state."""
    leaks = trans.sum(axis=1) < 1.0 - 1e-9
    reach = leaks.copy()
    for _ in range(len(trans)):
        new = reach | ((trans > 0) & reach[None, :]).any(axis=1)
        if (new == reach).all():
            break
        reach = new
    if not reach.all():
        raise ValueError("gamma must be < 1 for this coverage: with gamma in (0, 1], gamma = 1 needs every covered "
                         "state to reach a terminal state through covered transitions")


def epic_distance(reward_a: np.ndarray | RewardModel | Callable[..., Any],
                  reward_b: np.ndarray | RewardModel | Callable[..., Any], transitions: dict,
                  coverage: str | np.ndarray = "uniform", gamma: float = 0.97) -> float:
    """EPIC distance in [0, 1]: the Pearson distance of the canonicalised rewards, weighted by ``coverage``.

    ``reward_a``/``reward_b``: ``(N,)`` arrays, reward models, or functions ``R(s, s_next)`` of the grids.
    ``coverage``: ``"uniform"`` over the transitions or non-negative weights ``(N,)`` with a positive sum.
    ``gamma`` in (0, 1]. 0 exactly when ``R_b = k * R_a + gamma * Phi(s') - Phi(s)`` (``k > 0``, ``Phi = 0`` at
    terminal states) on the covered transitions; 1 for ``R_b = -R_a``. ``ValueError`` if a canonicalised reward
    is constant on the covered transitions (then it is equivalent to no reward and the distance is undefined).
    """
    gamma = _check_gamma(gamma)
    w = coverage_weights(coverage, transitions)
    canon = []
    for name, reward in (("reward_a", reward_a), ("reward_b", reward_b)):
        r = _rewards(reward, transitions, name)
        c = canonicalize(r, transitions, w, gamma)
        centred = c - np.dot(w, c)
        if np.sqrt(np.dot(w, centred ** 2)) <= 1e-9 * (1.0 + np.abs(r).max()):
            raise ValueError(f"{name} is equivalent to a zero reward on the covered transitions (its canonicalised "
                             "reward is constant), so its EPIC distance is undefined")
        canon.append(c)
    return pearson_distance(canon[0], canon[1], w)

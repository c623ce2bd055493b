"""Two shaping-invariant distances between maze rewards, exact on the maze's finite state and transition sets.

Both compare two rewards after removing what cannot change the optimal policy, potential shaping
``gamma * Phi(s') - Phi(s)`` and positive rescaling: each reward is mapped to a *canonically shaped* reward
``C(R)``, then the Pearson distance ``sqrt((1 - rho) / 2)`` (:func:`~rewinterp_utils.stats.pearson_distance`)
between ``C(R_a)`` and ``C(R_b)`` is taken under a coverage distribution ``D`` over the maze's transitions
(uniform, or e.g. an expert's visitation, :func:`~rewinterp_utils.envs.maze_transitions.visitation_coverage`).
They differ in the canonicalisation.

**EPIC** (:func:`epic_distance`, :func:`canonicalize_epic`), as Gleave et al. 2021 ("Quantifying Differences in
Reward Functions") define it: with ``S``, ``S'`` drawn independently from a state distribution ``D_S`` and ``A``
from an action distribution ``D_A``::

    C(R)(s, a, s') = R(s, a, s') + gamma * E[R(s', A, S')] - E[R(s, A, S')] - gamma * E[R(S, A, S')].

Here ``D_S`` is uniform over the maze's states (``transitions["states"]``: every grid an enumerated transition
starts or ends in, the agent-on-goal grids included) and ``D_A`` uniform over the four actions, unless given.
Because ``S'`` is drawn independently of ``s``, ``R`` is evaluated on the whole product ``S x A x S'``, jumps
across the grid and between goal layouts included, which a reward model of ``(s, s')`` grids can do. Exactly
invariant (any ``k > 0``, *any* potential ``Phi``, terminal states not special, constants too)::

    C(k * R + gamma * Phi(s') - Phi(s) + c) = k * C(R).

**Dynamics-aware** (:func:`dynamics_aware_distance`, :func:`canonicalize_dynamics_aware`). ``D`` induces a Markov
chain on the states of the transition set: from state ``x`` a transition ``t`` leaving ``x`` is drawn with
probability ``D(t) / D(leaving x)``. ``V_R`` is the discounted value of ``R`` along that chain, with value 0 at
*terminal* states (states no enumerated transition leaves: here the agent standing on a goal, where the
episode ends)::

    V_R(x) = sum_{t leaving x} D(t | x) * (R(t) + gamma * V_R(s'_t)),      V_R(terminal) = 0,
    C(R)(s, a, s') = R(s, a, s') + gamma * V_R(s') - V_R(s).

``C(R)`` is the advantage of ``R`` under the coverage policy: EPIC's canonicalisation with "next state drawn from
``D_S`` independently of ``s``" replaced by the dynamics the finite transition set actually has, so ``R`` is only
read on transitions the maze can produce. If every state led to the same next-state distribution ``D_S``, then
``V_R(x) = m(x) + gamma / (1 - gamma) * E_{D_S}[m]`` with ``m(x) = E[R(x, A, S')]`` and ``C(R)`` reduces to EPIC's.
EPIC's one-step formula with ``m(x)`` averaged over the transitions leaving ``x`` (the maze's own next states)
would *not* be shaping invariant on this set (a residual ``gamma^2 E[Phi(S')|s'] - gamma E[Phi(S')|s]`` remains);
the value version is exactly invariant:

    ``C(k * R + gamma * Phi(s') - Phi(s)) = k * C(R)`` for every ``k > 0`` and every potential ``Phi`` with
    ``Phi = 0`` at terminal states (the episodic form of shaping, Ng et al. 1999),

because ``V_{kR + F} = k V_R - Phi``. A potential that is non-zero at terminal states is *not* an invariance
here, and cannot be one: no transition leaves a terminal state, so ``Phi(goal) = 1 / gamma`` (0 elsewhere)
turns the zero reward into exactly the maze's goal reward. Constant shifts are not invariances either (in an
episodic task a constant is a living bonus or penalty); the Pearson step still ignores an overall constant
of ``C(R)``. The canonicalisation needs, for every covered transition whose ``s'`` is not terminal, some coverage
mass on the transitions leaving ``s'`` (``ValueError`` otherwise).

For both, ``C(R)`` is only compared on transitions with ``D > 0``. Bad input (rewards of the wrong or of
different shapes, a coverage without mass, ``gamma`` outside (0, 1], a reward equivalent to zero on the
covered transitions) raises ``ValueError`` naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rewinterp_utils.envs.maze import ACTIONS
from rewinterp_utils.envs.maze_transitions import coverage_weights
from rewinterp_utils.reward_models import RewardModel, as_reward_model
from rewinterp_utils.stats import distribution, pearson_distance

Reward = np.ndarray | RewardModel | Callable[..., Any]
"""A reward: values as an array, a reward model, or a plain function ``R(s, s_next)`` of grid batches."""


# ------------------------------------------------------------------------------------------- validation
def _check_gamma(gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating, np.integer)) \
            or not (0.0 < float(gamma) <= 1.0):
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
    return float(gamma)


def _require(transitions: dict, keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in transitions]
    if missing:
        raise ValueError(f"transitions must be a dict from maze_transitions (missing {', '.join(map(repr, missing))})")


def _check_shapes(reward_a: Reward, reward_b: Reward) -> None:
    """``ValueError`` when both rewards are arrays of different shapes."""
    if not callable(reward_a) and not callable(reward_b):
        sa, sb = np.shape(reward_a), np.shape(reward_b)
        if sa != sb:
            raise ValueError(f"reward_a and reward_b must have the same shape, got {sa} and {sb}")


def _check_spread(canon: np.ndarray, reward: np.ndarray, w: np.ndarray, name: str) -> None:
    """``ValueError`` when the canonicalised reward is constant on the covered transitions."""
    centred = canon - np.dot(w, canon)
    if np.sqrt(np.dot(w, centred ** 2)) <= 1e-9 * (1.0 + np.abs(reward).max()):
        raise ValueError(f"{name} is equivalent to a zero reward on the covered transitions (its canonicalised "
                         "reward is constant), so its distance is undefined")


def _finite(out: Any, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    out = np.asarray(out, dtype=np.float64)
    if out.shape != shape:
        raise ValueError(f"{name} must give one reward per {what}, shape {shape}, got {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} must give finite rewards (no NaN or inf)")
    return out


def _predict(reward: Callable[..., Any], s: np.ndarray, s_next: np.ndarray, name: str) -> np.ndarray:
    """A reward model (or a plain function of ``(s, s_next)``, :func:`~rewinterp_utils.reward_models.as_reward_model`)
    run by its ``predict`` on grid batches; its errors prefixed by ``name``."""
    try:
        model = as_reward_model(reward)
        return model.predict(**{k: v for k, v in (("s", s), ("s_next", s_next)) if k in model.inputs})
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


# --------------------------------------------------------------------------------------------- EPIC
def reward_table(reward: Reward, transitions: dict, name: str = "reward") -> np.ndarray:
    """``reward`` on the whole product ``S x A x S'`` of the maze's states and actions: float64 ``(M, A, M)``
    with ``M = len(transitions["states"])`` and ``A = len(ACTIONS)``.

    An array is taken as that table. A reward model or a function ``R(s, s_next)`` of grid batches is run on
    every pair ``(states[i], states[j])`` and, since it does not read the action, repeated over ``A``.
    ``ValueError`` naming ``name`` for a wrong shape or NaN/inf.
    """
    _require(transitions, ("states",))
    states = np.asarray(transitions["states"])
    m, n_actions = len(states), len(ACTIONS)
    if not callable(reward):
        return _finite(reward, (m, n_actions, m), name, "(state, action, next state) of the maze")
    s, s_next = np.repeat(states, m, axis=0), np.tile(states, (m, 1, 1))
    pairs = _finite(_predict(reward, s, s_next, name), (m * m,), name, "pair of states")
    return np.repeat(pairs.reshape(m, 1, m), n_actions, axis=1)


def canonicalize_epic(table: np.ndarray, gamma: float = 0.97, state_dist: str | np.ndarray = "uniform",
                      action_dist: str | np.ndarray = "uniform") -> np.ndarray:
    """EPIC's canonically shaped reward on the whole product, ``(M, A, M)`` (see the module docstring)::

        C(R)(s, a, s') = R(s, a, s') + gamma * m(s') - m(s) - gamma * E_{D_S}[m(S)],
        m(x) = E_{A ~ D_A, S' ~ D_S}[R(x, A, S')].

    ``table``: ``R`` as a finite ``(M, A, M)`` array; ``state_dist`` (``D_S``, over the ``M`` states) and
    ``action_dist`` (``D_A``, over the ``A`` actions): ``"uniform"`` or non-negative weights with a positive sum.
    """
    gamma = _check_gamma(gamma)
    r = np.asarray(table, dtype=np.float64)
    if r.ndim != 3 or r.shape[0] != r.shape[2] or not np.isfinite(r).all():
        raise ValueError(f"table must be a finite (M, A, M) array, got shape {r.shape}")
    p_s = distribution(state_dist, r.shape[0], "state_dist")
    p_a = distribution(action_dist, r.shape[1], "action_dist")
    m = np.einsum("xas,a,s->x", r, p_a, p_s)
    return r + gamma * m[None, None, :] - m[:, None, None] - gamma * np.dot(p_s, m)


def epic_distance(reward_a: Reward, reward_b: Reward, transitions: dict, coverage: str | np.ndarray = "uniform",
                  gamma: float = 0.97, state_dist: str | np.ndarray = "uniform",
                  action_dist: str | np.ndarray = "uniform") -> float:
    """EPIC distance (Gleave et al. 2021) in [0, 1]: the Pearson distance, weighted by ``coverage`` over the
    enumerated transitions, of the rewards canonicalised by :func:`canonicalize_epic`.

    ``reward_a``/``reward_b``: ``(M, A, M)`` tables over states x actions x states (:func:`reward_table`), reward
    models, or functions ``R(s, s_next)`` of the grids (evaluated on every pair of the maze's states).
    ``coverage`` (``D``): ``"uniform"`` over the transitions or non-negative weights ``(N,)`` with a positive
    sum. ``state_dist`` (``D_S``) and ``action_dist`` (``D_A``): ``"uniform"`` or weights over
    ``transitions["states"]`` and the actions. ``gamma`` in (0, 1]. 0 exactly when ``R_b = k * R_a + gamma *
    Phi(s') - Phi(s) + c`` (``k > 0``, any ``Phi``) on the covered transitions; 1 for ``R_b = -R_a``.
    ``ValueError`` if a canonicalised reward is constant on the covered transitions (then it is equivalent to no
    reward and the distance is undefined).
    """
    gamma = _check_gamma(gamma)
    _require(transitions, ("states", "state_id", "action", "next_state_id"))
    _check_shapes(reward_a, reward_b)
    w = coverage_weights(coverage, transitions)
    at = (np.asarray(transitions["state_id"]), np.asarray(transitions["action"]),
          np.asarray(transitions["next_state_id"]))
    canon = []
    for name, reward in (("reward_a", reward_a), ("reward_b", reward_b)):
        table = reward_table(reward, transitions, name)
        c = canonicalize_epic(table, gamma, state_dist, action_dist)[at]
        _check_spread(c, table, w, name)
        canon.append(c)
    return pearson_distance(canon[0], canon[1], w)


# ---------------------------------------------------------------------------------------- dynamics-aware
def transition_rewards(reward: Reward, transitions: dict, name: str = "reward") -> np.ndarray:
    """``reward`` on every enumerated transition as a float64 ``(N,)`` array: values (an array) as given, a
    reward model (or a plain function of ``(s, s_next)``) run by its ``predict`` on the transitions' grids.
    ``ValueError`` naming ``name`` for a wrong shape or NaN/inf."""
    n = len(coverage_weights("uniform", transitions))
    if callable(reward):
        _require(transitions, ("s", "s_next"))
        reward = _predict(reward, transitions["s"], transitions["s_next"], name)
    return _finite(reward, (n,), name, "transition")


def canonicalize_dynamics_aware(rewards: np.ndarray, transitions: dict, coverage: str | np.ndarray = "uniform",
                                gamma: float = 0.97) -> np.ndarray:
    """The dynamics-aware canonically shaped reward ``C(R) = R + gamma * V_R(s') - V_R(s)`` (module docstring).

    ``V_R`` is the value of ``R`` along the chain in which state ``x`` moves by a transition leaving ``x``
    drawn in proportion to ``coverage``; terminal states (no enumerated transition leaves them) have value 0.
    Values at transitions with zero coverage are not meaningful. ``ValueError`` if a covered transition leads
    to a non-terminal state whose leaving transitions all have zero coverage, or if ``gamma == 1`` and some
    covered state cannot reach a terminal state (the undiscounted value is then infinite or undefined).
    """
    gamma = _check_gamma(gamma)
    _require(transitions, ("states", "state_id", "next_state_id"))
    w = coverage_weights(coverage, transitions)
    r = _finite(rewards, w.shape, "rewards", "transition")
    sid = np.asarray(transitions["state_id"], dtype=np.int64)
    nsid = np.asarray(transitions["next_state_id"], dtype=np.int64)
    m = len(transitions["states"])

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


def dynamics_aware_distance(reward_a: Reward, reward_b: Reward, transitions: dict,
                            coverage: str | np.ndarray = "uniform", gamma: float = 0.97) -> float:
    """The dynamics-aware distance in [0, 1]: the Pearson distance of the rewards canonicalised by
    :func:`canonicalize_dynamics_aware`, weighted by ``coverage``.

    ``reward_a``/``reward_b``: ``(N,)`` arrays over the enumerated transitions, reward models, or functions
    ``R(s, s_next)`` of the grids (:func:`transition_rewards`). ``coverage``: ``"uniform"`` over the transitions
    or non-negative weights ``(N,)`` with a positive sum. ``gamma`` in (0, 1]. 0 exactly when ``R_b = k * R_a +
    gamma * Phi(s') - Phi(s)`` (``k > 0``, ``Phi = 0`` at terminal states) on the covered transitions; 1 for
    ``R_b = -R_a``. ``ValueError`` if a canonicalised reward is constant on the covered transitions (then it is
    equivalent to no reward and the distance is undefined).
    """
    gamma = _check_gamma(gamma)
    _check_shapes(reward_a, reward_b)
    w = coverage_weights(coverage, transitions)
    canon = []
    for name, reward in (("reward_a", reward_a), ("reward_b", reward_b)):
        r = transition_rewards(reward, transitions, name)
        c = canonicalize_dynamics_aware(r, transitions, w, gamma)
        _check_spread(c, r, w, name)
        canon.append(c)
    return pearson_distance(canon[0], canon[1], w)


__all__ = [
    "Reward", "canonicalize_dynamics_aware", "canonicalize_epic", "dynamics_aware_distance", "epic_distance",
    "reward_table", "transition_rewards",
]

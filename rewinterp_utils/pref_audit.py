"""Reward distances and the question "does an audit signal predict the outcome of retraining?" (preferences chapter).

:func:`distance_tables` sets the two shaping-invariant distances (EPIC as its paper defines it, and the
dynamics-aware distance) beside MSE and rank correlation; :func:`potential_shaped` builds the shaped reward they
must not see; :func:`distance_or_nan` is a distance where it is defined; :func:`kind_summary` is the per-kind table
of audit signals.

For each audit signal (one value per learned reward model), :func:`spearman_interval` gives Spearman's rank
correlation with the true return of PPO retrained on that model and a bootstrap interval over the models;
:func:`signal_verdict` reads the interval (a distance or error *predicts* the outcome when its interval lies below
0); :func:`predictive_table` does both for every signal, :func:`predictive_answer` says the result in one sentence
and :func:`predictive_verdict` is the chapter's claim.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED, Verdict, fmt_spread
from rewinterp_utils.epic import Reward, dynamics_aware_distance, epic_distance, transition_rewards
from rewinterp_utils.stats import mse, spearman

DISTANCES: dict[str, Callable[..., float]] = {"EPIC": epic_distance, "dynamics-aware": dynamics_aware_distance}
"""The two shaping-invariant distances the chapter reports, by the name its tables use."""

PREDICTS = "predicts"
WRONG_WAY = "runs the wrong way"
NO_EVIDENCE = "no evidence"
UNDEFINED = "undefined"
FLAT = "outcomes do not vary"
"""The verdicts :func:`signal_verdict` gives."""


def _varies(v: np.ndarray) -> bool:
    return bool(np.ptp(v) > 0)


def spearman_interval(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """Spearman's rho of ``x`` with ``y`` and its percentile bootstrap interval at ``level``: ``n_boot`` resamples
    of the pairs drawn from ``default_rng(seed)`` (the same resamples for every ``x`` of one length), resamples in
    which either side is constant skipped. ``(nan, nan, nan)`` when ``x`` is not finite or either side is
    constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and _varies(x) and _varies(y)):
        return np.nan, np.nan, np.nan
    boot = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    reps = [spearmanr(x[b], y[b]).statistic for b in boot if _varies(x[b]) and _varies(y[b])]
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(reps, [tail, 100 - tail]) if reps else (np.nan, np.nan)
    return float(spearmanr(x, y).statistic), float(lo), float(hi)


def signal_verdict(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> str:
    """How a signal ``x`` relates to the outcomes ``y``, given its interval ``[lo, hi]``: :data:`FLAT` when the
    outcomes are all equal, :data:`UNDEFINED` when ``x`` is not finite, :data:`PREDICTS` when ``hi < 0`` (a
    lower signal goes with a higher outcome), :data:`WRONG_WAY` when ``lo > 0``, else :data:`NO_EVIDENCE`."""
    if not _varies(np.asarray(y, dtype=float)):
        return FLAT
    if not np.isfinite(np.asarray(x, dtype=float)).all():
        return UNDEFINED
    if hi < 0:
        return PREDICTS
    if lo > 0:
        return WRONG_WAY
    return NO_EVIDENCE


def predictive_table(signals: Mapping[str, Sequence[float]], outcome: Sequence[float], n_boot: int = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """One row per signal (index: its name): ``rho``, the interval's ``lo`` and ``hi``
    (:func:`spearman_interval`) and the ``verdict`` (:func:`signal_verdict`)."""
    rows = {}
    for name, x in signals.items():
        rho, lo, hi = spearman_interval(x, outcome, n_boot, seed)
        rows[name] = {"rho": rho, "lo": lo, "hi": hi, "verdict": signal_verdict(x, outcome, lo, hi)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("signal")


def predictive_answer(table: pd.DataFrame) -> str:
    """The result of :func:`predictive_table` in one sentence: which signals predict (a lower value goes with a
    higher return) and which run the wrong way."""
    if (table["verdict"] == FLAT).all():
        return "outcomes do not vary across models: no signal can predict them"
    winners = list(table.index[table["verdict"] == PREDICTS])
    reverse = list(table.index[table["verdict"] == WRONG_WAY])
    answer = (f"a lower {', '.join(winners)} goes with a higher return" if winners
              else "no signal's interval lies below 0")
    if reverse:
        answer += f"; a higher {', '.join(reverse)} also goes with a higher return"
    return answer


def predictive_verdict(table: pd.DataFrame, level: float = 0.95) -> Verdict:
    """The claim "an audit signal predicts the retrained return": *holds* when some signal's interval lies below
    0, *does not hold* when every signal's lies above 0 (each runs the wrong way), else *undecided*."""
    verdicts = table["verdict"]
    outcome = HOLDS if (verdicts == PREDICTS).any() else FAILS if (verdicts == WRONG_WAY).all() else UNDECIDED
    return Verdict(outcome, f"holds when the {level:.0%} bootstrap interval of some signal's rank correlation with "
                            "the return lies below 0 (does not hold: every signal's lies above 0; undecided: "
                            "otherwise)", "; ".join(f"{k} [{r.lo:.2f}, {r.hi:.2f}]" for k, r in table.iterrows()
                                               if np.isfinite([r.lo, r.hi]).all()) or "no interval")


def distance_or_nan(name: str, reward_a: Reward, reward_b: Reward, transitions: dict,
                    coverage: str | np.ndarray = "uniform", gamma: float = 0.97) -> float:
    """The distance ``name`` (a key of :data:`DISTANCES`), or NaN (with the reason printed) where it is undefined:
    a reward constant on the covered transitions, e.g. the true reward under an expert that never reached a goal."""
    try:
        return DISTANCES[name](reward_a, reward_b, transitions, coverage=coverage, gamma=gamma)
    except ValueError as e:
        print(f"{name} undefined: {e}")
        return float("nan")


def potential_shaped(reward: Callable[[np.ndarray, np.ndarray], np.ndarray], phi: np.ndarray, transitions: dict,
                     scale: float, gamma: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``scale * R(s, s') + gamma * phi(s') - phi(s)`` as a function of grid batches, ``phi`` given per state of
    ``transitions["states"]`` (``ValueError`` for a grid that is not one of them). Zero ``phi`` at terminal states
    for the dynamics-aware distance to ignore it; EPIC ignores any ``phi``."""
    states = np.asarray(transitions["states"], dtype=np.uint8)
    phi = np.asarray(phi, dtype=np.float64)
    if phi.shape != (len(states),):
        raise ValueError(f"phi must have one value per state, shape ({len(states)},), got {phi.shape}")
    index = {g.tobytes(): i for i, g in enumerate(states)}

    def ids(grids: np.ndarray) -> np.ndarray:
        grids = np.asarray(grids, dtype=np.uint8)
        try:
            return np.array([index[g.tobytes()] for g in grids], dtype=np.int64)
        except KeyError:
            raise ValueError("a grid that is not one of the maze's states has no potential") from None

    def shaped(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        return scale * np.asarray(reward(s, s_next), np.float64) + gamma * phi[ids(s_next)] - phi[ids(s)]

    return shaped


def distance_tables(rewards: Mapping[str, Reward], transitions: dict, gamma: float,
                    reference: str = "true") -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """For ``rewards`` (name -> reward model or function of grid batches; uniform coverage): per distance of
    :data:`DISTANCES`, the distance of every pair (a symmetric table); and per reward its distances, MSE and rank
    correlation (Spearman) to ``rewards[reference]`` on the enumerated transitions."""
    matrices = {name: pd.DataFrame({a: {b: fn(rewards[a], rewards[b], transitions, gamma=gamma) for b in rewards}
                                    for a in rewards}) for name, fn in DISTANCES.items()}
    values = {k: transition_rewards(r, transitions, k) for k, r in rewards.items()}
    ref = values[reference]
    to_ref = pd.DataFrame({**{name: m[reference] for name, m in matrices.items()},
                           "MSE": {k: mse(x, ref) for k, x in values.items()},
                           "rank correlation": {k: spearman(x, ref) for k, x in values.items()}})
    return matrices, to_ref


def kind_summary(table: pd.DataFrame, columns: Sequence[str], sci: Sequence[str] = ()) -> pd.DataFrame:
    """Per kind of model (the ``kind`` index level of ``table``, one row per model): each column as
    :func:`~rewinterp_utils.claims.fmt_spread` over the models (scientific notation for ``sci``), ``–`` where a
    value is missing."""
    out = {}
    for col in columns:
        out[col] = {kind: fmt_spread(sub[col], 2, sci=col in sci)
                    if np.isfinite(sub[col].to_numpy(dtype=float)).all() else "–"
                    for kind, sub in table.groupby(level="kind")}
    return pd.DataFrame(out)

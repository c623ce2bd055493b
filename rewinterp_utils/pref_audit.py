"""Reward distances and the question "does an audit signal predict the outcome of retraining?" (preferences chapter).

:func:`distance_tables` sets the two shaping-invariant distances (EPIC as its paper defines it, and the
dynamics-aware distance) beside MSE and rank correlation; :func:`potential_shaped` builds the shaped reward they
must not see; :func:`distance_or_nan` is a distance where it is defined; :func:`kind_summary` is the per-kind table
of audit signals.

For each audit signal (one value per learned reward model, models of several *kinds*), :func:`predictive_table`
gives Spearman's rank correlation with the true return of PPO retrained on that model, over all models and within
kinds (:func:`within_kind_spearman`), each with a bootstrap that resamples models within their kind
(:func:`stratified_resamples`: the kinds are the experiment's design, not a sample), a two-sided bootstrap p-value
(:func:`bootstrap_p`) and Holm's correction for testing every signal (:func:`holm`). :func:`signal_verdict` reads
them (a distance or error *predicts* the outcome when its correlation is below 0 at family-wise level
:data:`ALPHA`); :func:`predictive_answer` says the result in one sentence and :func:`predictive_verdict` is the
chapter's claim, over all models or within kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

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
TOO_FEW = "too few models per kind"
"""The verdicts :func:`signal_verdict` gives."""
ALPHA = 0.05
"""Family-wise error rate of the predictive verdicts: a signal is decided when its Holm-adjusted p is at most this."""
MIN_PER_KIND = 2
"""Fewest models of every kind for a bootstrap within kinds to vary at all (with one model of a kind, every
resample repeats it and an interval collapses to a point): below it, no signal is decided (:data:`TOO_FEW`)."""
WITHIN = "_within"
"""Suffix of :func:`predictive_table`'s columns computed within kinds."""


def _varies(v: np.ndarray) -> bool:
    return bool(np.ptp(v) > 0)


def _kinds(kinds: Sequence[Hashable] | None, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=object) if kinds is None else np.asarray(list(kinds), dtype=object)
    if out.shape != (n,):
        raise ValueError(f"kinds must give one kind per model ({n}), got {out.shape[0]}")
    return out


def stratified_resamples(kinds: Sequence[Hashable], n_boot: int, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` indices of ``n_boot`` bootstrap resamples of ``n`` models, each drawn within its kind: position
    ``i`` of a resample is a model of the kind of model ``i``, uniformly with replacement among them, so every
    resample has as many models of each kind as the data. Draws from ``default_rng(seed)``, kind by kind in order of
    first appearance; with one kind, the plain bootstrap ``default_rng(seed).integers(0, n, (n_boot, n))``."""
    kinds = np.asarray(list(kinds), dtype=object)
    rng = np.random.default_rng(seed)
    out = np.empty((int(n_boot), len(kinds)), dtype=np.int64)
    for kind in dict.fromkeys(kinds.tolist()):
        members = np.flatnonzero(kinds == kind)
        out[:, members] = members[rng.integers(0, len(members), size=(int(n_boot), len(members)))]
    return out


def pooled_spearman(x: np.ndarray, y: np.ndarray, kinds: np.ndarray | None = None) -> float:
    """Spearman's rho of ``x`` with ``y`` over every model (``kinds`` ignored); NaN when either side is constant."""
    return float(spearmanr(x, y).statistic) if _varies(x) and _varies(y) else float("nan")


def within_kind_spearman(x: np.ndarray, y: np.ndarray, kinds: np.ndarray) -> float:
    """Spearman's rho of ``x`` with ``y`` inside each kind where both vary, averaged over those kinds weighted by
    their number of models: whether the signal ranks models of one recipe as their outcomes rank, whatever
    separates the kinds. NaN when no kind has both sides varying."""
    rhos, weights = [], []
    for kind in dict.fromkeys(kinds.tolist()):
        sel = kinds == kind
        if _varies(x[sel]) and _varies(y[sel]):
            rhos.append(spearmanr(x[sel], y[sel]).statistic)
            weights.append(sel.sum())
    return float(np.average(rhos, weights=weights)) if rhos else float("nan")


def bootstrap_p(reps: Sequence[float]) -> tuple[float, str]:
    """The two-sided bootstrap p-value of "no correlation" from replicates of a correlation: twice the smaller
    share of replicates on either side of 0 (a replicate at 0 counts on both sides), at most 1 (the p-value whose
    percentile interval just reaches 0); and the side most replicates lie on (``"below"``, ``"above"``, or ``""``
    on a tie). ``(nan, "")`` without replicates."""
    reps = np.asarray(reps, dtype=float)
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return float("nan"), ""
    not_below, not_above = float(np.mean(reps >= 0)), float(np.mean(reps <= 0))
    side = "below" if not_below < not_above else "above" if not_above < not_below else ""
    return min(1.0, 2 * min(not_below, not_above)), side


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979) of the finite entries of ``p`` (NaN stays NaN and does not
    count): with ``p_(1) <= ... <= p_(m)`` sorted, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    Rejecting where the adjusted value is at most ``alpha`` keeps the family-wise error rate at ``alpha``."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    out[order] = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    return out


def _evidence(x: np.ndarray, y: np.ndarray, kinds: np.ndarray, resamples: np.ndarray, level: float,
              stat: Callable[[np.ndarray, np.ndarray, np.ndarray], float]) -> dict[str, float | str]:
    """``stat`` on the models, its percentile interval at ``level`` over the resamples and :func:`bootstrap_p`;
    NaN interval and p when ``x`` is not finite and varying, or a kind has fewer than :data:`MIN_PER_KIND`
    models."""
    rho = stat(x, y, kinds) if np.isfinite(x).all() else float("nan")
    _, counts = np.unique(kinds.astype(str), return_counts=True)
    if not np.isfinite(rho) or counts.min() < MIN_PER_KIND:
        return {"rho": rho, "lo": np.nan, "hi": np.nan, "p": np.nan, "side": ""}
    reps = np.array([stat(x[b], y[b], kinds[b]) for b in resamples])
    reps = reps[np.isfinite(reps)]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(reps, [tail, 100 - tail]) if len(reps) else (np.nan, np.nan)
    p, side = bootstrap_p(reps)
    return {"rho": rho, "lo": float(lo), "hi": float(hi), "p": p, "side": side}


def spearman_interval(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95, kinds: Sequence[Hashable] | None = None) -> tuple[float, float, float]:
    """Spearman's rho of ``x`` with ``y`` over every model and its percentile bootstrap interval at ``level``:
    ``n_boot`` resamples within ``kinds`` (:func:`stratified_resamples`; ``None``: one kind, the plain bootstrap),
    resamples in which either side is constant skipped. ``(nan, nan, nan)`` when ``x`` is not finite or either side
    is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got shapes {x.shape} and {y.shape}")
    k = _kinds(kinds, len(x))
    e = _evidence(x, y, k, stratified_resamples(k, n_boot, seed), level, pooled_spearman)
    return (float(e["rho"]), float(e["lo"]), float(e["hi"])) if np.isfinite(e["lo"]) else (np.nan, np.nan, np.nan)


def signal_verdict(x: Sequence[float], y: Sequence[float], p_holm: float, side: str, alpha: float = ALPHA) -> str:
    """How a signal ``x`` relates to the outcomes ``y``, given its Holm-adjusted p and the side its bootstrap lies
    on: :data:`FLAT` when the outcomes are all equal, :data:`UNDEFINED` when ``x`` is not finite or constant,
    :data:`TOO_FEW` without a p-value, :data:`PREDICTS` when ``p_holm <= alpha`` below 0 (a lower signal goes with a
    higher outcome), :data:`WRONG_WAY` when so above 0, else :data:`NO_EVIDENCE`."""
    x = np.asarray(x, dtype=float)
    if not _varies(np.asarray(y, dtype=float)):
        return FLAT
    if not (np.isfinite(x).all() and _varies(x)):
        return UNDEFINED
    if not np.isfinite(p_holm):
        return TOO_FEW
    if p_holm <= alpha and side:
        return PREDICTS if side == "below" else WRONG_WAY
    return NO_EVIDENCE


def predictive_table(signals: Mapping[str, Sequence[float]], outcome: Sequence[float],
                     kinds: Sequence[Hashable] | None = None, n_boot: int = 2000, seed: int = 0,
                     alpha: float = ALPHA, level: float = 0.95) -> pd.DataFrame:
    """One row per signal (index: its name), over every model and, with the suffix :data:`WITHIN`, within kinds
    (:func:`within_kind_spearman`): ``rho``, its ``level`` bootstrap interval ``lo``, ``hi`` (the same
    ``n_boot`` resamples within ``kinds`` for every signal, :func:`stratified_resamples`), the two-sided bootstrap
    ``p`` (:func:`bootstrap_p`), ``p_holm`` (:func:`holm` over the signals) and the ``verdict``
    (:func:`signal_verdict` at ``alpha``). ``kinds``: each model's kind (``None``: one kind)."""
    y = np.asarray(outcome, dtype=float)
    k = _kinds(kinds, len(y))
    resamples = stratified_resamples(k, n_boot, seed)
    xs = {name: np.asarray(x, dtype=float) for name, x in signals.items()}
    columns = {}
    for suffix, stat in (("", pooled_spearman), (WITHIN, within_kind_spearman)):
        ev = pd.DataFrame({name: _evidence(x, y, k, resamples, level, stat) for name, x in xs.items()}).T
        ev["p_holm"] = holm(ev["p"].to_numpy(dtype=float))
        ev["verdict"] = [signal_verdict(xs[name], y, r.p_holm, r.side, alpha) for name, r in ev.iterrows()]
        for col in ("rho", "lo", "hi", "p", "p_holm", "verdict"):
            columns[col + suffix] = ev[col] if col == "verdict" else ev[col].astype(float)
    return pd.DataFrame(columns).rename_axis("signal")


def predictive_answer(table: pd.DataFrame) -> str:
    """The result of :func:`predictive_table` in one sentence: which signals predict (a lower value goes with a
    higher return, after Holm's correction) and which run the wrong way, over every model; then which predict
    within kinds."""
    if (table["verdict"] == FLAT).all():
        return "outcomes do not vary across models: no signal can predict them"
    if (table["verdict"] == TOO_FEW).all():
        return "too few models of each kind to decide"
    winners = list(table.index[table["verdict"] == PREDICTS])
    reverse = list(table.index[table["verdict"] == WRONG_WAY])
    within = list(table.index[table["verdict" + WITHIN] == PREDICTS])
    answer = (f"a lower {', '.join(winners)} goes with a higher return" if winners
              else "no signal predicts the return after Holm's correction")
    if reverse:
        answer += f"; a higher {', '.join(reverse)} also goes with a higher return"
    return answer + (f"; within kinds, a lower {', '.join(within)} does too" if within
                     else "; within kinds, no signal does")


def predictive_verdict(table: pd.DataFrame, alpha: float = ALPHA, within: bool = False) -> Verdict:
    """The claim "an audit signal predicts the retrained return" over every model (``within=True``: within kinds):
    *holds* when some signal's correlation lies below 0 at family-wise level ``alpha`` (Holm-adjusted p), *does not
    hold* when every signal's lies above 0 at that level (each runs the wrong way), else *undecided*."""
    suffix = WITHIN if within else ""
    verdicts, p = table["verdict" + suffix], table["p_holm" + suffix]
    outcome = HOLDS if (verdicts == PREDICTS).any() else FAILS if (verdicts == WRONG_WAY).all() else UNDECIDED
    where = "within each kind of model, averaged over kinds" if within else "over every model"
    return Verdict(outcome, f"holds when some signal's Spearman correlation with the retrained return ({where}) is "
                            f"below 0 at family-wise level {alpha:g} over the {len(table)} signals (Holm-adjusted "
                            "two-sided p of a bootstrap resampling models within their kind; does not hold: every "
                            "signal's is above 0 at that level; undecided: otherwise)",
                   "; ".join(f"{k} p_holm {v:.3f}" for k, v in p.items() if np.isfinite(v)) or "no p-value")


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

"""Spread over seeds and computed verdicts: how a chapter says whether a claim of the paper held.

A notebook never types a verdict. It gathers one value per seed, states a criterion in words beside the code,
and calls one of the verdict functions here, which return a :class:`Verdict`: one of three outcomes (*holds*,
*does not hold*, *undecided*) decided on an interval over seeds, so that a verdict that sits on its threshold within
the noise says so instead of flipping from one machine to the next. :class:`Claim` rows, built with keyword arguments, become the chapter's claims table (glued into the book and
saved as ``claims.csv`` for the results page by :func:`save_claims`, which takes the chapter from the stage).

No interval collapses to a point: values that are all equal (one value, in effect) decide nothing. A bounded or 0/1
outcome (a success rate, a return at its ceiling of 1) is judged on the episodes behind it instead
(:func:`episode_rates`, :func:`rate_verdict`, :func:`rate_not_below`: Wilson and Newcombe intervals), and a value
crossed over two sources of noise (model seeds x plays of a game) on both (:func:`crossed_verdict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm as normal
from scipy.stats import t as student_t

CLAIMS_FILE = "claims.csv"
"""The file a criterion notebook writes its claims table to (read by the results page)."""


HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"
"""The three outcomes of every verdict."""

CONFIDENCE = 0.90
"""Two-sided confidence of the intervals over seeds that verdicts are decided on (Student-t intervals of a mean,
Welch's for a difference of means, Wilson's for a success rate, Newcombe's for a difference of two)."""


class Verdict(NamedTuple):
    """What a verdict function returns: one of :data:`HOLDS`, :data:`FAILS`, :data:`UNDECIDED`, the criterion in
    words and the interval it was decided on (as text)."""

    outcome: str
    criterion: str
    interval: str = ""


def as_values(values: Iterable[float], name: str = "values") -> np.ndarray:
    """One finite float per seed, or ``ValueError`` naming ``name``."""
    v = np.asarray(list(values), dtype=float).ravel()
    if len(v) < 1:
        raise ValueError(f"{name}: need at least one seed's value, got none")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: values must be finite, got {v.tolist()}")
    return v


def spread(name: str, values: Iterable[float], digits: int = 3, sci: bool = False) -> dict[str, Any]:
    """Summary keys for one quantity over seeds: ``name`` (seed 0's value), ``name_mean``, ``name_std`` (sample
    standard deviation, NaN for one seed), ``name_n``, ``name_seeds`` (every value, seed order) and
    ``name_text`` (:func:`fmt_spread` with ``digits`` and ``sci``: what prose quotes, no sd for one seed)."""
    v = as_values(values, name)
    return {name: float(v[0]), f"{name}_mean": float(v.mean()),
            f"{name}_std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            f"{name}_n": len(v), f"{name}_seeds": [float(x) for x in v], f"{name}_text": fmt_spread(v, digits, sci)}


def fmt_spread(values: Iterable[float], digits: int = 3, sci: bool = False, unit: str = "seed") -> str:
    """``mean ± sd (n seeds)``; one value gives ``value (1 seed)`` with no standard deviation. ``digits`` after
    the point (significant digits with ``sci``); ``unit`` names what the values are over (``"run"``, ``"agent"``)."""
    v = as_values(values)
    f = (lambda x: f"{x:.{digits - 1}e}") if sci else (lambda x: f"{x:.{digits}f}")
    if len(v) == 1:
        return f"{f(v[0])} (1 {unit})"
    return f"{f(v.mean())} ± {f(v.std(ddof=1))} ({len(v)} {unit}s)"


def _t(df: float) -> float:
    return float(student_t.ppf(0.5 + CONFIDENCE / 2, df))


def mean_interval(values: Iterable[float]) -> tuple[float, float]:
    """The :data:`CONFIDENCE` Student-t interval of the mean over seeds; ``(nan, nan)`` (no interval) for one
    seed, and for values that are all equal: their zero spread would give a point, ``[x, x]``, that no threshold
    can straddle (bounded or 0/1 outcomes at a ceiling do this: judge them on their episodes, :func:`rate_verdict`)."""
    v = as_values(values)
    if len(v) < 2 or np.ptp(v) == 0:
        return math.nan, math.nan
    half = _t(len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def _interval_text(lo: float, hi: float, n: int, unit: str = "seed") -> str:
    if n < 2:
        return f"1 {unit}: no interval"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{n} {unit}s, all equal: no spread, no interval"
    return f"{CONFIDENCE:.0%} interval [{lo:.3g}, {hi:.3g}] ({n} {unit}s)"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'s' if n != 1 else ''}"


def _by_ends(ok_lo: bool, ok_hi: bool) -> str:
    return HOLDS if ok_lo and ok_hi else FAILS if not (ok_lo or ok_hi) else UNDECIDED


def _decide(lo: float, hi: float, test: Callable[[np.ndarray], np.ndarray]) -> str:
    """:func:`_by_ends` of ``test`` at both ends of ``[lo, hi]``; *undecided* when there is no interval (NaN)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return UNDECIDED
    ok = np.asarray(test(np.array([lo, hi])), dtype=bool)
    return _by_ends(bool(ok[0]), bool(ok[1]))


def interval_verdict(values: Iterable[float], test: Callable[[np.ndarray], np.ndarray], says: str,
                     unit: str = "seed") -> Verdict:
    """Decide a threshold claim on the :data:`CONFIDENCE` interval of the mean over seeds: *holds* when ``test``
    (a threshold on one value, e.g. ``lambda x: x < 0.01``, stated in words by ``says``) holds at both ends of the
    interval, *does not hold* when at neither, *undecided* when the interval straddles the threshold, there is
    only one seed, or every seed gives the same value (no spread: :func:`mean_interval`)."""
    v = as_values(values)
    lo, hi = mean_interval(v)
    criterion = (f"holds: {says} over the whole {CONFIDENCE:.0%} interval of the mean over {unit}s (does not hold: "
                 f"nowhere on it; undecided: the interval straddles the threshold, one {unit}, or all {unit}s "
                 "equal)")
    return Verdict(_decide(lo, hi, test), criterion, _interval_text(lo, hi, len(v), unit))


def crossed_verdict(values: Iterable[Iterable[float]], test: Callable[[np.ndarray], np.ndarray], says: str,
                    units: tuple[str, str] = ("model seed", "play")) -> Verdict:
    """Decide a threshold claim on a table of values crossed over two sources of noise (rows: ``units[0]``, e.g.
    model seeds; columns: ``units[1]``, e.g. plays of the game, the same plays for every row), on a
    :data:`CONFIDENCE` Student-t interval of the grand mean whose squared standard error adds both sources': that
    of the rows' means (over model seeds) and that of the columns' means (over plays), on the smaller of their
    degrees of freedom (conservative). Neither source's noise is left out: the plays every model shares move every
    row together, which the rows' spread alone would miss. *Undecided* when the interval straddles the threshold,
    or either way has fewer than two values or no spread (as :func:`mean_interval`)."""
    table = np.asarray([as_values(row, units[0]) for row in values], dtype=float)
    if table.ndim != 2 or table.size == 0:
        raise ValueError(f"crossed_verdict needs one row per {units[0]} of equally many {units[1]}s")
    criterion = (f"holds: {says} over the whole {CONFIDENCE:.0%} interval of the mean over {units[0]}s x "
                 f"{units[1]}s (Student-t, its variance the sum of those of the means over {units[0]}s and over "
                 f"{units[1]}s; does not hold: nowhere on it; undecided: it straddles the threshold, fewer than two "
                 f"{units[0]}s or {units[1]}s, or no spread)")
    shape = f"{_count(table.shape[0], units[0])} x {_count(table.shape[1], units[1])}"
    means = (table.mean(1), table.mean(0))
    if min(table.shape) < 2 or any(np.ptp(m) == 0 for m in means):
        return Verdict(UNDECIDED, criterion, f"{shape}: no interval")
    half = _t(min(table.shape) - 1) * math.sqrt(sum(m.var(ddof=1) / len(m) for m in means))
    lo, hi = float(table.mean() - half), float(table.mean() + half)
    return Verdict(_decide(lo, hi, test), criterion, f"{CONFIDENCE:.0%} interval [{lo:.3g}, {hi:.3g}] ({shape})")


def exact_verdict(ok: bool, says: str) -> Verdict:
    """A claim about one computed value with no seeds to vary (e.g. a distance between two fixed rewards): *holds*
    or *does not hold*, never undecided."""
    return Verdict(HOLDS if ok else FAILS, f"holds: {says} (computed once, no seeds)", "exact")


def errs_like_paper(values: Iterable[float], paper: float, true: float) -> Verdict:
    """For a counterfactual whose true reward is ``true``: does the model err as the paper's did (``paper``), in
    direction and size? *Holds* when the interval of the mean over seeds lies past the midpoint between ``true``
    and ``paper``, on the paper's side (closer to the paper's value than to the truth), *does not hold* when it
    lies wholly on the truth's side of the midpoint (a model that is right, nearly right or wrong the other way),
    *undecided* when it straddles the midpoint (or one seed, or no spread)."""
    if paper == true:
        raise ValueError(f"the paper's value {paper:g} equals the true reward: it did not err")
    up, mid = paper > true, (paper + true) / 2
    return interval_verdict(values, (lambda x: x > mid) if up else (lambda x: x < mid),
                            f"the model errs {'above' if up else 'below'} the true reward ({true:g}) as the paper's "
                            f"did ({paper:g}), past the midpoint between them ({'>' if up else '<'} {mid:.4g})")


def _difference(va: np.ndarray, vb: np.ndarray) -> tuple[float, float]:
    """The :data:`CONFIDENCE` Welch interval of mean(a) - mean(b) (both sides need two seeds); ``(nan, nan)`` when
    neither side has any spread (the interval would be a point)."""
    qa, qb = va.var(ddof=1) / len(va), vb.var(ddof=1) / len(vb)
    if qa + qb == 0:
        return math.nan, math.nan
    se = math.sqrt(qa + qb)
    df = (qa + qb) ** 2 / (qa ** 2 / (len(va) - 1) + qb ** 2 / (len(vb) - 1))
    d = float(va.mean() - vb.mean())
    return d - _t(df) * se, d + _t(df) * se


def _compare_says(what_a: str, what_b: str, margin: float, claim_below: bool) -> str:
    return f"{what_a} {'below' if claim_below else 'not below'} {what_b}" + (
        f" by more than {margin:g}" if margin else "")


def _compare_outcome(lo: float, hi: float, margin: float, claim_below: bool) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return UNDECIDED
    return _by_ends(*((lo < -margin, hi < -margin) if claim_below else (lo >= -margin, hi >= -margin)))


def _compare(a: Sequence[float], b: Sequence[float], what_a: str, what_b: str, margin: float,
             claim_below: bool) -> Verdict:
    va, vb = as_values(a, what_a), as_values(b, what_b)
    criterion = (f"holds: {_compare_says(what_a, what_b, margin, claim_below)} over the whole {CONFIDENCE:.0%} "
                 "interval of the difference of means over seeds (does not hold: nowhere on it; undecided: the "
                 "interval straddles it, one seed on a side, or no spread on either side)")
    if len(va) < 2 or len(vb) < 2:
        return Verdict(UNDECIDED, criterion, f"1 seed on a side ({len(va)} and {len(vb)}): no interval")
    lo, hi = _difference(va, vb)
    text = (f"{CONFIDENCE:.0%} interval of the difference [{lo:.3g}, {hi:.3g}] ({len(va)} and {len(vb)} seeds)"
            if np.isfinite(lo) else f"{len(va)} and {len(vb)} seeds, each side all equal: no spread, no interval")
    return Verdict(_compare_outcome(lo, hi, margin, claim_below), criterion, text)


def below(a: Sequence[float], b: Sequence[float], what_a: str, what_b: str, margin: float = 0.0) -> Verdict:
    """Is ``a`` (one value per seed) below ``b``? On the :data:`CONFIDENCE` Welch interval of mean(a) - mean(b):
    *holds* when it lies under ``-margin``, *does not hold* when it lies at or above ``-margin``, *undecided* when
    it straddles ``-margin``, a side has a single seed, or neither side has any spread (no interval)."""
    return _compare(a, b, what_a, what_b, margin, claim_below=True)


def not_below(a: Sequence[float], b: Sequence[float], what_a: str, what_b: str, margin: float = 0.0) -> Verdict:
    """The claim "``a`` does as well as ``b``, within ``margin``": :func:`below`'s interval with holds and does
    not hold swapped (*holds* when the whole interval of mean(a) - mean(b) is at or above ``-margin``)."""
    return _compare(a, b, what_a, what_b, margin, claim_below=False)


# -- success rates: bounded and 0/1 outcomes, judged on the episodes behind them ---------------------------
class Rates(NamedTuple):
    """Successes and trials (episodes) per seed, from :func:`episode_rates`."""

    successes: np.ndarray  #: one count per seed
    trials: np.ndarray  #: one count per seed, each at least 1

    @property
    def per_seed(self) -> np.ndarray:
        """Each seed's success rate."""
        return self.successes / self.trials

    @property
    def pooled(self) -> tuple[int, int]:
        """Successes and trials over every seed."""
        return int(self.successes.sum()), int(self.trials.sum())


def episode_rates(episodes: Iterable[Iterable[float]], name: str = "episodes") -> Rates:
    """:class:`Rates` from one sequence of 0/1 outcomes per seed (e.g. each evaluation episode's true return in a
    maze that pays 1 for reaching a goal and ends there); ``ValueError`` naming ``name`` for a value other than 0
    or 1, or a seed with no episode."""
    seeds = [np.asarray(list(e), dtype=float).ravel() for e in episodes]
    if not seeds or any(len(e) == 0 for e in seeds):
        raise ValueError(f"{name}: need at least one episode per seed and one seed, got {[len(e) for e in seeds]}")
    bad = sorted({float(x) for e in seeds for x in e if x not in (0.0, 1.0)})
    if bad:
        raise ValueError(f"{name}: outcomes must be 0 or 1 (a success rate), got {bad[:5]}")
    return Rates(np.array([e.sum() for e in seeds]), np.array([len(e) for e in seeds]))


def _z() -> float:
    return float(normal.ppf(0.5 + CONFIDENCE / 2))


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """The :data:`CONFIDENCE` Wilson score interval of a success rate: every rate p with
    ``|successes / trials - p| <= z * sqrt(p (1 - p) / trials)``. Never a point: 10 of 10 gives
    ``[10 / (10 + z^2), 1]``."""
    if not 0 <= successes <= trials or trials < 1:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    z2, p = _z() ** 2, successes / trials
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = math.sqrt(z2 * p * (1 - p) / trials + z2 ** 2 / (4 * trials ** 2)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _hull(*intervals: tuple[float, float]) -> tuple[float, float]:
    """The smallest interval holding every defined (finite) one of ``intervals``."""
    ok = [(lo, hi) for lo, hi in intervals if np.isfinite(lo) and np.isfinite(hi)]
    return min(lo for lo, _ in ok), max(hi for _, hi in ok)


def rate_interval(rates: Rates) -> tuple[float, float]:
    """The interval a success rate over seeds is judged on: the hull of the :data:`CONFIDENCE` Wilson interval
    of the episodes pooled over seeds (the binomial noise, never a point) and the Student-t interval of the mean
    of the seeds' rates (the seed-to-seed spread, :func:`mean_interval`; left out when every seed agrees)."""
    return _hull(wilson_interval(*rates.pooled), mean_interval(rates.per_seed))


def _rates_text(rates: Rates) -> str:
    s, n = rates.pooled
    return f"{s} of {n} episodes, {_count(len(rates.trials), 'seed')}"


def rate_verdict(rates: Rates, test: Callable[[np.ndarray], np.ndarray], says: str) -> Verdict:
    """Decide a threshold claim on a success rate (a bounded 0/1 outcome, e.g. the final true return of maze
    agents) on :func:`rate_interval`: *holds* when ``test`` holds at both ends, *does not hold* at neither,
    *undecided* when it straddles the threshold or there is one seed (the seed-to-seed spread is unknown)."""
    criterion = (f"holds: {says} over the whole {CONFIDENCE:.0%} interval of the success rate over seeds (the hull "
                 "of the Wilson interval of the episodes pooled over seeds and the Student-t interval of the mean "
                 "of the seeds' rates; does not hold: nowhere on it; undecided: it straddles the threshold, or one "
                 "seed)")
    if len(rates.trials) < 2:
        return Verdict(UNDECIDED, criterion, f"1 seed ({_rates_text(rates)}): no interval over seeds")
    lo, hi = rate_interval(rates)
    return Verdict(_decide(lo, hi, test), criterion,
                   f"{CONFIDENCE:.0%} interval [{lo:.3g}, {hi:.3g}] ({_rates_text(rates)})")


def newcombe_interval(a: tuple[int, int], b: tuple[int, int]) -> tuple[float, float]:
    """The :data:`CONFIDENCE` interval of the difference of two success rates, ``a`` and ``b`` as (successes,
    trials), by Newcombe's hybrid score method (his method 10) from their :func:`wilson_interval` ends."""
    (la, ua), (lb, ub) = wilson_interval(*a), wilson_interval(*b)
    pa, pb = a[0] / a[1], b[0] / b[1]
    d = pa - pb
    return d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2), d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)


def _rate_compare(a: Rates, b: Rates, what_a: str, what_b: str, margin: float, claim_below: bool) -> Verdict:
    criterion = (f"holds: {_compare_says(what_a, what_b, margin, claim_below)} over the whole {CONFIDENCE:.0%} "
                 "interval of the difference of success rates (the hull of Newcombe's interval on the episodes "
                 "pooled over seeds and the Welch interval over the seeds' rates; does not hold: nowhere on it; "
                 "undecided: it straddles it, or one seed on a side)")
    text = f"{what_a}: {_rates_text(a)}; {what_b}: {_rates_text(b)}"
    if len(a.trials) < 2 or len(b.trials) < 2:
        return Verdict(UNDECIDED, criterion, f"1 seed on a side ({text}): no interval over seeds")
    lo, hi = _hull(newcombe_interval(a.pooled, b.pooled), _difference(a.per_seed, b.per_seed))
    return Verdict(_compare_outcome(lo, hi, margin, claim_below), criterion,
                   f"{CONFIDENCE:.0%} interval of the difference [{lo:.3g}, {hi:.3g}] ({text})")


def rate_below(a: Rates, b: Rates, what_a: str, what_b: str, margin: float = 0.0) -> Verdict:
    """:func:`below` for success rates: is ``a``'s rate below ``b``'s (by more than ``margin``)?"""
    return _rate_compare(a, b, what_a, what_b, margin, claim_below=True)


def rate_not_below(a: Rates, b: Rates, what_a: str, what_b: str, margin: float = 0.0) -> Verdict:
    """:func:`not_below` for success rates: does ``a`` succeed as often as ``b``, within ``margin``?"""
    return _rate_compare(a, b, what_a, what_b, margin, claim_below=False)


def ratio_text(a: float, b: float) -> str:
    """``a / b`` as ``"2.4x"`` (``"–"`` when ``b`` is 0 or either is not finite)."""
    if not (np.isfinite(a) and np.isfinite(b)) or b == 0:
        return "–"
    return f"{a / b:.1f}x"


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One row of a chapter's claims table."""

    key: str  #: short name: the verdict is the summary key ``<namespace>.claims.<key>``
    claim: str  #: the paper's claim, or ours
    paper: str  #: what the paper reported
    measured: str  #: this build's value (mean ± sd over seeds, seed count)
    verdict: Verdict  #: computed by a verdict function
    where: str = ""  #: the figure or notebook to look at

    def row(self, chapter: str) -> dict[str, str]:
        """The claim as one row of ``claims.csv``."""
        return {"key": self.key, "claim": self.claim, "paper": self.paper, "measured": self.measured,
                "verdict": self.verdict.outcome, "interval": self.verdict.interval,
                "criterion": self.verdict.criterion, "where": self.where, "chapter": chapter}


def sanity_claim(key: str, claim: str, rank_corr_final: Iterable[float], threshold: float, where: str,
                 unit: str = "model") -> Claim:
    """The model-randomisation verdict of one attribution method over several reward models: *passes* when the
    rank correlation after full randomisation is below ``threshold`` for every model (Part V's criterion)."""
    finals = as_values(rank_corr_final, "rank_corr_final")
    verdict = interval_verdict(finals, lambda v: v < threshold, f"rank corr. after full randomisation < {threshold:g}",
                               unit=unit)
    return Claim(key=key, claim=claim, paper="not run", verdict=verdict, where=where,
                 measured=f"rank corr. after randomisation {fmt_spread(finals, 2, unit=unit)}")


def unit_check_claim(key: str, claim: str, passed: Iterable[bool], where: str, *,
                     n_changed: Iterable[int] | None = None) -> Claim:
    """A unit check's verdict over several reward models: *holds* when every model passes it, *does not hold* when
    none does, *undecided* when some do. ``n_changed`` (optional, one count per model): how many inputs the check's
    edit changed; a model with none was not tested (a check on no input FAILS in :mod:`rewinterp_utils.checks`)
    and does not count, and when no model was tested the verdict is *undecided* ("no model tested")."""
    ok = np.asarray(list(passed), dtype=bool)
    if ok.size == 0:
        raise ValueError("unit_check_claim needs at least one model's result")
    tested = np.ones(ok.size, bool) if n_changed is None else np.asarray(list(n_changed)) > 0
    if tested.size != ok.size:
        raise ValueError(f"unit_check_claim: {ok.size} results but {tested.size} input counts")
    criterion = ("holds: every model passes the check (does not hold: none does; undecided: some do, or the edit "
                 "changes none of the inputs)")
    if not tested.any():
        return Claim(key=key, claim=claim, paper="not run", measured=f"the edit changed no input of {ok.size} models",
                     verdict=Verdict(UNDECIDED, criterion, "no model tested"), where=where)
    untested = f" ({int((~tested).sum())} untested)" if not tested.all() else ""
    passed_n, n = int(ok[tested].sum()), int(tested.sum())
    return Claim(key=key, claim=claim, paper="not run", where=where,
                 measured=f"{passed_n} of {n} models pass{untested}",
                 verdict=Verdict(_by_ends(bool(ok[tested].all()), bool(ok[tested].any())), criterion,
                                 f"{passed_n} of {n} models"))


def claims_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """The claims as a table indexed by claim (columns: paper, this build, verdict, interval, criterion, where)."""
    if not claims:
        raise ValueError("claims_table needs at least one Claim")
    df = pd.DataFrame([c.row("") for c in claims]).rename(columns={"measured": "this build"})
    return df.set_index("claim")[["paper", "this build", "verdict", "interval", "criterion", "where"]]


def save_claims(claims: Sequence[Claim], folder: Path, chapter: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Write the claims to ``folder / CLAIMS_FILE`` (CSV, every field, ``chapter`` on each row: pass the stage's,
    ``run.chapter``); return :func:`claims_table` and the verdicts as metrics (``claims.<key>``)."""
    keys = [c.key for c in claims]
    if len(set(keys)) != len(keys):
        raise ValueError(f"claim keys must be unique, got {keys}")
    table = claims_table(claims)
    pd.DataFrame([c.row(chapter) for c in claims]).to_csv(Path(folder) / CLAIMS_FILE, index=False)
    return table, {f"claims.{c.key}": c.verdict.outcome for c in claims}

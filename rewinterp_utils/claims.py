"""Spread over seeds and computed verdicts: how a chapter says whether a claim of the paper held.

A notebook never types a verdict. It gathers one value per seed, states a criterion in words beside the code,
and calls one of the verdict functions here, which return a :class:`Verdict`: one of three outcomes (*holds*,
*does not hold*, *undecided*) decided on an interval over seeds, so that a verdict that sits on its threshold within
the noise says so instead of flipping from one machine to the next. :class:`Claim` rows, built with keyword arguments, become the chapter's claims table (glued into the book and
saved as ``claims.csv`` for the results page by :func:`save_claims`, which takes the chapter from the stage).

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

CLAIMS_FILE = "claims.csv"
"""The file a criterion notebook writes its claims table to (read by the results page)."""


HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"
"""The three outcomes of every verdict."""

CONFIDENCE = 0.90
"""Two-sided confidence of the intervals over seeds that verdicts are decided on (Student-t intervals of a mean,
Welch's for a difference of means)."""


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
    """The :data:`CONFIDENCE` Student-t interval of the mean over seeds; ``(nan, nan)`` for one seed."""
    v = as_values(values)
    if len(v) < 2:
        return math.nan, math.nan
    half = _t(len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def _interval_text(lo: float, hi: float, n: int, unit: str = "seed") -> str:
    if n < 2:
        return f"1 {unit}: no interval"
    return f"{CONFIDENCE:.0%} interval [{lo:.3g}, {hi:.3g}] ({n} {unit}s)"


def _by_ends(ok_lo: bool, ok_hi: bool) -> str:
    return HOLDS if ok_lo and ok_hi else FAILS if not (ok_lo or ok_hi) else UNDECIDED


def interval_verdict(values: Iterable[float], test: Callable[[np.ndarray], np.ndarray], says: str,
                     unit: str = "seed") -> Verdict:
    """Decide a threshold claim on the :data:`CONFIDENCE` interval of the mean over seeds: *holds* when ``test``
    (a threshold on one value, e.g. ``lambda x: x < 0.01``, stated in words by ``says``) holds at both ends of the
    interval, *does not hold* when at neither, *undecided* when the interval straddles the threshold or there is
    only one seed."""
    v = as_values(values)
    lo, hi = mean_interval(v)
    criterion = (f"holds: {says} over the whole {CONFIDENCE:.0%} interval of the mean over {unit}s (does not hold: "
                 f"nowhere on it; undecided: the interval straddles the threshold, or one {unit})")
    if len(v) < 2:
        return Verdict(UNDECIDED, criterion, _interval_text(lo, hi, 1, unit))
    ok = np.asarray(test(np.array([lo, hi])), dtype=bool)
    return Verdict(_by_ends(bool(ok[0]), bool(ok[1])), criterion, _interval_text(lo, hi, len(v), unit))


def exact_verdict(ok: bool, says: str) -> Verdict:
    """A claim about one computed value with no seeds to vary (e.g. a distance between two fixed rewards): *holds*
    or *does not hold*, never undecided."""
    return Verdict(HOLDS if ok else FAILS, f"holds: {says} (computed once, no seeds)", "exact")


def errs_like_paper(values: Iterable[float], paper: float, true: float) -> Verdict:
    """For a counterfactual whose true reward is ``true``: *holds* when the interval of the mean over seeds lies
    on the side of ``true`` where the paper's model erred (``paper``), *does not hold* when it lies on the other
    side, *undecided* when it contains ``true`` (or one seed)."""
    if paper == true:
        raise ValueError(f"the paper's value {paper:g} equals the true reward: it did not err")
    up = paper > true
    return interval_verdict(values, (lambda x: x > true) if up else (lambda x: x < true),
                            f"the model errs {'above' if up else 'below'} the true reward ({true:g}), as the "
                            f"paper's did ({paper:g})")


def _difference(va: np.ndarray, vb: np.ndarray) -> tuple[float, float, str]:
    """The :data:`CONFIDENCE` Welch interval of mean(a) - mean(b) and its text (both sides need two seeds)."""
    qa, qb = va.var(ddof=1) / len(va), vb.var(ddof=1) / len(vb)
    se = math.sqrt(qa + qb)
    df = (qa + qb) ** 2 / (qa ** 2 / (len(va) - 1) + qb ** 2 / (len(vb) - 1)) if se > 0 else 1.0
    d = float(va.mean() - vb.mean())
    lo, hi = d - _t(df) * se, d + _t(df) * se
    return lo, hi, f"{CONFIDENCE:.0%} interval of the difference [{lo:.3g}, {hi:.3g}] ({len(va)} and {len(vb)} seeds)"


def _compare(a: Sequence[float], b: Sequence[float], what_a: str, what_b: str, margin: float,
             claim_below: bool) -> Verdict:
    va, vb = as_values(a, what_a), as_values(b, what_b)
    says = (f"{what_a} below {what_b}" + (f" by more than {margin:g}" if margin else "") if claim_below
            else f"{what_a} not below {what_b}" + (f" by more than {margin:g}" if margin else ""))
    criterion = (f"holds: {says} over the whole {CONFIDENCE:.0%} interval of the difference of means over seeds "
                 f"(does not hold: nowhere on it; undecided: the interval straddles it, or one seed on a side)")
    if len(va) < 2 or len(vb) < 2:
        return Verdict(UNDECIDED, criterion, f"1 seed on a side ({len(va)} and {len(vb)}): no interval")
    lo, hi, text = _difference(va, vb)
    ends = (lo < -margin, hi < -margin) if claim_below else (lo >= -margin, hi >= -margin)
    return Verdict(_by_ends(*ends), criterion, text)


def below(a: Sequence[float], b: Sequence[float], what_a: str, what_b: str, margin: float = 0.0) -> Verdict:
    """Is ``a`` (one value per seed) below ``b``? On the :data:`CONFIDENCE` Welch interval of mean(a) - mean(b):
    *holds* when it lies under ``-margin``, *does not hold* when it lies at or above ``-margin``, *undecided* when
    it straddles ``-margin`` or a side has a single seed (no spread to judge by)."""
    return _compare(a, b, what_a, what_b, margin, claim_below=True)


def not_below(a: Sequence[float], b: Sequence[float], what_a: str, what_b: str, margin: float = 0.0) -> Verdict:
    """The claim "``a`` does as well as ``b``, within ``margin``": :func:`below`'s interval with holds and does
    not hold swapped (*holds* when the whole interval of mean(a) - mean(b) is at or above ``-margin``)."""
    return _compare(a, b, what_a, what_b, margin, claim_below=False)


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

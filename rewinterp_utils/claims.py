"""Spread over seeds and computed verdicts: how a chapter says whether a claim of the paper held.

A notebook never types a verdict. It gathers one value per seed, states a criterion in words beside the code,
and calls one of the verdict functions here, which return a :class:`Verdict` (the outcome and the criterion's
text). :class:`Claim` rows, built with keyword arguments, become the chapter's claims table (glued into the book and
saved as ``claims.csv`` for the results page by :func:`save_claims`, which takes the chapter from the stage).

"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

CLAIMS_FILE = "claims.csv"
"""The file a criterion notebook writes its claims table to (read by the results page)."""


class Verdict(NamedTuple):
    """What a verdict function returns: the outcome (``"held"``, ``"mixed"``, ...) and its criterion in words."""

    outcome: str
    criterion: str


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


def _all_some_none(ok: np.ndarray, yes: str, no: str) -> str:
    return yes if ok.all() else no if not ok.any() else "mixed"


def every_seed(values: Iterable[float], test: Callable[[np.ndarray], np.ndarray], says: str,
               yes: str = "held", no: str = "did not hold") -> Verdict:
    """``yes`` if ``test`` holds for every seed, ``no`` if for none, ``mixed`` otherwise; ``says`` is the test in
    words (e.g. ``"held-out MSE below 0.1"``)."""
    ok = np.asarray(test(as_values(values)), dtype=bool)
    return Verdict(_all_some_none(ok, yes, no), f"{yes}: {says} on every seed ({no}: on none; mixed: on some)")


def errs_like_paper(values: Iterable[float], paper: float, true: float, tolerance: float = 0.5) -> Verdict:
    """For a counterfactual whose true reward is ``true``: ``holds`` when every seed errs on the side of ``true``
    where the paper's model erred and the mean is within ``tolerance`` of the paper's value; ``same direction``
    when only the side agrees; ``mixed`` when the seeds disagree."""
    v = as_values(values)
    side = np.sign(v - true) == np.sign(paper - true)
    criterion = (f"every seed errs on the side of the true reward ({true:g}) where the paper's model erred, and the "
                 f"mean is within {tolerance:g} of the paper's {paper:g}")
    if not side.all():
        return Verdict("mixed", criterion)
    return Verdict("holds" if abs(v.mean() - paper) <= tolerance else "same direction", criterion)


def below(a: Sequence[float], b: Sequence[float], what_a: str, what_b: str, margin: float = 0.0) -> Verdict:
    """Is ``a`` (one value per seed) below ``b``? ``below`` when mean(a) + sd(a) < mean(b) - sd(b) - margin (the
    one-sd bands are apart), ``not below`` when mean(a) >= mean(b) - margin, ``overlapping`` otherwise. With one
    seed on either side there is no band: ``below (1 seed)`` / ``not below (1 seed)``."""
    va, vb = as_values(a, what_a), as_values(b, what_b)
    sa = va.std(ddof=1) if len(va) > 1 else np.nan
    sb = vb.std(ddof=1) if len(vb) > 1 else np.nan
    criterion = (f"{what_a} below {what_b} when their mean ± sd bands over seeds are apart"
                 + (f" by more than {margin:g}" if margin else ""))
    if va.mean() >= vb.mean() - margin:
        verdict = "not below"
    elif np.isnan(sa) or np.isnan(sb):
        verdict = "below"
    else:
        verdict = "below" if va.mean() + sa < vb.mean() - sb - margin else "overlapping"
    if len(va) == 1 or len(vb) == 1:
        verdict += " (1 seed)"
    return Verdict(verdict, criterion)


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
                "verdict": self.verdict.outcome, "criterion": self.verdict.criterion, "where": self.where,
                "chapter": chapter}


def sanity_claim(key: str, claim: str, rank_corr_final: Iterable[float], threshold: float, where: str,
                 unit: str = "model") -> Claim:
    """The model-randomisation verdict of one attribution method over several reward models: *passes* when the
    rank correlation after full randomisation is below ``threshold`` for every model (Part V's criterion)."""
    finals = as_values(rank_corr_final, "rank_corr_final")
    verdict = every_seed(finals, lambda v: v < threshold, f"rank corr. after full randomisation < {threshold:g}",
                         yes="passes", no="fails")
    return Claim(key=key, claim=claim, paper="not run", verdict=verdict, where=where,
                 measured=f"rank corr. after randomisation {fmt_spread(finals, 2, unit=unit)}")


def unit_check_claim(key: str, claim: str, passed: Iterable[bool], where: str, *,
                     n_changed: Iterable[int] | None = None) -> Claim:
    """A unit check's verdict over several reward models: *passes* when every model passes it. ``n_changed``
    (optional, one count per model): how many inputs the check's edit changed; a model with none was not tested
    (a check on no input FAILS in :mod:`rewinterp_utils.checks`) and does not count, and when no model was tested
    the verdict is *untested*."""
    ok = np.asarray(list(passed), dtype=bool)
    if ok.size == 0:
        raise ValueError("unit_check_claim needs at least one model's result")
    tested = np.ones(ok.size, bool) if n_changed is None else np.asarray(list(n_changed)) > 0
    if tested.size != ok.size:
        raise ValueError(f"unit_check_claim: {ok.size} results but {tested.size} input counts")
    criterion = "passes: every model passes the check (fails: none does; mixed: some do)"
    if not tested.any():
        return Claim(key=key, claim=claim, paper="not run", measured=f"the edit changed no input of {ok.size} models",
                     verdict=Verdict("untested", criterion + "; untested: the edit changes none of the inputs"),
                     where=where)
    untested = f" ({int((~tested).sum())} untested)" if not tested.all() else ""
    return Claim(key=key, claim=claim, paper="not run", where=where,
                 measured=f"{int(ok[tested].sum())} of {int(tested.sum())} models pass{untested}",
                 verdict=Verdict(_all_some_none(ok[tested], "passes", "fails"), criterion))


def claims_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """The claims as a table indexed by claim (columns: paper, this build, verdict, criterion, where)."""
    if not claims:
        raise ValueError("claims_table needs at least one Claim")
    df = pd.DataFrame([c.row("") for c in claims]).rename(columns={"measured": "this build"})
    return df.set_index("claim")[["paper", "this build", "verdict", "criterion", "where"]]


def save_claims(claims: Sequence[Claim], folder: Path, chapter: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """Write the claims to ``folder / CLAIMS_FILE`` (CSV, every field, ``chapter`` on each row: pass the stage's,
    ``run.chapter``); return :func:`claims_table` and the verdicts as metrics (``claims.<key>``)."""
    keys = [c.key for c in claims]
    if len(set(keys)) != len(keys):
        raise ValueError(f"claim keys must be unique, got {keys}")
    table = claims_table(claims)
    pd.DataFrame([c.row(chapter) for c in claims]).to_csv(Path(folder) / CLAIMS_FILE, index=False)
    return table, {f"claims.{c.key}": c.verdict.outcome for c in claims}

"""Table 1 from the retrained agents: the final true-reward returns per (game, score setting, reward) over seeds,
and the on-policy probe of the reward models on the agents' own play, per class of step.

A *run* is one retrained agent as the Table 1 notebook reads it: its parameters (``game``, ``score``,
``reward``, ``seed``), ``metrics`` (``clipped_return``, ``game_score``) and ``onpolicy`` (the ``onpolicy.csv``
table of the retrain stage, one row per reward model).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from rewinterp_utils.claims import fmt_spread
from rewinterp_utils.onpolicy import CLASSES

Group = tuple[str, str, str]
STATS: dict[str, str] = {"clipped_return": "clipped return per life", "game_score": "game score"}
"""The final evaluations Table 1 shows, with their column names."""


def group_runs(runs: Iterable[Mapping[str, Any]]) -> dict[Group, list[Mapping[str, Any]]]:
    """The runs by (game, score setting, reward), in the order first met."""
    groups: dict[Group, list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["game"], r["score"], r["reward"]), []).append(r)
    return groups


def table1(groups: Mapping[Group, list[Mapping[str, Any]]], paper: Mapping[Group, float]
           ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Table 1: per group the paper's value (``–`` where it has none) and each of :data:`STATS` as mean ± sd over
    seeds (finite values only; ``–`` when none), indexed by (game, score, reward). Metrics per group and stat:
    ``<game>.<score>.<reward>.<stat>_mean``, ``_std`` (NaN for fewer than two finite values), ``_n``, ``_seeds``."""
    rows, metrics = [], {}
    for (game, score, reward), rs in groups.items():
        known = paper.get((game, score, reward))
        row = {"game": game, "score": score, "reward": reward,
               "paper (clipped, 1 seed)": "–" if known is None else f"{known:g}"}
        for stat, label in STATS.items():
            vals = np.array([r["metrics"][stat] for r in rs], dtype=float)
            finite = vals[np.isfinite(vals)]
            key = f"{game}.{score}.{reward}.{stat}"
            metrics |= {f"{key}_mean": float(finite.mean()) if len(finite) else float("nan"),
                        f"{key}_std": float(finite.std(ddof=1)) if len(finite) > 1 else float("nan"),
                        f"{key}_n": len(vals), f"{key}_seeds": [float(v) for v in vals]}
            row[label] = fmt_spread(finite, 2) if len(finite) else "–"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["game", "score", "reward"]), metrics


PROBE_COLUMNS: tuple[str, ...] = (
    "on-policy MSE, rewarded", "held-out MSE, rewarded", "on-policy MSE, unrewarded", "held-out MSE, unrewarded",
    "false-positive rate", "false-negative rate", "learned reward per step", "true reward per step")
"""The columns of :func:`probe_table`, as the retrain stage's ``onpolicy.csv`` names them."""


def probe_table(runs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per agent (index game, score, reward, seed): a reward model on the agent's own play,
    :data:`PROBE_COLUMNS`, with ``model`` (which one: the agent's own reward model; for a true-reward agent, as a
    probe, the model of the score setting it plays) and ``matched`` (the model was trained with the score setting the
    agent plays: False for Figure 5's shift, a score-shown model on the score-hidden game or the reverse)."""
    rows = []
    for r in runs:
        model = r["reward"] if r["reward"] != "true" else f"learned_{r['score']}"
        found = r["onpolicy"].loc[model]
        rows.append({"game": r["game"], "score": r["score"], "reward": r["reward"], "seed": r["seed"],
                     "model": model, "matched": model == f"learned_{r['score']}",
                     **{c: float(found[c]) for c in PROBE_COLUMNS}})
    return pd.DataFrame(rows).set_index(["game", "score", "reward", "seed"])


def _text(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "– (their play had no such step)"


def probe_summary(probe: pd.DataFrame, prefix: str = "onpolicy.matched") -> dict[str, Any]:
    """Over the rows of ``probe`` (pass the agents to pool, e.g. those trained on a learned model of the setting they
    play, ``matched``): per class, the mean on-policy and held-out
    MSE (``<prefix>.mse_<class>_mean``, ``.heldout_mse_<class>_mean``; NaN when no agent's play had a step of the
    class, with ``_text`` forms for prose) and the per-agent ratios (``.mse_ratio_<class>``, one per agent,
    NaN where undefined); the false-positive and false-negative rates; the learned reward summed over the
    agents' steps against the true reward."""
    out: dict[str, Any] = {}
    for c in CLASSES:
        on, held = probe[f"on-policy MSE, {c}"].to_numpy(float), probe[f"held-out MSE, {c}"].to_numpy(float)
        mean_on = float(np.nanmean(on)) if np.isfinite(on).any() else float("nan")
        ok = np.isfinite(on) & (held > 0)
        out |= {f"{prefix}.mse_{c}_mean": mean_on, f"{prefix}.heldout_mse_{c}_mean": float(held.mean()),
                f"{prefix}.mse_{c}_text": _text(mean_on), f"{prefix}.heldout_mse_{c}_text": _text(float(held.mean())),
                f"{prefix}.mse_ratio_{c}": [float(a / b) if k else float("nan") for a, b, k in zip(on, held, ok)]}
    fn = probe["false-negative rate"].to_numpy(float)
    fn_mean = float(np.nanmean(fn)) if np.isfinite(fn).any() else float("nan")
    out |= {f"{prefix}.fp_rate_mean": float(probe["false-positive rate"].mean()),
            f"{prefix}.fn_rate_mean": fn_mean,
            f"{prefix}.fn_rate_text": f"{fn_mean:.3f}" if np.isfinite(fn_mean) else "– (their play earned no reward)",
            f"{prefix}.learned_to_true_ratio": float(probe["learned reward per step"].sum()
                                                     / max(probe["true reward per step"].sum(), 1e-9))}
    return out

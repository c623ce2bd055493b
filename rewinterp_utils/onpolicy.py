"""How a reward model does on an agent's own play, per class of step (rewarded, unrewarded), so that it can be set
beside its held-out error on the expert's balanced data class by class: an agent's play is almost all
unrewarded steps, the held-out set half rewarded, and one pooled MSE of each would compare unlike mixes."""

from __future__ import annotations

import numpy as np

CLASSES: tuple[str, ...] = ("rewarded", "unrewarded")
"""The classes of step, each compared on its own."""


def _mse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean((pred - true) ** 2)) if len(true) else float("nan")


def onpolicy_errors(pred: np.ndarray, true_r: np.ndarray, threshold: float = 0.5,
                    done: np.ndarray | None = None) -> dict[str, float]:
    """A reward model's predictions ``pred`` on the steps of some play against the true rewards ``true_r``.

    ``done`` (optional, one flag per step): the steps that end an episode (on Atari, a lost life) are left out. Their
    s' is the env's terminal frame, which the expert's held-out data (observations the play went on from) never
    holds, so their error is not one the held-out error can be set beside.

    Keys: ``mse`` (all steps kept), ``mse_rewarded`` and ``mse_unrewarded`` (per class; NaN for a class with no
    step), ``corr`` (Pearson; NaN when either side is constant), ``fp_rate`` (unrewarded steps paid more than
    ``threshold``), ``fn_rate`` (rewarded steps paid less), ``learned_per_step``, ``true_per_step``,
    ``n_rewarded``, ``n_unrewarded``, ``n_dropped`` (episode-ending steps left out)."""
    pred, true_r = np.asarray(pred, dtype=float).ravel(), np.asarray(true_r, dtype=float).ravel()
    if pred.shape != true_r.shape or not len(pred):
        raise ValueError(f"need one prediction per step, got {pred.shape} predictions for {true_r.shape} steps")
    keep = np.ones(len(pred), bool) if done is None else ~np.asarray(done, dtype=bool).ravel()
    if keep.shape != pred.shape:
        raise ValueError(f"need one done flag per step, got {keep.shape} for {pred.shape} steps")
    if not keep.any():
        raise ValueError("every step ends an episode: no step is left to score")
    n_dropped = int((~keep).sum())
    pred, true_r = pred[keep], true_r[keep]
    yes = true_r != 0
    return {
        "mse": _mse(pred, true_r),
        "mse_rewarded": _mse(pred[yes], true_r[yes]),
        "mse_unrewarded": _mse(pred[~yes], true_r[~yes]),
        "corr": float(np.corrcoef(pred, true_r)[0, 1]) if pred.std() > 0 and true_r.std() > 0 else float("nan"),
        "fp_rate": float(np.mean(pred[~yes] > threshold)) if (~yes).any() else float("nan"),
        "fn_rate": float(np.mean(pred[yes] < threshold)) if yes.any() else float("nan"),
        "learned_per_step": float(pred.mean()),
        "true_per_step": float(true_r.mean()),
        "n_rewarded": int(yes.sum()),
        "n_unrewarded": int((~yes).sum()),
        "n_dropped": n_dropped,
    }


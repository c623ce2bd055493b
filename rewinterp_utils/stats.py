"""Statistics of the book, in one place: comparisons of two reward vectors (:func:`mse`, :func:`spearman`,
:func:`pearson_distance`, the last EPIC's final step in Gleave et al. 2021, "Quantifying Differences in Reward
Functions"), similarity of two batches of saliency maps (:func:`rank_correlation`, :func:`ssim`, as in Adebayo
et al. 2018, "Sanity Checks for Saliency Maps") and a percentile-bootstrap interval of a mean
(:func:`bootstrap_share`).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.stats import rankdata, spearmanr

SSIM_SIGMA = 1.5
"""Gaussian window of :func:`ssim` (pixels), as in Wang et al. 2004."""
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
"""SSIM stabilising constants for data range 1 (maps are normalised to [0, 1])."""


# ------------------------------------------------------------------------------------------- validation
def distribution(dist: str | np.ndarray, n: int, name: str, per: str = "entry") -> np.ndarray:
    """``"uniform"`` or ``n`` finite non-negative weights with a positive sum, as probabilities summing to 1;
    ``ValueError`` naming ``name`` (and what one weight is for, ``per``) otherwise."""
    if isinstance(dist, str):
        if dist != "uniform":
            raise ValueError(f"{name} must be 'uniform' or an array of {n} non-negative weights, got {dist!r}")
        return np.full(n, 1.0 / n)
    w = np.asarray(dist, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must have one weight per {per}, shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must be finite and non-negative (every weight in [0, inf))")
    if w.sum() <= 0:
        raise ValueError(f"{name} must have a positive total (sum > 0)")
    return w / w.sum()


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


# ------------------------------------------------------------------------------- two reward vectors
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
        return float(spearmanr(a, b).statistic)
    w = _weights(weights, len(a))
    ra, rb = _mid_ranks(a, w), _mid_ranks(b, w)
    return 1.0 - 2.0 * pearson_distance(ra, rb, w) ** 2


# ---------------------------------------------------------------------------- two batches of maps
def _pair(a: np.ndarray, b: np.ndarray, min_ndim: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.abs(np.asarray(a, dtype=np.float64))
    b = np.abs(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim < min_ndim or len(a) == 0:
        raise ValueError(f"expected a batch of maps with at least {min_ndim} axes (inputs first), got {a.shape}")
    return a, b


def _map_spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(x), rankdata(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:  # a constant map has no ranking: it matches only another constant map
        return 1.0 if sx == sy else 0.0
    return float(np.mean((rx - rx.mean()) * (ry - ry.mean())) / (sx * sy))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over inputs (first axis) of the Spearman rank correlation of the flattened absolute maps.

    Ties get average ranks. A constant map has no ranking: its correlation is 1 with another constant map and
    0 otherwise.
    """
    a, b = _pair(a, b, 2)
    return float(np.mean([_map_spearman(x.ravel(), y.ravel()) for x, y in zip(a, b)]))


def _ssim2d(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two 2-D maps in [0, 1]: Gaussian window (sigma 1.5, ``reflect`` border, truncated at 4
    sigma), population (co)variances, averaged over every pixel (no border crop: maze maps are 11 x 11)."""
    g = lambda z: gaussian_filter(z, SSIM_SIGMA)  # noqa: E731
    mx, my = g(x), g(y)
    vx, vy, cxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    num = (2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)
    den = (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)
    return float(np.mean(num / den))


def _slices(m: np.ndarray) -> np.ndarray:
    """The 2-D spatial slices of one map, ``(k, H, W)``.

    2-D maps are one slice. A 3-D map whose last axis is shorter than both others is a channels-last frame
    stack (e.g. ``(84, 84, 4)``): its slices are the frames. Otherwise the last two axes are spatial and the
    leading axes index the slices (e.g. the ``s`` and ``s'`` maps of a ``(2, 11, 11)`` maze pair).
    """
    if m.ndim == 2:
        return m[None]
    if m.ndim == 3 and m.shape[-1] < min(m.shape[0], m.shape[1]):
        return np.moveaxis(m, -1, 0)
    return m.reshape(-1, *m.shape[-2:])


def _normalise(m: np.ndarray) -> np.ndarray:
    top = m.max()
    return m / top if top > 0 else m


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over inputs (first axis) of the structural similarity of the absolute maps.

    Each input's absolute map is divided by its maximum (range [0, 1]; an all-zero map stays zero), then SSIM
    (sigma 1.5, C1 = 0.01^2, C2 = 0.03^2) is computed per 2-D spatial slice and averaged: one slice for a 2-D
    map, one per frame for a channels-last ``(H, W, C)`` stack with ``C < H, W``, else one per index of the
    leading axes with the last two axes spatial (``(2, 11, 11)`` maze pairs: the ``s`` and ``s'`` maps).
    """
    a, b = _pair(a, b, 3)
    scores = []
    for x, y in zip(a, b):
        xs, ys = _slices(_normalise(x)), _slices(_normalise(y))
        scores.append(np.mean([_ssim2d(u, v) for u, v in zip(xs, ys)]))
    return float(np.mean(scores))


# ------------------------------------------------------------------------------------------ bootstrap
def bootstrap_share(shares: np.ndarray, n_boot: int = 1000, seed: int = 0,
                    ci: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of per-frame ``shares`` and its percentile-bootstrap ``ci`` interval
    (``n_boot`` resamples of the frames with replacement). NaN shares (all-zero maps) are dropped."""
    x = np.asarray(shares, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if len(x) == 0:
        raise ValueError("no finite shares to bootstrap")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return float(x.mean()), float(lo), float(hi)


__all__ = [
    "SSIM_C1", "SSIM_C2", "SSIM_SIGMA", "bootstrap_share", "mse", "pearson_distance", "rank_correlation",
    "spearman", "ssim",
]

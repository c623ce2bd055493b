"""Statistics (rewinterp_utils.stats) against hand-computed values and scipy: Pearson distance, MSE, Spearman,
the saliency-map similarity measures of Adebayo et al. 2018 (rank correlation, SSIM) and the bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewinterp_utils.stats import bootstrap_share, mse, pearson_distance, rank_correlation, spearman, ssim


# -- Pearson, MSE, Spearman ----------------------------------------------------------------------------
def test_pearson_distance_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])
    # centred: (-1, 0, 1), (-1, 1, 0); cov 1/3, variances 2/3: rho = 1/2, distance sqrt(1/4)
    assert pearson_distance(a, b) == pytest.approx(0.5, abs=1e-12)
    # weights (1/2, 1/4, 1/4): means 1.75; cov 0.4375, variances 0.6875: rho = 7/11, distance sqrt(2/11)
    assert pearson_distance(a, b, np.array([2.0, 1.0, 1.0])) == pytest.approx(math.sqrt(2 / 11), abs=1e-12)
    assert pearson_distance(a, b, np.array([1.0, 1.0, 0.0])) == pytest.approx(0.0, abs=1e-7)
    assert pearson_distance(a, -a) == pytest.approx(1.0, abs=1e-12)
    assert pearson_distance(a, 5 * a + 2) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="variance"):
        pearson_distance(a, np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        pearson_distance(a, b, np.array([1.0, -1.0, 1.0]))


def test_mse_and_spearman():
    a, b = np.array([0.0, 1.0, 3.0, 2.0]), np.array([0.0, 2.0, 5.0, 1.0])
    assert mse(a, b) == pytest.approx((0 + 1 + 4 + 1) / 4)
    assert mse(a, b, np.array([0.0, 1.0, 0.0, 1.0])) == pytest.approx(1.0)
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=30), rng.normal(size=30)
    y[:5] = x[:5]
    x[10:13] = 0.0  # ties
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman(x, y, np.ones(30)) == pytest.approx(spearmanr(x, y).statistic)
    assert spearman(x, np.exp(x), rng.uniform(0.1, 1, 30)) == pytest.approx(1.0)


# -- saliency-map similarity ---------------------------------------------------------------------------
def test_rank_correlation_self_and_independent():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 84, 84)), rng.normal(size=(4, 84, 84))
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(1.0)  # absolute maps
    assert abs(rank_correlation(a, b)) < 0.1
    assert rank_correlation(np.abs(a), np.abs(a) ** 3 + 1) == pytest.approx(1.0)  # ranks only
    # constant maps: 1 against another constant map, 0 against any ranking
    assert rank_correlation(np.zeros((2, 5, 5)), np.ones((2, 5, 5))) == 1.0
    assert rank_correlation(np.zeros((2, 5, 5)), a[:2, :5, :5]) == 0.0


def test_ssim_self_scale_and_independent():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 84, 84)), rng.random((3, 84, 84))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 7 * a) == pytest.approx(1.0)  # each map normalised by its max
    assert ssim(a, -a) == pytest.approx(1.0)  # absolute maps
    assert ssim(a, b) < 0.2


def test_ssim_slices():
    rng = np.random.default_rng(1)
    # maze pairs (n, 2, 11, 11): one SSIM per grid, averaged; every slice's max is 1, so normalising the whole
    # map and normalising each slice agree
    a, b = rng.random((3, 2, 11, 11)), rng.random((3, 2, 11, 11))
    a[:, :, 0, 0] = b[:, :, 0, 0] = 1.0
    b[:, 0] = a[:, 0]
    assert ssim(a, b) == pytest.approx(np.mean([1.0, ssim(a[:, 1], b[:, 1])]))
    assert ssim(a[:, 1], b[:, 1]) < 0.2
    # the whole map shares one scale: halving the s' maps of b makes them differ from b's (no per-slice rescaling)
    half = b.copy()
    half[:, 1] *= 0.5
    assert ssim(b[:, 1], half[:, 1]) == pytest.approx(1.0) and ssim(b, half) < 0.99
    # channels-last stacks (n, 84, 84, 4): one SSIM per frame
    x, y = rng.random((2, 84, 84, 4)), rng.random((2, 84, 84, 4))
    x[:, 0, 0, :] = y[:, 0, 0, :] = 1.0
    y[..., 1] = x[..., 1]
    frames = [ssim(x[..., k], y[..., k]) for k in range(4)]
    assert ssim(x, y) == pytest.approx(np.mean(frames))
    assert frames[1] == pytest.approx(1.0) and max(frames[0], frames[2], frames[3]) < 0.2


def test_similarity_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(np.zeros((2, 5, 5)), np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="at least 3 axes"):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)))


# -- bootstrap -----------------------------------------------------------------------------------------
def test_bootstrap_share():
    rng = np.random.default_rng(0)
    small, large = rng.beta(2, 8, 20), rng.beta(2, 8, 2000)
    m, lo, hi = bootstrap_share(small)
    assert m == pytest.approx(small.mean()) and lo < m < hi
    m2, lo2, hi2 = bootstrap_share(large)
    assert lo2 < m2 < hi2 and hi2 - lo2 < (hi - lo) / 4  # width ~ 1/sqrt(n)
    assert bootstrap_share(small, seed=5) == bootstrap_share(small, seed=5)
    assert bootstrap_share(np.append(small, np.nan)) == bootstrap_share(small)  # all-zero maps dropped
    assert bootstrap_share(small, ci=0.5)[2] - bootstrap_share(small, ci=0.5)[1] < hi - lo
    with pytest.raises(ValueError, match="ci"):
        bootstrap_share(small, ci=1.0)
    with pytest.raises(ValueError, match="no finite"):
        bootstrap_share(np.array([np.nan]))

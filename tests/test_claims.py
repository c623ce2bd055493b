"""The verdict helpers of rewinterp_utils.claims, on small arrays whose verdicts are worked out by hand here.

Every branch of every helper is reached, including those a `smoke` build never takes (one seed on one side of
:func:`below`, seeds that err on the other side of the true reward, the undecided verdicts). Interval ends are worked
out by hand from tabulated Student-t and normal quantiles, not with scipy; the Wilson and Newcombe intervals are
also checked against the values Newcombe (1998) published, and against a scan of the Wilson interval's definition."""

from __future__ import annotations

import csv
import math

import pytest

from rewinterp_utils.claims import (
    FAILS,
    HOLDS,
    UNDECIDED,
    Claim,
    Rates,
    Verdict,
    below,
    crossed_verdict,
    episode_rates,
    errs_like_paper,
    exact_verdict,
    interval_verdict,
    mean_interval,
    newcombe_interval,
    not_below,
    rate_below,
    rate_interval,
    rate_not_below,
    rate_verdict,
    ratio_text,
    wilson_interval,
    sanity_claim,
    save_claims,
    spread,
    unit_check_claim,
)


# Student-t quantiles of the 90% two-sided intervals, from a table: t(0.95; 1) = 6.313752, t(0.95; 2) = 2.919986,
# t(0.95; 4) = 2.131847.
T1, T2, T4 = 6.313752, 2.919986, 2.131847
T3 = 2.353363  # t(0.95; 3)
Z = 1.644854  # the normal quantile z(0.95) of the 90% two-sided intervals, from a table


# -- interval_verdict -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, verdict", [
    ([0.01, 0.02, 0.03], HOLDS),  # mean 0.02, sd 0.01: 0.02 ± 2.92 * 0.01 / sqrt(3) = [0.0031, 0.0369] < 0.1
    ([0.2, 0.3, 0.4], FAILS),  # 0.3 ± 0.169 = [0.131, 0.469]: nowhere below 0.1
    ([0.01, 0.5, 0.09], UNDECIDED),  # mean 0.2, sd 0.263: [-0.243, 0.643] straddles 0.1
    ([0.01, 0.09, 0.09], UNDECIDED),  # every seed is below 0.1, but [-0.0145, 0.141] straddles it
    ([0.05], UNDECIDED),  # one seed: no interval
    ([0.05, 0.05], UNDECIDED),  # two identical values: a point [0.05, 0.05] would decide; no spread, no interval
    ([0.0] * 5, UNDECIDED),
])
def test_interval_verdict(values, verdict):
    got = interval_verdict(values, lambda v: v < 0.1, "MSE below 0.1")
    assert got.outcome == verdict
    assert got.criterion.startswith("holds: MSE below 0.1 over the whole 90% interval of the mean over seeds")


@pytest.mark.parametrize("values", [[1.0, 1.0], [1.0] * 10, [0.0, 0.0, 0.0]])
def test_identical_values_decide_nothing(values):
    """Every seed at the ceiling of a bounded outcome (a return of 1, a 0/1 success): the Student-t interval would
    be the point [x, x], and any threshold not at x would be decided by it."""
    assert all(math.isnan(x) for x in mean_interval(values))
    for test in (lambda x: x >= 0.9, lambda x: x < 0.5, lambda x: x > -1):
        got = interval_verdict(values, test, "x")
        assert got.outcome == UNDECIDED
        assert got.interval == f"{len(values)} seeds, all equal: no spread, no interval"
    assert "or all seeds equal" in got.criterion


def test_interval_verdict_interval_text_and_bad_values():
    v = interval_verdict([0.2, 0.3, 0.4], lambda x: x > 0, "x")
    half = T2 * 0.1 / math.sqrt(3)
    assert v.interval == f"90% interval [{0.3 - half:.3g}, {0.3 + half:.3g}] (3 seeds)" == "90% interval [0.131, 0.469] (3 seeds)"
    assert interval_verdict([1.0], lambda x: x > 0, "x", unit="model").interval == "1 model: no interval"
    assert mean_interval([1.0, 3.0]) == pytest.approx((2 - T1 * math.sqrt(2) / math.sqrt(2),
                                                       2 + T1 * math.sqrt(2) / math.sqrt(2)), abs=1e-5)
    with pytest.raises(ValueError, match="at least one"):
        interval_verdict([], lambda v: v > 0, "x")
    with pytest.raises(ValueError, match="finite"):
        interval_verdict([1.0, math.nan], lambda v: v > 0, "x")


def test_exact_verdict():
    assert exact_verdict(True, "EPIC < 0.01") == Verdict(HOLDS, "holds: EPIC < 0.01 (computed once, no seeds)", "exact")
    assert exact_verdict(False, "x").outcome == FAILS


# -- errs_like_paper --------------------------------------------------------------------------------------
# the paper's model said 0.9 where the true reward is 0: it erred upwards, and an error like it lies past the
# midpoint 0.45
@pytest.mark.parametrize("values, verdict", [
    ([0.8, 1.0, 0.7], HOLDS),  # mean 0.833, sd 0.153: [0.576, 1.091] > 0.45
    ([3.0, 2.0, 4.0], HOLDS),  # far from the paper's value, but past the midpoint on its side
    ([0.2, 0.3, 0.25], FAILS),  # [0.166, 0.334]: above the truth, but by less than half the paper's error
    ([0.8, -0.2, 0.9], UNDECIDED),  # mean 0.5, sd 0.608: [-0.526, 1.526] contains 0.45
    ([-0.3, -0.2, -0.4], FAILS),  # [-0.469, -0.131]: errs the other way
    ([0.4], UNDECIDED),
])
def test_errs_like_paper(values, verdict):
    got = errs_like_paper(values, paper=0.9, true=0.0)
    assert got.outcome == verdict, values
    assert ("errs above the true reward (0) as the paper's did (0.9), past the midpoint between them (> 0.45)"
            in got.criterion)


@pytest.mark.parametrize("values, verdict", [
    ([0.01, 0.015, 0.02], FAILS),  # R(no goal) about 0.015: nearly right, not an error like the paper's 0.949
    ([0.85, 0.9, 0.95], HOLDS),  # [0.816, 0.984] > 0.4745: errs like the paper's
    ([0.3, 0.5, 0.7], UNDECIDED),  # mean 0.5, sd 0.2: [0.163, 0.837] straddles 0.4745
])
def test_errs_like_paper_needs_an_error_of_the_papers_size(values, verdict):
    """Figure 2 (a): the paper's model paid 0.949 for an erased goal whose true reward is 0 (midpoint 0.4745)."""
    assert errs_like_paper(values, paper=0.949, true=0.0).outcome == verdict, values


@pytest.mark.parametrize("values, verdict", [
    ([0.98, 0.985, 0.99], FAILS),  # nearly the true 1: not the paper's error
    ([0.05, 0.1, 0.15], HOLDS),  # [0.016, 0.184] < 0.502
    ([0.3, 0.5, 0.7], UNDECIDED),  # [0.163, 0.837] straddles 0.502
    ([1.2, 1.3, 1.1], FAILS),  # errs the other way
])
def test_errs_like_paper_mirrored(values, verdict):
    """Figure 2 (b), the mirror: the paper's model paid 0.004 for stepping onto one of two goals (true 1):
    it erred downwards, and the midpoint is 0.502."""
    got = errs_like_paper(values, paper=0.004, true=1.0)
    assert got.outcome == verdict, values
    assert "errs below the true reward (1) as the paper's did (0.004), past the midpoint between them (< 0.502)" \
        in got.criterion


def test_errs_like_paper_downwards():
    # the paper's model said 0.1 where the true reward is 1: it erred downwards (midpoint 0.55)
    assert errs_like_paper([0.2, 0.25], paper=0.1, true=1.0).outcome == HOLDS  # 0.225 ± 0.158 < 0.55
    assert errs_like_paper([0.3, 0.2], paper=0.1, true=1.0).outcome == UNDECIDED  # 0.25 ± 0.316 straddles 0.55
    assert errs_like_paper([0.3, 1.2], paper=0.1, true=1.0).outcome == UNDECIDED  # 0.75 ± 2.84
    assert errs_like_paper([1.4, 1.5], paper=0.1, true=1.0).outcome == FAILS  # 1.45 ± 0.316 > 1
    assert errs_like_paper([0.7, 0.75], paper=0.1, true=1.0).outcome == FAILS  # [0.567, 0.883]: under half the error
    with pytest.raises(ValueError, match="did not err"):
        errs_like_paper([0.3, 0.2], paper=1.0, true=1.0)


# -- below ------------------------------------------------------------------------------------------------
# a = [1, 2, 3], b = [5, 6, 7]: difference of means -4, Welch se sqrt(1/3 + 1/3) = 0.816 on 4 degrees of freedom,
# interval -4 ± 2.1318 * 0.816 = [-5.741, -2.259]
A, B = [1.0, 2.0, 3.0], [5.0, 6.0, 7.0]


@pytest.mark.parametrize("a, b, margin, verdict", [
    (A, B, 0.0, HOLDS),
    (A, B, 2.2, HOLDS),  # -2.259 < -2.2
    (A, B, 2.3, UNDECIDED),  # -5.741 < -2.3 <= -2.259
    (A, B, 6.0, FAILS),  # -5.741 >= -6
    (B, A, 0.0, FAILS),  # [2.259, 5.741]
    ([1.0, 3.0], [3.0, 5.0], 0.0, UNDECIDED),  # -2 ± 6.31 * sqrt(2 / 2 + 2 / 2) straddles 0
    ([4.0, 4.0], [4.0, 4.0], 0.0, UNDECIDED),  # equal constants: no spread, no interval (not a point [0, 0])
    ([1.0, 1.0], [5.0, 5.0], 0.0, UNDECIDED),  # constants apart: still no spread to judge by
    ([1.0, 1.0, 1.0], B, 0.0, HOLDS),  # one side constant: se sqrt(1/3), df 2: -5 ± 2.92 * 0.577 = [-6.69, -3.31]
    ([1.0, 1.0, 1.0], B, 3.4, UNDECIDED),  # -3.314 >= -3.4
    ([2.0], B, 0.0, UNDECIDED),  # one seed on a side: no interval
    (A, [2.5], 0.0, UNDECIDED),
])
def test_below(a, b, margin, verdict):
    got = below(a, b, "hidden", "shown", margin=margin)
    assert got.outcome == verdict, (a, b, margin)
    assert got.criterion.startswith("holds: hidden below shown")
    assert (f" by more than {margin:g}" in got.criterion) == bool(margin)


@pytest.mark.parametrize("a, b, margin, verdict", [
    (B, A, 0.0, HOLDS),  # [2.259, 5.741] >= 0
    (A, B, 0.0, FAILS),
    (A, B, 2.3, UNDECIDED),
    (A, B, 6.0, HOLDS),  # -5.741 >= -6: not worse by more than the margin
    ([4.0, 4.0], [4.0, 4.0], 0.0, UNDECIDED),  # identical: no interval, not "as well"
    ([2.0], B, 0.0, UNDECIDED),
])
def test_not_below_swaps_the_claim(a, b, margin, verdict):
    got = not_below(a, b, "learned", "true", margin=margin)
    assert got.outcome == verdict, (a, b, margin)
    assert got.criterion.startswith("holds: learned not below true")


def test_below_interval_text_and_bad_values():
    half = T4 * math.sqrt(2 / 3)
    assert below(A, B, "a", "b").interval == (f"90% interval of the difference [{-4 - half:.3g}, {-4 + half:.3g}] "
                                             "(3 and 3 seeds)") == "90% interval of the difference [-5.74, -2.26] (3 and 3 seeds)"
    assert below([4.0, 4.0], [4.0, 4.0], "a", "b").interval == \
        "2 and 2 seeds, each side all equal: no spread, no interval"
    assert below([1.0, 1.0, 1.0], B, "a", "b").interval == (
        f"90% interval of the difference [{-5 - T2 * math.sqrt(1 / 3):.3g}, {-5 + T2 * math.sqrt(1 / 3):.3g}] "
        "(3 and 3 seeds)")
    with pytest.raises(ValueError, match="shown"):
        below([1.0], [], "hidden", "shown")
    with pytest.raises(ValueError, match="hidden"):
        below([math.inf], [1.0], "hidden", "shown")


# -- success rates: Wilson, Newcombe, rate_verdict, rate_not_below ----------------------------------------
def wilson_by_scan(s: int, n: int, z: float) -> tuple[float, float]:
    """The Wilson interval from its definition: every p on a fine grid with |s/n - p| <= z sqrt(p (1 - p) / n)."""
    p = [i / 200_000 for i in range(200_001)]
    inside = [x for x in p if abs(s / n - x) <= z * math.sqrt(x * (1 - x) / n)]
    return min(inside), max(inside)


@pytest.mark.parametrize("s, n, lo, hi", [
    (10, 10, 10 / (10 + Z ** 2), 1.0),  # p = 1: the lower end is n / (n + z^2) = 0.787, not 1
    (0, 10, 0.0, Z ** 2 / (10 + Z ** 2)),  # the mirror
    (50, 50, 50 / (50 + Z ** 2), 1.0),  # 0.9487
    # p = 1/2: centre 1/2, half z sqrt(1/40 + z^2/400) / (1 + z^2/10)
    (5, 10, 0.5 - Z * math.sqrt(1 / 40 + Z ** 2 / 400) / (1 + Z ** 2 / 10),
     0.5 + Z * math.sqrt(1 / 40 + Z ** 2 / 400) / (1 + Z ** 2 / 10)),
])
def test_wilson_interval_by_hand(s, n, lo, hi):
    assert wilson_interval(s, n) == pytest.approx((lo, hi), abs=1e-6)
    assert wilson_interval(s, n) == pytest.approx(wilson_by_scan(s, n, Z), abs=2e-5)


@pytest.mark.parametrize("s, n", [(3, 7), (49, 50), (1, 29), (17, 20)])
def test_wilson_interval_matches_its_definition(s, n):
    assert wilson_interval(s, n) == pytest.approx(wilson_by_scan(s, n, Z), abs=2e-5)


def test_wilson_and_newcombe_match_newcombes_published_95_intervals(monkeypatch):
    """Newcombe (1998), Stat. Med. 17: Wilson intervals ("Two-sided confidence intervals for the single
    proportion", Table I, method 3) and the hybrid score interval of a difference ("Interval estimation for the
    difference between independent proportions", Table II, method 10), to the 4 decimals printed there."""
    import rewinterp_utils.claims as claims

    monkeypatch.setattr(claims, "CONFIDENCE", 0.95)
    for (s, n), ends in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                         (1, 29): (0.0061, 0.1718)}.items():
        assert wilson_interval(s, n) == pytest.approx(ends, abs=6e-5), (s, n)
    for (a, b), ends in {((56, 70), (48, 80)): (0.0524, 0.3339), ((9, 10), (3, 10)): (0.1705, 0.8090),
                         ((6, 7), (2, 7)): (0.0582, 0.8062), ((5, 56), (0, 29)): (-0.0381, 0.1926),
                         ((0, 10), (0, 20)): (-0.1611, 0.2775), ((10, 10), (0, 20)): (0.6791, 1.0)}.items():
        assert newcombe_interval(a, b) == pytest.approx(ends, abs=6e-5), (a, b)


def test_newcombe_interval_by_hand():
    # 10 of 10 against 10 of 10: d = 0, each side's distance to its Wilson end 1 - 10 / (10 + z^2) = 0.2129
    w = 1 - 10 / (10 + Z ** 2)
    assert newcombe_interval((10, 10), (10, 10)) == pytest.approx((-w, w), abs=1e-6)
    # 5 of 10 against 10 of 10: d = -0.5, lower -0.5 - (0.5 - l5), upper -0.5 + sqrt((u5 - 0.5)^2 + (1 - l10)^2)
    half5 = Z * math.sqrt(1 / 40 + Z ** 2 / 400) / (1 + Z ** 2 / 10)
    assert newcombe_interval((5, 10), (10, 10)) == pytest.approx((-0.5 - half5, -0.5 + math.sqrt(half5 ** 2 + w ** 2)),
                                                                 abs=1e-6)


def test_episode_rates():
    r = episode_rates([[1, 0, 1, 1], [1.0, 1.0], [0, 0, 0]])
    assert r.successes.tolist() == [3, 2, 0] and r.trials.tolist() == [4, 2, 3]
    assert r.pooled == (5, 9) and r.per_seed.tolist() == [0.75, 1.0, 0.0]
    with pytest.raises(ValueError, match="returns: outcomes must be 0 or 1"):
        episode_rates([[1, 0.5]], "returns")  # a return of 0.5 is not a success count
    with pytest.raises(ValueError, match="at least one episode per seed"):
        episode_rates([[1, 1], []])
    with pytest.raises(ValueError, match="at least one episode"):
        episode_rates([])


def at_ceiling(seeds: int, episodes: int = 10) -> Rates:
    return episode_rates([[1] * episodes] * seeds)


@pytest.mark.parametrize("rates, verdict, interval", [
    # 5 seeds x 10 of 10 episodes: Wilson on 50 of 50 = [50 / (50 + z^2), 1] = [0.949, 1] >= 0.9
    (at_ceiling(5), HOLDS, "90% interval [0.949, 1] (50 of 50 episodes, 5 seeds)"),
    # 2 seeds x 10 of 10: two identical values; Wilson on 20 of 20 = [0.881, 1] straddles 0.9
    (at_ceiling(2), UNDECIDED, "90% interval [0.881, 1] (20 of 20 episodes, 2 seeds)"),
    (at_ceiling(1, 1000), UNDECIDED, "1 seed (1000 of 1000 episodes, 1 seed): no interval over seeds"),
    # 49 of 50 (one seed 9 of 10): Wilson [0.915, 0.996]; seeds' rates [0.9, 1, 1, 1, 1]: 0.98 ± 2.132 * 0.0447 /
    # sqrt(5) = [0.937, 1.023]; hull [0.915, 1.02]
    (episode_rates([[1] * 9 + [0]] + [[1] * 10] * 4), HOLDS, "90% interval [0.915, 1.02] (49 of 50 episodes, 5 seeds)"),
    # 48 of 50: Wilson [0.886, 0.987], lower end < 0.9; seeds' rates [0.9, 0.9, 1, 1, 1]: 0.96 ± 2.132 * 0.0548 /
    # sqrt(5) = [0.908, 1.012]
    (episode_rates([[1] * 9 + [0]] * 2 + [[1] * 10] * 3), UNDECIDED,
     "90% interval [0.886, 1.01] (48 of 50 episodes, 5 seeds)"),
    (episode_rates([[0] * 10] * 5), FAILS, "90% interval [0, 0.0513] (0 of 50 episodes, 5 seeds)"),
])
def test_rate_verdict(rates, verdict, interval):
    got = rate_verdict(rates, lambda x: x >= 0.9, "the final true return ≥ 0.9")
    assert (got.outcome, got.interval) == (verdict, interval)
    assert got.criterion.startswith("holds: the final true return ≥ 0.9 over the whole 90% interval of the success "
                                    "rate over seeds (the hull of the Wilson interval")


def test_rate_interval_keeps_the_spread_over_seeds():
    """Seeds that all succeed or all fail: 20 of 40 episodes give Wilson [0.371, 0.629], but the seeds' rates
    [1, 0, 1, 0] give 0.5 ± 2.353 * 0.577 / 2 = [-0.179, 1.179]: the hull keeps the wider spread over seeds."""
    r = episode_rates([[1] * 10, [0] * 10, [1] * 10, [0] * 10])
    half = T3 * math.sqrt(1 / 3) / 2
    assert rate_interval(r) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-5)
    assert wilson_interval(20, 40)[0] > 0.3  # the pooled episodes alone would say "> 0.3"
    assert rate_verdict(r, lambda x: x > 0.3, "rate > 0.3").outcome == UNDECIDED


@pytest.mark.parametrize("a, b, margin, verdict", [
    # 5 x 10 of 10 on both sides: Newcombe [-0.0513, 0.0513] >= -0.1
    (at_ceiling(5), at_ceiling(5), 0.1, HOLDS),
    # 2 x 10 of 10 on both sides: Newcombe on 20 of 20 = [-0.119, 0.119] straddles -0.1
    (at_ceiling(2), at_ceiling(2), 0.1, UNDECIDED),
    (at_ceiling(1), at_ceiling(5), 0.1, UNDECIDED),
    (episode_rates([[0] * 10] * 5), at_ceiling(5), 0.1, FAILS),  # [-1, -0.949]
])
def test_rate_not_below(a, b, margin, verdict):
    got = rate_not_below(a, b, "learned", "true", margin=margin)
    assert got.outcome == verdict
    assert got.criterion.startswith("holds: learned not below true by more than 0.1 over the whole 90% interval of "
                                    "the difference of success rates")
    assert rate_below(a, b, "learned", "true", margin=margin).outcome == {HOLDS: FAILS, FAILS: HOLDS}.get(verdict,
                                                                                                           verdict)


def test_rate_compare_keeps_the_spread_over_seeds():
    """Seeds' rates [1, 0, 1, 0] against [1, 1, 1, 1] (10 episodes each): Newcombe on 20 of 40 against 40 of 40
    is [-0.629, -0.371], the Welch interval of the seeds' rates -0.5 ± 2.353 * 0.289 = [-1.179, 0.179]."""
    a, b = episode_rates([[1] * 10, [0] * 10] * 2), at_ceiling(4)
    assert rate_below(a, b, "a", "b").outcome == UNDECIDED  # Newcombe alone would say "below"
    assert rate_below(a, b, "a", "b").interval == "90% interval of the difference [-1.18, 0.179] (a: 20 of 40 " \
        "episodes, 4 seeds; b: 40 of 40 episodes, 4 seeds)"


# -- crossed_verdict --------------------------------------------------------------------------------------
# rows: model seeds; columns: plays of the game (the same plays for every model)
SPREAD_OVER_PLAYS = [[0.3, 0.5], [0.4, 0.6], [0.2, 0.4]]
# seeds' means [0.4, 0.5, 0.3]: variance 0.01, over 3 seeds 0.00333; plays' means [0.3, 0.5]: variance 0.02, over 2
# plays 0.01; standard error sqrt(0.01333) = 0.1155 on min(2, 1) = 1 degree of freedom: 0.4 ± 6.314 * 0.1155 =
# [-0.329, 1.129] (the seeds' interval alone, 0.4 ± 2.92 * 0.0577 = [0.231, 0.569], would say "> 0.2")
NARROW = [[0.5, 0.52], [0.6, 0.62], [0.55, 0.57]]
# seeds' means [0.51, 0.61, 0.56]: variance 0.0025, over 3 0.000833; plays' means [0.55, 0.57]: variance 0.0002, over
# 2 0.0001; 0.56 ± 6.314 * sqrt(0.000933) = [0.367, 0.753]


@pytest.mark.parametrize("table, test, verdict, interval", [
    (SPREAD_OVER_PLAYS, lambda x: x > 0.2, UNDECIDED, "90% interval [-0.329, 1.13] (3 model seeds x 2 plays)"),
    (NARROW, lambda x: x > 0.2, HOLDS, "90% interval [0.367, 0.753] (3 model seeds x 2 plays)"),
    ([row[::-1] for row in NARROW], lambda x: x > 0.2, HOLDS, "90% interval [0.367, 0.753] (3 model seeds x 2 plays)"),
    (NARROW, lambda x: x < 0.1, FAILS, "90% interval [0.367, 0.753] (3 model seeds x 2 plays)"),
    ([[0.3, 0.3], [0.5, 0.5]], lambda x: x > 0.2, UNDECIDED, "2 model seeds x 2 plays: no interval"),  # plays agree
    ([[0.3, 0.5], [0.3, 0.5]], lambda x: x > 0.2, UNDECIDED, "2 model seeds x 2 plays: no interval"),  # seeds agree
    ([[0.3, 0.5, 0.4]], lambda x: x > 0.2, UNDECIDED, "1 model seed x 3 plays: no interval"),
    ([[0.3], [0.5]], lambda x: x > 0.2, UNDECIDED, "2 model seeds x 1 play: no interval"),
])
def test_crossed_verdict(table, test, verdict, interval):
    got = crossed_verdict(table, test, "mean R > 0.2")
    assert (got.outcome, got.interval) == (verdict, interval)
    assert got.criterion.startswith("holds: mean R > 0.2 over the whole 90% interval of the mean over model seeds x "
                                    "plays (Student-t, its variance the sum of those of the means over model seeds "
                                    "and over plays")


def test_crossed_verdict_hand_computed_ends_and_bad_input():
    # 4 seeds x 3 plays, worked out with plain loops: the seeds' and the plays' means, their sample variances
    table = [[0.1, 0.3, 0.2], [0.2, 0.5, 0.2], [0.0, 0.4, 0.5], [0.3, 0.2, 0.2]]
    seeds = [sum(r) / 3 for r in table]
    plays = [sum(r[j] for r in table) / 4 for j in range(3)]
    grand = sum(seeds) / 4

    def var(xs):
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)

    half = T2 * math.sqrt(var(seeds) / 4 + var(plays) / 3)  # min(3, 2) = 2 degrees of freedom
    got = crossed_verdict(table, lambda x: x > 0, "x", units=("model", "game"))
    assert got.interval == f"90% interval [{grand - half:.3g}, {grand + half:.3g}] (4 models x 3 games)"
    assert got.outcome == HOLDS and grand - half > 0
    with pytest.raises(ValueError):
        crossed_verdict([[0.3, 0.5], [0.4]], lambda x: x > 0, "x")
    with pytest.raises(ValueError, match="finite"):
        crossed_verdict([[0.3, math.nan], [0.4, 0.5]], lambda x: x > 0, "x")


# -- spread -----------------------------------------------------------------------------------------------
def test_spread_several_seeds():
    # [4, 1, 2, 3] (seed order): mean 2.5, squared deviations 2.25 + 2.25 + 0.25 + 0.25 = 5, sd sqrt(5 / 3)
    out = spread("mse", [4, 1, 2, 3])
    sd = math.sqrt(5 / 3)
    assert set(out) == {"mse", "mse_mean", "mse_std", "mse_n", "mse_seeds", "mse_text"}
    assert out["mse"] == 4.0  # seed 0, not the first sorted value nor the mean
    assert out["mse_mean"] == 2.5 and out["mse_std"] == pytest.approx(sd, abs=1e-15) and out["mse_n"] == 4
    assert out["mse_seeds"] == [4.0, 1.0, 2.0, 3.0] and all(type(x) is float for x in out["mse_seeds"])
    assert out["mse_text"] == "2.500 ± 1.291 (4 seeds)"
    assert spread("mse", [4, 1, 2, 3], digits=1)["mse_text"] == "2.5 ± 1.3 (4 seeds)"
    assert spread("mse", [4, 1, 2, 3], digits=2, sci=True)["mse_text"] == "2.5e+00 ± 1.3e+00 (4 seeds)"


def test_spread_one_seed():
    out = spread("r", [0.25])
    assert out["r"] == out["r_mean"] == 0.25 and out["r_n"] == 1 and out["r_seeds"] == [0.25]
    assert math.isnan(out["r_std"])
    assert out["r_text"] == "0.250 (1 seed)"
    with pytest.raises(ValueError, match="r: need at least one"):
        spread("r", [])


# -- sanity_claim, unit_check_claim ----------------------------------------------------------------------
@pytest.mark.parametrize("finals, verdict, measured", [
    ([0.1, 0.2], HOLDS, "0.15 ± 0.07 (2 models)"),  # 0.15 ± 6.31 * 0.0707 / sqrt(2) = [-0.166, 0.466] < 0.5
    ([0.6, 0.5], UNDECIDED, "0.55 ± 0.07 (2 models)"),  # [0.234, 0.866] straddles 0.5
    ([0.8, 0.9, 1.0], FAILS, "0.90 ± 0.10 (3 models)"),  # [0.731, 1.069]
])
def test_sanity_claim(finals, verdict, measured):
    c = sanity_claim("grad", "gradient maps depend on the weights", finals, 0.5, "fig")
    assert c == Claim(key="grad", claim="gradient maps depend on the weights", paper="not run",
                      measured=f"rank corr. after randomisation {measured}", verdict=c.verdict, where="fig")
    assert c.verdict.outcome == verdict
    assert "rank corr. after full randomisation < 0.5 over the whole 90% interval of the mean over models" in \
        c.verdict.criterion
    one = sanity_claim("g", "c", [0.3], 0.25, "w", unit="agent")
    assert (one.verdict.outcome, one.measured) == (UNDECIDED, "rank corr. after randomisation 0.30 (1 agent)")


@pytest.mark.parametrize("passed, verdict", [
    ([True, True, True], HOLDS), ([False, False], FAILS), ([True, False, True], UNDECIDED), ([True], HOLDS)])
def test_unit_check_claim(passed, verdict):
    c = unit_check_claim("far", "a far goal does not pay", passed, "checks")
    assert c.verdict.outcome == verdict
    assert c.measured == f"{sum(passed)} of {len(passed)} models pass"
    with pytest.raises(ValueError, match="at least one"):
        unit_check_claim("far", "x", [], "checks")


# -- save_claims ------------------------------------------------------------------------------------------
def claim(key: str, verdict: str) -> Claim:
    return Claim(key=key, claim=f"claim {key}", paper="paper's value", measured="1.0 (1 seed)",
                 verdict=Verdict(verdict, "criterion, with a comma", "[0, 1]"), where="Fig. 1")


def test_save_claims_writes_every_field_and_returns_the_verdicts(tmp_path):
    path = tmp_path / "claims.csv"
    table, metrics = save_claims([claim("a", "held"), claim("b", "mixed")], tmp_path, "gridworld")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"key": k, "claim": f"claim {k}", "paper": "paper's value", "measured": "1.0 (1 seed)", "verdict": v,
         "interval": "[0, 1]", "criterion": "criterion, with a comma", "where": "Fig. 1", "chapter": "gridworld"}
        for k, v in (("a", "held"), ("b", "mixed"))]
    assert metrics == {"claims.a": "held", "claims.b": "mixed"}
    assert list(table.index) == ["claim a", "claim b"]
    assert list(table.columns) == ["paper", "this build", "verdict", "interval", "criterion", "where"]
    assert list(table["verdict"]) == ["held", "mixed"] and list(table["this build"]) == ["1.0 (1 seed)"] * 2


def test_save_claims_refuses_repeated_keys_and_writes_nothing(tmp_path):
    path = tmp_path / "claims.csv"
    with pytest.raises(ValueError, match="unique"):
        save_claims([claim("a", "held"), claim("b", "held"), claim("a", "mixed")], tmp_path, "gridworld")
    assert not path.exists()


# -- ratio_text -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, text", [
    (2.4, 1.0, "2.4x"),
    (1.0, 3.0, "0.3x"),
    (5.0, 2.0, "2.5x"),
    (-3.0, 1.5, "-2.0x"),
    (0.0, 2.0, "0.0x"),
    (1.0, 0.0, "–"),
    (math.nan, 1.0, "–"),
    (1.0, math.inf, "–"),
    (math.inf, 1.0, "–"),
])
def test_ratio_text(a, b, text):
    assert ratio_text(a, b) == text


# -- keys -------------------------------------------------------------------------------------------------
def test_metric_key_makes_each_part_a_slug():
    from rewinterp_utils.keys import metric_key, slug

    assert slug("Goal far away (b) vanishes") == "goal_far_away_b_vanishes"
    assert slug("agent's step-onto goal") == "agents_step_onto_goal"
    assert metric_key("checks", "model 0", "R(s, s') > 0.5") == "checks.model_0.r_s_s_0_5"
    assert metric_key("epic", 3) == "epic.3"
    with pytest.raises(ValueError, match="no letter or digit"):
        slug(" () ")
    with pytest.raises(ValueError, match="at least one part"):
        metric_key()

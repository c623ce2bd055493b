"""The verdict helpers of rewinterp_utils.claims, on small arrays whose verdicts are worked out by hand here.

Every branch of every helper is reached, including those a `smoke` build never takes (one seed on one side of
:func:`below`, seeds that err on the other side of the true reward, the undecided verdicts). Interval ends are worked
out by hand from tabulated Student-t quantiles, not with scipy."""

from __future__ import annotations

import csv
import math

import pytest

from rewinterp_utils.claims import (
    FAILS,
    HOLDS,
    UNDECIDED,
    Claim,
    Verdict,
    below,
    errs_like_paper,
    exact_verdict,
    interval_verdict,
    mean_interval,
    not_below,
    ratio_text,
    sanity_claim,
    save_claims,
    spread,
    unit_check_claim,
)


# Student-t quantiles of the 90% two-sided intervals, from a table: t(0.95; 1) = 6.313752, t(0.95; 2) = 2.919986,
# t(0.95; 4) = 2.131847.
T1, T2, T4 = 6.313752, 2.919986, 2.131847


# -- interval_verdict -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, verdict", [
    ([0.01, 0.02, 0.03], HOLDS),  # mean 0.02, sd 0.01: 0.02 ± 2.92 * 0.01 / sqrt(3) = [0.0031, 0.0369] < 0.1
    ([0.2, 0.3, 0.4], FAILS),  # 0.3 ± 0.169 = [0.131, 0.469]: nowhere below 0.1
    ([0.01, 0.5, 0.09], UNDECIDED),  # mean 0.2, sd 0.263: [-0.243, 0.643] straddles 0.1
    ([0.01, 0.09, 0.09], UNDECIDED),  # every seed is below 0.1, but [-0.0145, 0.141] straddles it
    ([0.05], UNDECIDED),  # one seed: no interval
])
def test_interval_verdict(values, verdict):
    got = interval_verdict(values, lambda v: v < 0.1, "MSE below 0.1")
    assert got.outcome == verdict
    assert got.criterion.startswith("holds: MSE below 0.1 over the whole 90% interval of the mean over seeds")


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
# the paper's model said 0.9 where the true reward is 0: it erred upwards
@pytest.mark.parametrize("values, verdict", [
    ([0.8, 1.0, 0.7], HOLDS),  # mean 0.833, sd 0.153: [0.576, 1.091] > 0
    ([3.0, 2.0, 4.0], HOLDS),  # far from the paper's value, but on its side
    ([0.8, -0.2, 0.9], UNDECIDED),  # mean 0.5, sd 0.608: [-0.526, 1.526] contains 0
    ([-0.3, -0.2, -0.4], FAILS),  # [-0.469, -0.131]: errs the other way
    ([0.4], UNDECIDED),
])
def test_errs_like_paper(values, verdict):
    got = errs_like_paper(values, paper=0.9, true=0.0)
    assert got.outcome == verdict, values
    assert "errs above the true reward (0), as the paper's did (0.9)" in got.criterion


def test_errs_like_paper_downwards():
    # the paper's model said 0.1 where the true reward is 1: it erred downwards
    assert errs_like_paper([0.3, 0.2], paper=0.1, true=1.0).outcome == HOLDS  # 0.25 ± 0.316 < 1
    assert errs_like_paper([0.3, 1.2], paper=0.1, true=1.0).outcome == UNDECIDED  # 0.75 ± 2.84
    assert errs_like_paper([1.4, 1.5], paper=0.1, true=1.0).outcome == FAILS  # 1.45 ± 0.316 > 1
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
    ([4.0, 4.0], [4.0, 4.0], 0.0, FAILS),  # equal constants: [0, 0], not below
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
    ([4.0, 4.0], [4.0, 4.0], 0.0, HOLDS),
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
    with pytest.raises(ValueError, match="shown"):
        below([1.0], [], "hidden", "shown")
    with pytest.raises(ValueError, match="hidden"):
        below([math.inf], [1.0], "hidden", "shown")


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

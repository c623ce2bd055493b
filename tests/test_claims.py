"""The verdict helpers of rewinterp_utils.claims, on small arrays whose verdicts are worked out by hand here.

Every branch of every helper is reached, including those a `smoke` build never takes (one seed on one side of
:func:`below`, a seed that errs on the other side of the true reward, the mixed verdicts)."""

from __future__ import annotations

import csv
import math

import pytest

from rewinterp_utils.claims import (
    Claim,
    Verdict,
    below,
    errs_like_paper,
    every_seed,
    ratio_text,
    sanity_claim,
    save_claims,
    spread,
)


# -- every_seed -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, verdict", [
    ([0.01, 0.05, 0.09], "held"),  # every seed below 0.1
    ([0.2, 0.5, 0.1], "did not hold"),  # none (0.1 is not below 0.1)
    ([0.01, 0.5, 0.09], "mixed"),  # two of three
    ([0.05], "held"),
    ([0.1], "did not hold"),
])
def test_every_seed(values, verdict):
    got, criterion = every_seed(values, lambda v: v < 0.1, "MSE below 0.1")
    assert got == verdict
    assert criterion == "held: MSE below 0.1 on every seed (did not hold: on none; mixed: on some)"


def test_every_seed_custom_words_and_bad_values():
    assert every_seed([1, 2], lambda v: v > 0, "x", yes="passes", no="fails")[0] == "passes"
    assert every_seed([-1, -2], lambda v: v > 0, "x", yes="passes", no="fails")[0] == "fails"
    assert every_seed([-1, 2], lambda v: v > 0, "x", yes="passes", no="fails")[0] == "mixed"
    with pytest.raises(ValueError, match="at least one"):
        every_seed([], lambda v: v > 0, "x")
    with pytest.raises(ValueError, match="finite"):
        every_seed([1.0, math.nan], lambda v: v > 0, "x")


# -- errs_like_paper --------------------------------------------------------------------------------------
# the paper's model said 0.9 where the true reward is 0: it erred upwards
@pytest.mark.parametrize("values, verdict", [
    ([0.8, 1.0, 0.7], "holds"),  # all above 0, mean 0.833, within 0.5 of 0.9
    ([0.1, 0.2, 0.3], "same direction"),  # all above 0, but the mean 0.2 is 0.7 from 0.9
    ([3.0, 2.0, 4.0], "same direction"),  # all above 0, mean 3.0 is 2.1 from 0.9
    ([0.8, -0.2, 0.9], "mixed"),  # one seed errs downwards
    ([0.8, 0.0, 0.9], "mixed"),  # one seed is exactly right: it does not err on the paper's side
    ([-0.4], "mixed"),
])
def test_errs_like_paper(values, verdict):
    got, criterion = errs_like_paper(values, paper=0.9, true=0.0)
    assert got == verdict, values
    assert "true reward (0)" in criterion and "within 0.5 of the paper's 0.9" in criterion


def test_errs_like_paper_downwards_and_tolerance():
    # the paper's model said 0.1 where the true reward is 1: it erred downwards
    assert errs_like_paper([0.3, 0.2], paper=0.1, true=1.0)[0] == "holds"  # mean 0.25, 0.15 from 0.1
    assert errs_like_paper([0.3, 1.2], paper=0.1, true=1.0)[0] == "mixed"
    assert errs_like_paper([0.9, 0.95], paper=0.1, true=1.0)[0] == "same direction"  # mean 0.925, 0.825 away
    assert errs_like_paper([0.9, 0.95], paper=0.1, true=1.0, tolerance=0.9)[0] == "holds"
    # one seed exactly 0.5 from the paper's value (exact in binary): the tolerance is inclusive
    assert errs_like_paper([1.25], paper=0.75, true=0.0)[0] == "holds"
    assert errs_like_paper([1.25], paper=0.75, true=0.0, tolerance=0.25)[0] == "same direction"


# -- below ------------------------------------------------------------------------------------------------
# a = [1, 2, 3]: mean 2, sd 1.   b = [5, 6, 7]: mean 6, sd 1.   a's band [1, 3], b's band [5, 7]
A, B = [1.0, 2.0, 3.0], [5.0, 6.0, 7.0]


@pytest.mark.parametrize("a, b, margin, verdict", [
    (A, B, 0.0, "below"),  # 3 < 5
    (A, B, 1.9, "below"),  # 3 < 5 - 1.9 = 3.1
    (A, B, 2.0, "overlapping"),  # 3 < 3 is false; mean 2 < 6 - 2 = 4
    (A, B, 3.9, "overlapping"),  # 2 < 2.1
    (A, B, 4.0, "not below"),  # 2 >= 6 - 4
    (B, A, 0.0, "not below"),
    ([1.0, 3.0], [3.0, 5.0], 0.0, "overlapping"),  # sd sqrt(2) each: 2 + 1.41 >= 4 - 1.41
    ([4.0, 4.0], [4.0, 4.0], 0.0, "not below"),  # equal means are not below
    # one seed on either side: no band, only the means (and the margin) count
    ([2.0], B, 0.0, "below (1 seed)"),
    ([5.5], B, 0.0, "below (1 seed)"),  # inside b's band, still below its mean
    ([5.5], B, 0.5, "not below (1 seed)"),  # 5.5 >= 6 - 0.5
    (A, [2.5], 0.0, "below (1 seed)"),  # a's band reaches 3, b has none
    (A, [2.0], 0.0, "not below (1 seed)"),
    ([1.0], [1.0], 0.0, "not below (1 seed)"),
])
def test_below(a, b, margin, verdict):
    got, criterion = below(a, b, "hidden", "shown", margin=margin)
    assert got == verdict, (a, b, margin)
    assert criterion.startswith("hidden below shown when their mean ± sd bands over seeds are apart")
    assert criterion.endswith(f" by more than {margin:g}") == bool(margin)


def test_below_bad_values_name_the_side():
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


# -- sanity_claim -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("finals, verdict, measured", [
    ([0.1, 0.2], "passes", "0.15 ± 0.07 (2 models)"),  # sd = 0.1 / sqrt(2)
    ([0.6, 0.5], "fails", "0.55 ± 0.07 (2 models)"),  # 0.5 is not below 0.5
    ([0.1, 0.9], "mixed", "0.50 ± 0.57 (2 models)"),  # sd = 0.8 / sqrt(2)
])
def test_sanity_claim(finals, verdict, measured):
    c = sanity_claim("grad", "gradient maps depend on the weights", finals, 0.5, "fig")
    assert c == Claim(key="grad", claim="gradient maps depend on the weights", paper="not run",
                      measured=f"rank corr. after randomisation {measured}", verdict=c.verdict, where="fig")
    assert c.verdict.outcome == verdict
    assert "rank corr. after full randomisation < 0.5 on every seed" in c.verdict.criterion
    one = sanity_claim("g", "c", [0.3], 0.25, "w", unit="agent")
    assert (one.verdict.outcome, one.measured) == ("fails", "rank corr. after randomisation 0.30 (1 agent)")


# -- save_claims ------------------------------------------------------------------------------------------
def claim(key: str, verdict: str) -> Claim:
    return Claim(key=key, claim=f"claim {key}", paper="paper's value", measured="1.0 (1 seed)",
                 verdict=Verdict(verdict, "criterion, with a comma"), where="Fig. 1")


def test_save_claims_writes_every_field_and_returns_the_verdicts(tmp_path):
    path = tmp_path / "claims.csv"
    table, metrics = save_claims([claim("a", "held"), claim("b", "mixed")], tmp_path, "gridworld")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"key": k, "claim": f"claim {k}", "paper": "paper's value", "measured": "1.0 (1 seed)", "verdict": v,
         "criterion": "criterion, with a comma", "where": "Fig. 1", "chapter": "gridworld"}
        for k, v in (("a", "held"), ("b", "mixed"))]
    assert metrics == {"claims.a": "held", "claims.b": "mixed"}
    assert list(table.index) == ["claim a", "claim b"]
    assert list(table.columns) == ["paper", "this build", "verdict", "criterion", "where"]
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

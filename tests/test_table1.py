"""Table 1's tables from stand-in runs, against means, sds and ratios worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rewinterp_utils.table1 import PROBE_COLUMNS, group_runs, probe_summary, probe_table, table1


def onpolicy(rewarded_mse: float, unrewarded_mse: float) -> pd.DataFrame:
    row = dict.fromkeys(PROBE_COLUMNS, 0.0) | {
        "on-policy MSE, rewarded": rewarded_mse, "held-out MSE, rewarded": 0.1,
        "on-policy MSE, unrewarded": unrewarded_mse, "held-out MSE, unrewarded": 0.04,
        "false-negative rate": float("nan") if math.isnan(rewarded_mse) else 0.5,
        "learned reward per step": 0.03, "true reward per step": 0.01}
    return pd.DataFrame([row, dict.fromkeys(PROBE_COLUMNS, 9.0)], index=pd.Index(["learned_shown", "other"],
                                                                                     name="model"))


def run(reward: str, seed: int, ret: float, rewarded_mse: float = 0.3) -> dict:
    return {"game": "Breakout", "score": "shown", "reward": reward, "seed": seed,
            "metrics": {"clipped_return": ret, "game_score": float("nan")}, "onpolicy": onpolicy(rewarded_mse, 0.02)}


RUNS = [run("true", 0, 2.0), run("learned_shown", 0, 1.0, float("nan")), run("true", 1, 4.0),
        run("learned_shown", 1, 1.0, 0.5)]


def test_table1_means_and_sds_over_seeds():
    groups = group_runs(RUNS)
    assert list(groups) == [("Breakout", "shown", "true"), ("Breakout", "shown", "learned_shown")]
    table, metrics = table1(groups, {("Breakout", "shown", "true"): 13.5})
    true = table.loc[("Breakout", "shown", "true")]
    assert true["paper (clipped, 1 seed)"] == "13.5" and true["clipped return per life"] == "3.00 ± 1.41 (2 seeds)"
    assert table.loc[("Breakout", "shown", "learned_shown"), "paper (clipped, 1 seed)"] == "–"
    assert true["game score"] == "–"  # no finite value
    assert metrics["Breakout.shown.true.clipped_return_mean"] == 3.0
    assert metrics["Breakout.shown.true.clipped_return_std"] == pytest.approx(2 ** 0.5)
    assert metrics["Breakout.shown.true.clipped_return_seeds"] == [2.0, 4.0]
    assert math.isnan(metrics["Breakout.shown.true.game_score_mean"])


def test_probe_compares_each_class_with_its_own_held_out_error():
    probe = probe_table(RUNS)
    assert list(probe.model) == ["learned_shown"] * 4  # true-reward agents are probed with the shown model
    learned = probe.xs("learned_shown", level="reward")
    s = probe_summary(learned)
    assert s["onpolicy.matched.mse_unrewarded_mean"] == pytest.approx(0.02)
    assert s["onpolicy.matched.mse_ratio_unrewarded"] == pytest.approx([0.5, 0.5])  # 0.02 / 0.04
    assert s["onpolicy.matched.mse_rewarded_mean"] == pytest.approx(0.5)  # the agent with rewarded steps
    assert math.isnan(s["onpolicy.matched.mse_ratio_rewarded"][0])
    assert s["onpolicy.matched.mse_ratio_rewarded"][1] == pytest.approx(5.0)  # 0.5 / 0.1
    assert s["onpolicy.matched.heldout_mse_rewarded_text"] == "0.1000"
    assert s["onpolicy.matched.fn_rate_text"] == "0.500"
    assert s["onpolicy.matched.learned_to_true_ratio"] == pytest.approx(3.0)
    none = probe_summary(learned.iloc[:1])
    assert none["onpolicy.matched.mse_rewarded_text"] == "– (their play had no such step)"
    assert none["onpolicy.matched.fn_rate_text"].startswith("–")


def test_probe_keeps_the_score_shift_apart():
    """A score-hidden agent trained on the score-shown model (Figure 5's shift) is not matched; a true-reward agent of
    the hidden game is probed with the hidden model, not the shown one."""
    frame = pd.DataFrame([dict.fromkeys(PROBE_COLUMNS, 1.0), dict.fromkeys(PROBE_COLUMNS, 2.0)],
                         index=pd.Index(["learned_shown", "learned_hidden"], name="model"))
    runs = [{"game": "Seaquest", "score": "hidden", "reward": reward, "seed": 0, "metrics": {}, "onpolicy": frame}
            for reward in ("true", "learned_shown", "learned_hidden")]
    probe = probe_table(runs)
    assert list(probe.model) == ["learned_hidden", "learned_shown", "learned_hidden"]
    assert list(probe.matched) == [True, False, True]
    assert list(probe["held-out MSE, rewarded"]) == [2.0, 1.0, 2.0]

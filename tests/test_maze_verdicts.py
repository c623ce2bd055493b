"""The gridworld chapter's claims, on per-seed values whose verdicts are worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from rewinterp_utils.maze_verdicts import QUANTITIES, reward_model_claims, verdict_flips


def frame(**cols) -> pd.DataFrame:
    base = {"rm.test_mse": [0.001, 0.002, 0.003], "counterfactual.no_goal": [0.9, 0.8, 1.0],
            "counterfactual.two_goals": [0.1, 0.0, 0.2], "counterfactual.many_goals": [-1.0, -2.0, -1.5],
            "counterfactual.goal_vanishes": [0.9, 0.95, 1.0], "saliency.focus_share": [0.2, 0.3, 0.25]}
    return pd.DataFrame(base | cols, index=pd.Index([0, 1, 2], name="model_seed"))


def test_every_claim_on_hand_made_values():
    got = {c.key: c.verdict.outcome for c in reward_model_claims(frame())}
    # test_mse: 0.002 ± 2.92 * 0.001 / sqrt(3) < 0.01; no_goal: 0.9 ± 0.169 > 0.4745 (past the midpoint between
    # the true 0 and the paper's 0.949); two_goals: 0.1 ± 0.169 = [-0.069, 0.269] < 0.502 (true 1, paper 0.004);
    # many_goals: [-2.34, -0.66] < -0.3635 (true 1, paper -1.727); goal_vanishes [0.877, 1.02] > 0.5;
    # focus [0.166, 0.334] < 0.5
    assert got == {"test_mse": "holds", "no_goal": "holds", "two_goals": "holds", "many_goals": "holds",
                   "goal_vanishes": "holds", "saliency_diffuse": "holds"}
    # no_goal = [-0.2, 0.1, 0.4]: mean 0.1, sd 0.3, interval [-0.41, 0.61] contains the midpoint 0.4745
    assert reward_model_claims(frame(**{"counterfactual.no_goal": [-0.2, 0.1, 0.4]}))[1].verdict.outcome == \
        "undecided"
    # a nearly right model (R(no goal) about 0.015, [0.0066, 0.0234]) does not err like the paper's 0.949, and a
    # two-goals reward near the true 1 does not err like the paper's 0.004
    nearly_right = reward_model_claims(frame(**{"counterfactual.no_goal": [0.01, 0.015, 0.02],
                                                "counterfactual.two_goals": [0.95, 0.97, 0.99]}))
    assert [c.verdict.outcome for c in nearly_right[1:3]] == ["does not hold", "does not hold"]
    assert "past the midpoint between them (> 0.4745)" in nearly_right[1].verdict.criterion


def test_a_replaced_seed_flips_only_the_verdicts_it_moves():
    # seed 0's goal-vanishes score at 0.2 instead of 0.9: mean 0.717, sd 0.442, interval [-0.03, 1.46] straddles 0.5
    flips = verdict_flips(frame(), {"counterfactual.goal_vanishes": 0.2, "rm.test_mse": 0.0015})
    assert flips.loc["goal_vanishes", "seed 0 replaced"] == "undecided"
    assert list(flips.index[flips.flips]) == ["goal_vanishes"]


def test_missing_column_names_it():
    with pytest.raises(ValueError, match="saliency.focus_share"):
        reward_model_claims(frame().drop(columns="saliency.focus_share"))
    assert len(QUANTITIES) == 6

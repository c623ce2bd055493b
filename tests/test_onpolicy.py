"""On-policy errors per class of step, checked against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from rewinterp_utils.onpolicy import onpolicy_errors


def test_onpolicy_errors_by_hand():
    # steps: rewarded r=1 paid 0.8 and 0.2; unrewarded paid 0.1, 0.7, 0.0, 0.0
    e = onpolicy_errors([0.8, 0.2, 0.1, 0.7, 0.0, 0.0], [1, 1, 0, 0, 0, 0])
    assert e["mse_rewarded"] == pytest.approx((0.04 + 0.64) / 2)  # 0.34
    assert e["mse_unrewarded"] == pytest.approx((0.01 + 0.49) / 4)  # 0.125
    assert e["mse"] == pytest.approx((0.04 + 0.64 + 0.01 + 0.49) / 6)
    assert e["fp_rate"] == pytest.approx(1 / 4)  # 0.7 > 0.5
    assert e["fn_rate"] == pytest.approx(1 / 2)  # 0.2 < 0.5
    assert e["learned_per_step"] == pytest.approx(1.8 / 6) and e["true_per_step"] == pytest.approx(2 / 6)
    assert (e["n_rewarded"], e["n_unrewarded"]) == (2, 4)


def test_a_play_without_reward_has_no_rewarded_class():
    e = onpolicy_errors([0.1, 0.3], [0, 0])
    assert math.isnan(e["mse_rewarded"]) and math.isnan(e["fn_rate"]) and math.isnan(e["corr"])
    assert e["mse_unrewarded"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="one prediction per step"):
        onpolicy_errors([0.1], [0, 1])



def test_episode_ending_steps_are_left_out():
    """The life-ending steps (s' a terminal frame the held-out data never holds) do not count: the errors equal those
    of the other steps alone, computed by hand."""
    pred, true = [0.8, 0.2, 5.0, 0.1, -3.0, 0.0], [1, 1, 1, 0, 0, 0]
    done = [False, False, True, False, True, False]
    e = onpolicy_errors(pred, true, done=done)
    assert e["n_dropped"] == 2 and e["n_rewarded"] == 2 and e["n_unrewarded"] == 2
    assert e["mse_rewarded"] == pytest.approx((0.2 ** 2 + 0.8 ** 2) / 2)
    assert e["mse_unrewarded"] == pytest.approx(0.1 ** 2 / 2)
    assert onpolicy_errors(pred, true)["n_dropped"] == 0
    with pytest.raises(ValueError, match="done flag"):
        onpolicy_errors(pred, true, done=[True])
    with pytest.raises(ValueError, match="every step"):
        onpolicy_errors([0.1], [0], done=[True])

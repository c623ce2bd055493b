"""The predictive audit of the preferences chapter: Spearman's rho and its bootstrap interval against a plain loop,
the verdicts and the one-sentence answer on hand-made tables, and the reward-distance tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from rewinterp_utils import pref_audit as pa


def _rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho written out: Pearson correlation of the mid-ranks."""
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx ** 2).sum() * (ry ** 2).sum()))


def test_spearman_interval_against_a_plain_bootstrap_loop():
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.7, 0.3])
    y = np.array([1.0, 0.2, 0.8, 0.0, 0.1, 0.9])
    rho, lo, hi = pa.spearman_interval(x, y, n_boot=300, seed=4)
    assert rho == pytest.approx(_rho(x, y))
    rng = np.random.default_rng(4)
    reps = []
    for _ in range(300):
        b = rng.integers(0, len(x), size=len(x))
        if np.ptp(x[b]) > 0 and np.ptp(y[b]) > 0:
            reps.append(_rho(x[b], y[b]))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])))
    assert lo <= rho <= hi


def test_spearman_interval_undefined_for_constant_or_missing_values():
    y = np.array([1.0, 2.0, 3.0])
    for x in (np.array([1.0, 1.0, 1.0]), np.array([1.0, np.nan, 2.0])):
        assert np.isnan(pa.spearman_interval(x, y)).all()
    assert np.isnan(pa.spearman_interval(y, np.ones(3))).all()
    with pytest.raises(ValueError, match="one length"):
        pa.spearman_interval(y, y[:2])


@pytest.mark.parametrize("x, y, p_holm, side, verdict", [
    ([1, 2], [3, 3], 0.01, "below", pa.FLAT),
    ([1, np.nan], [1, 2], 0.01, "below", pa.UNDEFINED),
    ([1, 1], [1, 2], 0.01, "below", pa.UNDEFINED),
    ([1, 2], [2, 1], np.nan, "", pa.TOO_FEW),
    ([1, 2], [2, 1], 0.01, "below", pa.PREDICTS),
    ([1, 2], [2, 1], 0.05, "below", pa.PREDICTS),
    ([1, 2], [1, 2], 0.01, "above", pa.WRONG_WAY),
    ([1, 2], [1, 2], 0.051, "below", pa.NO_EVIDENCE),
    ([1, 2], [1, 2], 0.0, "", pa.NO_EVIDENCE),
])
def test_signal_verdict(x, y, p_holm, side, verdict):
    assert pa.signal_verdict(x, y, p_holm, side) == verdict


def test_holm_by_hand():
    """Holm's step-down by hand: sorted 0.005, 0.01, 0.02, 0.03, 0.04, 0.2 times 6, 5, 4, 3, 2, 1 give 0.03, 0.05,
    0.08, 0.09, 0.08, 0.2, made non-decreasing: 0.03, 0.05, 0.08, 0.09, 0.09, 0.2; NaN stays NaN and does not
    count; nothing above 1."""
    adjusted = pa.holm([0.01, 0.04, 0.03, 0.005, 0.2, 0.02])
    np.testing.assert_allclose(adjusted, [0.05, 0.09, 0.09, 0.03, 0.2, 0.08], rtol=1e-12)
    assert list(adjusted <= 0.05 + 1e-12) == [True, False, False, True, False, False]
    np.testing.assert_allclose(pa.holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04], rtol=1e-12)
    np.testing.assert_allclose(pa.holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(pa.holm([0.03]), [0.03])


def test_bootstrap_p_by_hand():
    # 1 replicate of 20 at or above 0: p = 2 / 20, below; a replicate at 0 counts on both sides
    assert pa.bootstrap_p([-0.9] * 19 + [0.1]) == (pytest.approx(0.1), "below")
    assert pa.bootstrap_p([0.4] * 18 + [0.0, -0.2]) == (pytest.approx(0.2), "above")
    assert pa.bootstrap_p([-0.5, -0.2, 0.0, 0.3]) == (1.0, "below")
    assert pa.bootstrap_p([-0.1, 0.1]) == (1.0, "")
    p, side = pa.bootstrap_p([np.nan])
    assert np.isnan(p) and side == ""


KINDS = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["a"])


def test_stratified_resamples_stay_within_kinds_and_are_uniform_there():
    boot = pa.stratified_resamples(KINDS, 4000, seed=1)
    assert boot.shape == (4000, len(KINDS))
    assert (KINDS[boot] == KINDS).all(), "every position draws a model of its own kind"
    for kind in "abc":
        members = np.flatnonzero(KINDS == kind)
        share = np.bincount(boot[:, members].ravel(), minlength=len(KINDS))[members] / boot[:, members].size
        np.testing.assert_allclose(share, 1 / len(members), atol=0.02)
    # one kind: the plain bootstrap, draw for draw
    plain = np.random.default_rng(5).integers(0, 7, size=(30, 7))
    np.testing.assert_array_equal(pa.stratified_resamples(["k"] * 7, 30, seed=5), plain)


def test_within_kind_spearman_against_a_loop():
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.7, 0.3, 0.5, 0.8, 0.6, 0.0])
    y = np.array([1.0, 0.2, 0.8, 0.0, 0.1, 0.9, 0.4, 0.4, 0.3, 0.5])
    rhos, sizes = [], []
    for kind in "abc":
        sel = KINDS == kind
        rhos.append(_rho(x[sel], y[sel]))
        sizes.append(sel.sum())
    assert pa.within_kind_spearman(x, y, KINDS) == pytest.approx(np.dot(rhos, sizes) / sum(sizes))
    flat_b = y.copy()
    flat_b[KINDS == "b"] = 0.7  # kind b's outcomes do not vary: left out
    keep = [0, 2]
    assert pa.within_kind_spearman(x, flat_b, KINDS) == pytest.approx(
        np.dot([rhos[i] for i in keep], [sizes[i] for i in keep]) / sum(sizes[i] for i in keep))
    assert np.isnan(pa.within_kind_spearman(x, np.repeat([1.0, 2.0], 5), np.repeat(["p", "q"], 5)))


def _design(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """4 kinds x 5 models whose outcome is set by the kind (plus noise): a signal that separates the kinds and is
    noise within them, one that tracks the outcome within kinds too, and pure noise."""
    rng = np.random.default_rng(seed)
    kinds = np.repeat(["k0", "k1", "k2", "k3"], 5)
    level = np.repeat(np.arange(4.0), 5)
    y = level + 0.3 * rng.normal(size=20)
    signals = {"separates kinds": -level + 0.3 * rng.normal(size=20), "tracks": -y + 0.01 * rng.normal(size=20),
               "noise": rng.normal(size=20)}
    return signals, y, kinds


def test_predictive_table_over_models_and_within_kinds_with_holm(monkeypatch):
    signals, y, kinds = _design()
    table = pa.predictive_table(signals, y, kinds, n_boot=400, seed=0)
    assert list(table.index) == list(signals)
    for suffix in ("", pa.WITHIN):
        np.testing.assert_allclose(table["p_holm" + suffix], pa.holm(table["p" + suffix]))
    assert table.loc["tracks", "rho"] == pytest.approx(_rho(signals["tracks"], y))
    assert table.loc["tracks", "rho" + pa.WITHIN] == pytest.approx(
        pa.within_kind_spearman(signals["tracks"], y, kinds))
    assert table["verdict"].tolist() == [pa.PREDICTS, pa.PREDICTS, pa.NO_EVIDENCE]
    assert table["verdict" + pa.WITHIN].tolist() == [pa.NO_EVIDENCE, pa.PREDICTS, pa.NO_EVIDENCE]
    assert pa.predictive_answer(table) == ("a lower separates kinds, tracks goes with a higher return; within "
                                           "kinds, a lower tracks does too")
    assert pa.predictive_verdict(table).outcome == "holds"
    assert pa.predictive_verdict(table, within=True).outcome == "holds"
    # the interval and p come from the resamples within kinds, by a plain loop over them
    x = signals["noise"]
    reps = np.array([_rho(x[b], y[b]) for b in pa.stratified_resamples(kinds, 400, 0)])
    assert (table.loc["noise", "lo"], table.loc["noise", "hi"]) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])))
    assert table.loc["noise", "p"] == pytest.approx(min(1, 2 * min(np.mean(reps >= 0), np.mean(reps <= 0))))
    assert pa.spearman_interval(x, y, 400, 0, kinds=kinds)[1:] == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])))
    # the verdicts read the Holm-adjusted p: adjusted to 1, nothing is decided
    monkeypatch.setattr(pa, "holm", lambda p: np.ones(len(p)))
    table = pa.predictive_table(signals, y, kinds, n_boot=50, seed=0)
    assert set(table["verdict"]) | set(table["verdict" + pa.WITHIN]) == {pa.NO_EVIDENCE}


def test_holm_turns_a_lone_p_below_alpha_into_no_evidence():
    """Six signals, one with a raw p between alpha / 6 and alpha: uncorrected it would predict, Holm says no."""
    table = pd.DataFrame({"p": [0.02, 0.3, 0.5, 0.6, 0.7, 0.9]}, index=list("abcdef"))
    adjusted = pa.holm(table["p"])
    assert adjusted[0] == pytest.approx(0.12)
    assert pa.signal_verdict([1, 2], [2, 1], adjusted[0], "below") == pa.NO_EVIDENCE
    assert pa.signal_verdict([1, 2], [2, 1], table["p"].iloc[0], "below") == pa.PREDICTS


def test_one_model_per_kind_decides_nothing():
    """With one model of each kind every within-kind resample repeats the data: no interval, no p, no verdict."""
    y = np.arange(4.0)
    table = pa.predictive_table({"error": -y, "noise": np.array([3.0, 1, 4, 1])}, y, ["a", "b", "c", "d"], n_boot=50)
    assert table["verdict"].tolist() == [pa.TOO_FEW, pa.TOO_FEW]
    assert table[["lo", "hi", "p", "p_holm"]].isna().all().all()
    assert pa.predictive_answer(table) == "too few models of each kind to decide"
    assert pa.predictive_verdict(table).outcome == "undecided"
    assert pa.predictive_answer(pa.predictive_table({"e": -y}, np.ones(4), n_boot=10)).startswith("outcomes do not")
    none = pd.DataFrame({"verdict": [pa.NO_EVIDENCE] * 2, "p_holm": [0.5, 0.7], "verdict_within": [pa.NO_EVIDENCE] * 2},
                        index=["e", "f"])
    assert pa.predictive_answer(none) == "no signal predicts the return after Holm's correction; within kinds, no signal does"
    wrong = none.assign(verdict=[pa.WRONG_WAY] * 2)
    assert pa.predictive_verdict(wrong).outcome == "does not hold"


def test_distance_tables_and_kind_summary():
    from rewinterp_utils.envs.maze_transitions import maze_transitions, maze_true_reward

    tr = maze_transitions()
    true = tr["reward"].astype(float)
    rng = np.random.default_rng(0)
    phi = rng.normal(size=len(tr["states"]))
    phi[tr["terminal"]] = 0.0
    rewards = {
        "true": maze_true_reward,
        "double": lambda s, s_next: 2 * maze_true_reward(s, s_next),
        "negated": lambda s, s_next: -maze_true_reward(s, s_next),
        "shaped": pa.potential_shaped(maze_true_reward, phi, tr, scale=3.0, gamma=0.9),
    }
    matrices, to_true = pa.distance_tables(rewards, tr, gamma=0.9)
    assert set(matrices) == {"EPIC", "dynamics-aware"}
    for m in matrices.values():
        assert m.loc["double", "true"] == pytest.approx(0.0, abs=1e-9)
        assert m.loc["shaped", "true"] == pytest.approx(0.0, abs=1e-9)
        assert m.loc["negated", "true"] == pytest.approx(1.0)
        assert np.allclose(m.to_numpy(), m.to_numpy().T)
    # the shaped reward on each enumerated transition, by hand from the state ids
    by_hand = 3 * true + 0.9 * phi[tr["next_state_id"]] - phi[tr["state_id"]]
    assert to_true.loc["shaped", "MSE"] == pytest.approx(np.mean((by_hand - true) ** 2))
    assert to_true.loc["double", "MSE"] == pytest.approx(np.mean(true ** 2))
    assert to_true.loc["negated", "rank correlation"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="one value per state"):
        pa.potential_shaped(maze_true_reward, phi[:-1], tr, scale=1.0, gamma=0.9)
    with pytest.raises(ValueError, match="not one of the maze's states"):
        rewards["shaped"](np.full((1, *tr["states"].shape[1:]), 9, np.uint8), tr["states"][:1])
    table = pd.DataFrame({"kind": ["a", "a", "b"], "seed": [0, 1, 0], "v": [1.0, 3.0, np.nan]}).set_index(
        ["kind", "seed"])
    summary = pa.kind_summary(table, ["v"])
    assert summary.loc["a", "v"] == "2.00 ± 1.41 (2 seeds)" and summary.loc["b", "v"] == "–"


def test_distance_or_nan_is_nan_where_a_distance_is_undefined():
    from rewinterp_utils.envs.maze_transitions import maze_transitions, maze_true_reward

    tr = maze_transitions()
    for name in pa.DISTANCES:
        double = pa.distance_or_nan(name, lambda s, t: 2 * maze_true_reward(s, t), maze_true_reward, tr, gamma=0.9)
        assert double == pytest.approx(0.0, abs=1e-9)
        assert np.isnan(pa.distance_or_nan(name, lambda s, t: np.zeros(len(s)), maze_true_reward, tr, gamma=0.9))



def test_every_model_is_retrained_with_at_least_three_ppo_seeds():
    """Part VI's outcome of a model is the mean true return over several PPO seeds, not one run's luck."""
    from rewinterp_utils.pipeline.profiles import resolve

    for profile in ("default", "paper"):
        assert resolve("maze_pref_retrain", profile).n_seeds >= 3, profile

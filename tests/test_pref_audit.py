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


@pytest.mark.parametrize("x, y, lo, hi, verdict", [
    ([1, 2], [3, 3], -0.9, -0.1, pa.FLAT),
    ([1, np.nan], [1, 2], -0.9, -0.1, pa.UNDEFINED),
    ([1, 2], [2, 1], -0.9, -0.1, pa.PREDICTS),
    ([1, 2], [1, 2], 0.1, 0.9, pa.WRONG_WAY),
    ([1, 2], [1, 2], -0.1, 0.9, pa.NO_EVIDENCE),
    ([1, 2], [1, 2], -0.5, 0.0, pa.NO_EVIDENCE),
])
def test_signal_verdict(x, y, lo, hi, verdict):
    assert pa.signal_verdict(x, y, lo, hi) == verdict


def test_predictive_table_answer_and_verdict():
    y = np.arange(8.0)
    signals = {"error": -y + 0.01 * np.sin(y), "noise": np.array([3, 1, 4, 1, 5, 9, 2, 6.0]), "wrong": y ** 2}
    table = pa.predictive_table(signals, y, n_boot=200, seed=0)
    assert list(table.index) == list(signals)
    assert table.loc["error", "rho"] == pytest.approx(-1.0)
    assert table["verdict"].tolist() == [pa.PREDICTS, pa.NO_EVIDENCE, pa.WRONG_WAY]
    assert pa.predictive_answer(table) == ("a lower error goes with a higher return; "
                                           "a higher wrong also goes with a higher return")
    assert pa.predictive_verdict(table).outcome == "holds"
    none = table.assign(verdict=[pa.NO_EVIDENCE] * 3)
    assert pa.predictive_answer(none) == "no signal's interval lies below 0"
    assert pa.predictive_verdict(none).outcome == "undecided"
    assert pa.predictive_verdict(table.assign(verdict=[pa.WRONG_WAY] * 3)).outcome == "does not hold"
    flat = pa.predictive_table(signals, np.ones(8), n_boot=10)
    assert pa.predictive_answer(flat).startswith("outcomes do not vary")


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


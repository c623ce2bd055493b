"""The table formatter against hand-written expectations (what issue readers asked to see)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rewinterp_utils.claims import fmt_spread
from rewinterp_utils.tables import format_table, fmt_number


@pytest.mark.parametrize("value, text", [
    (65536.0, "65,536"), (1e7, "10,000,000"), (0.00025, "2.5e-4"), (0.123456, "0.123"), (0.97, "0.97"),
    (13.5, "13.5"), (0.0, "0"), (float("nan"), "–"), (None, "–"), (3, "3"), (np.int64(45000), "45,000"),
    (-4.159, "-4.16"), (0.0057, "0.0057"), (2.5e7 + 0.5, "2.5e7"), ("held", "held"), (("Breakout", "Seaquest"), "Breakout, Seaquest"),
])
def test_fmt_number(value, text):
    assert fmt_number(value) == text


def test_format_table_writes_every_cell_and_keeps_the_index():
    df = pd.DataFrame({"steps": [65536.0, 1024.0], "lr": [2.5e-4, 1e-3]}, index=["a", "b"])
    out = format_table(df)
    assert out.to_dict() == {"steps": {"a": "65,536", "b": "1,024"}, "lr": {"a": "2.5e-4", "b": "0.001"}}


def test_one_seed_has_no_standard_deviation():
    assert fmt_spread([0.5]) == "0.500 (1 seed)"
    assert fmt_spread([1.0, 3.0], 1) == "2.0 ± 1.4 (2 seeds)"
    with pytest.raises(ValueError):
        fmt_spread([])
    with pytest.raises(ValueError):
        fmt_spread([float("nan")])


def test_spread_table_gives_mean_and_sd_over_each_groups_seeds():
    from rewinterp_utils.tables import spread_table

    index = pd.MultiIndex.from_tuples([("B", "shown", 0), ("B", "shown", 1), ("B", "hidden", 0), ("B", "hidden", 1)],
                                      names=["game", "score", "model_seed"])
    values = pd.DataFrame({"mse": [0.1, 0.3, 0.5, 0.5], "share": [1.0, 2.0, 3.0, 5.0]}, index=index)
    table = spread_table(values, {"mse": "held-out MSE"}, 2)
    assert table.to_dict() == {"held-out MSE": {("B", "shown"): "0.20 ± 0.14 (2 seeds)",  # sd = 0.2 / sqrt(2)
                                                ("B", "hidden"): "0.50 ± 0.00 (2 seeds)"}}
    assert list(table.index.names) == ["game", "score setting"]
    assert spread_table(values, {"share": "s"}, 1).loc[("B", "hidden"), "s"] == "4.0 ± 1.4 (2 seeds)"

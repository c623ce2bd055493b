"""How every table in the book writes its numbers: one helper, so the book reads the same everywhere.

Integers get thousands separators (``65,536``), floats a fixed number of significant digits (``0.0052``,
``2.5e-4`` for small or large magnitudes), a missing value is ``–``. A standard deviation over one seed is not
written: tables give mean ± sd and the seed count instead (see :func:`rewinterp_utils.claims.fmt_spread`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from rewinterp_utils.claims import fmt_spread

MISSING = "–"
"""What a table shows where there is no value (NaN, None)."""


def _sci(x: float, digits: int) -> str:
    mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def fmt_number(x: Any, digits: int = 3) -> str:
    """One value as a table shows it: ``fmt_number(65536.0) == "65,536"``, ``fmt_number(0.00025) == "2.5e-4"``,
    ``fmt_number(0.123456) == "0.123"``, ``fmt_number(0.970) == "0.97"``, ``fmt_number(float("nan")) == "–"``;
    strings pass through; tuples are joined with commas. ``digits`` is the most significant digits of a
    non-integer float (trailing zeros dropped)."""
    if x is None:
        return MISSING
    if isinstance(x, str):
        return x
    if isinstance(x, (tuple, list)):
        return ", ".join(fmt_number(v, digits) for v in x)
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return MISSING
        if math.isinf(x):
            return "∞" if x > 0 else "-∞"
        if x.is_integer() and abs(x) < 1e15 and (abs(x) >= 1 or x == 0):
            return f"{int(x):,}"
        magnitude = abs(x)
        if magnitude < 1e-3 or magnitude >= 1e6:
            return _sci(x, digits)
        decimals = max(digits - 1 - int(math.floor(math.log10(magnitude))), 0)
        text = f"{x:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(x)


def format_table(df: pd.DataFrame, digits: int | Mapping[str, int] = 3) -> pd.DataFrame:
    """A copy of ``df`` with every value written by :func:`fmt_number` (``digits`` per column or for all)."""
    out = df.copy().astype(object)
    for col in out.columns:
        d = digits.get(col, 3) if isinstance(digits, Mapping) else digits
        out[col] = [fmt_number(v, d) for v in df[col]]
    return out


def spread_table(values: pd.DataFrame, columns: Mapping[str, str], digits: int = 4,
                 names: tuple[str, ...] = ("game", "score setting")) -> pd.DataFrame:
    """One row per group of ``values``' index but its last level (the seeds), one column per quantity:
    ``columns`` maps a column of ``values`` to its label, each cell the quantity's mean ± sd over the group's seeds
    (:func:`~rewinterp_utils.claims.fmt_spread` with ``digits``); the index levels are called ``names``."""
    levels = list(range(values.index.nlevels - 1))
    out = pd.DataFrame({group: {label: fmt_spread(rows[q], digits) for q, label in columns.items()}
                        for group, rows in values.groupby(level=levels, sort=False)}).T
    out.index.names = list(names)
    return out

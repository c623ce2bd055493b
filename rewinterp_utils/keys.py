"""Summary keys: the one way a notebook names a metric (``summary.json`` and glue read the same names)."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """``text`` as one key component: lower case, apostrophes dropped, runs of anything else but letters, digits
    and ``_`` become one ``_`` (``"Goal far away (b) vanishes"`` -> ``goal_far_away_b_vanishes``)."""
    out = re.sub(r"[^0-9a-z_]+", "_", text.lower().replace("'", "")).strip("_")
    if not out:
        raise ValueError(f"cannot make a key component of {text!r}: it has no letter or digit")
    return out


def metric_key(*parts: object) -> str:
    """Parts joined with ``.``, each made a :func:`slug` (numbers as written): ``metric_key("checks", "model 0",
    "goal vanishes")`` -> ``checks.model_0.goal_vanishes``."""
    if not parts:
        raise ValueError("metric_key needs at least one part")
    return ".".join(slug(str(p)) for p in parts)

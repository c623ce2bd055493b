"""Profiles: every size of every stage, the paper's settings, and what bad sizes get."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rewinterp_utils.pipeline.profiles import (
    PROFILES,
    SIZE_FIELDS,
    SIZES,
    check_profile,
    resolve,
)
from rewinterp_utils.pipeline.stages import STAGES

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


# -- profiles ------------------------------------------------------------------------------------------
def test_profiles_cover_every_stage():
    assert PROFILES == ("smoke", "default", "paper")
    assert set(SIZES) == set(PROFILES)
    needed = {st.sizes for st in STAGES.values() if st.sizes}
    for p in PROFILES:
        assert needed <= set(SIZES[p])


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("stage", sorted(SIZES["default"]))
def test_resolve_every_stage_and_profile(stage, profile):
    cfg = resolve(stage, profile)
    assert cfg == SIZES[profile][stage]
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        assert (isinstance(v, tuple) and v) or (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0)
    # None overrides are ignored
    assert resolve(stage, profile, **{f.name: None for f in dataclasses.fields(cfg)}) == cfg


def _paper_settings_table() -> list[tuple[str, str, float]]:
    """The rows of the "paper's settings" table on the reproducing page (its markdown, as the book shows it)."""
    nb = json.loads((REPO / "notebooks" / "reproducing.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    rows = []
    lines = text.splitlines()
    start = lines.index("| stage | size | the paper |")
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        stage, size, value = (x.strip() for x in line.strip("|").split("|"))
        rows.append((stage, size, float(value)))
    return rows


def test_paper_profile_is_the_paper_table():
    """Every setting the paper states (the table on the reproducing page) is the ``paper`` profile's value."""
    rows = _paper_settings_table()
    assert len(rows) >= 20
    for stage, size, value in rows:
        assert getattr(SIZES["paper"][stage], size) == pytest.approx(value, rel=0, abs=0), (stage, size)
    # the two settings a past change moved away from the paper for a Seaquest problem
    assert ("maze_reward_model", "learning_rate", 1e-3) in rows and ("atari_reward_model", "learning_rate", 1e-3) in rows


@pytest.mark.parametrize("stage", sorted(SIZES["paper"]))
def test_smoke_has_every_setting_of_paper(stage):
    """The smoke build (built into the strict book by the test suite) runs the paper's code paths: every field of
    every stage is either a listed size or has the paper's value at smoke."""
    smoke, paper = SIZES["smoke"][stage], SIZES["paper"][stage]
    for f in dataclasses.fields(paper):
        if f.name not in SIZE_FIELDS:
            assert getattr(smoke, f.name) == getattr(paper, f.name), f"smoke.{stage}.{f.name} is not the paper's"


def test_default_deviates_from_the_paper_only_where_the_page_says_why():
    """The reproducing page's deviation table gives a reason for every size where ``default`` differs."""
    nb = json.loads((REPO / "notebooks" / "reproducing.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    why = code[code.index("WHY = {"):]
    for stage, size, _ in _paper_settings_table():
        if getattr(SIZES["default"][stage], size) != getattr(SIZES["paper"][stage], size):
            assert f'"{size}"' in why, f"default.{stage}.{size} departs from the paper without a reason"


def test_resolve_known_values_and_overrides():
    assert resolve("maze_expert", "default").total_timesteps == 45_000
    assert resolve("maze_retrain", "default").n_seeds == 5
    assert resolve("maze_retrain", "paper").n_seeds == 10
    assert resolve("maze_dataset", "paper").n_train == 25_000
    cfg = resolve("maze_expert", "smoke", total_timesteps=2048, learning_rate=3e-4)
    assert cfg.total_timesteps == 2048 and cfg.learning_rate == 3e-4
    assert cfg.eval_freq == SIZES["smoke"]["maze_expert"].eval_freq
    assert SIZES["smoke"]["maze_expert"].total_timesteps == 1_024, "resolve must not modify the profile"
    # an int for a float field is fine
    assert resolve("maze_expert", "smoke", learning_rate=1).learning_rate == 1


def test_resolve_unknown_profile_stage_field():
    with pytest.raises(ValueError) as e:
        resolve("maze_expert", "fast")
    assert all(p in str(e.value) for p in ("smoke", "default", "paper"))
    with pytest.raises(ValueError) as e:
        resolve("maze_expertt", "smoke")
    assert "maze_expert" in str(e.value) and "maze_retrain" in str(e.value)
    with pytest.raises(ValueError) as e:
        resolve("maze_expert", "smoke", total_steps=10)
    assert "total_steps" in str(e.value) and "total_timesteps" in str(e.value)
    with pytest.raises(ValueError, match="smoke"):
        check_profile("SMOKE")
    assert check_profile("paper") == "paper"


@pytest.mark.parametrize(
    "stage, field, value",
    [
        ("maze_expert", "total_timesteps", 0),
        ("maze_expert", "total_timesteps", -5),
        ("maze_expert", "total_timesteps", 1.5),
        ("maze_expert", "total_timesteps", 2.0),
        ("maze_expert", "total_timesteps", "100"),
        ("maze_expert", "total_timesteps", True),
        ("maze_expert", "learning_rate", 0.0),
        ("maze_expert", "learning_rate", -1e-3),
        ("maze_expert", "gamma", "0.9"),
        ("maze_dataset", "n_train", 0),
        ("maze_dataset", "n_envs", -1),
        ("maze_reward_model", "epochs", 0.5),
        ("maze_counterfactuals", "max_placements", 0),
        ("maze_retrain", "n_seeds", 0),
        ("maze_retrain", "n_seeds", 2.5),
        ("maze_retrain", "eval_freq", -1000),
    ],
)
def test_resolve_rejects_bad_sizes(stage, field, value):
    with pytest.raises(ValueError) as e:
        resolve(stage, "smoke", **{field: value})
    assert field in str(e.value)


def test_resolve_rejects_nan():
    with pytest.raises(ValueError):
        resolve("maze_expert", "smoke", learning_rate=float("nan"))



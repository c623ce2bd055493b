"""What a notebook run alone says before it builds: the cells it will make (its own game's, not another's), their
measured times, and where they go."""

from __future__ import annotations

import json

import pytest

from rewinterp_utils.pipeline import on_demand
from rewinterp_utils.pipeline.on_demand import plan, stage_seconds
from rewinterp_utils.pipeline.profiles import TYPICAL_CELL_S
from rewinterp_utils.pipeline.stages import STAGES


def names(cells):
    return [(c.stage.name, dict(c.params).get("game")) for c in cells]


def test_the_plan_is_the_cell_and_what_it_reads_of_its_own_game_deepest_first(root):
    (cell,) = STAGES["atari_reward_model"].cells("smoke", game="Breakout", score="shown", model_seed=0)
    assert names(plan(cell)) == [("atari_expert", "Breakout"), ("atari_dataset", "Breakout"),
                                 ("atari_reward_model", "Breakout")]


def test_a_stage_that_reads_every_seed_plans_every_seed_of_its_game(root):
    (cell,) = STAGES["atari_figure5"].cells("smoke", game="Seaquest")
    planned = plan(cell)
    models = [c for c in planned if c.stage.name == "atari_reward_model"]
    assert {c.params["game"] for c in planned if "game" in c.params} == {"Seaquest"}
    assert len(models) == len(STAGES["atari_reward_model"].cells("smoke", game="Seaquest"))
    assert planned[-1] == cell and planned.index(models[0]) > [c.stage.name for c in planned].index("atari_dataset")


def test_seconds_come_from_this_store_then_the_measured_table_then_the_typical_cell(root, tmp_path, monkeypatch):
    table = tmp_path / "seconds.json"
    table.write_text(json.dumps({"smoke": {"machine": "test", "seconds": {"maze_expert": 12.5}}}))
    monkeypatch.setattr(on_demand, "STAGE_SECONDS_FILE", table)
    assert stage_seconds("maze_expert", "smoke") == 12.5
    assert stage_seconds("maze_dataset", "smoke") == TYPICAL_CELL_S["smoke"]
    folder = root / "smoke" / "maze_expert" / "x"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"elapsed_s": 40.0}))
    assert stage_seconds("maze_expert", "smoke") == 40.0


def test_the_committed_table_covers_every_stage_at_smoke_and_the_costly_ones_at_default():
    """Measured on a build, with the machine that measured it; at default the stages a notebook run alone would
    wait longest for (a stage the table lacks is quoted at the profile's typical cell)."""
    table = json.loads(on_demand.STAGE_SECONDS_FILE.read_text())
    assert table["smoke"]["machine"] and table["default"]["machine"]
    assert not [s for s in STAGES if s not in table["smoke"]["seconds"]]
    costly = ("maze_expert", "maze_retrain", "atari_expert", "atari_dataset", "atari_reward_model", "atari_retrain")
    assert all(table["default"]["seconds"][s] > 0 for s in costly)


def test_refreshing_needs_a_build(root):
    with pytest.raises(ValueError, match="build it first"):
        on_demand.refresh_stage_seconds("paper", "nowhere")

"""The stage table and its cells: defaults from the notebooks, sweeps, keys, bad rows and parameters."""

from __future__ import annotations

import pytest
from helpers import cell

from rewinterp_utils.pipeline.profiles import (
    PROFILES,
    SIZES,
)
from rewinterp_utils.pipeline.stages import STAGES, Stage, check_chapter, get_stage

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
COINFLIP_ID = "EmptyMaze-10x10-CoinFlipGoal-v3"
TWOGOALS_ID = "EmptyMaze-10x10-TwoGoals-v3"


# -- stages and cells ------------------------------------------------------------------------------------
def test_defaults_come_from_the_notebook_parameters_cell():
    import papermill as pm

    for st in STAGES.values():
        nb = pm.inspect_notebook(str(REPO / "notebooks" / f"{st.name}.ipynb"))
        assert st.parameters == {k: eval(p["default"]) for k, p in nb.items() if k != "profile"}  # noqa: S307
    assert cell("maze_expert").params == {"seed": 0, "env_id": COINFLIP_ID, "total_timesteps": None,
                                          "eval_freq": None, "n_eval_episodes": None}
    c = cell("maze_retrain", reward="true", seed=3)
    assert (c.params["reward"], c.params["seed"], c.params["rm_seed"]) == ("true", 3, 0)


@pytest.mark.parametrize("bad", [-1, 1.5, True, False, "0", [0]])
def test_cell_rejects_bad_seed(bad):
    for name in ("maze_expert", "maze_retrain"):
        with pytest.raises(ValueError, match="seed"):
            cell(name, seed=bad)
    with pytest.raises(ValueError, match="rm_seed"):
        cell("maze_retrain", rm_seed=bad)


def test_cell_rejects_bad_env_reward_and_unknown():
    with pytest.raises(ValueError, match=COINFLIP_ID):
        cell("maze_expert", env_id="CartPole-v1")
    with pytest.raises(ValueError, match="rm_env_id"):
        cell("maze_retrain", rm_env_id="EmptyMaze-10x10-CoinFlipGoal-v2")
    with pytest.raises(ValueError) as e:
        cell("maze_retrain", reward="oracle")
    assert "true" in str(e.value) and "learned" in str(e.value)
    with pytest.raises(ValueError) as e:
        cell("atari_retrain", reward="learned")
    assert "learned_hidden" in str(e.value)
    with pytest.raises(ValueError, match="reward"):
        cell("maze_expert", reward="true")  # the expert has no reward parameter
    with pytest.raises(ValueError, match="smoke"):
        cell("maze_expert", "fast")


def test_get_stage_and_chapter():
    with pytest.raises(ValueError) as e:
        get_stage("maze_expet")
    assert "maze_expert" in str(e.value)
    assert check_chapter("all") == ("gridworld", "atari", "table1", "preferences", "audit")
    assert check_chapter("gridworld") == ("gridworld",)
    with pytest.raises(ValueError, match="gridworld"):
        check_chapter("mars")


def test_a_bad_stage_row_fails_naming_the_stage_and_the_culprit():
    bad_sweep = Stage("maze_expert", "gridworld", "x", "maze_expert", sweep={"sed": (0, 1)}, metrics="m.{sed}")
    with pytest.raises(ValueError) as e:
        bad_sweep.check(STAGES)
    assert "maze_expert" in str(e.value) and "'sed'" in str(e.value) and "seed" in str(e.value)
    bad_up = Stage("maze_dataset", "gridworld", "x", "maze_dataset", upstream=("maze_expertt",))
    with pytest.raises(ValueError) as e:
        bad_up.check(STAGES)
    assert "maze_dataset" in str(e.value) and "maze_expertt" in str(e.value)
    unnamed = Stage("maze_retrain", "gridworld", "x", "maze_retrain", sweep={"seed": "n_seeds"}, metrics="m")
    with pytest.raises(ValueError, match="namespace"):
        unnamed.check(STAGES)
    no_notebook = Stage("maze_nothing", "gridworld", "x")
    with pytest.raises(ValueError, match="maze_nothing"):
        no_notebook.check(STAGES)


def test_the_stage_table_is_checked_at_import():
    """A notebook that loses a swept parameter makes importing the stage table fail, naming both."""
    import subprocess
    import sys

    code = ("import papermill\n"
            "real = papermill.inspect_notebook\n"
            "def edited(path, *a, **k):\n"
            "    out = real(path, *a, **k)\n"
            "    if str(path).endswith('maze_retrain.ipynb'):\n"
            "        out.pop('seed')\n"
            "    return out\n"
            "papermill.inspect_notebook = edited\n"
            "import rewinterp_utils.pipeline.stages\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError") and "maze_retrain" in last and "'seed'" in last


def test_cell_keys_and_namespaces():
    a, b = cell("maze_retrain", env_id=TWOGOALS_ID, reward="true", seed=3), cell("maze_retrain", seed=3)
    assert a.key.startswith("TwoGoals_true_3-") and a.namespace == "maze.retrain.TwoGoals.true.seed3"
    assert a.key != b.key
    assert cell("maze_figure3").key.startswith("all-") and cell("maze_figure3").namespace == "maze.retrain"
    assert cell("atari_retrain", game="Seaquest").namespace == "atari.table1.Seaquest.shown.learned_shown.seed0"
    # a custom size is a cell of its own; the same size given explicitly is the profile's cell
    custom = cell("maze_expert", total_timesteps=2048)
    assert custom.key != cell("maze_expert").key
    same = cell("maze_expert", total_timesteps=SIZES["smoke"]["maze_expert"].total_timesteps)
    assert same.key == cell("maze_expert").key
    # sizes that only bound a sweep are not part of a swept cell's identity
    first = get_stage("maze_retrain").cells("smoke", n_seeds=3)[0]
    assert cell("maze_retrain", reward="true", seed=0).identity == first.identity


@pytest.mark.parametrize("profile, n", [("smoke", 1), ("default", 5), ("paper", 10)])
def test_retrain_sweep(profile, n):
    st = get_stage("maze_retrain")
    cells = st.cells(profile)
    assert len(cells) == 2 * 2 * n
    assert {c.params["env_id"] for c in cells} == {COINFLIP_ID, TWOGOALS_ID}
    assert {c.params["reward"] for c in cells} == {"true", "learned"}
    assert {c.params["seed"] for c in cells} == set(range(n))
    assert len({c.key for c in cells}) == len(cells) == len({c.namespace for c in cells})
    assert len(st.cells(profile, n_seeds=2)) == 8
    with pytest.raises(ValueError):
        st.cells(profile, n_seeds=0)
    with pytest.raises(ValueError, match="bogus"):
        st.cells(profile, bogus=1)


def test_a_value_given_for_a_swept_parameter_narrows_the_sweep():
    """Asking for one game's reward models gives that game's models only (it once gave both games', so Breakout's
    sanity checks ran on Seaquest's models); a value outside the sweep is refused."""
    st = get_stage("atari_reward_model")
    n = SIZES["smoke"]["atari_reward_model"].n_seeds
    cells = st.cells("smoke", game="Seaquest")
    expected = {("Seaquest", score, s) for score in ("hidden", "shown") for s in range(n)}
    assert {(c.params["game"], c.params["score"], c.params["model_seed"]) for c in cells} == expected
    assert len(cells) == len(expected)
    (one,) = st.cells("smoke", game="Breakout", score="shown", model_seed=0)
    assert (one.params["game"], one.params["score"], one.params["model_seed"]) == ("Breakout", "shown", 0)
    with pytest.raises(ValueError, match="Pong"):
        st.cells("smoke", game="Pong")
    with pytest.raises(ValueError, match="model_seed"):
        st.cells("smoke", model_seed=n)


def test_a_sweep_can_follow_another_stages_size():
    """The audits of each reward model sweep as many model seeds as the reward-model stage trains."""
    for profile in PROFILES:
        n = SIZES[profile]["maze_reward_model"].n_seeds
        for name in ("maze_reward_model", "maze_saliency", "maze_counterfactuals"):
            assert [c.params["model_seed"] for c in get_stage(name).cells(profile)] == list(range(n))
    assert len(get_stage("maze_saliency").cells("default", n_seeds=3)) == 3
    assert get_stage("maze_saliency").cells("default")[2].namespace == "maze.saliency.model2"
    bad = Stage("maze_saliency", "gridworld", "x", "maze_saliency", sweep={"model_seed": "maze_reward_model.n_sed"},
                metrics="m.{model_seed}")
    with pytest.raises(ValueError, match="n_sed"):
        bad.check(STAGES)


def test_other_sweeps():
    assert len(get_stage("maze_expert").cells("default")) == 1
    assert [c.params["n_seeds"] for c in get_stage("maze_figure3").cells("default", n_seeds=3)] == [3]
    atari = get_stage("atari_retrain").cells("smoke")
    assert {(c.params["game"], c.params["reward"]) for c in atari} == {("Breakout", "true"),
                                                                       ("Breakout", "learned_shown")}
    assert len(get_stage("atari_retrain").cells("default")) == 2 * 2 * 3 * 2



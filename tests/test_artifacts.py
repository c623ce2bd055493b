"""The artifact store: atomic publishing, verification, staleness, what bad input gets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import pytest
from helpers import cell, finish_with, open_, require

from rewinterp_utils.pipeline import artifacts as art
from rewinterp_utils.pipeline.session import open_stage
from rewinterp_utils.pipeline.artifacts import cell_dir
from rewinterp_utils.pipeline.codehash import notebook_code_hash, package_hash
from rewinterp_utils.pipeline.profiles import (
    SIZES,
)
from rewinterp_utils.pipeline.stages import STAGES, get_stage

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
COINFLIP_ID = "EmptyMaze-10x10-CoinFlipGoal-v3"


# -- artifacts -----------------------------------------------------------------------------------------
def test_artifacts_root(root):
    assert art.artifacts_root() == root.resolve()


@pytest.mark.parametrize(
    "stage, profile, given",
    [
        ("maze_expert", "smoke", {"seed": -1}),
        ("maze_expert", "smoke", {"seed": 1.5}),
        ("maze_expert", "smoke", {"seed": True}),
        ("maze_expert", "smoke", {"env_id": "CartPole-v1"}),
        ("maze_expert", "smoke", {"total_timesteps": 0}),
        ("maze_expert", "fast", {}),
        ("maze_expertt", "smoke", {}),
        ("maze_retrain", "smoke", {"reward": "oracle"}),
        ("maze_retrain", "smoke", {"rm_seed": -2}),
    ],
)
def test_open_stage_bad_input_writes_nothing(root, stage, profile, given):
    with pytest.raises(ValueError):
        run = open_(stage, profile, **given)
        run.config  # sizes are checked when first resolved
    assert list(root.iterdir()) == []


def test_open_stage_reads_only_the_stage_parameters_from_the_namespace(root):
    run = open_stage("maze_expert", {"profile": "smoke", "seed": 2, "np": object(), "unrelated": 1})
    assert run.cell == cell("maze_expert", seed=2)
    with pytest.raises(ValueError, match="profile"):
        open_stage("maze_expert", {"seed": 2})


def test_unfinished_run_is_never_accepted(root):
    run = open_("maze_expert", seed=0)
    assert run.dir.is_dir() and run.dir.name.startswith(".")
    run.path("model.pt").write_bytes(b"half written")
    (run.dir / "manifest.json").write_text("{}")  # even a stray manifest in the temp folder is ignored
    assert not art.is_complete(cell("maze_expert", seed=0))
    assert not cell_dir(cell("maze_expert", seed=0)).exists()
    with pytest.raises(art.ArtifactError, match="missing"):
        require("maze_expert", seed=0)
    # a later complete run still works next to the abandoned temp folder
    folder = finish_with(open_("maze_expert", seed=0))
    assert require("maze_expert", seed=0) == folder


def test_finish_publishes_manifest_and_metrics(root):
    t0 = time.perf_counter()
    run = open_("maze_expert", seed=1)
    c = cell("maze_expert", seed=1)
    # what identifies the cell, written out here from its parameters and the profile's table
    identity = {"stage": "maze_expert", "profile": "smoke", "seed": 1, "env_id": COINFLIP_ID,
                "sizes": dataclasses.asdict(SIZES["smoke"]["maze_expert"]), "reads": {},
                "code": notebook_code_hash(REPO / "notebooks" / "maze_expert.ipynb")}
    tmp = run.dir
    folder = finish_with(run, b"abc", {"loss": 0.25, "return": 1.0})
    took = time.perf_counter() - t0
    assert folder == cell_dir(c) and folder.parent == root.resolve() / "smoke" / "maze_expert"
    assert not tmp.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "metrics.json", "model.pt"]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name], "no temp folder left behind"
    assert art.read_metrics(folder) == {"loss": 0.25, "return": 1.0} == art.StoredCell(c).metrics
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["identity"] == identity and 0 <= manifest["elapsed_s"] <= round(took, 3) + 1e-3
    assert manifest["package"] == package_hash()
    assert manifest["files"] == {
        "metrics.json": hashlib.sha256((folder / "metrics.json").read_bytes()).hexdigest(),
        "model.pt": hashlib.sha256(b"abc").hexdigest(),
    }
    assert require("maze_expert", seed=1) == folder
    with pytest.raises(ValueError, match="upstream"):
        run.require("maze_expert", seed=1)  # an expert does not read experts


def test_finish_rejects_bad_metric_keys(root):
    with pytest.raises(ValueError, match="local"):
        open_("maze_expert").finish({".x": 1})


def test_require_other_parameters(root):
    finish_with(open_("maze_expert", seed=0))
    with pytest.raises(art.ArtifactError, match="missing"):
        require("maze_expert", seed=1)
    with pytest.raises(art.ArtifactError, match="missing"):
        require("maze_expert", "default", seed=0)
    with pytest.raises(art.ArtifactError, match="missing"):  # other sizes: another cell
        require("maze_expert", seed=0, total_timesteps=2048)


def test_require_edited_manifest_identity(root):
    folder = finish_with(open_("maze_expert", seed=0))
    mpath = folder / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["identity"]["sizes"]["gamma"] = 0.5
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(art.ArtifactError, match="other parameters"):
        require("maze_expert", seed=0)
    assert not art.is_complete(cell("maze_expert", seed=0))


@pytest.mark.parametrize("name", ["model.pt", "metrics.json"])
def test_require_corrupt_file(root, name):
    folder = finish_with(open_("maze_expert", seed=0), b"0123456789")
    f = folder / name
    data = bytearray(f.read_bytes())
    data[0] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(art.ArtifactError, match="corrupt"):
        require("maze_expert", seed=0)


def test_require_deleted_file_and_bad_manifest(root):
    folder = finish_with(open_("maze_expert", seed=0))
    (folder / "model.pt").unlink()
    with pytest.raises(art.ArtifactError, match="corrupt"):
        require("maze_expert", seed=0)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(art.ArtifactError, match="corrupt"):
        require("maze_expert", seed=0)


def test_missing_message_says_what_to_run(root):
    with pytest.raises(art.ArtifactError) as e:
        require("maze_expert", seed=2)
    msg = str(e.value)
    assert "notebooks/maze_expert.ipynb" in msg
    assert "rewinterp run" in msg and "--profile smoke" in msg and "--chapter gridworld" in msg
    assert "'seed': 2" in msg
    with pytest.raises(art.ArtifactError) as e:
        require("maze_retrain", "default", reward="true", seed=4)
    assert "notebooks/maze_retrain.ipynb" in str(e.value)


def test_rerun_replaces_old_folder(root):
    run1 = open_("maze_expert", seed=0)
    run1.path("old_only.txt").write_text("x")
    folder1 = finish_with(run1, b"first")
    folder2 = finish_with(open_("maze_expert", seed=0), b"second", {"loss": 0.1})
    assert folder1 == folder2
    assert (folder2 / "model.pt").read_bytes() == b"second"
    assert not (folder2 / "old_only.txt").exists()
    assert art.read_metrics(folder2)["loss"] == 0.1
    assert [p.name for p in folder2.parent.iterdir()] == [folder2.name], "old/temp folders must be removed"


def test_cell_made_from_an_upstream_cell_the_profile_no_longer_makes_is_stale(root, monkeypatch):
    """A size change upstream (another learning rate) gives the upstream stage a new folder; a downstream cell
    made from the old folder is no longer up to date, although that folder is still intact."""
    up = open_("maze_reward_model", seed=0, model_seed=0)
    finish_with(up)
    run = open_("maze_counterfactuals", seed=0, model_seed=0)
    run.require("maze_reward_model", seed=0, model_seed=0)
    down = run.finish({"no_goal": 0.9})
    assert art.verify(cell("maze_counterfactuals", seed=0, model_seed=0)) == down
    old_key = up.cell.key
    import rewinterp_utils.pipeline.profiles as profiles

    changed = dataclasses.replace(SIZES["smoke"]["maze_reward_model"], learning_rate=0.123)
    monkeypatch.setitem(profiles.SIZES["smoke"], "maze_reward_model", changed)
    assert (root / "smoke" / "maze_reward_model").joinpath(old_key, "manifest.json").is_file()
    with pytest.raises(art.ArtifactError, match="no longer give"):
        art.verify(cell("maze_counterfactuals", seed=0, model_seed=0))
    from rewinterp_utils.pipeline.artifacts import done_reason

    assert "no longer give" in done_reason(cell("maze_counterfactuals", seed=0, model_seed=0))


def test_figure3_cell_and_upstream_cells(root):
    for c in get_stage("maze_retrain").cells("smoke", n_seeds=2):
        run = open_stage("maze_retrain", {"profile": "smoke", **c.params})
        finish_with(run, metrics={"final_return": float(c.params["seed"])})
    run = open_("maze_figure3", n_seeds=2)
    assert run.config.n_seeds == 2
    cells = run.upstream_cells("maze_retrain", n_seeds=2)
    assert sorted(c.metrics["final_return"] for c in cells) == [0, 0, 0, 0, 1, 1, 1, 1]
    folder = run.finish({})
    assert folder == cell_dir(cell("maze_figure3", n_seeds=2)) != cell_dir(cell("maze_figure3"))
    assert len(json.loads((folder / "manifest.json").read_text())["upstream"]) == 8
    with pytest.raises(art.ArtifactError, match="missing"):
        open_("maze_figure3", n_seeds=3).upstream_cells("maze_retrain", n_seeds=3)



def test_corrupt_file_in_subfolder_detected(root):
    run = open_("maze_expert", seed=0)
    run.path("evals").mkdir()
    (run.path("evals") / "e.npz").write_bytes(b"abc")
    folder = run.finish({})
    (folder / "evals" / "e.npz").write_bytes(b"corrupted")
    with pytest.raises(art.ArtifactError, match="corrupt"):
        require("maze_expert", seed=0)


def test_remade_upstream_invalidates_downstream(root):
    finish_with(open_("maze_expert", seed=0))
    run = open_("maze_dataset", seed=0)
    run.require("maze_expert", seed=0)
    finish_with(run)
    assert art.is_complete(cell("maze_dataset", seed=0))
    finish_with(open_("maze_expert", seed=0), b"retrained")  # the expert is remade
    assert not art.is_complete(cell("maze_dataset", seed=0))
    with pytest.raises(art.ArtifactError, match="upstream artifact that has changed"):
        require("maze_dataset", seed=0)


def test_stage_failing_before_writing_leaves_no_folder(root):
    run = open_("maze_dataset", seed=0)
    with pytest.raises(art.ArtifactError):
        run.require("maze_expert", seed=0)
    assert list(root.rglob("*")) == []


def test_stage_wall_time_is_the_union_of_its_cells_run_intervals(monkeypatch):
    """Two overlapping cells (00:00-00:10, 00:05-00:12) and one run later (01:00-01:03): 12 + 3 minutes of wall
    time, not the 63 minutes from the first start to the last end."""
    from rewinterp_utils.pipeline import summary
    from rewinterp_utils.pipeline.summary import cell_timings

    spans = {"a": ("00:00", "00:10", 600), "b": ("00:05", "00:12", 420), "c": ("01:00", "01:03", 180)}
    monkeypatch.setattr(summary, "cell_dir", lambda cell: cell)
    monkeypatch.setattr(summary, "read_manifest", lambda d: {
        "started": f"2026-01-01T{spans[d][0]}:00+00:00", "finished": f"2026-01-01T{spans[d][1]}:00+00:00",
        "elapsed_s": spans[d][2]})
    assert cell_timings(list(spans)) == {"cells_s": 1200.0, "wall_s": 15 * 60.0}


def test_a_cell_made_with_another_device_or_precision_is_not_done(root, monkeypatch):
    """A cell whose manifest records another precision (or device) than this run's does not verify: it is remade,
    not counted as done; with the same settings it verifies."""
    import json as _json

    from rewinterp_utils.pipeline.artifacts import (
        ArtifactError,
        cell_dir,
        verify,
    )
    from rewinterp_utils.pipeline.session import open_stage

    monkeypatch.setenv("REWINTERP_PRECISION", "fp32")
    run = open_stage("results", {"profile": "smoke"})
    run.finish({"n_claims": 0})
    cell = STAGES["results"].cell("smoke")
    assert verify(cell) == cell_dir(cell)
    monkeypatch.setenv("REWINTERP_PRECISION", "bf16")
    from rewinterp_utils import device

    if device.precision() != "bf16":
        pytest.skip("bf16 is not available here")
    with pytest.raises(ArtifactError, match="device and precision"):
        verify(cell)
    monkeypatch.setenv("REWINTERP_PRECISION", "fp32")
    manifest = cell_dir(cell) / "manifest.json"
    record = _json.loads(manifest.read_text())
    manifest.write_text(_json.dumps(record | {"device": "cuda:0"}))
    with pytest.raises(ArtifactError, match="device and precision"):
        verify(cell)


def test_finish_saves_the_claims_adds_their_verdicts_and_keeps_the_table(root):
    from rewinterp_utils.claims import CLAIMS_FILE, HOLDS, Claim, exact_verdict

    claims = [Claim(key="goal", claim="Reaches the goal", paper="–", measured="0.9",
                    verdict=exact_verdict(True, "return >= 0.9"))]
    run = open_("maze_figure3")
    folder = run.finish({"x": 1.0}, claims, claims_prefix="pref.")
    assert json.loads((folder / "metrics.json").read_text()) == {"x": 1.0, "pref.claims.goal": HOLDS}
    assert (folder / CLAIMS_FILE).is_file() and "claims.csv" in json.loads((folder / "manifest.json").read_text())["files"]
    assert run.claims.loc["Reaches the goal", "verdict"] == HOLDS


def test_no_notebook_writes_its_claims_ending_itself():
    import nbformat

    from rewinterp_utils.pipeline.stages import notebooks_dir

    for path in sorted(notebooks_dir().glob("*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "save_claims(" not in code, f"{path.name}: pass the claims to run.finish"

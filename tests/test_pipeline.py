"""End to end: CLI input checks, notebook hygiene, every stage notebook at `smoke`, determinism, the book."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from rewinterp_utils import runner
from rewinterp_utils.artifacts import cell_dir, identity
from rewinterp_utils.stages import STAGES

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def cli(*args: str, root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "REWINTERP_ARTIFACTS": str(root)}
    return subprocess.run([sys.executable, "-m", "rewinterp_utils.cli", *args], capture_output=True, text=True,
                          env=env, cwd=root.parent)


@pytest.mark.parametrize("args, needle", [
    (["run", "--profile", "huge"], "smoke"),
    (["run", "--chapter", "mars"], "gridworld"),
    (["run", "--jobs", "0"], "positive"),
    (["run", "--seeds", "-2"], "positive"),
    (["book", "--profile", "x"], "default"),
    (["frobnicate"], "run"),
    (["run", "--chapter", "table1", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, args, needle):
    root = tmp_path / "artifacts"
    done = cli(*args, root=root)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert not root.exists()


def test_unreachable_scheduler_fails_within_seconds(tmp_path):
    t0 = time.perf_counter()
    done = cli("run", "--chapter", "table1", "--scheduler", "tcp://127.0.0.1:9", root=tmp_path / "artifacts")
    assert done.returncode == 2 and "tcp://127.0.0.1:9" in done.stderr
    assert time.perf_counter() - t0 < 30


def test_every_stage_has_a_notebook_and_back():
    assert {p.stem for p in NOTEBOOKS} == set(STAGES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "notebook has outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "profile = " in tagged[0].source
    install = code[0]
    assert "remove-cell" in install.metadata.get("tags", []) and "pip" in install.source
    text = "\n".join(c.source for c in nb.cells)
    assert not re.search(r"""["'](\.\./|\./)""", text), "no paths relative to the repository"


def failing_notebook(name: str, tmp_path: Path, monkeypatch, **parameters) -> pm.PapermillExecutionError:
    """Execute notebooks/<name>.ipynb with an empty artifact root; the error it stopped with."""
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "artifacts"))
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", **parameters}, progress_bar=False,
                            kernel_name="python3", cwd=str(tmp_path))
    return err.value


def test_notebook_bad_input_raises_valueerror_and_writes_nothing(tmp_path, monkeypatch):
    err = failing_notebook("maze_expert", tmp_path, monkeypatch, env_id="Bogus-v0")
    assert err.ename == "ValueError" and "EmptyMaze-10x10-CoinFlipGoal-v3" in err.evalue
    assert not (tmp_path / "artifacts").exists()


def test_missing_upstream_names_what_to_run(tmp_path, monkeypatch):
    err = failing_notebook("maze_retrain", tmp_path, monkeypatch)
    assert err.ename == "ArtifactError"
    assert "rewinterp run --profile smoke" in err.evalue and "maze_reward_model.ipynb" in err.evalue


def test_retrain_without_reward_model_stops_before_training(tmp_path, monkeypatch):
    err = failing_notebook("atari_retrain", tmp_path, monkeypatch, game="Seaquest")
    assert err.ename == "ArtifactError"
    assert "--chapter atari" in err.evalue and "Seaquest" in err.evalue
    assert not (tmp_path / "artifacts").exists()


def test_retrain_bad_reward_is_a_valueerror(tmp_path, monkeypatch):
    err = failing_notebook("atari_retrain", tmp_path, monkeypatch, reward="learned")
    assert err.ename == "ValueError" and "learned_hidden" in err.evalue
    assert not (tmp_path / "artifacts").exists()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Every stage notebook executed by papermill at `smoke`, through the runner (as `make book` does)."""
    root = tmp_path_factory.mktemp("smoke") / "artifacts"
    old = os.environ.get("REWINTERP_ARTIFACTS")
    os.environ["REWINTERP_ARTIFACTS"] = str(root)
    try:
        summary = runner.run("smoke", "all")
        yield root, summary
    finally:
        if old is None:
            os.environ.pop("REWINTERP_ARTIFACTS", None)
        else:
            os.environ["REWINTERP_ARTIFACTS"] = old


def test_smoke_runs_every_stage(smoke):
    root, summary = smoke
    for stage in STAGES.values():
        for cell in stage.grid("smoke"):
            assert runner.is_done(stage, "smoke", cell), (stage.name, cell)
    required = ["maze.expert.success_rate", "maze.rm.test_mse", "maze.rm.reward_on_goal", "maze.rm.reward_off_goal",
                "maze.counterfactual.no_goal", "maze.counterfactual.two_goals", "maze.counterfactual.many_goals"]
    required += [f"maze.retrain.{env}.{r}.final_return_{s}" for env in ("CoinFlipGoal", "TwoGoals")
                 for r in ("true", "learned") for s in ("mean", "std", "seeds")]
    for g in ("Breakout", "Seaquest"):
        required += [f"atari.{g}.expert.clipped_return", f"atari.{g}.expert.game_score", f"atari.{g}.score_area_share"]
        for m in ("shown", "hidden"):
            required += [f"atari.{g}.{m}.test_mse", f"atari.{g}.{m}.score_saliency_share",
                         f"atari.{g}.{m}.score_edit.fake_increment", f"atari.{g}.{m}.score_edit.frozen"]
    required += [f"timing.{name}_s" for name in STAGES] + [f"timing.{name}_wall_s" for name in STAGES]
    assert not [k for k in required if k not in summary]
    assert json.loads((root / "smoke" / "summary.json").read_text()) == summary


def test_rerun_skips_up_to_date_cells(smoke):
    root, _ = smoke
    stamp = {p: p.stat().st_mtime_ns for p in (root / "smoke").glob("maze_*/*/manifest.json")}
    runner.run("smoke", "gridworld")
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


def test_same_seed_same_metrics(smoke, tmp_path, monkeypatch):
    _, first = smoke
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "again"))
    again = runner.run("smoke", "gridworld", force=True)
    maze = {k: v for k, v in first.items() if k.startswith("maze.")}
    assert maze and maze == {k: v for k, v in again.items() if k.startswith("maze.")}


def test_book_builds_strict_with_the_three_figures(smoke, tmp_path):
    html = runner.build_book("smoke", out=tmp_path / "book", strict=True)
    page = (html / "book" / "gridworld.html").read_text()
    for n in (1, 2, 3):
        assert f"Figure {n} (this run)" in page
    images = re.findall(r'<img[^>]+src="([^"]+\.png)"', page)
    assert len(images) >= 3 and all((html / "book" / src).resolve().is_file() for src in images)
    assert "colab.research.google.com" in (html / "notebooks" / "maze_expert.html").read_text()
    atari = (html / "book" / "atari.html").read_text()
    for n in (4, 5):
        assert f"Figure {n} (this run)" in atari
    images = re.findall(r'<img[^>]+src="([^"]+\.png)"', atari)
    assert len(images) >= 4 and all((html / "book" / src).resolve().is_file() for src in images)


def test_sweep_on_a_real_dask_cluster_resumes_after_a_kill(smoke):
    """Table 1's cells through a local Dask cluster: kill the sweep after its first cell, resume, nothing rerun."""
    from dask.distributed import LocalCluster

    root, _ = smoke
    cells_dir = root / "smoke" / "atari_retrain"
    shutil.rmtree(cells_dir)
    shutil.rmtree(root / "smoke" / "executed" / "atari_retrain")
    n_cells = len(STAGES["atari_retrain"].grid("smoke"))
    assert n_cells >= 2
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        args = [sys.executable, "-m", "rewinterp_utils.cli", "run", "--profile", "smoke", "--chapter", "table1",
                "--scheduler", cluster.scheduler_address]
        env = {**os.environ, "REWINTERP_ARTIFACTS": str(root)}
        proc = subprocess.Popen(args, env=env, cwd=root.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stage, grid = STAGES["atari_retrain"], STAGES["atari_retrain"].grid("smoke")
        deadline = time.time() + 600
        while not any(runner.is_done(stage, "smoke", c) for c in grid):  # finished: artifacts + executed notebook
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline
            time.sleep(0.2)
        proc.kill()
        proc.wait()
        finished = [c for c in grid if runner.is_done(stage, "smoke", c)]
        paths = [p for c in finished for p in (runner.executed_path(stage, "smoke", c),
                                               cell_dir(identity(stage.name, "smoke", **c)) / "manifest.json")]
        first = {p: p.stat().st_mtime_ns for p in paths}
        assert 1 <= len(finished) < n_cells
        done = subprocess.run(args, env=env, cwd=root.parent, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    for cell in STAGES["atari_retrain"].grid("smoke"):
        assert runner.is_done(STAGES["atari_retrain"], "smoke", cell)
    assert {p: p.stat().st_mtime_ns for p in first} == first  # finished cells were not rerun (notebooks untouched)
    summary = json.loads((root / "smoke" / "summary.json").read_text())
    assert "atari.table1.Breakout.shown.learned_shown.clipped_return_mean" in summary

"""End to end: CLI input checks, notebook hygiene, every stage notebook at `smoke` through the runner, reruns,
determinism (the Atari reward models here; the gridworld in tests/test_runner.py's resumed build), the book, and a
sweep on a real Dask cluster."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from conftest import plant_notebooks, run_notebook

from rewinterp_utils.pipeline import artifacts as art
from rewinterp_utils.pipeline import runner, stages
from rewinterp_utils.pipeline.artifacts import StoredCell, cell_dir, is_done
from rewinterp_utils.pipeline.backends import LocalBackend
from rewinterp_utils.pipeline.profiles import resolve
from rewinterp_utils.pipeline.stages import STAGES, get_stage
from rewinterp_utils.pipeline.summary import write_summary

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def cli(*args: str, root: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "REWINTERP_ARTIFACTS": str(root)}
    return subprocess.run([sys.executable, "-m", "rewinterp_utils.pipeline.cli", *args], capture_output=True,
                          text=True, env=env, cwd=root.parent, **kwargs)


@pytest.mark.parametrize("args, needle", [
    (["run", "--profile", "huge"], "smoke"),
    (["run", "--chapter", "mars"], "gridworld"),
    (["run", "--jobs", "0"], "positive"),
    (["run", "--seeds", "-2"], "positive"),
    (["book", "--profile", "x"], "default"),
    (["frobnicate"], "run"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, args, needle):
    root = tmp_path / "artifacts"
    done = cli(*args, root=root)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert not root.exists()


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
    text = "\n".join(c.source for c in nb.cells)
    assert not re.search(r"""["'](\.\./|\./)""", text), "no paths relative to the repository"
    assert f'open_stage("{path.stem}", globals())' in text, "the stage opens its cell from its own parameters"
    assert text.count("run.finish(") == 1


def failing_notebook(name: str, tmp_path: Path, monkeypatch, **parameters) -> pm.PapermillExecutionError:
    """Execute notebooks/<name>.ipynb with an empty artifact root as ``rewinterp run`` does (where a missing upstream
    cell is an error, not built on demand); the error it stopped with."""
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv(art.RUNNER_ENV, "1")
    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook(REPO / "notebooks" / f"{name}.ipynb", tmp_path / "out.ipynb", {"profile": "smoke", **parameters},
                     cwd=tmp_path)
    return err.value


def test_notebook_bad_input_raises_valueerror_and_writes_nothing(tmp_path, monkeypatch):
    err = failing_notebook("maze_expert", tmp_path, monkeypatch, env_id="Bogus-v0")
    assert err.ename == "ValueError" and "EmptyMaze-10x10-CoinFlipGoal-v3" in err.evalue
    assert not (tmp_path / "artifacts").exists()


def test_an_unknown_parameter_stops_the_notebook_naming_the_valid_ones(tmp_path, monkeypatch):
    """``papermill -p seeed 3`` (a typo) stops before anything is made, instead of running the default seed."""
    err = failing_notebook("maze_expert", tmp_path, monkeypatch, seeed=3)
    assert err.ename == "ValueError" and "unknown parameter 'seeed' for maze_expert.ipynb" in err.evalue
    assert "its parameters are: profile, seed, env_id" in err.evalue
    assert not (tmp_path / "artifacts").exists()


def test_injected_parameters_are_read_from_papermills_cell_only():
    from rewinterp_utils.pipeline.session import injected_parameters

    history = ["", "import numpy", "# Parameters\nseed = 3\nprofile = \"smoke\"\n", "x = 1"]
    assert injected_parameters({"_ih": history}) == ["seed", "profile"]
    assert injected_parameters({"_ih": ["seed = 3"]}) == [] and injected_parameters({}) == []


def test_missing_upstream_names_what_to_run(tmp_path, monkeypatch):
    err = failing_notebook("maze_retrain", tmp_path, monkeypatch)
    assert err.ename == "ArtifactError"
    assert "rewinterp run --profile smoke" in err.evalue and "maze_reward_model.ipynb" in err.evalue


def test_an_upstream_build_that_fails_stops_the_notebook_naming_the_cell_and_its_notebook(tmp_path,
                                                                                              monkeypatch):
    """``maze_dataset`` run alone builds its missing expert on demand; the expert's notebook raises (planted): the
    notebook stops with an ``ArtifactError`` naming the expert cell and its kept executed notebook; the dataset
    cell is not made."""
    planted = plant_notebooks(tmp_path, "maze_expert", "raise RuntimeError('planted failure')")
    root = tmp_path / "artifacts"
    env = {**os.environ, "REWINTERP_ARTIFACTS": str(root), "PYTHONPATH": f"{planted}{os.pathsep}"
           f"{os.environ.get('PYTHONPATH', '')}"}
    env.pop(art.RUNNER_ENV, None)
    done = subprocess.run([sys.executable, "-m", "papermill", str(planted / "rewinterp_notebooks" / "maze_dataset.ipynb"),
                           str(tmp_path / "out.ipynb"), "-p", "profile", "smoke", "--no-progress-bar",
                           "--execution-timeout", "600"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode != 0
    monkeypatch.setattr(stages, "notebooks_dir", lambda: planted / "rewinterp_notebooks")  # the planted code's cell
    expert = get_stage("maze_expert").cell("smoke")
    failed = root / "smoke" / "maze_expert" / f"{expert.key}.failed.ipynb"
    assert "ArtifactError" in done.stderr and f"building upstream cell {expert.describe()} failed" in done.stderr
    assert str(failed) in done.stderr and failed.is_file() and "planted failure" in failed.read_text()
    assert not list((root / "smoke").glob("maze_dataset/*/manifest.json"))


@pytest.mark.parametrize("name", ["maze_seeds", "maze_figure3", "atari_seeds", "atari_table1"])
def test_criterion_notebook_without_upstream_is_a_valueerror_naming_what_to_run(name, tmp_path, monkeypatch):
    """A notebook that computes verdicts from other cells stops at once, naming the command; nothing written."""
    err = failing_notebook(name, tmp_path, monkeypatch)
    assert err.ename == "ArtifactError" and issubclass(art.ArtifactError, ValueError)
    assert "rewinterp run --profile smoke --chapter" in err.evalue
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("name", ["maze_seeds", "atari_seeds", "maze_figure3"])
def test_seed_count_below_one_is_a_valueerror(name, tmp_path, monkeypatch):
    err = failing_notebook(name, tmp_path, monkeypatch, n_seeds=0)
    assert err.ename == "ValueError" and "n_seeds" in err.evalue and "positive" in err.evalue
    assert not (tmp_path / "artifacts").exists()
    with pytest.raises(ValueError, match="n_seeds"):
        runner.run("smoke", "gridworld", n_seeds=0)


def test_retrain_without_reward_model_stops_before_training(tmp_path, monkeypatch):
    err = failing_notebook("atari_retrain", tmp_path, monkeypatch, game="Seaquest")
    assert err.ename == "ArtifactError"
    assert "--chapter atari" in err.evalue and "Seaquest" in err.evalue
    assert not (tmp_path / "artifacts").exists()


def test_retrain_bad_reward_is_a_valueerror(tmp_path, monkeypatch):
    err = failing_notebook("atari_retrain", tmp_path, monkeypatch, reward="learned")
    assert err.ename == "ValueError" and "learned_hidden" in err.evalue
    assert not (tmp_path / "artifacts").exists()


def manifests(root: Path, pattern: str = "*/*/manifest.json") -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "smoke").glob(pattern)}


def test_smoke_runs_every_stage(smoke):
    root, summary = smoke
    for stage in STAGES.values():
        for cell in stage.cells("smoke"):
            assert is_done(cell), cell.describe()
    required = ["maze.expert.success_rate", "maze.rm.test_mse", "maze.rm.reward_on_goal", "maze.rm.reward_off_goal",
                "maze.counterfactual.no_goal", "maze.counterfactual.two_goals", "maze.counterfactual.many_goals",
                "maze.retrain.TwoGoals.learned.seed0.final_return"]
    required += [f"maze.retrain.{env}.{r}.final_return_{s}" for env in ("CoinFlipGoal", "TwoGoals")
                 for r in ("true", "learned") for s in ("mean", "std", "seeds")]
    for g in ("Breakout", "Seaquest"):
        required += [f"atari.{g}.expert.clipped_return", f"atari.{g}.expert.game_score", f"atari.{g}.score_area_share"]
        for m in ("shown", "hidden"):
            required += [f"atari.{g}.{m}.test_mse", f"atari.{g}.{m}.score_saliency_share",
                         f"atari.{g}.{m}.score_edit.fake_increment", f"atari.{g}.{m}.score_edit.frozen"]
    required += [f"atari.table1.Breakout.{s}.{r}.{stat}_mean" for s in ("shown", "hidden")
                 for r in ("true", "learned_shown") for stat in ("clipped_return", "game_score")]
    required += [f"timing.{name}_s" for name in STAGES] + [f"timing.{name}_wall_s" for name in STAGES]
    assert not [k for k in required if k not in summary]
    assert "maze.from_an_old_run" not in summary, "summary.json is rebuilt, not merged into the old one"
    assert json.loads((root / "smoke" / "summary.json").read_text()) == summary


def test_every_atari_cell_reads_upstream_cells_of_its_own_game(smoke):
    """A cell for one game records, in its manifest, only upstream cells of that game: a sanity check of Breakout's
    reward models must not read Seaquest's (it once did). The manifests are the oracle. Mazes may cross on purpose
    (a CoinFlipGoal reward model is retrained in TwoGoals), so only games are checked."""
    root, _ = smoke
    checked = 0
    for path in sorted((root / "smoke").glob("*/*/manifest.json")):
        made = json.loads(path.read_text())
        for up in made.get("upstream", {}):
            read = json.loads((root / up / "manifest.json").read_text())["identity"]
            if "game" in made["identity"] and "game" in read:
                assert read["game"] == made["identity"]["game"], f"{path.parent.name} read {up}"
                checked += 1
    assert checked > 10


def test_summary_keys_come_from_the_cells_of_the_sweep(smoke):
    root, summary = smoke
    for stage in STAGES.values():
        for cell in stage.cells("smoke"):
            for key, value in StoredCell(cell).metrics.items():
                full = f"{cell.namespace}.{key}" if cell.namespace else key
                assert summary[full] == value or (value != value and summary[full] != summary[full])
    # a cell outside the sweep (another seed, made by hand) is not in the summary
    extra = get_stage("maze_figure3").cell("smoke", rm_seed=7)
    (cell_dir(extra) / "x").mkdir(parents=True)
    (cell_dir(extra) / "metrics.json").write_text('{"bogus": 1}')
    assert "maze.retrain.bogus" not in write_summary("smoke")
    shutil.rmtree(cell_dir(extra))


def test_rerun_skips_up_to_date_cells(smoke):
    root, _ = smoke
    stamp = manifests(root, "maze_*/*/manifest.json")
    runner.run("smoke", "gridworld")
    assert manifests(root, "maze_*/*/manifest.json") == stamp


def same(a: dict, b: dict) -> bool:
    """Equal metrics, NaN equal to NaN (a standard deviation over one seed is NaN in both runs)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# (key pattern, low, high): headline numbers of the smoke build, each finite and inside its range; a fraction
# (success rate, saliency share, a maze return) lies in [0, 1] by construction, so only its finiteness is checked
RANGES = [("maze.expert.success_rate", -math.inf, math.inf), ("maze.rm.model*.test_mse", 0, 1),
          ("maze.rm.model*.reward_on_goal", -5, 5), ("maze.saliency.model*.focus_share", -math.inf, math.inf),
          ("maze.counterfactual.model*.no_goal", -50, 50), ("maze.counterfactual.model*.two_goals", -50, 50),
          ("maze.counterfactual.model*.many_goals", -50, 50),
          ("maze.retrain.*.seed*.final_return", -math.inf, math.inf), ("atari.*.*.model*.test_mse", 0, 2),
          ("atari.*.model*.*.score_saliency_share", -math.inf, math.inf),
          ("atari.*.model*.*.score_edit.fake_increment", -5, 5), ("atari.*.expert.clipped_return", 0, 1000),
          ("atari.table1.*.*.*.clipped_return_mean", 0, 1000)]
# (key with {n} for the seed): values that must differ between two seeds (a stub writing constants would not)
SEEDED = ["maze.rm.model{n}.test_mse", "maze.counterfactual.model{n}.no_goal", "maze.saliency.model{n}.focus_share",
          "atari.Breakout.shown.model{n}.test_mse", "atari.Seaquest.hidden.model{n}.test_mse",
          "atari.Seaquest.model{n}.shown.score_saliency_share"]


def test_smoke_metrics_are_finite_in_range_and_depend_on_the_seed(smoke):
    _, summary = smoke
    from fnmatch import fnmatch

    for pattern, low, high in RANGES:
        keys = [k for k in summary if fnmatch(k, pattern)]
        assert keys, pattern
        for k in keys:
            v = summary[k]
            if isinstance(v, float) and math.isnan(v) and summary.get(f"{k}_n") == 0:
                continue  # a score edit that changed no held-out stack measures nothing (its verdict: undecided)
            assert isinstance(v, (int, float)) and math.isfinite(v) and low <= v <= high, (k, v)
    for key in SEEDED:
        assert summary[key.format(n=0)] != summary[key.format(n=1)], key


def test_seed_summaries_are_the_per_seed_cells_values(smoke):
    """Where a criterion notebook sums a quantity up over seeds (``<q>_seeds``, ``<q>_mean``, ``<q>_std``, ``<q>_n``
    and, where written, ``<q>``: seed 0's value), those are the values the per-seed cells wrote (``model<n>.<q>``
    or ``seed<n>.<q>`` beside them), recomputed here with plain loops (a NaN seed, e.g. no finished game, is left
    out of the mean)."""
    _, summary = smoke
    checked = []
    for key, seeds in summary.items():
        if not key.endswith("_seeds"):
            continue
        prefix, _, q = key[: -len("_seeds")].rpartition(".")
        for tag in ("model", "seed"):
            cells = [summary.get(f"{prefix}.{tag}{n}.{q}") for n in range(len(seeds))]
            if None not in cells:
                break
        else:
            continue  # summed up from values that are not per-seed keys of their own
        assert json.dumps(seeds) == json.dumps(cells), key  # NaN equal to NaN
        assert summary[f"{prefix}.{q}_n"] == len(cells), key
        if f"{prefix}.{q}" in summary:
            assert json.dumps(summary[f"{prefix}.{q}"]) == json.dumps(cells[0]), f"{prefix}.{q} is not seed 0's"
        finite = [v for v in cells if not math.isnan(v)]
        if finite:
            total = 0.0
            for v in finite:
                total += v
            mean = total / len(finite)
            assert summary[f"{prefix}.{q}_mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15), key
        if len(finite) == len(cells) > 1:
            squares = 0.0
            for v in cells:
                squares += (v - mean) ** 2
            sd = math.sqrt(squares / (len(cells) - 1))
            assert summary[f"{prefix}.{q}_std"] == pytest.approx(sd, rel=1e-9, abs=1e-15), key
        checked.append(key)
    # the regression models' error, rewards and counterfactuals, the saliency shares, Figure 3's returns, Atari
    assert sum(k.startswith(("maze.rm.", "maze.counterfactual.", "maze.saliency.")) for k in checked) >= 10, checked
    assert sum(k.startswith("maze.retrain.") for k in checked) >= 4, checked
    assert any(k.startswith("atari.") for k in checked), checked


def test_atari_reward_models_same_seed_same_metrics(smoke, tmp_path, monkeypatch):
    """Atari reward models remade by the runner's workers from the same dataset in a fresh folder give identical
    metrics: two of the build's cells, which differ in game, score setting and model seed (each remade cell
    costs a kernel and a fit; a difference would come from the shared code, not from the cell)."""
    import threading

    root, _ = smoke
    for stage in ("atari_expert", "atari_dataset"):
        shutil.copytree(root / "smoke" / stage, tmp_path / "again" / "smoke" / stage)
    cells = [c for c in STAGES["atari_reward_model"].cells("smoke")
             if (c.params["game"], c.params["score"], c.params["model_seed"]) in {("Breakout", "shown", 0),
                                                                                  ("Seaquest", "hidden", 1)}]
    first = {c.key: StoredCell(c).metrics for c in cells}
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "again"))
    backend = LocalBackend(2, tmp_path / "work", {"REWINTERP_ARTIFACTS": str(tmp_path / "again"),
                                                         "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})
    (tmp_path / "work").mkdir()
    assert not runner._execute_cells(cells, backend, threading.Event(), "again")
    assert len(first) == 2 and same({c.key: StoredCell(c).metrics for c in cells}, first)


def test_book_builds_strict_with_the_figures(smoke_book):
    html = smoke_book
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
    assert (html / "book" / "paper.html").is_file()
    for chapter, n_tables in (("gridworld", 2), ("atari", 1), ("table1", 1)):
        text = (html / "book" / f"{chapter}.html").read_text()
        tables = re.findall(r"<table[^>]*dataframe.*?</table>", text, flags=re.DOTALL)
        claims = [t for t in tables if "<th>verdict</th>" in t and "<th>criterion</th>" in t]
        assert len(claims) == n_tables, f"{chapter}: the claims tables are glued from the notebooks"


def test_sweep_on_a_real_dask_cluster_stops_and_resumes(smoke):
    """The maze retraining sweep on a local Dask cluster: Ctrl-C the sweep after its first finished cell (exit 130,
    the cluster's tasks cancelled), shut the cluster down (workers killed), resume on a fresh cluster: finished
    cells are kept and the rest are made by the resumed run."""
    from dask.distributed import LocalCluster

    root, _ = smoke
    stage = STAGES["maze_retrain"]
    cells = stage.cells("smoke")
    assert len(cells) >= 2
    shutil.rmtree(root / "smoke" / "maze_retrain")
    env = {**os.environ, "REWINTERP_ARTIFACTS": str(root)}

    def args(address):
        return [sys.executable, "-m", "rewinterp_utils.pipeline.cli", "run", "--profile", "smoke", "--chapter",
                "gridworld", "--scheduler", address]

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        proc = subprocess.Popen(args(cluster.scheduler_address), env=env, cwd=root.parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 600
        while not any(is_done(c) for c in cells):
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.time() < deadline
            time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
        assert proc.returncode == 130 and time.monotonic() - t0 < 10, err[-2000:]
        assert "interrupted: rerun the same command to resume" in err
    time.sleep(3)  # the cluster is gone: nothing may finish a cell from now on
    finished = [c for c in cells if is_done(c)]
    first = {cell_dir(c): cell_dir(c).joinpath("manifest.json").stat().st_mtime_ns for c in finished}
    assert 1 <= len(finished) < len(cells)
    time.sleep(3)
    assert [c for c in cells if is_done(c)] == finished
    resumed_at = time.time()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        done = subprocess.run(args(cluster.scheduler_address), env=env, cwd=root.parent, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    assert all(is_done(c) for c in cells)
    assert {d: d.joinpath("manifest.json").stat().st_mtime_ns for d in first} == first, "finished cells kept"
    for c in cells:
        if cell_dir(c) not in first:
            started = json.loads(cell_dir(c).joinpath("manifest.json").read_text())["started"]
            assert datetime.fromisoformat(started).timestamp() >= resumed_at - 1, "made by the resumed run"
    summary = json.loads((root / "smoke" / "summary.json").read_text())
    assert all(f"{c.namespace}.final_return" in summary for c in cells)


def test_every_reward_model_has_a_sanity_verdict_for_every_method(smoke):
    """Part V covers every reward model the book trains: the models are read off the reward-model stages' own
    cells (maze regression, preference, Atari per game, score setting and seed), the verdicts off summary.json."""
    from rewinterp_utils.attribution import ATARI_METHODS, MAZE_METHODS

    _, summary = smoke
    expected = [f"maze.sanity.model{c.params['model_seed']}.{m}" for c in STAGES["maze_reward_model"].cells("smoke")
                for m in MAZE_METHODS]
    expected += [f"maze.sanity.pref_{c.params['variant']}.model{c.params['model_seed']}.{m}"
                 for c in STAGES["maze_pref_model"].cells("smoke") for m in MAZE_METHODS]
    expected += [f"atari.sanity.{c.params['game']}.{c.params['score']}.model{c.params['model_seed']}.{m}"
                 for c in STAGES["atari_reward_model"].cells("smoke") for m in ATARI_METHODS]
    assert len(expected) >= 2 * 3 + 3 * 3 + 8 * 4
    thresholds = {part: resolve(f"{part}_sanity", "smoke").threshold for part in ("maze", "atari")}
    for key in expected:
        final, threshold = summary[f"{key}.rank_corr_final"], thresholds[key.split(".")[0]]
        assert summary.get(f"{key}.verdict") == ("passes" if final < threshold else "fails"), (key, final)
    # the control that ignores the model: its maps are the same after randomisation (rank corr. 1), it fails
    for key in (k for k in expected if k.endswith(".edge")):
        assert summary[f"{key}.rank_corr_final"] == pytest.approx(1.0, abs=1e-9), key

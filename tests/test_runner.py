"""The runner survives what users do to it: Ctrl-C, wrong scheduler addresses, custom sizes, damaged executed
notebooks, two runs at once, stale temporaries and locks, and a book built before anything was run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import nbformat
import psutil
import pytest

from conftest import run_notebook
from rewinterp_utils.pipeline import runner
from rewinterp_utils.pipeline.artifacts import StoredCell, cell_dir, executed_path, hand_dir, is_done
from rewinterp_utils.pipeline.book import build_book
from rewinterp_utils.pipeline.scheduler import CONNECT_DEADLINE_S
from rewinterp_utils.pipeline.stages import STAGES, get_stage

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, "-m", "rewinterp_utils.pipeline.cli", "run", "--profile", "smoke"]


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "REWINTERP_ARTIFACTS": str(root)}


def processes_of(root: Path) -> list[psutil.Process]:
    """Live processes (workers, kernels) started for the artifact root ``root``."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get("REWINTERP_ARTIFACTS") == str(root):
                found.append(p)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def started_keys(stage_dir: Path) -> set[str]:
    """Keys of the cells of a stage that exist in any form: finished, running or abandoned, or whose worker process
    is already running (it writes its first file a moment after it starts)."""
    from rewinterp_utils.pipeline.stages import cell_of

    keys = {p.name.lstrip(".").split(".")[0] for p in stage_dir.iterdir()} if stage_dir.is_dir() else set()
    for proc in processes_of(stage_dir.parents[1]):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "rewinterp_utils.pipeline.worker" in cmd:
            cell = cell_of(cmd[cmd.index("rewinterp_utils.pipeline.worker") + 1])
            if cell.stage.name == stage_dir.name:
                keys.add(cell.key)
    return keys


# ------------------------------------------------------------------------------------------ kill -9 and Ctrl-C
def test_kill_9_then_ctrl_c_then_resume_gives_the_same_metrics(smoke, tmp_path, monkeypatch):
    """One artifact folder through what users do: ``kill -9`` of the runner alone (its workers and kernels must
    end by themselves, and every cell folder in place must hold its executed notebook), then Ctrl-C while the
    retraining cells run (exit 130 within 10 s, no new cell started, nothing left running), then the same command
    again, which finishes the chapter without redoing any finished cell. The folder starts as a copy of the
    session's smoke gridworld without its last three stages (a build reused, not made again); the cells so remade
    have every metric of the smoke build (same seeds, same numbers)."""
    root = tmp_path / "artifacts"
    remade = ("maze_sanity", "maze_retrain", "maze_figure3")
    for stage in STAGES.values():
        if stage.chapter == "gridworld" and stage.name not in remade:
            shutil.copytree(smoke[0] / "smoke" / stage.name, root / "smoke" / stage.name)
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(root))
    args = [*RUN, "--chapter", "gridworld", "--jobs", "2"]
    kept = {p: p.stat().st_mtime_ns for p in (root / "smoke").glob("*/*/manifest.json")}
    retrain = root / "smoke" / "maze_retrain"

    # kill -9 while the sanity checks run
    proc = subprocess.Popen(args, env=env_for(root), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((root / "smoke" / "maze_sanity").glob(".*.run-*.ipynb")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    time.sleep(2.5)  # workers notice their parent is gone within a second
    assert processes_of(root) == [], "no worker or kernel outlives a killed runner"
    for folder in (root / "smoke").glob("*/*-*"):
        if folder.is_dir() and not folder.name.startswith("."):
            assert (folder / "executed.ipynb").is_file(), f"{folder} was published without its notebook"

    # Ctrl-C
    proc = subprocess.Popen(args, env=env_for(root), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    while not list(retrain.glob(".*.run-*.ipynb")):  # retraining cells are being executed
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline
        time.sleep(0.05)
    before = started_keys(retrain)
    done_before = {p: p.stat().st_mtime_ns for p in (root / "smoke").glob("*/*/manifest.json")
                   if "reproducing" not in str(p)}
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 130, err[-3000:]
    assert elapsed < 10, elapsed
    assert "interrupted: rerun the same command to resume" in err
    assert "Traceback" not in err
    assert started_keys(retrain) <= before, "no cell started after the signal"
    assert not [c for c in STAGES["maze_figure3"].cells("smoke") if cell_dir(c).exists()]
    time.sleep(1.5)
    assert processes_of(root) == [], "workers and kernels are gone"

    # the rerun resumes: finished cells are kept, the rest is made
    done = subprocess.run(args, env=env_for(root), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in done_before} == done_before, "finished cells were not redone"
    assert {p: p.stat().st_mtime_ns for p in kept} == kept, "the copied build was reused"
    for stage in STAGES.values():
        if stage.chapter in ("gridworld", "book"):
            assert all(is_done(c) for c in stage.cells("smoke")), stage.name
    assert not list((root / "smoke").glob("*/.*")), "no temporaries of the interrupted runs are left"

    # same seeds, same metrics: every key the remade cells wrote, NaN equal to NaN (a standard deviation over one
    # seed)
    first = smoke[1]
    again = json.loads((root / "smoke" / "summary.json").read_text())
    keys = {f"{c.namespace}.{k}" for name in remade for c in STAGES[name].cells("smoke")
            for k in StoredCell(c).metrics}
    assert len(keys) > 20 and keys <= set(first) and keys <= set(again)
    differ = sorted(k for k in keys if json.dumps(first[k]) != json.dumps(again[k]))
    assert not differ, differ


# ------------------------------------------------------------------------------------------ scheduler addresses
@contextmanager
def server(kind: str):
    """A local server that is not a Dask scheduler: an HTTP server (says nothing until asked) or one that
    greets every connection with foreign bytes."""
    if kind == "http":
        httpd = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    else:
        class Junk(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.sendall(b"SSH-2.0-OpenSSH_9.2\r\n" + b"\xff" * 64)
                time.sleep(0.5)

        httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Junk)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["empty", "blank", "http", "junk", "closed", "scheme", "no-port"])
def test_a_scheduler_that_is_not_dask_exits_2_within_the_deadline(tmp_path, kind):
    root = tmp_path / "artifacts"

    def attempt(address: str) -> tuple[subprocess.CompletedProcess, float]:
        t0 = time.monotonic()
        done = subprocess.run([*RUN, "--chapter", "table1", "--scheduler", address], env=env_for(root),
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        return done, time.monotonic() - t0

    if kind in ("http", "junk"):
        with server(kind) as address:
            done, elapsed = attempt(address)
    else:
        address = {"empty": "", "blank": "  ", "closed": f"tcp://127.0.0.1:{free_port()}",
                   "scheme": "http://127.0.0.1:8787", "no-port": "tcp://127.0.0.1"}[kind]
        done, elapsed = attempt(address)
    assert done.returncode == 2, done.stderr[-2000:]
    assert elapsed < CONNECT_DEADLINE_S + 8  # the deadline plus starting Python
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and repr(address) in lines[0] and "check" in lines[0], done.stderr
    assert not root.exists()


# --------------------------------------------------------------------------------------- cells and their folders
def test_a_standalone_run_with_custom_sizes_leaves_the_profiles_cell_alone(smoke, tmp_path):
    root, _ = smoke
    profile_cell = get_stage("maze_expert").cell("smoke")
    stamp = cell_dir(profile_cell).joinpath("manifest.json").stat().st_mtime_ns
    out = tmp_path / "custom.ipynb"
    run_notebook(REPO / "notebooks" / "maze_expert.ipynb", out, {"profile": "smoke", "total_timesteps": 1536},
                 cwd=tmp_path)
    custom = get_stage("maze_expert").cell("smoke", total_timesteps=1536)
    assert hand_dir(custom) != cell_dir(profile_cell) and (hand_dir(custom) / "manifest.json").is_file()
    printed = "".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert str(hand_dir(custom)) in printed and "custom sizes" in printed, "the notebook says where its cell went"
    done = subprocess.run([*RUN, "--chapter", "gridworld"], env=env_for(root), cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert cell_dir(profile_cell).joinpath("manifest.json").stat().st_mtime_ns == stamp, "the profile's cell was kept"
    assert (hand_dir(custom) / "manifest.json").is_file(), "the hand run is kept"


def test_an_unreadable_executed_notebook_reruns_that_cell_only(smoke, tmp_path):
    """Only the damaged cell is remade (and the cells that read it, whose upstream changed)."""
    root, _ = smoke
    damaged = get_stage("maze_saliency").cell("smoke")
    executed_path(damaged).write_text("")
    readers = {s.name for s in STAGES.values() if "maze_saliency" in s.upstream}
    assert readers == {"maze_seeds"}
    others = {p: p.stat().st_mtime_ns for p in (root / "smoke").glob("maze_*/*/manifest.json")
              if p.parent != cell_dir(damaged) and p.parent.parent.name not in readers}
    done = subprocess.run([*RUN, "--chapter", "gridworld"], env=env_for(root), cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(executed_path(damaged)) in done.stderr and "rerunning" in done.stderr
    assert is_done(damaged)
    assert {p: p.stat().st_mtime_ns for p in others} == others


def test_done_means_the_manifest_records_the_executed_notebook(smoke):
    cell = get_stage("maze_counterfactuals").cell("smoke")
    manifest = json.loads((cell_dir(cell) / "manifest.json").read_text())
    assert "executed.ipynb" in manifest["files"] and executed_path(cell).is_file()
    assert "maze_counterfactuals" in executed_path(cell).read_text()
    assert not list(cell_dir(cell).parent.glob(".*")), "published in one step: no temporary left beside the cell"


# ---------------------------------------------------------------------------------------------- one at a time
def test_a_second_run_on_the_same_folder_is_refused_naming_the_first(smoke, tmp_path):
    root, _ = smoke
    with runner.run_lock("smoke"):
        done = subprocess.run([*RUN, "--chapter", "gridworld"], env=env_for(root), cwd=tmp_path,
                              capture_output=True, text=True)
    assert done.returncode == 75, done.stderr
    assert f"pid {os.getpid()}" in done.stderr and str(root / "smoke") in done.stderr


def test_a_dead_runners_lock_and_temporaries_are_taken_over(smoke, tmp_path):
    root, _ = smoke
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(root / 'smoke' / '.runner.lock')!r}, 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\nf.write('pid of a runner that died')\nf.flush()\n"
        "print('locked', flush=True)\ntime.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    stale = root / "smoke" / "maze_expert" / ".abc.tmp-deadbeef"
    stale.mkdir()
    (stale / "half.pt").write_bytes(b"x")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    done = subprocess.run([*RUN, "--chapter", "gridworld"], env=env_for(root), cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not stale.exists()


def test_book_checks_before_it_deletes_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "empty"))
    out = tmp_path / "book"
    (out / "src").mkdir(parents=True)
    (out / "src" / "keep.txt").write_text("an earlier build")
    with pytest.raises(FileNotFoundError, match="rewinterp run --profile smoke"):
        build_book("smoke", out=out)
    assert (out / "src" / "keep.txt").read_text() == "an earlier build"


def test_a_failing_stage_exits_1_keeps_its_notebook_and_leaves_no_stale_summary_keys(smoke, tmp_path, monkeypatch):
    """A reward-model cell that fails (its dataset is unreadable, though its manifest was made to agree):
    exit code 1 naming the failed notebook, which is kept, and summary.json no longer lists the stale keys
    of the cell it would have replaced, nor of the cells that read it."""
    import hashlib
    import shutil

    root = tmp_path / "artifacts"
    shutil.copytree(smoke[0], root)
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(root))
    assert "maze.rm.test_mse" in json.loads((root / "smoke" / "summary.json").read_text())
    dataset = get_stage("maze_dataset").cell("smoke")
    (cell_dir(dataset) / "train.npz").write_bytes(b"not a numpy archive")
    manifest = json.loads((cell_dir(dataset) / "manifest.json").read_text())
    manifest["files"]["train.npz"] = hashlib.sha256(b"not a numpy archive").hexdigest()
    (cell_dir(dataset) / "manifest.json").write_text(json.dumps(manifest))
    rm_cell = get_stage("maze_reward_model").cell("smoke")
    for cell in get_stage("maze_reward_model").cells("smoke"):  # every model seed reads the dataset
        shutil.rmtree(cell_dir(cell))
    done = subprocess.run([*RUN, "--chapter", "gridworld"], env=env_for(root), cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 1, done.stderr[-2000:]
    failed = cell_dir(rm_cell).with_name(cell_dir(rm_cell).name + ".failed.ipynb")
    assert str(failed) in done.stderr and failed.is_file()
    errors = [o for c in nbformat.read(failed, as_version=4).cells for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert errors, "the failed notebook holds the traceback"
    summary = json.loads((root / "smoke" / "summary.json").read_text())
    assert not [k for k in summary if k.startswith(("maze.rm.", "maze.saliency.", "maze.counterfactual."))]
    assert "maze.expert.success_rate" in summary

"""A notebook run alone (Colab, Jupyter, papermill) builds the upstream cells it reads: :func:`build_on_demand`.

Before it trains anything it unpacks ``$REWINTERP_BUNDLE`` when set (:mod:`~rewinterp_utils.pipeline.bundle`),
then lists the cells it will build (:func:`plan`) with the time each took in a measured build
(:data:`STAGE_SECONDS`, refreshed from a build's manifests by ``python -m rewinterp_utils.pipeline.on_demand
PROFILE``), and shows their progress, cell by cell, as they are made.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rewinterp_utils.pipeline.artifacts import (
    HANDOFF_ENV,
    RUNNER_ENV,
    ArtifactError,
    artifacts_root,
    cell_dir,
    find,
    is_complete,
    recorded_seconds,
    run_lock,
)
from rewinterp_utils.pipeline.worker import worker_command
from rewinterp_utils.pipeline.profiles import TYPICAL_CELL_S
from rewinterp_utils.pipeline.stages import STAGES, Cell

STAGE_SECONDS_FILE = Path(__file__).with_name("stage_seconds.json")
"""Seconds one cell of each stage took, per profile (the median over a build's cells), with the machine that
measured them: what a notebook run alone quotes before it builds."""
KEEP_ARTIFACTS = ("set REWINTERP_ARTIFACTS to a folder on a mounted drive to keep them across runtimes (Colab: "
                  "from google.colab import drive; drive.mount('/content/drive'); then os.environ"
                  "['REWINTERP_ARTIFACTS'] = '/content/drive/MyDrive/rewinterp' before the first import)")


def _table() -> dict:
    try:
        return json.loads(STAGE_SECONDS_FILE.read_text())
    except (OSError, ValueError):
        return {}


def stage_seconds(stage: str, profile: str) -> float:
    """Seconds one cell of ``stage`` takes at ``profile``: the longest here, else the measured table's, else the
    profile's typical cell (:data:`~rewinterp_utils.pipeline.profiles.TYPICAL_CELL_S`)."""
    here = recorded_seconds(stage, profile)
    if here:
        return here
    measured = _table().get(profile, {}).get("seconds", {}).get(stage)
    return float(measured) if measured else TYPICAL_CELL_S[profile]


def refresh_stage_seconds(profile: str, machine: str) -> dict[str, float]:
    """Rewrite :data:`STAGE_SECONDS_FILE`'s ``profile`` entry from the manifests of the build in the artifact
    store: per stage, the median ``elapsed_s`` of its cells; ``machine`` says where they were measured."""
    seconds = {}
    for name in STAGES:
        times = []
        for manifest in (artifacts_root() / profile / name).glob("*/manifest.json"):
            elapsed = json.loads(manifest.read_text()).get("elapsed_s")
            if elapsed is not None:
                times.append(float(elapsed))
        if times:
            seconds[name] = round(statistics.median(times), 1)
    if not seconds:
        raise ValueError(f"no cell of profile {profile!r} under {artifacts_root()}: build it first")
    table = _table()
    table[profile] = {"machine": machine, "seconds": seconds}
    STAGE_SECONDS_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    return seconds


def _reads(cell: Cell, upstream: Cell) -> bool:
    """Whether ``cell`` reads ``upstream`` (a cell of one of its upstream stages): they agree on every parameter
    both stages sweep (a Breakout model reads Breakout's dataset, not Seaquest's; Figure 5 reads every seed)."""
    shared = set(cell.stage.sweep) & set(upstream.stage.sweep)
    return all(cell.params.get(k) == upstream.params.get(k) for k in shared)


def plan(cell: Cell) -> list[Cell]:
    """The cells that building ``cell`` makes: it and every missing cell it reads, transitively, deepest first
    (each notebook builds what it reads, so this is the order they finish in). A cell a notebook run by hand made
    (:func:`~rewinterp_utils.pipeline.artifacts.find`) is not missing."""
    order: list[Cell] = []
    seen: set[tuple] = set()

    def visit(c: Cell) -> None:
        if c.key in seen or find(c) is not None:  # the runner's cell, or a hand run's, is there
            return
        seen.add(c.key)
        for name in c.stage.upstream:
            for up in STAGES[name].cells(c.profile):
                if _reads(c, up):
                    visit(up)
        order.append(c)

    visit(cell)
    return order


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def build_on_demand(cell: Cell) -> Path:
    """Make a missing upstream cell for a notebook run alone, as ``rewinterp run`` makes it: the same cell
    identity and folder, the run lock of the profile, the worker process with its watchdog and executed notebook.
    That cell's notebook builds what it reads in turn, so exactly the chain of :func:`plan` is made. First
    unpacks ``$REWINTERP_BUNDLE`` when set (nothing it holds is built), then lists the cells it will build with
    their measured times and where they go, and shows each as it is made. An ``ArtifactError`` naming the cell
    and its executed notebook if the build fails."""
    from tqdm import tqdm  # text bars: a widget bar would be a live widget under batch execution

    from rewinterp_utils.pipeline.bundle import unpack_from_env

    if unpack_from_env(cell.profile) and is_complete(cell):  # $REWINTERP_BUNDLE holds it: nothing to train
        return cell_dir(cell)
    todo = plan(cell)
    times = {c.key: stage_seconds(c.stage.name, c.profile) for c in todo}
    lines = "\n".join(f"  - {c.describe()} (about {_minutes(times[c.key])})" for c in todo)
    print(f"{cell.describe()} is missing at profile {cell.profile!r}: building it first, {len(todo)} cell(s), about "
          f"{_minutes(sum(times.values()))} on the machine that measured them (one at a time, in this order):\n"
          f"{lines}\nThey go to {artifacts_root() / cell.profile}; {KEEP_ARTIFACTS}.", flush=True)
    failed = cell_dir(cell).with_name(f"{cell_dir(cell).name}.failed.ipynb")
    workdir = artifacts_root() / cell.profile / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    log = tempfile.TemporaryFile(mode="w+")
    t0 = time.monotonic()
    with run_lock(cell.profile, nested=True), tqdm(total=len(todo), desc=f"building for {cell.stage.name}",
                                                   unit="cell", file=sys.stdout, mininterval=5) as bar:
        env = {k: v for k, v in os.environ.items() if k not in (HANDOFF_ENV, RUNNER_ENV)}
        proc = subprocess.Popen(worker_command(cell, workdir), env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        done: set[tuple] = set()
        while True:
            ended = proc.poll() is not None
            for c in todo:
                if c.key not in done and is_complete(c):
                    done.add(c.key)
                    bar.write(f"built {c.describe()} ({len(done)} of {len(todo)}, {time.monotonic() - t0:.0f} s "
                              "so far)")
                    bar.update(1)
            if ended:
                break
            time.sleep(1.0)
    log.seek(0)
    output = log.read()
    log.close()
    if proc.returncode or not is_complete(cell):
        raise ArtifactError(f"building upstream cell {cell.describe()} failed; its executed notebook: {failed}\n"
                            f"{output[-2000:]}")
    print(f"built {cell.describe()} and what it reads in {time.monotonic() - t0:.0f} s", flush=True)
    return cell_dir(cell)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m rewinterp_utils.pipeline.on_demand PROFILE 'MACHINE'")
    print(refresh_stage_seconds(sys.argv[1], sys.argv[2]))

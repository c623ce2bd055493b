"""``rewinterp run``: execute the stage notebooks' cells in dependency order, skip the done ones, build ``summary.json``.

* Cells of one stage run in parallel: locally ``jobs`` at a time, each in a worker process of its own
  (:mod:`~rewinterp_utils.pipeline.worker`), or as tasks of a Dask cluster (``scheduler``).
* A cell is done when its manifest verifies (:func:`~rewinterp_utils.pipeline.artifacts.verify`) and records its
  executed notebook; done cells are skipped, so a rerun resumes an interrupted run.
* Every code cell runs under the watchdog (:mod:`~rewinterp_utils.pipeline.watchdog`): one that stops answering
  is interrupted and its notebook rerun once with a fresh kernel; if it stops again the cell fails. A failed cell
  does not stop the others: the rest of its stage runs, stages that read a failed stage are skipped, every other
  stage runs, and :class:`StageFailed` names every failure at the end.
* Ctrl-C (SIGINT) or SIGTERM: no queued cell starts, running cells and their kernels are stopped (on a Dask
  cluster too), :class:`Interrupted` is raised within seconds; rerun the same command to resume.
* One run at a time per artifact folder and profile (:class:`RunnerBusy` names the running one); temporary
  files of runs that died are removed when the next one starts.
* ``summary.json`` is rebuilt after every stage (:mod:`~rewinterp_utils.pipeline.summary`).
* Where cells execute: :mod:`~rewinterp_utils.pipeline.backends`.
* ``cells``: the given cells instead of a chapter's sweep (``rewinterp audit`` runs one ``audit`` cell per model).
  Their notebooks build missing upstream cells on demand (:meth:`~rewinterp_utils.pipeline.session.StageRun.require`,
  under this run's lock); the first cell runs alone, so cells that read the same upstream cell do not build it
  twice at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from rewinterp_utils.pipeline.artifacts import (
    RUNNER_ENV,
    RunnerBusy,
    artifacts_root,
    cell_dir,
    done_reason,
    read_manifest,
    run_lock,
)
from rewinterp_utils.device import CORES_ENV, precision, torch_device
from rewinterp_utils.pipeline.backends import DaskBackend, LocalBackend
from rewinterp_utils.pipeline.scheduler import SchedulerUnreachable, connect
from rewinterp_utils.pipeline.stages import STAGES, Cell, Stage, check_chapter
from rewinterp_utils.pipeline.summary import stage_cells, write_summary
from rewinterp_utils.pipeline.watchdog import (
    CELL_TIMEOUT_ENV,
    IDLE_TIMEOUT_ENV,
    OPTION_OF_ENV,
    limits_from_env,
    positive_seconds,
)
from rewinterp_utils.pipeline.worker import failed_path

__all__ = ["Interrupted", "RunnerBusy", "SchedulerUnreachable", "StageFailed", "run"]


class StageFailed(RuntimeError):
    """A cell failed (its notebook raised, or a code cell stopped answering twice); the message names each failed
    cell's executed notebook and the stages skipped because they read a failed one."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM; finished cells are kept."""


def stages_for(chapters: Iterable[str]) -> list[Stage]:
    """The stages of ``chapters`` (and the book's own pages) in dependency order."""
    return [s for s in STAGES.values() if s.chapter in (*chapters, "book")]


# ------------------------------------------------------------------------------------------------ one run at a time
def remove_stale_temporaries(profile: str, before: float) -> list[Path]:
    """Delete temporary folders and files of earlier runs (modified before ``before``, a timestamp)."""
    import shutil

    removed = []
    for pattern in ("*/.*.tmp-*", "*/.*.old-*", "*/.*.run-*.ipynb", "*/.*.handoff-*.json"):
        for p in (artifacts_root() / profile).glob(pattern):
            if p.lstat().st_mtime < before:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
    return removed


# ----------------------------------------------------------------------------------------------- interrupts
@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (handlers restored after; main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in old:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _report_retries(cell: Cell) -> None:
    """Print the code cells the watchdog stopped before the cell's notebook succeeded (from its manifest)."""
    for s in read_manifest(cell_dir(cell)).get("watchdog", []):
        tqdm.write(f"watchdog: {cell.describe()}: code cell {s['code_cell']} (`{s['first_line']}`) stopped after "
                   f"{s['after_s']:.0f} s ({s['seen']}); the rerun with a fresh kernel succeeded", file=sys.stderr)


def _execute_cells(cells: list[Cell], backend: Any, stop: threading.Event, desc: str) -> list[tuple[Cell, str]]:
    """Run ``cells`` on ``backend``; returns the failures (the other cells go on after one). On ``stop``: nothing
    new starts, running cells are stopped, :class:`Interrupted`."""
    pending, running, failures = list(cells), {}, []
    with tqdm(total=len(cells), desc=desc, unit="cell", file=sys.stderr) as bar:
        while pending or running:
            if stop.is_set():
                backend.stop(list(running.values()))
                raise Interrupted
            while pending and len(running) < backend.jobs:
                cell = pending.pop(0)
                running[cell] = backend.start(cell)
            for cell, handle in list(running.items()):
                finished, error = backend.poll(handle)
                if finished:
                    del running[cell]
                    bar.update()
                    if error:
                        failures.append((cell, error))
                    elif cell_dir(cell).is_dir():
                        _report_retries(cell)
            stop.wait(0.2)
    return failures


def _watchdog_env(cell_timeout: float | None, idle_timeout: float | None) -> dict[str, str]:
    """The watchdog's limits for the workers: the options' values (validated), else the environment's
    (validated); ``ValueError`` naming the option or variable."""
    limits_from_env()
    env = {}
    for value, name in ((cell_timeout, CELL_TIMEOUT_ENV), (idle_timeout, IDLE_TIMEOUT_ENV)):
        if value is not None:
            env[name] = repr(positive_seconds(value, OPTION_OF_ENV[name]))
    return env


def _given_cells(cells: Sequence[Cell], profile: str) -> tuple[list[Stage], dict[str, list[Cell]]]:
    """The stages of ``cells`` in dependency order and their cells; ``ValueError`` for no cell, a cell that is
    not a :class:`Cell` or one of another profile."""
    cells = list(cells)
    if not cells or not all(isinstance(c, Cell) for c in cells):
        raise ValueError(f"cells must be a non-empty list of Cell, got {cells!r}")
    other = [c.describe() for c in cells if c.profile != profile]
    if other:
        raise ValueError(f"every cell must be of profile {profile!r}; {', '.join(other)} are not")
    stages = [s for s in STAGES.values() if any(c.stage.name == s.name for c in cells)]
    return stages, {s.name: list(dict.fromkeys(c for c in cells if c.stage.name == s.name)) for s in stages}


def run(profile: str, chapter: str = "all", force: bool = False, jobs: int | None = None,
        n_seeds: int | None = None, scheduler: str | None = None, cell_timeout: float | None = None,
        idle_timeout: float | None = None, cells: Sequence[Cell] | None = None) -> dict[str, Any]:
    """Run every cell of ``chapter`` at ``profile`` that is not done (or the given ``cells``, see the module
    docstring; ``chapter`` and ``n_seeds`` then do not apply); return the new summary.

    ``n_seeds`` overrides the profile's number of seeds of every sweep that has one; ``cell_timeout`` and
    ``idle_timeout`` (seconds) the watchdog's limits (:mod:`~rewinterp_utils.pipeline.watchdog`). Raises
    ``ValueError`` on bad input and :class:`SchedulerUnreachable` for a bad ``scheduler`` before anything is
    written, :class:`RunnerBusy`, :class:`StageFailed` (after every stage that could run has run) and
    :class:`Interrupted`.
    """
    if n_seeds is not None and (isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1):
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    watchdog_env = _watchdog_env(cell_timeout, idle_timeout)
    torch_device()  # REWINTERP_DEVICE: a bad name, or CUDA asked for where there is none, fails before anything
    precision()  # REWINTERP_PRECISION likewise: a bad name, or bf16 where the hardware lacks it
    chapters = check_chapter(chapter)
    sizes = {"n_seeds": n_seeds} if n_seeds is not None else {}
    if cells is None:
        stages = stages_for(chapters)
        grids = {s.name: stage_cells(s, profile, sizes) for s in stages}  # validates before anything is written
    else:
        chapters, sizes = check_chapter("all"), {}
        stages, grids = _given_cells(cells, profile)
    client = connect(scheduler) if scheduler is not None else None
    started = time.time()
    try:
        with run_lock(profile), stop_on_signals() as stop:
            remove_stale_temporaries(profile, before=started)
            root = artifacts_root()
            workdir = root / profile / "work"
            workdir.mkdir(parents=True, exist_ok=True)
            jobs = jobs or os.cpu_count() or 1
            # kernels inherit: one artifact root, their share of the cores (BLAS threads, and no env worker
            # processes beyond it), no progress bars
            cores = "1" if client else str(max(1, (os.cpu_count() or 1) // jobs))
            env = {"REWINTERP_ARTIFACTS": str(root), "TQDM_DISABLE": "1", "REWINTERP_BATCH": "1",
                   **({RUNNER_ENV: "1"} if cells is None else {}), **watchdog_env,
                   "OMP_NUM_THREADS": cores, CORES_ENV: cores}
            backend = DaskBackend(client, workdir, env) if client else LocalBackend(jobs, workdir, env)
            failed: set[Cell] = set()
            failures_all: list[tuple[Cell, str]] = []
            broken: dict[str, str] = {}  # stage -> why it did not complete (failed cells, or skipped)
            summary: dict[str, Any] = {}
            for s in stages:
                blocked = [u for u in s.upstream if u in broken]
                if blocked or (broken and s.chapter == "book"):
                    broken[s.name] = (f"skipped: it reads {', '.join(blocked)}, which did not complete" if blocked
                                      else "skipped: the book's pages report on a complete build")
                    print(f"{s.name}: {broken[s.name]}", file=sys.stderr)
                    continue
                todo = []
                for cell in grids[s.name]:
                    reason = None if force or s.always_run else done_reason(cell)
                    if force or s.always_run or reason:
                        todo.append(cell)
                        if reason and reason != "missing":
                            print(f"rerunning {cell.describe()}: {reason}", file=sys.stderr)
                t0 = time.perf_counter()
                desc = f"{s.name} ({len(grids[s.name]) - len(todo)} done)"
                if cells is None or not todo:
                    failures = _execute_cells(todo, backend, stop, desc)
                else:  # the first alone: it builds the upstream cells the others may read too
                    failures = _execute_cells(todo[:1], backend, stop, desc)
                    failures += _execute_cells(todo[1:], backend, stop, desc)
                failed |= {c for c, _ in failures}
                summary = write_summary(profile, chapters, sizes, exclude=failed)
                if failures:
                    broken[s.name] = f"{len(failures)} of {len(todo)} cell(s) failed"
                    failures_all += failures
                    print(f"{s.name}: {broken[s.name]}; the other stages go on", file=sys.stderr)
                elif todo:
                    print(f"{s.name}: {len(todo)} cell(s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            if failures_all:
                details = "\n".join(f"- {c.describe()}: executed notebook {failed_path(c)}\n{e[-2000:]}"
                                    for c, e in failures_all)
                stages_text = "; ".join(f"{name}: {why}" for name, why in broken.items())
                raise StageFailed(f"{len(failures_all)} cell(s) failed ({stages_text})\n{details}")
            return summary
    finally:
        if client is not None:
            client.close()

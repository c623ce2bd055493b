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
* ``summary.json`` is rebuilt after every stage from the cells of the current sweep whose artifacts verify:
  keys ``<namespace>.<local key>`` (see :mod:`~rewinterp_utils.pipeline.stages`), ``timing.<stage>_s`` (the cells'
  own times added up) and ``timing.<stage>_wall_s`` (first start to last end).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

from rewinterp_utils.pipeline.artifacts import (
    EXECUTED,
    ArtifactError,
    artifacts_root,
    is_complete,
    read_manifest,
    read_metrics,
    verify,
)
from rewinterp_utils.pipeline.scheduler import SchedulerUnreachable, connect
from rewinterp_utils.pipeline.stages import CHAPTERS, STAGES, Cell, Stage, check_chapter
from rewinterp_utils.pipeline.watchdog import (
    CELL_TIMEOUT_ENV,
    IDLE_TIMEOUT_ENV,
    OPTION_OF_ENV,
    limits_from_env,
    positive_seconds,
)
from rewinterp_utils.pipeline.worker import failed_path, run_subprocess, spec

__all__ = ["Interrupted", "RunnerBusy", "SchedulerUnreachable", "StageFailed", "is_done", "run", "stage_cells",
           "stage_timings", "verified_cells", "write_summary"]

STOP_GRACE_S = 4.0
"""Seconds a stopped cell gets to end before it is killed."""


class StageFailed(RuntimeError):
    """A cell failed (its notebook raised, or a code cell stopped answering twice); the message names each failed
    cell's executed notebook and the stages skipped because they read a failed one."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM; finished cells are kept."""


class RunnerBusy(RuntimeError):
    """Another ``rewinterp run`` holds this artifact folder and profile."""


def is_done(cell: Cell) -> bool:
    """Done: the manifest verifies and records the executed notebook (the runner made the cell)."""
    return done_reason(cell) is None


def done_reason(cell: Cell) -> str | None:
    """``None`` if the cell is done, else why not (``"missing"`` when nothing was ever made)."""
    if not cell.dir.exists():
        return "missing"
    try:
        folder = verify(cell)
    except ArtifactError as e:
        return str(e).split(": run `")[0]
    if EXECUTED not in read_manifest(folder).get("files", {}):
        return f"{folder} was made outside the runner (no executed notebook for the book)"
    return None


def stages_for(chapters: Iterable[str]) -> list[Stage]:
    """The stages of ``chapters`` (and the book's own pages) in dependency order."""
    return [s for s in STAGES.values() if s.chapter in (*chapters, "book")]


def stage_cells(stage: Stage, profile: str, sizes: dict[str, Any]) -> list[Cell]:
    """The stage's cells at ``profile``, with the size overrides of ``sizes`` that concern it."""
    return stage.cells(profile, **{k: v for k, v in sizes.items() if k in stage.accepts})


# ------------------------------------------------------------------------------------------------ one run at a time
@contextmanager
def run_lock(profile: str) -> Iterator[None]:
    """Hold ``<root>/<profile>/.runner.lock`` (``flock``: a dead holder's lock is free again) for the run."""
    import fcntl

    folder = artifacts_root() / profile
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".runner.lock"
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise RunnerBusy(f"another rewinterp run is using {folder} ({holder}); wait for it to end, or stop it "
                         f"(Ctrl-C or `kill -INT <pid>`), then rerun") from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}, started {datetime.now().isoformat(timespec='seconds')}: "
                f"{' '.join(sys.argv)}")
        f.flush()
        yield
    finally:
        f.seek(0)
        f.truncate()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


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


def _kill_tree(pid: int, grace_s: float) -> None:
    """SIGTERM a process and all its descendants (its notebook kernel), SIGKILL what is left after ``grace_s``."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=2)


# ------------------------------------------------------------------------------------------------ backends
class LocalBackend:
    """Each cell in a worker process on this machine, ``jobs`` at a time."""

    def __init__(self, jobs: int, workdir: Path, env: dict[str, str]) -> None:
        self.jobs, self.workdir, self.env = jobs, workdir, env

    def start(self, cell: Cell) -> Any:
        log = tempfile.TemporaryFile(mode="w+")
        proc = run_subprocess(cell, self.workdir, self.env, stderr=log)
        return proc, log

    def poll(self, handle: Any) -> tuple[bool, str]:
        """``(finished, error message or "")``."""
        proc, log = handle
        if proc.poll() is None:
            return False, ""
        log.seek(0)
        err = log.read() if proc.returncode else ""
        log.close()
        return True, err or (f"worker exited with code {proc.returncode}" if proc.returncode else "")

    def stop(self, handles: list[Any]) -> None:
        threads = [threading.Thread(target=_kill_tree, args=(h[0].pid, STOP_GRACE_S)) for h in handles]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class DaskBackend:
    """Each cell a task of a Dask cluster; the task runs the same worker process on a Dask worker."""

    def __init__(self, client: Any, workdir: Path, env: dict[str, str]) -> None:
        from distributed import Event

        self.client, self.workdir, self.env = client, workdir, env
        self.jobs = 1 << 30  # the cluster schedules
        self.event_name = f"rewinterp-stop-{uuid.uuid4().hex}"
        self.event = Event(self.event_name, client=client)

    def start(self, cell: Cell) -> Any:
        return self.client.submit(run_on_dask_worker, spec(cell), str(self.workdir), self.env, self.event_name,
                                  pure=False, key=f"{cell.stage.name}-{cell.key}-{uuid.uuid4().hex[:6]}")

    def poll(self, future: Any) -> tuple[bool, str]:
        if not future.done():
            return False, ""
        try:
            return True, future.result() or ""
        except Exception as e:  # noqa: BLE001 (a worker died, or the task was cancelled)
            return True, f"Dask task failed: {e!r}"

    def stop(self, futures: list[Any]) -> None:
        self.event.set()
        deadline = time.monotonic() + STOP_GRACE_S + 3
        while time.monotonic() < deadline and not all(f.done() for f in futures):
            time.sleep(0.1)
        self.client.cancel(futures, force=True)


def run_on_dask_worker(cell_spec: str, workdir: str, env: dict[str, str], event_name: str) -> str:
    """Dask task: run the worker process on one cell, stop it when the run's stop event is set.

    Returns ``""`` on success or the error text.
    """
    from distributed import Event, get_client

    from rewinterp_utils.pipeline.worker import cell_of

    event = Event(event_name, client=get_client())
    log = tempfile.TemporaryFile(mode="w+")
    proc = run_subprocess(cell_of(cell_spec), Path(workdir), env, stderr=log)
    while proc.poll() is None:
        if event.is_set():
            _kill_tree(proc.pid, STOP_GRACE_S)
            return "stopped by the runner"
        time.sleep(0.25)
    log.seek(0)
    return log.read() or f"worker exited with code {proc.returncode}" if proc.returncode else ""


def _report_retries(cell: Cell) -> None:
    """Print the code cells the watchdog stopped before the cell's notebook succeeded (from its manifest)."""
    for s in read_manifest(cell.dir).get("watchdog", []):
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
                    elif cell.dir.is_dir():
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


def run(profile: str, chapter: str = "all", force: bool = False, jobs: int | None = None,
        n_seeds: int | None = None, scheduler: str | None = None, cell_timeout: float | None = None,
        idle_timeout: float | None = None) -> dict[str, Any]:
    """Run every cell of ``chapter`` at ``profile`` that is not done; return the new summary.

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
    chapters = check_chapter(chapter)
    sizes = {"n_seeds": n_seeds} if n_seeds is not None else {}
    stages = stages_for(chapters)
    grids = {s.name: stage_cells(s, profile, sizes) for s in stages}  # validates before anything is written
    client = connect(scheduler) if scheduler is not None else None
    started = time.time()
    try:
        with run_lock(profile), stop_on_signals() as stop:
            remove_stale_temporaries(profile, before=started)
            root = artifacts_root()
            workdir = root / profile / "work"
            workdir.mkdir(parents=True, exist_ok=True)
            jobs = jobs or os.cpu_count() or 1
            # kernels inherit: one artifact root, one BLAS thread per parallel job, no progress bars
            env = {"REWINTERP_ARTIFACTS": str(root), "TQDM_DISABLE": "1", "REWINTERP_BATCH": "1", **watchdog_env,
                   "OMP_NUM_THREADS": "1" if client else str(max(1, (os.cpu_count() or 1) // jobs))}
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
                failures = _execute_cells(todo, backend, stop, f"{s.name} ({len(grids[s.name]) - len(todo)} done)")
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


def _timings(cells: list[Cell]) -> dict[str, float | None]:
    """Seconds measured inside the cells added up, and wall seconds: the length of the union of the cells' run
    intervals (cells that ran in parallel count once; a stage whose cells ran in several runs adds the runs up)."""
    total, spans = 0.0, []
    for cell in cells:
        manifest = read_manifest(cell.dir)
        total += float(manifest.get("elapsed_s", 0.0))
        if manifest.get("started") and manifest.get("finished"):
            spans.append((datetime.fromisoformat(manifest["started"]), datetime.fromisoformat(manifest["finished"])))
    wall, end = 0.0, None
    for start, finish in sorted(spans):
        if end is None or start > end:
            wall += (finish - start).total_seconds()
            end = finish
        elif finish > end:
            wall += (finish - end).total_seconds()
            end = finish
    return {"cells_s": round(total, 2), "wall_s": round(wall, 2) if spans else None}


def verified_cells(profile: str, chapters: Iterable[str] = CHAPTERS, sizes: dict[str, Any] | None = None,
                   exclude: Iterable[Cell] = ()) -> dict[str, list[Cell]]:
    """Per stage, the cells of the current sweep whose artifacts verify (``sizes`` apply to ``chapters``; other
    chapters at the profile's sizes), leaving out ``exclude``."""
    chapters, exclude = tuple(chapters), set(exclude)
    out = {}
    for s in STAGES.values():
        own = (sizes or {}) if s.chapter in chapters else {}
        out[s.name] = [c for c in stage_cells(s, profile, own) if c not in exclude and is_complete(c)]
    return out


def stage_timings(profile: str, **kwargs: Any) -> dict[str, dict[str, float | None]]:
    """Per stage with a finished cell: ``cells_s`` (the cells' own times added up) and ``wall_s`` (the first
    cell's start to the last one's end). ``kwargs`` as for :func:`verified_cells`."""
    return {name: _timings(cells) for name, cells in verified_cells(profile, **kwargs).items() if cells}


def write_summary(profile: str, chapters: Iterable[str] = CHAPTERS, sizes: dict[str, Any] | None = None,
                  exclude: Iterable[Cell] = ()) -> dict[str, Any]:
    """Rebuild ``<root>/<profile>/summary.json`` from :func:`verified_cells` (same arguments).

    Nothing of an older summary survives: a key is there only if a verified cell of the sweep wrote it.
    """
    cells = verified_cells(profile, chapters, sizes, exclude)
    summary: dict[str, Any] = {}
    for name, stage_cells_ in cells.items():
        for cell in stage_cells_:
            prefix = f"{cell.namespace}." if cell.namespace else ""
            for key, value in read_metrics(cell.dir).items():
                if prefix + key in summary:
                    raise RuntimeError(f"summary key {prefix + key!r} written twice (by {cell.describe()})")
                summary[prefix + key] = value
        if stage_cells_:
            timing = _timings(stage_cells_)
            summary[f"timing.{name}_s"] = timing["cells_s"]
            if timing["wall_s"] is not None:
                summary[f"timing.{name}_wall_s"] = timing["wall_s"]
    path = artifacts_root() / profile / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    tmp.replace(path)
    return summary

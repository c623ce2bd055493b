"""Execute stage notebooks with papermill in dependency order, merge their metrics, build the book."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any, Iterable

from tqdm.auto import tqdm

from rewinterp_utils.artifacts import artifacts_root, cell_dir, identity, is_complete, read_metrics
from rewinterp_utils.book import plain_glue_reprs
from rewinterp_utils.stages import STAGES, Stage, check_chapter

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


class StageFailed(RuntimeError):
    """A stage notebook raised; the message names the executed notebook that holds the traceback."""


class SchedulerUnreachable(ConnectionError):
    """The Dask scheduler given to :func:`run` did not answer."""


def connect(scheduler: str, timeout_s: float = 5.0) -> Any:
    """A ``dask.distributed.Client`` on ``scheduler`` (e.g. ``tcp://10.0.0.5:8786``), or
    :class:`SchedulerUnreachable` after ``timeout_s`` seconds.

    The workers must import this package (same environment) and see the repository and the artifact root
    at the same paths (a shared file system), since each cell is a papermill run on a worker.
    """
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise SchedulerUnreachable(f"cannot reach the Dask scheduler at {scheduler!r} within {timeout_s:g} s: {e}") from e


def executed_path(stage: Stage, profile: str, cell: dict[str, Any]) -> Path:
    """Where the runner keeps the executed copy of one cell's notebook."""
    ident = identity(stage.name, profile, **cell)
    return artifacts_root() / profile / "executed" / stage.name / f"{stage.key(ident)}.ipynb"


def is_done(stage: Stage, profile: str, cell: dict[str, Any]) -> bool:
    """A cell is done when its artifacts verify for identical parameters and its executed notebook exists."""
    return is_complete(identity(stage.name, profile, **cell)) and executed_path(stage, profile, cell).is_file()


def _execute(stage: Stage, profile: str, cell: dict[str, Any], workdir: Path, env: dict[str, str]) -> Path:
    import papermill as pm

    os.environ.update(env)  # the kernel inherits it (matters on a Dask worker, a process of its own)
    out = executed_path(stage, profile, cell)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.ipynb")
    try:
        pm.execute_notebook(str(NOTEBOOKS / f"{stage.name}.ipynb"), str(tmp), parameters={"profile": profile, **cell},
                            cwd=str(workdir), progress_bar=False, kernel_name="python3")
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
        failed = out.with_name(f"{out.stem}.failed.ipynb")
        if tmp.exists():
            tmp.replace(failed)
        raise StageFailed(f"{stage.name} {cell or ''} failed; executed notebook: {failed}\n{e}") from e
    tmp.replace(out)
    return out


def stages_for(chapters: Iterable[str]) -> list[Stage]:
    """The stages of ``chapters`` in dependency order (the order of ``STAGES``)."""
    return [s for s in STAGES.values() if s.chapter in (*chapters, "book")]


def run(profile: str, chapter: str = "all", force: bool = False, jobs: int | None = None,
        n_seeds: int | None = None, scheduler: str | None = None) -> dict[str, Any]:
    """Run every stage cell of ``chapter`` at ``profile`` not already done; return the merged summary.

    Cells of one stage run in parallel: locally ``jobs`` at a time (default: one per CPU core), or, given a
    Dask ``scheduler`` address, as tasks of that cluster (see :func:`connect`). Finished cells are never rerun
    (unless ``force``), so an interrupted sweep resumes where it stopped.
    """
    stages = stages_for(check_chapter(chapter))
    jobs = jobs or os.cpu_count() or 1
    grids = {s.name: s.grid(profile, n_seeds) for s in stages}  # validates before anything runs
    for s in stages:
        for cell in grids[s.name]:
            identity(s.name, profile, **cell)
    client = connect(scheduler) if scheduler else None  # fails fast, before anything is written
    root = artifacts_root()
    workdir = root / profile / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    # Kernels inherit this environment: one artifact root, one BLAS thread per parallel job, no bars.
    env = {"REWINTERP_ARTIFACTS": str(root), "TQDM_DISABLE": "1",
           "OMP_NUM_THREADS": "1" if scheduler else str(max(1, (os.cpu_count() or 1) // jobs))}
    os.environ.update(env)
    try:
        for s in stages:
            _run_stage(s, profile, grids[s.name], force, jobs, workdir, env, client)
            summary = write_summary(profile, stages[: stages.index(s) + 1], grids)  # later stages may read it
    finally:
        if client is not None:
            client.close()
    return summary


def _run_stage(s: Stage, profile: str, cells: list[dict[str, Any]], force: bool, jobs: int, workdir: Path,
               env: dict[str, str], client: Any) -> None:
    """Execute the cells of one stage that are not done, in parallel (threads here, or the Dask ``client``)."""
    todo = [c for c in cells if force or s.always_run or not is_done(s, profile, c)]
    t0 = time.perf_counter()
    with ExitStack() as stack, tqdm(total=len(todo), desc=f"{s.name} ({len(cells) - len(todo)} up to date)",
                                    unit="cell", file=sys.stderr) as bar:
        if client is not None:
            submit = partial(client.submit, pure=False)
        else:
            submit = stack.enter_context(ThreadPoolExecutor(max_workers=min(jobs, max(1, len(todo))))).submit
        for f in [submit(_execute, s, profile, c, workdir, env) for c in todo]:
            f.result()
            bar.update()
    if todo:
        print(f"{s.name}: {len(todo)} cell(s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def stage_wall_time(stage: Stage, profile: str, cells: list[dict[str, Any]]) -> float | None:
    """Wall seconds from the first cell's start to the last cell's end (papermill's notebook metadata)."""
    import nbformat
    from datetime import datetime

    spans = []
    for cell in cells:
        path = executed_path(stage, profile, cell)
        if path.is_file():
            meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
            if meta.get("start_time") and meta.get("end_time"):
                spans.append((datetime.fromisoformat(meta["start_time"]), datetime.fromisoformat(meta["end_time"])))
    if not spans:
        return None
    return round((max(e for _, e in spans) - min(s for s, _ in spans)).total_seconds(), 2)


def write_summary(profile: str, stages: list[Stage], grids: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Merge every cell's ``metrics.json`` into ``<root>/<profile>/summary.json`` (flat keys).

    ``timing.<stage>_s`` adds up the time measured inside each cell's notebook; ``timing.<stage>_wall_s`` is the
    wall time from the stage's first cell's start to its last cell's end (cells run in parallel).
    """
    summary: dict[str, Any] = {}
    for s in stages:
        total = 0.0
        for cell in grids[s.name]:
            for key, value in read_metrics(cell_dir(identity(s.name, profile, **cell))).items():
                if key.startswith(f"timing.{s.name}."):
                    total += value
                    continue
                if key in summary and summary[key] != value:
                    raise RuntimeError(f"metric {key!r} written by two cells with different values")
                summary[key] = value
        summary[f"timing.{s.name}_s"] = round(total, 2)
        wall = stage_wall_time(s, profile, grids[s.name])
        if wall is not None:
            summary[f"timing.{s.name}_wall_s"] = wall
    path = artifacts_root() / profile / "summary.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    merged = {**old, **summary}
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(merged, indent=1, sort_keys=True))
    tmp.replace(path)
    return merged


def book_sources(profile: str, dest: Path) -> Path:
    """Assemble the book's source tree: config, toc, prose chapters and the executed notebooks."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "book", dest / "book")
    (dest / "notebooks").mkdir()
    missing = []
    for s in STAGES.values():
        for page, cell in s.pages(profile).items():
            nb = executed_path(s, profile, cell)
            if nb.is_file():
                shutil.copy(nb, dest / "notebooks" / f"{page}.ipynb")
                plain_glue_reprs(dest / "notebooks" / f"{page}.ipynb")
            else:
                missing.append(page)
    if missing:
        raise FileNotFoundError(f"no executed notebook for {', '.join(missing)} at profile {profile!r}: "
                                f"run `rewinterp run --profile {profile}` first")
    summary = artifacts_root() / profile / "summary.json"
    if summary.is_file():
        shutil.copy(summary, dest / "book" / "summary.json")
    return dest


def build_book(profile: str, out: Path | None = None, strict: bool = True) -> Path:
    """Build the HTML book from the executed notebooks of ``profile``; returns the HTML folder."""
    out = (out or REPO / "_build" / profile).resolve()
    src = book_sources(profile, out / "src")
    # jupyter-book 1.x has no ``python -m jupyter_book``; call its CLI in this interpreter (no PATH lookup)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())", "build",
           str(src), "--builder", "html", "--path-output", str(out)]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    subprocess.run(cmd, check=True)
    return out / "_build" / "html"

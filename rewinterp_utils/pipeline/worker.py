"""Execute one cell's notebook with papermill and publish it: ``python -m rewinterp_utils.pipeline.worker SPEC``.

The runner starts one such process per cell (locally, or from a Dask task), in a process group of its own, so
that it can stop the cell and its kernel at once. ``SPEC`` is JSON: ``{"stage", "profile", "params"}``.
The notebook runs under the watchdog (:mod:`~rewinterp_utils.pipeline.watchdog`): a code cell that stops
answering is interrupted and the notebook rerun once with a fresh kernel (the manifest's ``watchdog`` entry
records it). The notebook's ``run.finish`` leaves its finished temporary folder to this process
(:data:`HANDOFF_ENV`), which adds the executed notebook and renames the folder into place in one step. On failure
the executed notebook is kept next to the cell's folder as ``<key>.failed.ipynb`` and the exit code is 1
(:data:`EXIT_HUNG` when a code cell stopped answering on both attempts).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from rewinterp_utils.pipeline.artifacts import HANDOFF_ENV, cell_dir, publish
from rewinterp_utils.pipeline.stages import Cell, cell_of, notebooks_dir
from rewinterp_utils.pipeline.watchdog import CellHung, Stop, execute_watched, limits_for, stops_record

EXIT_FAILED, EXIT_HUNG = 1, 3


def failed_path(cell: Cell) -> Path:
    """Where a failed cell's executed notebook (with the traceback) is kept."""
    return cell_dir(cell).with_name(f"{cell_dir(cell).name}.failed.ipynb")


class CellFailed(RuntimeError):
    """The cell's notebook raised, or a code cell stopped answering on every attempt (``hung``)."""

    def __init__(self, message: str, hung: bool) -> None:
        super().__init__(message)
        self.hung = hung


def _discard_attempt(cell: Cell, handoff: Path) -> None:
    """Remove what a stopped attempt left: its hand-off file and the cell's temporary folders."""
    if handoff.is_file():
        shutil.rmtree(json.loads(handoff.read_text())["tmp"], ignore_errors=True)
    handoff.unlink(missing_ok=True)
    for tmp in cell_dir(cell).parent.glob(f".{cell_dir(cell).name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def execute(cell: Cell, workdir: Path) -> Path:
    """Run the cell's notebook under the watchdog and publish the cell; :class:`CellFailed` naming the failed
    notebook if it raised or stopped answering twice."""
    stage_dir = cell_dir(cell).parent
    stage_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    out = stage_dir / f".{cell.key}.run-{token}.ipynb"
    handoff = stage_dir / f".{cell.key}.handoff-{token}.json"
    os.environ[HANDOFF_ENV] = str(handoff)
    params = {"profile": cell.profile, **{k: v for k, v in cell.params.items() if v is not None}}

    def before_retry(stop: Stop) -> None:
        print(f"watchdog: {cell.describe()}: {stop.describe()}; rerunning the notebook with a fresh kernel",
              file=sys.stderr, flush=True)
        _discard_attempt(cell, handoff)

    try:
        stops = execute_watched(notebooks_dir() / f"{cell.stage.name}.ipynb", out, limits_for(cell), params,
                                cwd=workdir, before_retry=before_retry)
        if not handoff.is_file():
            raise RuntimeError(f"notebooks/{cell.stage.name}.ipynb ended without calling run.finish(metrics)")
        publish(Path(json.loads(handoff.read_text())["tmp"]), cell_dir(cell), executed=out,
                record={"watchdog": stops_record(stops)} if stops else None)
        return cell_dir(cell)
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
        failed = failed_path(cell)
        if out.exists():
            out.replace(failed)
        _discard_attempt(cell, handoff)
        raise CellFailed(f"{cell.describe()} failed; executed notebook: {failed}\n{e}",
                         hung=isinstance(e, CellHung)) from e
    finally:
        out.unlink(missing_ok=True)
        handoff.unlink(missing_ok=True)


def _end_with_parent(parent: int) -> None:
    """Exit (kernel included) once the process that started this one is gone: a runner killed with ``kill -9``
    or a Dask worker that died leaves no cell running on its own."""
    import threading
    import time

    import psutil

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        os._exit(EXIT_FAILED)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    _end_with_parent(os.getppid())
    args = sys.argv[1:] if argv is None else argv
    cell = cell_of(args[0])
    workdir = Path(args[1]) if len(args) > 1 else Path.cwd()
    try:
        execute(cell, workdir)
    except CellFailed as e:
        print(str(e)[-4000:], file=sys.stderr)
        return EXIT_HUNG if e.hung else EXIT_FAILED
    return 0


def worker_command(cell: Cell, workdir: Path) -> list[str]:
    """The command that executes ``cell``'s notebook in ``workdir`` and publishes the cell (this interpreter):
    the runner's backends start it through :func:`run_subprocess`, a notebook's on-demand build directly."""
    return [sys.executable, "-m", "rewinterp_utils.pipeline.worker", cell.spec(), str(workdir)]


def run_subprocess(cell: Cell, workdir: Path, env: dict[str, str], stderr: Any) -> Any:
    """Start this module on ``cell`` as a child process in a new session (Ctrl-C reaches only the runner);
    its error output goes to the file ``stderr``."""
    import subprocess

    return subprocess.Popen(worker_command(cell, workdir), env={**os.environ, **env}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True)


if __name__ == "__main__":
    sys.exit(main())

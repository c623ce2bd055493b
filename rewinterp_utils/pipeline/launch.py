"""The worker's command line, in one place: the runner's backends start a worker with it
(:func:`worker.run_subprocess <rewinterp_utils.pipeline.worker.run_subprocess>`, locally or from a Dask task), and so
does a notebook's on-demand build (:func:`~rewinterp_utils.pipeline.on_demand.build_on_demand`).

A module of its own because the worker imports the artifact store, which starts workers for on-demand builds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rewinterp_utils.pipeline.stages import Cell

WORKER_MODULE = "rewinterp_utils.pipeline.worker"


def worker_command(cell: Cell, workdir: Path) -> list[str]:
    """The command that executes ``cell``'s notebook in ``workdir`` and publishes the cell (this interpreter)."""
    return [sys.executable, "-m", WORKER_MODULE, cell.spec(), str(workdir)]

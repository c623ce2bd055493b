"""Where the runner's cells execute: :class:`LocalBackend` (a worker process per cell on this machine) or
:class:`DaskBackend` (a task per cell on a Dask cluster). Both run the same worker process
(:mod:`~rewinterp_utils.pipeline.worker`) and stop it with its kernel (:func:`kill_tree`).

A backend has ``jobs`` (cells at once), ``start(cell) -> handle``, ``poll(handle) -> (finished, error text)``
and ``stop(handles)``.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from rewinterp_utils.pipeline.stages import Cell, cell_of
from rewinterp_utils.pipeline.worker import run_subprocess

STOP_GRACE_S = 4.0
"""Seconds a stopped cell gets to end before it is killed."""


def kill_tree(pid: int, grace_s: float) -> None:
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
        threads = [threading.Thread(target=kill_tree, args=(h[0].pid, STOP_GRACE_S)) for h in handles]
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
        return self.client.submit(run_on_dask_worker, cell.spec(), str(self.workdir), self.env, self.event_name,
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

    event = Event(event_name, client=get_client())
    log = tempfile.TemporaryFile(mode="w+")
    proc = run_subprocess(cell_of(cell_spec), Path(workdir), env, stderr=log)
    while proc.poll() is None:
        if event.is_set():
            kill_tree(proc.pid, STOP_GRACE_S)
            return "stopped by the runner"
        time.sleep(0.25)
    log.seek(0)
    return log.read() or f"worker exited with code {proc.returncode}" if proc.returncode else ""

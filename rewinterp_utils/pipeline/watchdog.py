"""A watchdog on every code cell a notebook runs under papermill: nothing the pipeline or the tests execute can hang.

A kernel driven by nbclient can stop answering for good: the cell's work is done, the kernel is idle, and the
execute reply never reaches the client (jupyter/nbclient#312), so papermill waits forever with nothing printed.
:func:`execute_watched` runs a notebook with papermill and watches each code cell from a thread of its own:

* **idle without a reply**: the kernel and its child processes use no CPU for ``idle_s`` seconds while the cell
  has not answered;
* **past its limit**: the cell runs longer than ``cell_s`` seconds.

Either way the kernel is interrupted (SIGINT, then killed after :data:`KILL_GRACE_S`), and the whole notebook is
run again once with a fresh kernel. If a cell stops again, :class:`CellHung` names the notebook, the code cell
that stopped each time (its number among the executed notebook's code cells and its first line) and what was seen.
A notebook that raises an ordinary error is not retried: that error propagates unchanged.

The limits (:func:`limits_for`): ``idle_s`` is :data:`IDLE_LIMIT_S`; ``cell_s`` is
:data:`CELL_LIMIT_FACTOR` times the longest time any cell of the same stage and profile took before, at least
:data:`CELL_LIMIT_FLOOR_S`, or :data:`FIRST_RUN_LIMIT_S` of the profile when the stage has never run there.
``rewinterp run --cell-timeout S --idle-timeout S`` (or ``REWINTERP_CELL_TIMEOUT`` / ``REWINTERP_IDLE_TIMEOUT``)
set them by hand.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from rewinterp_utils.pipeline.artifacts import recorded_seconds

if TYPE_CHECKING:
    from rewinterp_utils.pipeline.stages import Cell

CELL_TIMEOUT_ENV, IDLE_TIMEOUT_ENV = "REWINTERP_CELL_TIMEOUT", "REWINTERP_IDLE_TIMEOUT"
OPTION_OF_ENV = {CELL_TIMEOUT_ENV: "--cell-timeout", IDLE_TIMEOUT_ENV: "--idle-timeout"}

IDLE_LIMIT_S = 120.0
"""Seconds a kernel may sit without using CPU while a cell waits for its reply (no notebook of the book waits
on anything but its own computation)."""
CELL_LIMIT_FACTOR = 4.0
"""A code cell may run this many times the longest recorded time of a whole cell of its stage..."""
CELL_LIMIT_FLOOR_S = 600.0
"""...but never less than this many seconds."""
FIRST_RUN_LIMIT_S: Mapping[str, float] = {"smoke": 1_800.0, "default": 4 * 3_600.0, "paper": 72 * 3_600.0}
"""The limit of a code cell of a stage that has never run at this profile."""
RETRIES = 1
"""Fresh-kernel reruns of a notebook after a cell stopped answering."""
KILL_GRACE_S = 3.0
"""Seconds between the interrupt (SIGINT) and killing the kernel."""
CPU_EPS_S = 0.05
"""CPU seconds per poll below which the kernel counts as idle (an idle ipykernel uses about a thousandth)."""


@dataclass(frozen=True)
class Limits:
    """How long a code cell may run, and how long its kernel may sit idle without answering."""

    cell_s: float  #: seconds one code cell may run
    idle_s: float = IDLE_LIMIT_S  #: seconds the kernel may use no CPU while the cell has not answered
    poll_s: float = 1.0  #: seconds between two looks


@dataclass(frozen=True)
class Stop:
    """What the watchdog saw when it stopped a code cell."""

    code_cell: int  #: number of the cell among the executed notebook's code cells (1 = the first)
    first_line: str  #: the cell's first line of code
    seen: str  #: what was seen, e.g. "the kernel used no CPU for 120 s and sent no reply"
    after_s: float  #: seconds the cell had run

    def describe(self) -> str:
        return f"code cell {self.code_cell} (`{self.first_line}`) after {self.after_s:.0f} s: {self.seen}"


class CellHung(RuntimeError):
    """A code cell stopped answering, and again after the fresh-kernel rerun."""

    def __init__(self, notebook: str, stops: list[Stop]) -> None:
        self.notebook, self.stops = notebook, stops
        attempts = "; ".join(f"attempt {i + 1}: {s.describe()}" for i, s in enumerate(stops))
        reruns = {1: "no rerun", 2: "one rerun with a fresh kernel"}.get(len(stops), f"{len(stops) - 1} reruns")
        super().__init__(f"{notebook}: a code cell stopped answering on every attempt (the kernel was interrupted; "
                         f"{reruns}); {attempts}")


# --------------------------------------------------------------------------------------------------- limits
def positive_seconds(text: str | float, name: str) -> float:
    """``text`` as a positive finite number of seconds, or ``ValueError`` naming ``name`` (an option or variable)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds, got {text!r}")
    return value


def limits_from_env() -> dict[str, float]:
    """The limits set by ``REWINTERP_CELL_TIMEOUT`` / ``REWINTERP_IDLE_TIMEOUT`` (validated; unset ones left out)."""
    out = {}
    for env, field in ((CELL_TIMEOUT_ENV, "cell_s"), (IDLE_TIMEOUT_ENV, "idle_s")):
        text = os.environ.get(env)
        if text is not None and text.strip():
            out[field] = positive_seconds(text, env)
    return out


def limits_for(cell: "Cell") -> Limits:
    """The limits of ``cell``'s code cells (the rule is in the module docstring); the environment's win."""
    recorded = recorded_seconds(cell.stage.name, cell.profile)
    cell_s = (FIRST_RUN_LIMIT_S[cell.profile] if recorded is None
              else max(CELL_LIMIT_FLOOR_S, CELL_LIMIT_FACTOR * recorded))
    return replace(Limits(cell_s=cell_s), **limits_from_env())


# ------------------------------------------------------------------------------------------------- watching
def _kernel_process(started: float) -> Any:
    """The newest ipykernel child of this process started after ``started`` (``None`` if there is none)."""
    import psutil

    found = None
    for child in psutil.Process().children():
        try:
            if child.create_time() >= started - 1 and "ipykernel" in " ".join(child.cmdline()):
                if found is None or child.create_time() > found.create_time():
                    found = child
        except psutil.Error:
            continue
    return found


def _cpu_seconds(proc: Any) -> tuple[float, frozenset[int]]:
    """CPU seconds used by ``proc`` and its descendants, and their pids."""
    import psutil

    total, pids = 0.0, set()
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0, frozenset()
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
            pids.add(p.pid)
        except psutil.Error:
            continue
    return total, frozenset(pids)


class Watchdog:
    """nbclient hooks and a thread that stop a code cell seen idle without a reply, or running past its limit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.stop: Stop | None = None
        self._started = time.time()
        self._cells: list[Any] = []
        self._current: tuple[int, str, float] | None = None  # code cell number, first line, start (monotonic)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="rewinterp-watchdog", daemon=True)

    # nbclient hooks (papermill passes them through to the client)
    def hooks(self) -> dict[str, Callable[..., None]]:
        return {"on_notebook_start": self._notebook_start, "on_cell_execute": self._cell_execute,
                "on_cell_executed": self._cell_executed}

    def _notebook_start(self, notebook: Any) -> None:
        self._cells = list(notebook.cells)

    def _cell_execute(self, cell: Any, cell_index: int) -> None:
        number = sum(c.cell_type == "code" for c in self._cells[:cell_index + 1]) if self._cells else cell_index + 1
        lines = [line for line in cell.source.splitlines() if line.strip()]
        with self._lock:
            self._current = (number, (lines[0].strip() if lines else "")[:80], time.monotonic())

    def _cell_executed(self, cell: Any, cell_index: int, execute_reply: Any) -> None:
        with self._lock:
            self._current = None

    # the thread
    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=KILL_GRACE_S + 5)

    def _watch(self) -> None:
        kernel, last = None, None
        last_busy = time.monotonic()
        watched: tuple[int, str, float] | None = None
        while not self._done.wait(self.limits.poll_s):
            with self._lock:
                current = self._current
            now = time.monotonic()
            if current is None:
                watched = None
                continue
            if current is not watched:  # a new cell: its idle clock starts now
                watched, last_busy = current, now
            if kernel is None:
                kernel = _kernel_process(self._started)
            usage = _cpu_seconds(kernel) if kernel is not None else None
            if usage is not None and (last is None or abs(usage[0] - last[0]) > CPU_EPS_S or usage[1] != last[1]):
                last_busy = now
            last = usage
            number, first_line, start = current
            if now - last_busy >= self.limits.idle_s:
                seen = (f"the kernel used no CPU for {now - last_busy:.0f} s and sent no reply (limit "
                        f"{self.limits.idle_s:g} s, {OPTION_OF_ENV[IDLE_TIMEOUT_ENV]})")
            elif now - start >= self.limits.cell_s:
                seen = f"it ran past its limit of {self.limits.cell_s:g} s ({OPTION_OF_ENV[CELL_TIMEOUT_ENV]})"
            else:
                continue
            self.stop = Stop(number, first_line, seen, round(now - start, 1))
            self._interrupt(kernel)
            return

    @staticmethod
    def _interrupt(kernel: Any) -> None:
        """SIGINT the kernel, then kill it and its children after :data:`KILL_GRACE_S` (nbclient sees a dead
        kernel within a second and papermill returns)."""
        import psutil

        if kernel is None:
            return
        try:
            kernel.send_signal(signal.SIGINT)
            procs = [kernel, *kernel.children(recursive=True)]
        except psutil.Error:
            return
        _, alive = psutil.wait_procs([kernel], timeout=KILL_GRACE_S)
        for p in [*alive, *procs[1:]]:
            try:
                p.kill()
            except psutil.Error:
                pass


@contextmanager
def batch_environment() -> Iterator[None]:
    """``REWINTERP_BATCH=1`` for the kernels started in the block (no live widgets: see
    :mod:`rewinterp_utils.frontend`)."""
    from rewinterp_utils.frontend import BATCH_ENV

    old = os.environ.get(BATCH_ENV)
    os.environ[BATCH_ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(BATCH_ENV, None)
        else:
            os.environ[BATCH_ENV] = old


def execute_watched(input_path: str | Path, output_path: str | Path, limits: Limits,
                    parameters: Mapping[str, Any] | None = None, cwd: str | Path | None = None,
                    retries: int = RETRIES, before_retry: Callable[[Stop], None] | None = None) -> list[Stop]:
    """Run a notebook with papermill under the watchdog; returns the stops that were retried (empty when every
    cell answered at once).

    ``before_retry`` is called with the stop before each fresh-kernel rerun (to clean up what the stopped
    attempt left). Raises :class:`CellHung` when a cell stops on every attempt, and the notebook's own error
    (``papermill.PapermillExecutionError``) when it raises.
    """
    import papermill as pm

    stops: list[Stop] = []
    for _attempt in range(retries + 1):
        dog = Watchdog(limits)
        try:
            with batch_environment(), dog:
                pm.execute_notebook(str(input_path), str(output_path), parameters=dict(parameters or {}),
                                    cwd=None if cwd is None else str(cwd), progress_bar=False,
                                    kernel_name="python3", execution_timeout=math.ceil(limits.cell_s) + 60,
                                    **dog.hooks())
            if dog.stop is None:
                return stops
        except Exception:
            if dog.stop is None:
                raise
        stops.append(dog.stop)
        if len(stops) <= retries and before_retry is not None:
            before_retry(dog.stop)
    raise CellHung(Path(input_path).name, stops)


def stops_record(stops: list[Stop]) -> list[dict[str, Any]]:
    """The stops as JSON for a manifest."""
    return [asdict(s) for s in stops]


__all__ = ["CellHung", "Limits", "Stop", "Watchdog", "execute_watched", "limits_for", "limits_from_env",
           "positive_seconds", "stops_record"]

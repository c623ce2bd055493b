"""Where a cell's artifacts live and how they are written so that nothing half-written is ever taken as done.

Layout: ``<root>/<profile>/<stage>/<cell key>/`` (see :attr:`Cell.key <rewinterp_utils.pipeline.stages.Cell.key>`)
holding the stage's files, ``metrics.json`` (local keys), ``manifest.json`` (the cell's identity, a SHA-256 of
every file, the manifests of the upstream cells it read, start and end times, the device and a hash of the
package code that made it, ``package``) and, when the runner made it,
``executed.ipynb``. A cell writes into a hidden temporary folder and renames it into place in one step at its end;
under the runner that step also moves the executed notebook in, so a cell is done exactly when its manifest
verifies. The root is ``$REWINTERP_ARTIFACTS`` if set, else ``./artifacts`` under the working directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from rewinterp_utils.pipeline.stages import STAGES, Cell

MANIFEST, METRICS, EXECUTED = "manifest.json", "metrics.json", "executed.ipynb"
HANDOFF_ENV = "REWINTERP_HANDOFF"
"""Set by the runner: :meth:`~rewinterp_utils.pipeline.session.StageRun.finish` leaves publishing to it (with the executed notebook)."""
RUNNER_ENV = "REWINTERP_RUNNER"
"""Set for the notebooks ``rewinterp run`` executes: there a missing upstream cell is an error (the stage order
is wrong), not something to build on demand."""
LOCK_ENV = "REWINTERP_LOCK_HELD"
"""The profile folder whose run lock a parent process holds (:func:`run_lock`)."""


class RunnerBusy(RuntimeError):
    """Another ``rewinterp run`` (or on-demand build) holds this artifact folder and profile."""


class ArtifactError(ValueError, RuntimeError):
    """An upstream artifact is missing, corrupt, or was made with other parameters (a ``ValueError``: bad input)."""


def artifacts_root() -> Path:
    """The folder that holds every profile's artifacts."""
    return Path(os.environ.get("REWINTERP_ARTIFACTS", Path.cwd() / "artifacts")).resolve()


def cell_dir(cell: Cell) -> Path:
    """Where ``cell``'s artifacts live: ``<root>/<profile>/<stage>/<cell key>``."""
    return artifacts_root() / cell.profile / cell.stage.name / cell.key


HAND_RUNS = "by-hand"
"""The folder, under a profile's, of cells a notebook run by hand made (:func:`hand_dir`)."""


def hand_dir(cell: Cell) -> Path:
    """Where a notebook run by hand (Jupyter, Colab, papermill: not under ``rewinterp run`` or an on-demand build)
    publishes ``cell``: ``<root>/<profile>/by-hand/<stage>/<cell key>``. Kept apart from the runner's cells: other
    notebooks run by hand read it (:func:`find`), the runner never reads, remakes or deletes it (its cells carry the
    executed notebook the book shows)."""
    return artifacts_root() / cell.profile / HAND_RUNS / cell.stage.name / cell.key


def find(cell: Cell) -> Path | None:
    """The folder a notebook run by hand reads for ``cell``: the runner's if it verifies, else a hand run's if that
    verifies, else ``None`` (build it)."""
    for folder in (cell_dir(cell), hand_dir(cell)):
        if folder.is_dir():
            try:
                return verify(cell, folder)
            except ArtifactError:
                pass
    return None


def executed_path(cell: Cell) -> Path:
    """The executed notebook the runner publishes with the cell's artifacts."""
    return cell_dir(cell) / EXECUTED


@dataclass(frozen=True)
class StoredCell:
    """A finished cell as a notebook reads it (:meth:`~rewinterp_utils.pipeline.session.StageRun.upstream_cells`, :func:`verified_cells
    <rewinterp_utils.pipeline.summary.verified_cells>`): its parameters, its folder and its metrics."""

    cell: Cell
    folder: Path | None = None  #: where it was found (a hand run's folder); ``None``: the runner's

    @property
    def params(self) -> Mapping[str, Any]:
        return self.cell.params

    @property
    def dir(self) -> Path:
        return self.folder or cell_dir(self.cell)

    @property
    def metrics(self) -> dict[str, Any]:
        """The cell's metrics, local keys (read from its verified folder)."""
        return read_metrics(verify(self.cell, self.folder))

    def describe(self) -> str:
        return self.cell.describe()


@contextmanager
def run_lock(profile: str, nested: bool = False) -> Iterator[None]:
    """Hold ``<root>/<profile>/.runner.lock`` (``flock``: a dead holder's lock is free again) for the run.

    Processes started inside learn that it is held (:data:`LOCK_ENV`): with ``nested=True`` (an on-demand build in
    a notebook that an on-demand build runs) such a process goes on under its parent's lock instead of waiting."""
    import fcntl

    folder = artifacts_root() / profile
    if nested and os.environ.get(LOCK_ENV) == str(folder):  # an on-demand build inside one that holds it
        yield
        return
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
        old, os.environ[LOCK_ENV] = os.environ.get(LOCK_ENV), str(folder)
        try:
            yield
        finally:
            os.environ.pop(LOCK_ENV) if old is None else os.environ.__setitem__(LOCK_ENV, old)
    finally:
        f.seek(0)
        f.truncate()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()



def recorded_seconds(stage: str, profile: str) -> float | None:
    """The longest time (``elapsed_s``) any finished cell of ``stage`` took at ``profile`` here, if any."""
    times = []
    for manifest in (artifacts_root() / profile / stage).glob("*/manifest.json"):
        try:
            times.append(float(json.loads(manifest.read_text()).get("elapsed_s", 0.0)))
        except (OSError, ValueError):
            continue
    return max(times) if times else None


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays in metrics."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"metric value {value!r} is not JSON serialisable")


def how_to_make(cell: Cell) -> str:
    """The command that makes ``cell``."""
    params = {k: v for k, v in cell.params.items() if v is not None}
    return (f"run `rewinterp run --profile {cell.profile} --chapter {cell.stage.chapter}`, or execute "
            f"notebooks/{cell.stage.name}.ipynb with profile={cell.profile!r} and {params}")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a cell folder (``ArtifactError`` if it is missing or unreadable)."""
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"missing artifact {folder}") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"corrupt manifest {path} ({e})") from e


def verify(cell: Cell, folder: Path | None = None) -> Path:
    """The folder of ``cell`` (the runner's, or ``folder``: a hand run's) if it is complete and intact;
    ``ArtifactError`` saying what is wrong and what to run."""
    folder = cell_dir(cell) if folder is None else folder
    try:
        manifest = read_manifest(folder)
    except ArtifactError as e:
        raise ArtifactError(f"{e}: {how_to_make(cell)}") from None
    found = manifest.get("identity")
    if found != cell.identity:
        diff = {k: ((found or {}).get(k), v) for k, v in cell.identity.items() if (found or {}).get(k) != v}
        raise ArtifactError(f"artifact {folder} was made with other parameters, sizes or notebook code "
                            f"(found, wanted): {diff}; "
                            f"{how_to_make(cell)}")
    made, here = _made_where(manifest), computes_where()
    if made != here:
        raise ArtifactError(f"artifact {folder} was made with device and precision {made}, this run uses {here} "
                            f"(REWINTERP_DEVICE, REWINTERP_PRECISION): {how_to_make(cell)}")
    for name, digest in manifest.get("files", {}).items():
        f = folder / name
        if not f.is_file() or sha256(f) != digest:
            raise ArtifactError(f"artifact file {f} is missing or corrupt: {how_to_make(cell)}")
    for name, digest in manifest.get("upstream", {}).items():
        f = artifacts_root() / name / MANIFEST
        if not f.is_file() or sha256(f) != digest:
            raise ArtifactError(f"artifact {folder} was made from an upstream artifact that has changed since "
                                f"({name}): {how_to_make(cell)}")
        if not cell.overrides and not _is_current(f.parent, cell.profile):
            raise ArtifactError(f"artifact {folder} was made from {name}, which today's sizes, parameters or "
                                f"notebook code no longer give: {how_to_make(cell)}")
    return folder


def computes_where() -> dict[str, str]:
    """Where and in which precision this process computes (``REWINTERP_DEVICE``, ``REWINTERP_PRECISION``): a cell
    made elsewhere or in another precision is not this run's (bf16 and fp32 PPO differ in the last bits, a GPU's
    sums in their order), so it is made again rather than counted as done."""
    from rewinterp_utils.device import precision, torch_device

    return {"device": str(torch_device()), "precision": precision()}


def _made_where(manifest: dict[str, Any]) -> dict[str, str | None]:
    return {"device": manifest.get("device"), "precision": manifest.get("precision")}


def _is_current(folder: Path, profile: str) -> bool:
    """Whether the cell in ``folder`` is the one ``profile`` makes today for the same parameters (its sizes,
    parameters and notebook code not changed since, e.g. a new parameter or another learning rate in
    ``profiles.py``)."""
    identity = read_manifest(folder).get("identity") or {}
    stage = STAGES.get(identity.get("stage"))
    if stage is None or identity.get("profile") != profile:
        return True  # another profile's or a retired stage's cell: not ours to judge
    params = {k: v for k, v in identity.items() if k in stage.parameters}
    try:
        return stage.cell(profile, **params).identity == identity
    except ValueError:
        return False


def is_complete(cell: Cell) -> bool:
    """Whether :func:`verify` accepts the cell."""
    try:
        verify(cell)
        return True
    except ArtifactError:
        return False


def is_done(cell: Cell) -> bool:
    """Done: the manifest verifies and records the executed notebook (the runner made the cell)."""
    return done_reason(cell) is None


def done_reason(cell: Cell) -> str | None:
    """``None`` if the cell is done, else why not (``"missing"`` when nothing was ever made)."""
    if not cell_dir(cell).exists():
        return "missing"
    try:
        folder = verify(cell)
    except ArtifactError as e:
        return str(e).split(": run `")[0]
    manifest = read_manifest(folder)
    if EXECUTED not in manifest.get("files", {}):
        return f"{folder} was made outside the runner (no executed notebook for the book)"
    by_hand = [name for name in manifest.get("upstream", {}) if name.startswith(f"{cell.profile}/{HAND_RUNS}/")]
    if by_hand:
        return f"{folder} was made from a notebook run by hand ({by_hand[0]}), which the book does not show"
    return None


def read_metrics(folder: Path) -> dict[str, Any]:
    """The metrics (local keys) a finished cell recorded."""
    return json.loads((folder / METRICS).read_text())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def publish(tmp: Path, final: Path, executed: Path | None = None, record: Mapping[str, Any] | None = None) -> Path:
    """Move a finished cell's temporary folder into place in one rename (after adding ``executed`` to it and to
    its manifest, and the entries of ``record`` to the manifest); an older folder of the same cell is replaced."""
    manifest = json.loads((tmp / MANIFEST).read_text())
    if executed is not None or record:
        if executed is not None:
            shutil.copyfile(executed, tmp / EXECUTED)
            manifest["files"][EXECUTED] = sha256(tmp / EXECUTED)
        manifest.update(record or {})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final

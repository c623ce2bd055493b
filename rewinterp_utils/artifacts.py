"""Where artifacts live and how a stage writes them so that nothing half-written is ever taken as done.

Layout: ``<root>/<profile>/<stage>/<key>/`` holding the stage's files, ``metrics.json`` (flat keys merged
into ``<root>/<profile>/summary.json``) and ``manifest.json`` (the full parameters and a SHA-256 of every
file). A stage writes into a hidden temporary folder and renames it into place only when it finishes.
The root is ``$REWINTERP_ARTIFACTS`` if set, else ``./artifacts`` under the working directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from rewinterp_utils.profiles import check_profile, resolve
from rewinterp_utils.stages import get_stage

MANIFEST, METRICS = "manifest.json", "metrics.json"


class ArtifactError(RuntimeError):
    """An upstream artifact is missing, corrupt, or was made with other parameters."""


def artifacts_root() -> Path:
    """The folder that holds every profile's artifacts."""
    return Path(os.environ.get("REWINTERP_ARTIFACTS", Path.cwd() / "artifacts")).resolve()


def identity(stage: str, profile: str, **given: Any) -> dict[str, Any]:
    """Everything that determines a stage cell's output: stage, profile, parameters and resolved sizes.

    ``given`` mixes parameters (``seed``, ``env_id``, ...) and size overrides (``total_timesteps``, ...).
    """
    st = get_stage(stage)
    check_profile(profile)
    names = dict(st.defaults)
    params = st.params(**{k: v for k, v in given.items() if k in names})
    overrides = {k: v for k, v in given.items() if k not in names}
    sizes = dataclasses.asdict(resolve(st.sizes, profile, **overrides)) if st.sizes else {}
    return {"stage": stage, "profile": profile, **params, "sizes": sizes}


def cell_dir(ident: dict[str, Any]) -> Path:
    """The final folder of the cell described by ``ident``."""
    return artifacts_root() / ident["profile"] / ident["stage"] / get_stage(ident["stage"]).key(ident)


def _sha256(path: Path) -> str:
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


def _how_to_make(ident: dict[str, Any]) -> str:
    st = get_stage(ident["stage"])
    params = {k: ident[k] for k in dict(st.defaults)}
    return (f"run `rewinterp run --profile {ident['profile']} --chapter {st.chapter}`, or execute "
            f"notebooks/{st.name}.ipynb with profile={ident['profile']!r} and {params}")


def verify(ident: dict[str, Any]) -> Path:
    """The folder of a complete, intact cell matching ``ident``; ``ArtifactError`` saying what to run if not."""
    folder = cell_dir(ident)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(f"missing artifact {folder}: {_how_to_make(ident)}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"corrupt manifest {manifest_path} ({e}): {_how_to_make(ident)} with --force") from e
    if manifest.get("identity") != ident:
        diff = {k: (manifest.get("identity", {}).get(k), v) for k, v in ident.items()
                if manifest.get("identity", {}).get(k) != v}
        raise ArtifactError(f"artifact {folder} was made with other parameters (found, wanted): {diff}; "
                            f"{_how_to_make(ident)} with --force")
    for name, digest in manifest.get("files", {}).items():
        f = folder / name
        if not f.is_file() or _sha256(f) != digest:
            raise ArtifactError(f"artifact file {f} is missing or corrupt: {_how_to_make(ident)} with --force")
    for name, digest in manifest.get("upstream", {}).items():
        f = artifacts_root() / name / MANIFEST
        if not f.is_file() or _sha256(f) != digest:
            raise ArtifactError(f"artifact {folder} was made from an upstream artifact that has changed since "
                                f"({name}): {_how_to_make(ident)}")
    return folder


def is_complete(ident: dict[str, Any]) -> bool:
    """Whether :func:`verify` would accept the cell."""
    try:
        verify(ident)
        return True
    except ArtifactError:
        return False


def require(stage: str, profile: str, **given: Any) -> Path:
    """The folder of a finished upstream cell, verified; ``ArtifactError`` naming what to run otherwise."""
    return verify(identity(stage, profile, **given))


def read_metrics(folder: Path) -> dict[str, Any]:
    """The flat metrics a finished cell recorded."""
    return json.loads((folder / METRICS).read_text())


class StageRun:
    """One execution of a stage cell: files go to :attr:`dir` (temporary) until :meth:`finish` publishes them."""

    def __init__(self, stage: str, profile: str, **given: Any) -> None:
        self.identity = identity(stage, profile, **given)
        self.stage, self.profile = stage, profile
        self.config = resolve(get_stage(stage).sizes, profile, **{
            k: v for k, v in given.items() if k not in dict(get_stage(stage).defaults)}) if get_stage(
            stage).sizes else None
        self.final_dir = cell_dir(self.identity)
        self._tmp = self.final_dir.parent / f".{self.final_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
        self._upstream: dict[str, str] = {}
        self._t0 = time.perf_counter()

    @property
    def dir(self) -> Path:
        """The cell's temporary folder, created on first use (a stage that fails early leaves nothing)."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp

    def path(self, name: str) -> Path:
        """Where to write the file ``name`` of this cell."""
        return self.dir / name

    def require(self, stage: str, **given: Any) -> Path:
        """A finished upstream cell of the same profile (see :func:`require`).

        Its manifest's checksum goes into this cell's manifest: if the upstream cell is remade later, this cell
        no longer verifies, and the runner remakes it too.
        """
        folder = require(stage, self.profile, **given)
        self._upstream[folder.relative_to(artifacts_root()).as_posix()] = _sha256(folder / MANIFEST)
        return folder

    def finish(self, metrics: dict[str, Any]) -> Path:
        """Write metrics and manifest, then atomically move the cell into place; returns its folder."""
        metrics = {**metrics, f"timing.{self.stage}.{self.final_dir.name}_s": time.perf_counter() - self._t0}
        (self.dir / METRICS).write_text(json.dumps(metrics, indent=1, sort_keys=True, default=_plain))
        files = {p.relative_to(self.dir).as_posix(): _sha256(p) for p in sorted(self.dir.rglob("*")) if p.is_file()}
        manifest = {"identity": self.identity, "files": files, "upstream": self._upstream,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (self.dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        old = self.final_dir.parent / f".{self.final_dir.name}.old-{uuid.uuid4().hex[:8]}"
        if self.final_dir.exists():
            self.final_dir.rename(old)
        self.dir.rename(self.final_dir)
        shutil.rmtree(old, ignore_errors=True)
        return self.final_dir


def open_stage(stage: str, profile: str, **given: Any) -> StageRun:
    """Start a stage cell (validates every parameter first: ``ValueError`` on bad input, nothing written)."""
    return StageRun(stage, profile, **given)

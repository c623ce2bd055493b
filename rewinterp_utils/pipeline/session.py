"""A notebook's session with the artifact store: :func:`open_stage` reads the notebook's parameters, gives the cell's
folders and sizes, loads and records upstream cells (building missing ones when the notebook runs alone), and
:meth:`StageRun.finish` glues and publishes what the cell measured.

Above the store (:mod:`~rewinterp_utils.pipeline.artifacts`), the on-demand build and the bundle, which it calls;
nothing below imports it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

from rewinterp_utils.pipeline.artifacts import (
    HANDOFF_ENV,
    METRICS,
    MANIFEST,
    RUNNER_ENV,
    StoredCell,
    _now,
    _plain,
    artifacts_root,
    cell_dir,
    find,
    hand_dir,
    publish,
    sha256,
    verify,
)
from rewinterp_utils.claims import Claim, save_claims
from rewinterp_utils.pipeline.codehash import package_hash
from rewinterp_utils.pipeline.on_demand import build_on_demand
from rewinterp_utils.pipeline.stages import Cell, get_stage


class StageRun:
    """One execution of a cell from inside its notebook: files go to :attr:`dir` (temporary) until
    :meth:`finish` publishes them. Make it with :func:`open_stage`."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.stage, self.profile = cell.stage.name, cell.profile
        self.chapter = cell.stage.chapter  #: the book chapter this stage belongs to (claims tables record it)
        self.config = cell.config
        self.identity = cell.identity
        #: run by hand (Jupyter, Colab, papermill), not by a worker of the runner or of an on-demand build: the cell
        #: goes to its hand-run folder (:func:`~rewinterp_utils.pipeline.artifacts.hand_dir`), apart from the runner's
        self.by_hand = not (os.environ.get(HANDOFF_ENV) or os.environ.get(RUNNER_ENV))
        self.final_dir = hand_dir(cell) if self.by_hand else cell_dir(cell)
        self._tmp = self.final_dir.parent / f".{self.final_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
        self._upstream: dict[str, str] = {}
        self._started, self._t0 = _now(), time.perf_counter()
        from rewinterp_utils.device import precision, torch_device

        self.device = str(torch_device())  #: where this cell computes (``REWINTERP_DEVICE``), checked before anything
        self.precision = precision()  #: PPO's convolution precision (``REWINTERP_PRECISION``), checked likewise
        self.package = package_hash()  #: the package code this cell runs (a hash, see ``codehash``)
        self.claims: Any = None  #: the claims table :meth:`finish` saved (``None`` before, or without claims)
        import torch

        #: torch's intra-op threads: float sums, and so trained weights, depend on them (the runner gives each kernel
        #: its share of the cores; a notebook run alone takes every core)
        self.threads = torch.get_num_threads()

    def __repr__(self) -> str:
        custom = f", custom sizes {self.cell.overrides}" if self.cell.overrides else ""
        return f"{self.cell.describe()} at profile {self.profile!r}{custom} -> {self.final_dir}"

    @property
    def dir(self) -> Path:
        """The cell's temporary folder, created on first use (a stage that fails early leaves nothing)."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp

    def path(self, name: str) -> Path:
        """Where to write the file ``name`` of this cell."""
        return self.dir / name

    def _record(self, cell: Cell) -> Path:
        if cell.stage.name not in self.cell.stage.upstream:
            raise ValueError(f"stage {self.stage!r} reads {cell.stage.name!r}, which its row in STAGES does not "
                             f"list as upstream ({', '.join(self.cell.stage.upstream) or 'none'})")
        if os.environ.get(RUNNER_ENV):  # the runner's cells only (ArtifactError naming what to run)
            folder = verify(cell)
        else:  # the runner's, else a hand run's, else built now
            folder = find(cell) or build_on_demand(cell)
        self._upstream[folder.relative_to(artifacts_root()).as_posix()] = sha256(folder / MANIFEST)
        return folder

    def require(self, stage: str, **given: Any) -> Path:
        """The folder of a finished upstream cell of this profile (its notebook's defaults updated by ``given``),
        verified. A notebook run alone builds a missing cell first (:func:`~rewinterp_utils.pipeline.on_demand.build_on_demand`); under ``rewinterp
        run`` a missing cell is an ``ArtifactError`` naming what to run.

        Its manifest's checksum goes into this cell's manifest: if the upstream cell is remade later, this cell
        no longer verifies, and the runner remakes it too.
        """
        return self._record(get_stage(stage).cell(self.profile, **given))

    def upstream_cells(self, stage: str, **given: Any) -> list[StoredCell]:
        """Every cell of an upstream stage's sweep at this profile (``given`` fixes parameters or sweep sizes,
        e.g. ``n_seeds=3``), each verified and recorded as by :meth:`require`. Read their parameters, folders
        and metrics through :class:`StoredCell`'s ``params``, ``dir`` and ``metrics``."""
        cells = get_stage(stage).cells(self.profile, **given)
        return [StoredCell(c, self._record(c)) for c in cells]

    def finish(self, metrics: Mapping[str, Any], claims: Sequence[Claim] = (), glue_claims: str | None = None,
               claims_prefix: str = "") -> Path:
        """Glue every metric (local key) for the book, write metrics and manifest, and publish the cell.

        ``claims``: the stage's claims, saved as its claims table (:func:`~rewinterp_utils.claims.save_claims`, the
        chapter recorded), their verdicts added to the metrics as ``<claims_prefix>claims.<key>``, the table glued
        as ``glue_claims`` when given and kept as :attr:`claims` for the notebook to show. Under the runner the
        folder is published by the runner, together with the executed notebook, once the notebook has ended.
        Returns the cell's final folder.
        """
        if claims:
            self.claims, verdicts = save_claims(claims, self.dir, self.chapter)
            metrics = {**metrics, **{f"{claims_prefix}{k}": v for k, v in verdicts.items()}}
            if glue_claims:
                glue_metrics({glue_claims: self.claims})
        bad = [k for k in metrics if not isinstance(k, str) or not k or k.startswith(".")]
        if bad:
            raise ValueError(f"metric keys must be non-empty strings local to the cell, got {bad}")
        text = json.dumps(dict(metrics), indent=1, sort_keys=True, default=_plain)
        glue_metrics(json.loads(text))
        (self.dir / METRICS).write_text(text)
        files = {p.relative_to(self.dir).as_posix(): sha256(p) for p in sorted(self.dir.rglob("*")) if p.is_file()}
        manifest = {"identity": self.identity, "files": files, "upstream": self._upstream, "started": self._started,
                    "finished": _now(), "elapsed_s": round(time.perf_counter() - self._t0, 3), "device": self.device,
                    "precision": self.precision, "package": self.package, "torch_threads": self.threads}
        (self.dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        handoff = os.environ.get(HANDOFF_ENV)
        if handoff:
            Path(handoff).write_text(json.dumps({"tmp": str(self._tmp), "final": str(self.final_dir)}))
            return self.final_dir
        return publish(self._tmp, self.final_dir)


def glue_metrics(metrics: Mapping[str, Any]) -> None:
    """``myst_nb.glue`` every metric under its local key, hidden (the book quotes them with ``{glue:text}``);
    does nothing outside a notebook kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return
    from myst_nb import glue

    for key, value in metrics.items():
        glue(key, value, display=False)


def injected_parameters(namespace: Mapping[str, Any]) -> list[str]:
    """The names papermill set in this kernel (``-p NAME VALUE``): the assignments of its injected cell, which
    papermill opens with ``# Parameters`` and the kernel keeps in its input history (``_ih``). Empty outside
    papermill (Jupyter, Colab)."""
    import ast

    for source in reversed(list(namespace.get("_ih") or [])):
        if isinstance(source, str) and source.startswith("# Parameters\n"):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                return []
            return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)]
    return []


def open_stage(stage: str, namespace: Mapping[str, Any]) -> StageRun:
    """Start the cell of ``stage`` described by a notebook's namespace (pass ``globals()``): ``profile`` and the
    stage's parameters are read from it, so the notebook's ``parameters`` cell is the only place they are listed.

    Validates every parameter first (``ValueError`` on bad input, nothing written; a name papermill set that is
    not a parameter of the notebook, e.g. ``-p seeed 3``, is bad input). Printing the returned run
    shows where the cell's artifacts go; a run with custom sizes gets a folder of its own.
    """
    from rewinterp_utils.plotting import book_style

    book_style()
    st = get_stage(stage)
    if "profile" not in namespace:
        raise ValueError(f"open_stage({stage!r}, ...) needs 'profile' in the namespace")
    unknown = [k for k in injected_parameters(namespace) if k != "profile" and k not in st.parameters]
    if unknown:
        raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                         f"{stage}.ipynb; its parameters are: profile, {', '.join(st.parameters)}")
    given = {k: namespace[k] for k in st.parameters if k in namespace}
    run = StageRun(st.cell(namespace["profile"], **given))
    print(run)
    return run

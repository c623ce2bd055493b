"""``summary.json`` and the stage timings, built from the cells whose artifacts verify.

``summary.json`` holds every metric of the current sweep under ``<namespace>.<local key>`` (see
:mod:`~rewinterp_utils.pipeline.stages`), ``timing.<stage>_s`` (the cells' own times added up) and
``timing.<stage>_wall_s`` (the union of the cells' run intervals). :func:`other_package_cells` lists the cells
made by package code other than the current one (the reproducing page shows them).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Iterable

from rewinterp_utils.pipeline.artifacts import artifacts_root, cell_dir, is_complete, read_manifest, read_metrics
from rewinterp_utils.pipeline.codehash import package_hash
from rewinterp_utils.pipeline.stages import CHAPTERS, STAGES, Cell, Stage


def stage_cells(stage: Stage, profile: str, sizes: dict[str, Any]) -> list[Cell]:
    """The stage's cells at ``profile``, with the size overrides of ``sizes`` that concern it."""
    return stage.cells(profile, **{k: v for k, v in sizes.items() if k in stage.accepts})


def cell_timings(cells: list[Cell]) -> dict[str, float | None]:
    """Seconds measured inside the cells added up, and wall seconds: the length of the union of the cells' run
    intervals (cells that ran in parallel count once; a stage whose cells ran in several runs adds the runs up)."""
    total, spans = 0.0, []
    for cell in cells:
        manifest = read_manifest(cell_dir(cell))
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
    return {name: cell_timings(cells) for name, cells in verified_cells(profile, **kwargs).items() if cells}


def stage_devices(profile: str, **kwargs: Any) -> dict[str, str]:
    """Per stage with a finished cell: where its cells computed, from their manifests (``cpu``, ``cuda:0``; several
    joined by ``, `` when cells ran on different devices; ``not recorded`` for manifests older than the record).
    ``kwargs`` as for :func:`verified_cells`."""
    out = {}
    for name, cells in verified_cells(profile, **kwargs).items():
        if cells:
            found = {str(read_manifest(cell_dir(c)).get("device", "not recorded")) for c in cells}
            out[name] = ", ".join(sorted(found))
    return out


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
            for key, value in read_metrics(cell_dir(cell)).items():
                if prefix + key in summary:
                    raise RuntimeError(f"summary key {prefix + key!r} written twice (by {cell.describe()})")
                summary[prefix + key] = value
        if stage_cells_:
            timing = cell_timings(stage_cells_)
            summary[f"timing.{name}_s"] = timing["cells_s"]
            if timing["wall_s"] is not None:
                summary[f"timing.{name}_wall_s"] = timing["wall_s"]
    path = artifacts_root() / profile / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    tmp.replace(path)
    return summary


def other_package_cells(profile: str, **kwargs: Any) -> list[tuple[Cell, str | None]]:
    """The verified cells (``kwargs`` as for :func:`verified_cells`) whose manifest records package code other than
    the current (:func:`~rewinterp_utils.pipeline.codehash.package_hash`), each with the hash it records (``None``:
    none recorded). Such a cell still counts as done: its notebook code and sizes are today's, only code of
    ``rewinterp_utils`` changed since (``rewinterp run --force``, or deleting its folder, remakes it)."""
    current = package_hash()
    out = []
    for cells in verified_cells(profile, **kwargs).values():
        for cell in cells:
            made_by = read_manifest(cell_dir(cell)).get("package")
            if made_by != current:
                out.append((cell, made_by))
    return out

"""`rewinterp audit` over the book's 20 maze reward models: its wall time, and its table against the book's numbers.

    python benchmarks/audit_batch.py [--profile default] [--budget-min 10] [--out DIR]

Reads the book's models of a built profile (``REWINTERP_ARTIFACTS``, default ``./artifacts``): the regression
models of ``maze_reward_model`` and the preference models of ``maze_pref_model`` (at ``default``: 5 + 15). It copies
their files into one folder and audits the folder as a user would (:func:`rewinterp_utils.pipeline.reports.
run_audits`, the same as ``rewinterp audit FOLDER --env ...``), timing the whole batch, reports and comparison
table included. Then it sets the batch's two distances to the true reward (EPIC and the dynamics-aware distance,
uniform coverage) beside the per-model values Part VI's audit notebook (``maze_pref_audit``) computed with its own
code: both are blind to the models' scale and shift, so they must agree whatever units each side reads the model
in.

Prints the time, the budget and the largest disagreement; exits 1 past the budget or above ``--tol``. With
``--out``, writes ``audit_batch.md`` there (the audit chapter includes it).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from rewinterp_utils.pipeline.artifacts import cell_dir, is_complete, read_metrics
from rewinterp_utils.pipeline.reports import run_audits
from rewinterp_utils.pipeline.stages import STAGES

MODEL_FILE = "reward_model.pt"
DISTANCES = {"EPIC": "epic_uniform", "dynamics-aware": "dynamics_aware_uniform"}
"""Column of the audit's comparison table -> the name of the same distance in ``maze_pref_audit``'s metrics."""


def book_models(profile: str) -> dict[str, tuple[str, int, Path]]:
    """``name -> (kind, model_seed, file)`` of every regression and preference model the book trains at
    ``profile``; ``SystemExit`` naming the first missing cell."""
    out = {}
    for stage in ("maze_reward_model", "maze_pref_model"):
        for cell in STAGES[stage].cells(profile):
            if not is_complete(cell):
                raise SystemExit(f"{cell.describe()} is not built: run `rewinterp run --profile {profile} "
                                 f"--chapter preferences` first")
            variant = cell.params.get("variant")
            kind = f"pref_{variant}" if variant else "regression"
            seed = int(cell.params["model_seed"])
            out[f"{kind}_model{seed}"] = (kind, seed, cell_dir(cell) / MODEL_FILE)
    return out


def book_distances(profile: str, models: dict[str, tuple[str, int, Path]]) -> pd.DataFrame:
    """Per model, the two distances as ``maze_pref_audit`` recorded them (``pref.<kind>.<distance>_seeds``)."""
    audit = STAGES["maze_pref_audit"].cell(profile)
    if not is_complete(audit):
        raise SystemExit(f"{audit.describe()} is not built: run `rewinterp run --profile {profile} --chapter "
                         f"preferences` first")
    metrics = read_metrics(cell_dir(audit))
    return pd.DataFrame({col: {name: metrics[f"pref.{kind}.{key}_seeds"][seed]
                               for name, (kind, seed, _) in models.items()}
                         for col, key in DISTANCES.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--env", default="EmptyMaze-10x10-CoinFlipGoal-v3", help="the maze the models were trained on")
    parser.add_argument("--budget-min", type=float, default=10.0)
    parser.add_argument("--tol", type=float, default=1e-6, help="largest allowed |batch - book| distance")
    parser.add_argument("--out", type=Path, default=None, help="where audit_batch.md goes")
    args = parser.parse_args(argv)

    models = book_models(args.profile)
    book = book_distances(args.profile, models)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        for name, (_, _, path) in models.items():
            shutil.copy(path, folder / f"{name}.pt")
        started = time.perf_counter()
        written = run_audits([str(folder)], args.env, Path(tmp) / "reports", profile=args.profile)
        minutes = (time.perf_counter() - started) / 60
        table = pd.read_csv(next(p for p in written if p.name == "comparison.csv"), index_col="model")
    gap = (table.loc[book.index, list(DISTANCES)].astype(float) - book).abs()
    worst = float(np.nanmax(gap.to_numpy()))
    ok_time, ok_match = minutes <= args.budget_min, worst <= args.tol
    lines = [f"{len(models)} models audited in {minutes:.1f} min (budget {args.budget_min:g} min): "
             f"{'within' if ok_time else 'OVER'}",
             f"largest |batch - maze_pref_audit| distance: {worst:.2e} (tolerance {args.tol:g}): "
             f"{'PASS' if ok_match else 'FAIL'}"]
    print("\n".join(lines))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        batch = table.loc[book.index, list(DISTANCES)].astype(float)
        side = pd.DataFrame({f"{col} ({src})": frame[col] for col in DISTANCES
                             for src, frame in (("batch", batch), ("Part VI", book))}).rename_axis("model")
        header = (f"{datetime.now().isoformat(timespec='seconds')}, {platform.node()}, {platform.machine()}, "
                  f"profile `{args.profile}`")
        (args.out / "audit_batch.md").write_text(
            f"**`rewinterp audit` over the book's {len(models)} maze models** ({header})\n\n"
            + "\n\n".join(lines) + ".\n\n" + side.round(6).to_markdown() + "\n")
    return 0 if ok_time and ok_match else 1


if __name__ == "__main__":
    sys.exit(main())

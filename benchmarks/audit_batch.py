"""`rewinterp audit` over the book's 20 maze reward models: its wall time, and its table against the book's numbers.

    python benchmarks/audit_batch.py [--profile default] [--budget-min 10] [--out DIR]

Reads the book's models of a built profile (``REWINTERP_ARTIFACTS``, default ``./artifacts``): the regression
models of ``maze_reward_model`` and the preference models of ``maze_pref_model`` (at ``default``: 5 + 15). It copies
their files into one folder and audits the folder as a user would (:func:`rewinterp_utils.pipeline.reports.
run_audits`, the same as ``rewinterp audit FOLDER --env ...``), timing the whole batch, reports and comparison
table included. Then it checks the batch's two distances to the true reward (uniform coverage) against an
independent computation, and against the values Part VI's audit notebook (``maze_pref_audit``) recorded with its
own code:

* EPIC is blind to a model's scale and shift, so the batch's value must equal Part VI's whatever convention each
  side reads the model in;
* the dynamics-aware distance is blind to the scale only (a constant is a living bonus or penalty on the episodic
  maze), and the two sides read a model in different conventions: the audit as the model is saved, Part VI
  standardised over the dataset (the reward it retrains on). Each side's value must equal
  :func:`~rewinterp_utils.pref_audit.distance_or_nan` computed here on the model in that side's convention.

Prints the time, the budget and the largest disagreement of each check; exits 1 past the budget or above
``--tol``. With ``--out``, writes ``audit_batch.md`` there (the audit chapter includes it).
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

from rewinterp_utils.data import load_transitions
from rewinterp_utils.envs.maze_transitions import maze_transitions, maze_true_reward
from rewinterp_utils.pipeline.artifacts import cell_dir, is_complete, read_metrics
from rewinterp_utils.pipeline.profiles import resolve
from rewinterp_utils.pipeline.reports import run_audits
from rewinterp_utils.pipeline.stages import STAGES
from rewinterp_utils.pref_audit import distance_or_nan
from rewinterp_utils.preferences import standardise_rewards
from rewinterp_utils.reward_models import load_model

MODEL_FILE = "reward_model.pt"
DISTANCES = {"EPIC": "epic_uniform", "dynamics-aware": "dynamics_aware_uniform"}
"""Column of the audit's comparison table -> the name of the same distance in ``maze_pref_audit``'s metrics."""
LEGEND = ("Columns: EPIC and the dynamics-aware distance (DA) to the true reward, from the batch, from Part VI "
          "(VI), and computed here on the model as saved (saved) and standardised over the dataset (std.).")


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


def direct_distances(profile: str, env_id: str, models: dict[str, tuple[str, int, Path]]) -> pd.DataFrame:
    """Per model, the dynamics-aware distance to the true reward (uniform coverage) computed here: on the model as
    saved (the audit's reading) and standardised over the dataset's training split (Part VI's reading)."""
    data = STAGES["maze_dataset"].cell(profile, env_id=env_id)
    if not is_complete(data):
        raise SystemExit(f"{data.describe()} is not built")
    train = load_transitions(cell_dir(data) / "train.npz")
    transitions = maze_transitions(env_id)
    gamma = resolve("maze_expert", profile).gamma
    rows = {}
    for name, (_, _, path) in models.items():
        model = load_model(path)
        standardised = standardise_rewards(model, train["s"], train["s_next"])[2]
        rows[name] = {reading: distance_or_nan("dynamics-aware", m, maze_true_reward, transitions, "uniform", gamma)
                      for reading, m in (("as saved", model), ("standardised", standardised))}
    return pd.DataFrame.from_dict(rows, orient="index")


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
    direct = direct_distances(args.profile, args.env, models)
    batch = table.loc[book.index, list(DISTANCES)].astype(float)
    gaps = {"EPIC, batch - Part VI": (batch["EPIC"] - book["EPIC"]).abs(),
            "dynamics-aware, batch - as saved": (batch["dynamics-aware"] - direct["as saved"]).abs(),
            "dynamics-aware, Part VI - standardised": (book["dynamics-aware"] - direct["standardised"]).abs()}
    worst = {check: float(np.nanmax(gap.to_numpy())) for check, gap in gaps.items()}
    ok_time, ok_match = minutes <= args.budget_min, max(worst.values()) <= args.tol
    lines = [(f"{len(models)} models audited in {minutes:.1f} min (budget {args.budget_min:g} min): "
              f"{'within' if ok_time else 'OVER'}")]
    lines += [f"largest |{check}|: {w:.2e} (tolerance {args.tol:g}): {'PASS' if w <= args.tol else 'FAIL'}"
              for check, w in worst.items()]
    print("\n".join(lines))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        side = pd.DataFrame({"EPIC batch": batch["EPIC"], "EPIC VI": book["EPIC"],
                             "DA batch": batch["dynamics-aware"], "DA saved": direct["as saved"],
                             "DA VI": book["dynamics-aware"], "DA std.": direct["standardised"]}).rename_axis("model")
        header = (f"{datetime.now().isoformat(timespec='seconds')}, {platform.node()}, {platform.machine()}, "
                  f"profile `{args.profile}`")
        (args.out / "audit_batch.md").write_text(
            f"**`rewinterp audit` over the book's {len(models)} maze models** ({header})\n\n"
            + ".\n\n".join(lines) + ".\n\n" + LEGEND + "\n\n" + side.round(4).to_markdown() + "\n")
    return 0 if ok_time and ok_match else 1


if __name__ == "__main__":
    sys.exit(main())

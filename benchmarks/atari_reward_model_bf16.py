"""The learning check for bf16 Atari reward models: held-out MSE per class, float32 against bfloat16 training.

    python benchmarks/atari_reward_model_bf16.py [--profile default] [--games Breakout Seaquest] [--seeds 3]
                                                  [--score shown] [--out book/benchmarks/atari_reward_model_bf16.md]

For each game it fits the reward model of the ``atari_reward_model`` stage (its ``--profile`` settings: epochs,
batch size, learning rate) on the build's ``atari_dataset`` cell in ``$REWINTERP_ARTIFACTS``, once per model seed in
each precision (:func:`~rewinterp_utils.training.fit_atari_reward_model` with ``train_precision``), and reports
the held-out MSE per class (mean ± sd over seeds) and the seconds per fit. The criterion, stated before the run:
bf16 passes for a class when its mean differs from fp32's by no more than the larger of the two sds over seeds.
Writes the table (machine, date and criterion included) to ``--out``; the Atari chapter uses bf16 only if it
passes in every class of every game.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rewinterp_utils.data import load_transitions
from rewinterp_utils.pipeline.artifacts import verify
from rewinterp_utils.pipeline.profiles import resolve
from rewinterp_utils.pipeline.stages import STAGES
from rewinterp_utils.training import fit_atari_reward_model, heldout_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--games", nargs="+", default=["Breakout", "Seaquest"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--score", default="shown", choices=("shown", "hidden"))
    parser.add_argument("--out", default="book/benchmarks/atari_reward_model_bf16.md")
    parser.add_argument("--datasets", nargs="+", type=Path, help="atari_dataset cell folders to read instead, one "
                        "per game in --games order (e.g. the cells of an older build)")
    args = parser.parse_args()
    cfg = resolve("atari_reward_model", args.profile)
    rows = []
    for i, game in enumerate(args.games):
        if args.datasets:
            folder = args.datasets[i]
        else:
            (cell,) = STAGES["atari_dataset"].cells(args.profile, game=game)
            folder = verify(cell)
        train, test = (load_transitions(folder / f"{split}.npz") for split in ("train", "test"))
        for precision in ("fp32", "bf16"):
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                model, _ = fit_atari_reward_model(train[f"obs_{args.score}"], train["reward"], cfg.epochs,
                                                  cfg.batch_size, cfg.learning_rate, seed,
                                                  train_precision=precision)
                seconds = time.perf_counter() - t0
                errors = heldout_errors(model.predict(test[f"obs_{args.score}"]), test["reward"])
                rows.append({"game": game, "precision": precision, "seed": seed, "seconds": seconds,
                             **{f"MSE {k}": float(errors.loc[k, "MSE"]) for k in ("rewarded", "unrewarded")}})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    summary = df.groupby(["game", "precision"]).agg(["mean", "std"]).drop(columns="seed")
    source = ", ".join(str(d) for d in args.datasets) if args.datasets else f"the `{args.profile}` build's cells"
    lines = [f"Measured {date.today()} on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"torch threads {torch.get_num_threads()}; profile `{args.profile}` settings ({cfg.epochs} epochs, batch "
             f"{cfg.batch_size}, lr {cfg.learning_rate:g}), score {args.score}, {args.seeds} seeds per precision; datasets: {source}. "
             "Criterion: bf16 passes a class when its mean held-out MSE differs from fp32's by no more than the "
             "larger sd over seeds.", "", "| game | class | fp32 MSE | bf16 MSE | verdict | s per fit fp32 / bf16 |",
             "|---|---|---|---|---|---|"]
    passed = True
    for game in args.games:
        for k in ("rewarded", "unrewarded"):
            def at(precision: str, column: str, stat: str = "mean") -> float:
                return float(summary.loc[(game, precision), (column, stat)])

            m32, s32, m16, s16 = (at(p, f"MSE {k}", stat) for p in ("fp32", "bf16") for stat in ("mean", "std"))
            t32, t16 = at("fp32", "seconds"), at("bf16", "seconds")
            ok = bool(abs(m16 - m32) <= np.nanmax([s32, s16]))
            passed &= ok
            lines.append(f"| {game} | {k} | {m32:.4f} ± {s32:.4f} | {m16:.4f} ± {s16:.4f} | "
                         f"{'passes' if ok else 'fails'} | {t32:.0f} / {t16:.0f} |")
    lines += ["", f"Overall: bf16 {'passes' if passed else 'fails'} the learning check."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

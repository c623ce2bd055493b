"""Does PPO learn as well with bf16 convolutions as with fp32? Our full pipeline, a few seeds each.

    python benchmarks/ppo_atari_learning.py [--steps 200000] [--seeds 3] [--game Breakout] [--out benchmarks/results]

For each precision (``REWINTERP_PRECISION`` = ``fp32``, ``bf16``) and seed, trains :func:`~rewinterp_utils.agents.atari_ppo`
(the expert's recipe, ``profiles.AtariExpert``) on :func:`~rewinterp_utils.envs.atari.make_atari_venv` for
``--steps`` env steps, each in a fresh subprocess with one torch thread, then plays ``--games`` whole games with
:func:`~rewinterp_utils.evaluation.evaluate_atari` (stochastic actions) and records the final clipped per-life
return (the paper's metric).

Criterion: the bf16 seeds' mean final clipped return lies within ``[min - sd, max + sd]`` of the fp32 seeds (sd:
their sample standard deviation; 0 for one seed). Writes ``ppo_atari_learning.csv`` (one row per run) and
``ppo_atari_learning.md`` (machine, date, the table, the criterion and its verdict) into ``--out`` (default
``book/benchmarks``, which the book's reproducing page includes); exits 1 when
the criterion fails. At 200k steps and 3 seeds this takes about an hour on one core; ``--steps 2048 --seeds 1``
checks that it works.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
RESULTS = Path(__file__).resolve().parents[1] / "book" / "benchmarks"
"""Where the result tables are committed; the book's reproducing page includes them."""


def train_and_score(game: str, steps: int, seed: int, games: int) -> dict[str, object]:
    """One run in this process at ``REWINTERP_PRECISION``: final clipped return, game score, training rate."""
    import torch

    from rewinterp_utils.agents import atari_ppo
    from rewinterp_utils.device import precision
    from rewinterp_utils.envs.atari import atari_id, make_atari_venv
    from rewinterp_utils.evaluation import evaluate_atari
    from rewinterp_utils.pipeline.profiles import AtariExpert

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = AtariExpert(total_timesteps=steps, eval_freq=steps, n_eval_episodes=games)
    venv = make_atari_venv(atari_id(game), n_envs=cfg.n_envs, seed=seed)
    model = atari_ppo(venv, cfg, seed)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    venv.close()
    res = evaluate_atari(model, atari_id(game), games, deterministic=False, n_envs=min(4, games),
                         seed=seed + 20_000, max_steps=20_000 * games)
    return {"precision": precision(), "seed": seed, "steps": steps, "clipped_return": res["clipped_return_mean"],
            "game_score": res["game_score_mean"], "games": res["n_games"], "train_s": round(seconds, 1),
            "steps_per_s": round(steps / seconds, 1)}


def run_child(prec: str, game: str, steps: int, seed: int, games: int) -> dict[str, object]:
    """:func:`train_and_score` in a fresh interpreter at precision ``prec``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REWINTERP_PRECISION": prec, "REWINTERP_DEVICE": "cpu",
           "TQDM_DISABLE": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", "--game", game, "--steps", str(steps),
                           "--seed-one", str(seed), "--games", str(games)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{prec} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def verdict(rows: list[dict[str, object]]) -> tuple[bool, str]:
    """The criterion on the runs' final clipped returns, and a sentence stating it with the numbers."""
    ret = {p: np.array([float(r["clipped_return"]) for r in rows if r["precision"] == p]) for p in PRECISIONS}
    ref = ret["fp32"]
    sd = float(ref.std(ddof=1)) if len(ref) > 1 else 0.0
    lo, hi = float(ref.min()) - sd, float(ref.max()) + sd
    mean = float(ret["bf16"].mean())
    ok = bool(lo <= mean <= hi)
    return ok, (f"bf16 mean final clipped return {mean:.3f} {'lies' if ok else 'does not lie'} within the fp32 "
                f"seeds' [min - sd, max + sd] = [{lo:.3f}, {hi:.3f}] (fp32 mean {ref.mean():.3f}, sd {sd:.3f})")


def write_results(rows: list[dict[str, object]], out: Path, header: str, ok: bool, sentence: str) -> None:
    """``ppo_atari_learning.csv`` (the runs) and ``ppo_atari_learning.md`` (machine, date, table, verdict)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ppo_atari_learning.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cols = {"precision": "precision", "seed": "seed", "clipped_return": "clipped return", "game_score": "game score",
            "train_s": "training s", "steps_per_s": "env-steps/s"}  # steps and games are in the header
    table = ["| " + " | ".join(cols.values()) + " |", "|" + "---|" * len(cols)]
    table += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (out / "ppo_atari_learning.md").write_text(
        f"**PPO Atari learning check: fp32 vs bf16 convolutions** ({header})\n\n" + "\n".join(table)
        + f"\n\n**Criterion**: the bf16 mean final clipped return lies within the fp32 seeds' "
          f"[min - sd, max + sd].\n\n**Verdict**: {'PASS' if ok else 'FAIL'}: {sentence}.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000, help="PPO env steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per precision")
    parser.add_argument("--games", type=int, default=8, help="whole games played to score each final agent")
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the tables go (the book includes them)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed-one", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(train_and_score(args.game, args.steps, args.seed_one, args.games)))
        return 0
    from rewinterp_utils.device import cpu_has_bf16

    if not cpu_has_bf16():
        print("this CPU has no native bf16: nothing to compare", file=sys.stderr)
        return 2
    header = (f"{datetime.datetime.now().isoformat(timespec='seconds')}, {platform.node()}, "
              f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, "
              f"{args.game}, {args.steps} steps, {args.seeds} seed(s), {args.games} games per evaluation")
    print(header, flush=True)
    rows = []
    for seed in range(args.seeds):
        for prec in PRECISIONS:
            rows.append(run_child(prec, args.game, args.steps, seed, args.games))
            print(rows[-1], flush=True)
    ok, sentence = verdict(rows)
    write_results(rows, args.out, header, ok, sentence)
    print(f"{'PASS' if ok else 'FAIL'}: {sentence}\nwritten to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

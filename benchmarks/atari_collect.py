"""Rewarded stacks per second of the Atari dataset's collection: the loop the book used until now against today's.

    python benchmarks/atari_collect.py [--game Breakout] [--rewarded 400] [--profile default] [--repeats 1]

Both play the same expert (the build's ``atari_expert`` cell of ``--profile`` in ``$REWINTERP_ARTIFACTS``) with
the same seeds and collect the same number of rewarded and unrewarded stacks with ``collect_balanced``:

* **before**: two emulators per game, the score shown and hidden, the same actions replayed in the second; the
  expert in float32 (SB3's stock policy);
* **now**: one emulator per game whose steps also give the score-hidden view (``hidden_view=True``, bit for bit
  the second emulator's observations, see ``tests/test_atari_data.py``); the expert in bfloat16 where the CPU has
  it (``REWINTERP_PRECISION``).

Both vectorise the games as ``make_atari_venv`` does by default (worker processes when a core is spare). Run it
on a quiet machine; it prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from rewinterp_utils.agents import load_policy
from rewinterp_utils.data import collect_balanced
from rewinterp_utils.device import precision
from rewinterp_utils.envs.atari import SCORES, HiddenView, atari_id, make_atari_venv
from rewinterp_utils.pipeline.artifacts import verify
from rewinterp_utils.pipeline.stages import STAGES


def rate(make_venvs, expert_path: Path, prec: str, n: int, n_envs: int) -> float:
    """Rewarded stacks per second (wall) of one collection of ``n`` rewarded and ``n`` unrewarded stacks."""
    venvs = make_venvs(n_envs)
    expert = load_policy(expert_path, next(iter(venvs.values())), prec)
    t0 = time.perf_counter()
    collect_balanced(expert, venvs, n_rewarded=n, n_unrewarded=n, max_steps=10**7, seed=0, n_screens=20)
    seconds = time.perf_counter() - t0
    for venv in venvs.values():
        if hasattr(venv, "close"):
            venv.close()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Breakout", choices=("Breakout", "Seaquest"))
    parser.add_argument("--rewarded", type=int, default=400, help="rewarded stacks per collection")
    parser.add_argument("--profile", default="default", help="whose atari_expert cell plays")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--expert", type=Path, help="a policy.pt to play instead (e.g. a cell of an older build)")
    args = parser.parse_args()
    if args.expert is not None:
        expert_path = args.expert
    else:
        (cell,) = STAGES["atari_expert"].cells(args.profile, game=args.game)
        expert_path = verify(cell) / "policy.pt"
    n_envs = STAGES["atari_dataset"].cells(args.profile, game=args.game)[0].config.n_envs
    env_id = atari_id(args.game)

    def before(n: int):
        return {s: make_atari_venv(env_id, n_envs=n, seed=0, score=s, stream="dataset") for s in SCORES}

    def now(n: int):
        lead = make_atari_venv(env_id, n_envs=n, seed=0, score="shown", stream="dataset", hidden_view=True)
        return {"shown": lead, "hidden": HiddenView(lead)}

    print(f"{args.game}, expert {expert_path}, {n_envs} games at once, {args.rewarded} rewarded + as many unrewarded "
          f"stacks, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, precision now {precision()}")
    for r in range(args.repeats):
        old = rate(before, expert_path, "fp32", args.rewarded, n_envs)
        new = rate(now, expert_path, precision(), args.rewarded, n_envs)
        print(f"repeat {r}: before {old:.1f} rewarded stacks/s, now {new:.1f}, ratio {new / old:.2f}")


if __name__ == "__main__":
    main()

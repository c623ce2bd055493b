"""Benchmark of the batched Greydanus occlusion saliency against the per-position loop.

    python benchmarks/occlusion.py [--repeats 5] [--threads N] [--clock wall|cpu]

One fixed-seed ``AtariRewardCNN`` and one random uint8 (84, 84, 4) stack, on the CPU. Prints the best
milliseconds per frame, process CPU time and wall time (see :func:`best_ms`) of

* ``batched``: :func:`~rewinterp_utils.attribution.occlusion_saliency` (blur, 289 perturbed inputs, one pass),
* ``loop``: :func:`~rewinterp_utils.attribution.occlusion_saliency_loop` (Greydanus' code: per position a
  mask, a blur and one single-sample forward pass),
* ``forward``: one batched forward pass over the 289 perturbed inputs, built beforehand (the floor for
  ``batched``),
* ``loop forward only`` (information): 289 single-sample forward passes over the same prebuilt inputs,

and checks, on ``--clock`` time (default: wall time with every core, the machine the book is built on; ``cpu``
is process CPU time, which sums the threads), the goals loop/batched >= 8, batched/forward <= 1.25 and
max |batched - loop| / max |loop| <= 1e-4
(relative to the map's maximum, since far from the model's sensitive pixels scores are ~0). Exits 1 if a
goal fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import numpy as np
import torch

from rewinterp_utils.attribution import blur_frames, occlusion_masks, occlusion_saliency, occlusion_saliency_loop
from rewinterp_utils.reward_models import AtariRewardCNN


def best_ms(fns: dict[str, Callable[[], object]], repeats: int, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Fastest wall and process-CPU time in milliseconds of each ``fn()``: ``rounds`` rounds, in each of which
    every function is timed in its own block of ``repeats`` calls after a warm-up call. The minimum, as
    ``timeit`` advises, is the cost of the method itself; slower calls measure the machine (other processes,
    frequency scaling, a batched pass right after 289 single-sample passes)."""
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(repeats):
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                times[name]["cpu"].append(time.process_time() - cpu)
                times[name]["wall"].append(time.perf_counter() - wall)
    return {name: {clock: 1e3 * min(ts) for clock, ts in t.items()} for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per function and round (3 rounds; the best call counts)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="clock the goals are checked on: wall time (default) or process CPU time (robust to "
                             "other processes on a shared machine, but sums the threads)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = AtariRewardCNN().eval()
    obs = np.random.default_rng(args.seed).integers(0, 256, size=(84, 84, 4), dtype=np.uint8)

    # the 289 perturbed inputs exactly as occlusion_saliency builds them
    image = torch.as_tensor(obs, dtype=torch.float32).permute(2, 0, 1)
    blurred = torch.as_tensor(blur_frames(obs), dtype=torch.float32).permute(2, 0, 1)
    perturbed = torch.addcmul(image, occlusion_masks().reshape(-1, 1, 84, 84), blurred - image).permute(0, 2, 3, 1)

    def forward() -> None:
        with torch.no_grad():
            model(perturbed)

    def loop_forward_only() -> None:
        with torch.no_grad():
            for x in perturbed:
                model(x[None])

    batched_map, loop_map = occlusion_saliency(model, obs), occlusion_saliency_loop(model, obs)
    rel_diff = float(np.abs(batched_map - loop_map).max() / np.abs(loop_map).max())
    ms = best_ms({"batched": lambda: occlusion_saliency(model, obs),
                    "loop": lambda: occlusion_saliency_loop(model, obs),
                    "forward": forward, "loop_forward": loop_forward_only}, args.repeats)
    print(f"AtariRewardCNN, 1 frame stack (84, 84, 4), {len(perturbed)} masks, torch threads {args.threads}, "
          f"best of {3 * args.repeats}; ms per frame, goals checked on {args.clock} time")
    print(f"  {'':30s} {'cpu':>8s} {'wall':>8s}")
    for name, label in [("batched", "batched occlusion"), ("loop", "loop (Greydanus)"),
                        ("forward", "forward, 289 batched"), ("loop_forward", "forward, 289 single (info)")]:
        print(f"  {label:30s} {ms[name]['cpu']:8.1f} {ms[name]['wall']:8.1f}")
    t_batched, t_loop, t_forward = (ms[name][args.clock] for name in ("batched", "loop", "forward"))
    goals = [
        ("loop / batched", t_loop / t_batched, ">=", 8.0),
        ("batched / forward", t_batched / t_forward, "<=", 1.25),
        ("max rel diff batched vs loop", rel_diff, "<=", 1e-4),
    ]
    failed = False
    for name, value, op, goal in goals:
        ok = value >= goal if op == ">=" else value <= goal
        failed |= not ok
        print(f"  {name:30s} {value:10.3g}  (goal {op} {goal:g})  {'PASS' if ok else 'FAIL'}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())

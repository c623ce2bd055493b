"""PPO training speed on Atari: SB3's stock fp32 PPO against ours (:func:`~rewinterp_utils.agents.atari_ppo` on
:func:`~rewinterp_utils.envs.atari.make_atari_venv`), in env-steps per second.

    python benchmarks/ppo_atari.py [--steps 4096] [--game Breakout] [--precision auto] [--target 2.0] [--repeats 1]

Both run the expert's recipe (``profiles.AtariExpert``: 8 envs, n_steps 128, 4 epochs, batch 256) on the same game,
one after the other, each in a fresh subprocess with one torch thread (``torch.set_num_threads(1)``,
``OMP_NUM_THREADS=1``): the stock one is ``PPO("CnnPolicy")`` with SB3's NatureCNN in fp32 on a ``DummyVecEnv``;
ours takes the precision of ``REWINTERP_PRECISION`` (``--precision``) and the vectorisation
:func:`~rewinterp_utils.envs.atari.make_atari_venv` picks for this machine. Each first trains one rollout
untimed (warm-up), then ``--steps`` timed steps. Prints both rates and the ratio ours / stock; exits 1 when the
ratio is below ``--target`` (the issue's 2.0). Timings on a loaded machine are noisy: compare on a quiet one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

VARIANTS: tuple[str, ...] = ("stock", "ours")


def measure(variant: str, game: str, steps: int, seed: int = 0) -> dict[str, object]:
    """Train ``variant`` for one untimed rollout, then ``steps`` timed env steps; its rate and settings."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rewinterp_utils.agents import atari_ppo
    from rewinterp_utils.device import precision
    from rewinterp_utils.envs.atari import atari_id, make_atari_venv
    from rewinterp_utils.pipeline.profiles import AtariExpert

    torch.set_num_threads(1)
    cfg = AtariExpert(total_timesteps=steps, eval_freq=steps, n_eval_episodes=1)
    if variant == "stock":
        venv = make_atari_venv(atari_id(game), n_envs=cfg.n_envs, seed=seed, vec_env_cls=DummyVecEnv)
        lr, clip = cfg.learning_rate, cfg.clip_range
        model = PPO("CnnPolicy", venv, n_steps=cfg.n_steps, n_epochs=cfg.n_epochs, batch_size=cfg.batch_size,
                    learning_rate=lambda r: r * lr, clip_range=lambda r: r * clip, ent_coef=cfg.ent_coef,
                    vf_coef=cfg.vf_coef, seed=seed, device="cpu", verbose=0)
        prec = "fp32"
    else:
        venv = make_atari_venv(atari_id(game), n_envs=cfg.n_envs, seed=seed)
        model = atari_ppo(venv, cfg, seed)
        prec = precision()
    rollout = cfg.n_envs * cfg.n_steps
    model.learn(rollout)  # warm-up: first allocations, oneDNN kernel selection, env resets
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(steps, reset_num_timesteps=False)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    venv.close()
    return {"variant": variant, "precision": prec, "vec_env": type(venv.unwrapped).__name__,
            "steps": steps, "seconds": round(elapsed, 2), "steps_per_s": round(steps / elapsed, 1),
            "steps_per_cpu_s": round(steps / cpu, 1)}


def run_child(variant: str, game: str, steps: int, precision: str) -> dict[str, object]:
    """:func:`measure` in a fresh interpreter (one torch/OpenMP thread), its result parsed from the last line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "REWINTERP_PRECISION": precision,
           "REWINTERP_DEVICE": "cpu"}
    done = subprocess.run([sys.executable, __file__, "--child", variant, "--game", game, "--steps", str(steps)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4096, help="timed env steps per variant (after a warm-up)")
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--precision", default="auto", help="REWINTERP_PRECISION of ours: auto | fp32 | bf16")
    parser.add_argument("--target", type=float, default=2.0, help="required ratio ours / stock")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each variant; the best counts")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "book" / "benchmarks",
                        help="where ppo_atari.md goes (the book's reproducing page includes it)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.game, args.steps)))
        return 0
    header = (f"{datetime.datetime.now().isoformat(timespec='seconds')}, {platform.node()}, "
              f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, load "
              f"{os.getloadavg()[0]:.2f} at the start, {args.game}, {args.steps} timed steps per run")
    print(header)
    runs: dict[str, list[dict[str, object]]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for v in VARIANTS:
            r = run_child(v, args.game, args.steps, args.precision)
            runs[v].append(r)
            print(f"{r['variant']:>6}: {r['steps_per_s']:7.1f} env-steps/s wall, {r['steps_per_cpu_s']:7.1f} per "
                  f"CPU-second of the main process  ({r['precision']}, {r['vec_env']}, {r['seconds']} s)", flush=True)
    best = {v: max(float(r["steps_per_s"]) for r in rs) for v, rs in runs.items()}
    best_cpu = {v: max(float(r["steps_per_cpu_s"]) for r in rs) for v, rs in runs.items()}
    ratio = best["ours"] / best["stock"]
    print(f"best of {args.repeats}: stock {best['stock']:.1f}, ours {best['ours']:.1f} env-steps/s")
    summary = (f"ratio ours / stock: {ratio:.2f} (target >= {args.target}); per main-process CPU-second: "
               f"{best_cpu['ours'] / best_cpu['stock']:.2f}")
    print(summary)
    if args.out is not None:
        write_results(args.out, header, runs, best, summary)
    return 0 if ratio >= args.target else 1


def write_results(out: Path, header: str, runs: dict[str, list[dict[str, object]]], best: dict[str, float],
                  summary: str) -> None:
    """``ppo_atari.md``: the machine, date and load, every run, the best of each variant and the ratio."""
    out.mkdir(parents=True, exist_ok=True)
    rows = ["| variant | env-steps/s (wall) | per CPU-second of the main process | precision | vec env | seconds |",
            "|---|---|---|---|---|---|"]
    rows += [f"| {r['variant']} | {r['steps_per_s']} | {r['steps_per_cpu_s']} | {r['precision']} | {r['vec_env']} | "
             f"{r['seconds']} |" for rs in runs.values() for r in rs]
    (out / "ppo_atari.md").write_text(
        f"**PPO Atari training speed: stock SB3 fp32 vs ours** ({header})\n\n" + "\n".join(rows)
        + f"\n\nBest of each: stock {best['stock']:.1f}, ours {best['ours']:.1f} env-steps/s; {summary}.\n")


if __name__ == "__main__":
    sys.exit(main())

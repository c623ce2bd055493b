"""Peak memory of the Atari dataset stage's data path at a profile's sizes (default: ``paper``).

    python benchmarks/atari_memory.py [--profile paper] [--game Breakout] [--budget-gb 6] [--out DIR]

Runs what ``notebooks/atari_dataset.ipynb`` runs, with its functions and its profile's sizes: a PPO policy of the
expert's architecture (random weights, loaded with :func:`~rewinterp_utils.agents.load_policy`) plays the score
shown and hidden versions of the game in lockstep (:func:`~rewinterp_utils.data.collect_balanced`, screens kept
for ``n_screens`` samples), :func:`~rewinterp_utils.data.split_by_time` splits the samples, and
:func:`~rewinterp_utils.data.save_transitions` writes each split by index and the screens file.

A random policy rarely scores, and the paper's 37,500 rewarded samples would take it tens of millions of steps;
so each step's reward is replaced by a coin flip (``--reward-rate``, the same flips in both score settings). That
changes which samples are rewarded, not how many there are nor the arrays' sizes, which is what memory depends on.

Prints the peak resident set size (``ru_maxrss``) after each phase, the budget and whether the peak is within it;
exits 1 if it is not. The Colab runtime the book is meant to run on has about 12.7 GB of RAM.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from rewinterp_utils.agents import atari_ppo, load_policy
from rewinterp_utils.data import collect_balanced, positions_in, save_transitions, split_by_time
from rewinterp_utils.envs.atari import GAMES, SCORES, atari_id, make_atari_venv
from rewinterp_utils.pipeline.profiles import PROFILES, resolve


class CoinFlipRewards(VecEnvWrapper):
    """Rewards replaced by seeded coin flips (1 with probability ``rate``); two wrappers with the same seed flip
    the same coins, so lockstep replays agree."""

    def __init__(self, venv: VecEnv, rate: float, seed: int) -> None:
        super().__init__(venv)
        self.rate, self.rng = rate, np.random.default_rng(seed)

    def reset(self) -> np.ndarray:
        return self.venv.reset()

    def step_wait(self):
        obs, _, dones, infos = self.venv.step_wait()
        return obs, (self.rng.random(self.num_envs) < self.rate).astype(np.float32), dones, infos


def peak_gb() -> float:
    """This process's peak resident set size so far, in GB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="paper")
    parser.add_argument("--game", choices=GAMES, default="Breakout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reward-rate", type=float, default=0.5, help="probability that a step is rewarded")
    parser.add_argument("--budget-gb", type=float, default=6.0, help="most peak RSS allowed, in GB (1e9 bytes)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the files (default: a temporary one)")
    args = parser.parse_args(argv)
    if not 0 < args.reward_rate < 1:
        parser.error(f"--reward-rate must lie in (0, 1), got {args.reward_rate}")
    cfg = resolve("atari_dataset", args.profile)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    phases = {"start": peak_gb()}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        venvs = {score: CoinFlipRewards(make_atari_venv(atari_id(args.game), n_envs=cfg.n_envs, seed=args.seed + 1_000,
                                                        score=score), args.reward_rate, args.seed)
                 for score in SCORES}
        # the expert's architecture with random weights, loaded as the stage loads the expert
        ppo = atari_ppo(make_atari_venv(atari_id(args.game), n_envs=1, seed=args.seed),
                        resolve("atari_expert", args.profile), seed=args.seed)
        torch.save(ppo.policy.state_dict(), out / "policy.pt")
        del ppo
        policy = load_policy(out / "policy.pt", venvs["shown"])
        phases["envs and policy"] = peak_gb()

        n_total = cfg.n_train + cfg.n_test
        data = collect_balanced(policy, venvs, n_rewarded=n_total // 2, n_unrewarded=n_total - n_total // 2,
                                max_steps=cfg.max_steps, seed=args.seed, n_screens=cfg.n_screens)
        phases["collect_balanced"] = peak_gb()
        screen, screen_rows = data.pop("screen"), data.pop("screen_index")
        train_idx, test_idx = split_by_time(data["reward"], data["step"], cfg.n_train)
        save_transitions(out / "train.npz", data, train_idx)
        save_transitions(out / "test.npz", data, test_idx)
        save_transitions(out / "screens.npz", {"screen": screen, "screen_index": positions_in(test_idx, screen_rows),
                                               "rewarded": data["reward"][screen_rows] != 0})
        phases["split and save"] = peak_gb()
        held = sum(a.nbytes for a in data.values()) / 1e9
        written = sum(p.stat().st_size for p in out.glob("*.npz")) / 1e9
        steps = int(data["step"].max())

    print(f"atari_dataset at {args.profile!r}: {cfg.n_train:,} train + {cfg.n_test:,} test samples, "
          f"{cfg.n_screens} screens, {args.game}, {steps:,} env steps, {time.perf_counter() - t0:.0f} s")
    print(f"arrays held: {held:.2f} GB; files written: {written:.2f} GB (compressed)")
    for phase, gb in phases.items():
        print(f"peak RSS after {phase:<18} {gb:6.2f} GB")
    peak = max(phases.values())
    within = peak <= args.budget_gb
    print(f"peak RSS {peak:.2f} GB, budget {args.budget_gb:.2f} GB: {'within' if within else 'OVER'} budget")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())

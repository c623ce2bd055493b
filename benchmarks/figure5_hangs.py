"""Run the Seaquest Figure 5 notebook at ``smoke`` many times and count how often it hangs.

The notebook once displayed a live ipywidget (the Atari scrubber) under papermill, and about three runs in five
never got the cell's execute reply (jupyter/nbclient#312). This script is the check behind the runner's watchdog
and the batch-mode widgets (:mod:`rewinterp_utils.frontend`, :mod:`rewinterp_utils.pipeline.watchdog`):

    python benchmarks/figure5_hangs.py --runs 20                 # papermill as a user runs it, with a wall limit
    python benchmarks/figure5_hangs.py --runs 20 --watched       # through the watchdog, as the runner runs it

Upstream cells are built first at ``smoke`` in ``--root`` when missing. A run that has not ended after
``--limit`` seconds counts as hung and is killed. It prints one line per run and the counts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WATCHED = """
import sys
from rewinterp_utils.pipeline.stages import get_stage
from rewinterp_utils.pipeline.watchdog import CellHung, execute_watched, limits_for
cell = get_stage("atari_figure5").cell("smoke", game="Seaquest")
try:
    stops = execute_watched(sys.argv[1], sys.argv[2], limits_for(cell), {"profile": "smoke", "game": "Seaquest"})
except CellHung as e:
    print(e)
    sys.exit(3)
print(f"retried {len(stops)}")
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--limit", type=float, default=300.0, help="seconds after which a run counts as hung")
    p.add_argument("--watched", action="store_true", help="run through the watchdog (as the runner does)")
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "rewinterp-figure5-hangs")
    args = p.parse_args()
    env = {**os.environ, "REWINTERP_ARTIFACTS": str(args.root), "TQDM_DISABLE": "1"}
    if not (args.root / "smoke" / "atari_reward_model").is_dir():
        print(f"building the smoke Atari chapter in {args.root} ...", flush=True)
        subprocess.run([sys.executable, "-m", "rewinterp_utils.pipeline.cli", "run", "--profile", "smoke",
                        "--chapter", "atari"], env=env, check=True)
    notebook = REPO / "notebooks" / "atari_figure5.ipynb"
    counts = {"ok": 0, "ok after a retry": 0, "failed": 0, "hung": 0}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.ipynb"
        for i in range(args.runs):
            cmd = ([sys.executable, "-c", WATCHED, str(notebook), str(out)] if args.watched else
                   [sys.executable, "-m", "papermill", str(notebook), str(out), "-p", "profile", "smoke", "-p",
                    "game", "Seaquest", "--kernel", "python3", "--no-progress-bar"])
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
            try:
                text, _ = proc.communicate(timeout=args.limit)
                outcome = ("ok after a retry" if "retried 1" in text else "ok") if proc.returncode == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.communicate()
                outcome, text = "hung", ""
            counts[outcome] += 1
            print(f"run {i + 1:2d}: {outcome:16s} {time.perf_counter() - t0:6.1f} s", flush=True)
            if outcome == "failed":
                print(text[-1500:], flush=True)
    mode = "through the watchdog" if args.watched else "plain papermill"
    print(f"{args.runs} runs of atari_figure5 (Seaquest, smoke), {mode}: " +
          ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

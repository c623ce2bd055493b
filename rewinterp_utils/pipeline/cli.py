"""``rewinterp run`` executes the stage notebooks; ``rewinterp book`` builds the HTML book from them; ``rewinterp
pack`` / ``unpack`` share a build as one archive (:mod:`~rewinterp_utils.pipeline.bundle`); ``rewinterp audit``
audits reward models of one's own (:mod:`~rewinterp_utils.pipeline.reports`).

Exit codes: 0 done, 1 a cell failed (its notebook raised, or a code cell stopped answering on both attempts:
see :mod:`~rewinterp_utils.pipeline.watchdog`) or the book did not build, 2 bad input (arguments, a watchdog
limit that is not a positive number, a scheduler address that is not a reachable Dask scheduler; for ``audit``: a
model file that does not load, a model whose input does not fit the maze, an unknown environment, a factory path
that does not import; for ``pack``: a cell not built yet; for ``unpack``: an archive that is truncated, tampered
with, of another profile or of other code), 75 another run holds the artifact folder, 130 interrupted (rerun the
same command to resume).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from rewinterp_utils.pipeline.profiles import PROFILES
from rewinterp_utils.pipeline.stages import CHAPTERS
from rewinterp_utils.pipeline.watchdog import positive_seconds

EXIT_BUSY, EXIT_INTERRUPTED = 75, 130


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seconds(option: str):
    def parse(text: str) -> float:
        try:
            return positive_seconds(text, option)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


DESCRIPTION = ("Reproduce 'Understanding Learned Reward Functions' (Michaud, Gleave, Russell 2020) as an executable "
               "book, and audit reward models of your own.")
EXIT_CODES = ("exit codes: 0 done; 1 a cell failed or the book did not build; 2 bad input (nothing is written); "
              "75 another run holds the artifact folder; 130 interrupted (rerun the same command to resume)")


def _audit_epilog() -> str:
    """``rewinterp audit --help``'s end: every valid ``--env`` and one example."""
    import textwrap

    from rewinterp_utils.pipeline.stages import AUDIT_ENV_IDS

    def listed(names: list[str]) -> str:
        return textwrap.fill(", ".join(names), 100, initial_indent="    ", subsequent_indent="    ",
                             break_on_hyphens=False) + "\n"

    mazes = [e for e in AUDIT_ENV_IDS if "Maze" in e]
    games = [e for e in AUDIT_ENV_IDS if "Maze" not in e]
    return ("valid --env values:\n  mazes:\n" + listed(mazes) + "  Atari games, with :shown or :hidden for the "
            "score display (shown when left out):\n" + listed(games) + "  any other Gymnasium id with Box or Discrete "
            "spaces, e.g. Pendulum-v1 (the audits of rewinterp_utils.env_audit;\n  MODEL and --reference are then "
            "import paths package.module:factory)\n\nexamples:\n  rewinterp audit my_model.pt --env "
            "EmptyMaze-10x10-CoinFlipGoal-v3 --out report.html\n  rewinterp audit mymod:make_reward --env Pendulum-v1 "
            "--reference mymod:true_reward")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rewinterp")
    except PackageNotFoundError:  # a checkout on the path, not installed
        from rewinterp_utils import __version__

        return __version__


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rewinterp", description=DESCRIPTION, epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"rewinterp {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,book,pack,unpack,audit}")
    r = sub.add_parser("run", help="execute stage notebooks (skips cells whose artifacts are up to date)")
    r.add_argument("--profile", choices=PROFILES, default="default", help="sizes to run at")
    r.add_argument("--chapter", choices=(*CHAPTERS, "all"), default="all", help="which chapter's stages")
    r.add_argument("--force", action="store_true", help="rerun cells even if their artifacts are up to date")
    r.add_argument("--jobs", type=_positive, default=None, help="notebooks run at once (default: CPU cores)")
    r.add_argument("--seeds", type=_positive, default=None, help="seeds per swept condition (default: profile's)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the cells on an existing Dask cluster (tcp://HOST:8786) instead of local processes; "
                        "fails within 10 s if no Dask scheduler answers there")
    r.add_argument("--cell-timeout", type=_seconds("--cell-timeout"), default=None, metavar="SECONDS",
                   help="most seconds one code cell may run before it is interrupted and its notebook rerun once "
                        "(default: 4x the stage's longest recorded time, at least 600; env REWINTERP_CELL_TIMEOUT)")
    r.add_argument("--idle-timeout", type=_seconds("--idle-timeout"), default=None, metavar="SECONDS",
                   help="most seconds a kernel may use no CPU while its cell has not answered (default: 120; env "
                        "REWINTERP_IDLE_TIMEOUT)")
    b = sub.add_parser("book", help="build the HTML book from the executed notebooks")
    b.add_argument("--profile", choices=PROFILES, default="default", help="whose executed notebooks to use")
    b.add_argument("--no-strict", action="store_true", help="do not treat Sphinx warnings as errors")
    k = sub.add_parser("pack", help="write one archive of the cells a set of notebooks needs (share a build)")
    k.add_argument("--profile", choices=PROFILES, default="default", help="whose cells")
    k.add_argument("--stages", nargs="+", default=None, metavar="STAGE",
                   help="the notebooks whose cells, and every cell they read, go in (default: every stage)")
    k.add_argument("--out", default=None, metavar="PATH", help="the archive (default: rewinterp-<profile>.tar.gz)")
    u = sub.add_parser("unpack", help="check an archive of `pack` and install its cells into the artifact store")
    u.add_argument("archive", metavar="ARCHIVE", help="its path or http(s) address")
    u.add_argument("--profile", choices=PROFILES, default=None, help="refuse an archive of another profile")
    a = sub.add_parser("audit", help="audit reward models: the book's audits as one HTML report per model",
                       description="Audit reward models of your own: the book's audits, one HTML report per model "
                                   "and, for several, a comparison table.",
                       epilog=_audit_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("models", nargs="+", metavar="MODEL",
                   help="a file saved with save_model, an import path package.module:factory, a folder or a glob")
    a.add_argument("--env", required=True, metavar="ENV",
                   help="maze id, e.g. EmptyMaze-10x10-CoinFlipGoal-v3, or Atari game with its score setting, e.g. "
                        "BreakoutNoFrameskip-v4:shown")
    a.add_argument("--out", default=None, metavar="PATH",
                   help="the report (one model; default audit-<name>.html) or the folder of reports (several)")
    a.add_argument("--profile", choices=PROFILES, default="default", help="sizes to run at")
    a.add_argument("--dataset", default=None, metavar="PATH",
                   help="held-out data (.npz of save_transitions; default: the expert's, built if missing)")
    a.add_argument("--reference", default=None, metavar="MODEL",
                   help="the reference reward (maze: default the true one; a Gymnasium id: an import path)")
    a.add_argument("--retrain", action="store_true",
                   help="also train PPO on each model's reward and score it on the true reward (minutes per model)")
    a.add_argument("--jobs", type=_positive, default=None, help="audits run at once (default: CPU cores)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from rewinterp_utils.pipeline import book, reports, runner  # heavy imports only once the arguments are valid

    try:
        if args.command == "audit" and reports.is_gym_env(args.env):
            for path in reports.run_env_audits(args.models, args.env, args.out, args.profile, args.reference,
                                               args.retrain):
                print(path)
        elif args.command == "audit":
            for path in reports.run_audits(args.models, args.env, args.out, args.profile, args.dataset,
                                           args.reference, args.jobs, args.retrain):
                print(path)
        elif args.command == "pack":
            from rewinterp_utils.pipeline.bundle import pack

            print(pack(args.profile, args.stages, args.out))
        elif args.command == "unpack":
            from rewinterp_utils.pipeline.bundle import unpack

            installed = unpack(args.archive, args.profile)
            print(f"{len(installed)} cell(s) installed in {runner.artifacts_root()}")
        elif args.command == "run":
            summary = runner.run(args.profile, args.chapter, force=args.force, jobs=args.jobs, n_seeds=args.seeds,
                                 scheduler=args.scheduler, cell_timeout=args.cell_timeout,
                                 idle_timeout=args.idle_timeout)
            print(f"{len(summary)} metrics in {runner.artifacts_root() / args.profile / 'summary.json'}")
        else:
            html = book.build_book(args.profile, strict=not args.no_strict)
            print(f"book: {html / 'index.html'}")
    except runner.Interrupted:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (runner.SchedulerUnreachable, ValueError) as e:
        print(f"rewinterp: {e}", file=sys.stderr)
        return 2
    except runner.RunnerBusy as e:
        print(f"rewinterp: {e}", file=sys.stderr)
        return EXIT_BUSY
    except (runner.StageFailed, FileNotFoundError, subprocess.CalledProcessError) as e:
        print(f"rewinterp: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``rewinterp --help``, ``--version`` and ``audit --help`` tell a new user."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from rewinterp_utils.pipeline.cli import main, parser
from rewinterp_utils.pipeline.stages import AUDIT_ENV_IDS

CLI = [sys.executable, "-m", "rewinterp_utils.pipeline.cli"]


def help_of(*args: str) -> str:
    done = subprocess.run([*CLI, *args, "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_top_level_help_is_whole_sentences_and_gives_the_exit_codes():
    text = help_of()
    description = " ".join(text.split("\n\n")[1].split())
    assert description.endswith(".") and "``" not in description, description
    assert all(f"{code} " in text for code in (0, 1, 2, 75, 130))
    assert all(name in text for name in ("run", "book", "audit"))


def test_version_is_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"rewinterp {version('rewinterp')}"


def test_audit_help_lists_every_valid_env_and_an_example():
    import gymnasium as gym

    text = help_of("audit")
    listed = re.findall(r"[\w.-]+(?::\w+)?", text.split("valid --env values:")[1].split("examples:")[0])
    assert set(AUDIT_ENV_IDS) <= set(listed), set(AUDIT_ENV_IDS) - set(listed)
    examples = [line.split() for line in text.split("examples:")[1].strip().splitlines()]
    assert len(examples) == 2 and all(e[:2] == ["rewinterp", "audit"] for e in examples)
    book, gym_env = (parser().parse_args(e[1:]) for e in examples)  # each example parses
    assert book.env in AUDIT_ENV_IDS and gym_env.env in gym.registry and gym_env.env not in AUDIT_ENV_IDS

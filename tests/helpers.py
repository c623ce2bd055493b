"""Helpers the test modules share: random Atari stacks, the maze's reward oracle, cells of the stage table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewinterp_utils.envs.maze import AGENT, GOAL
from rewinterp_utils.pipeline import artifacts as art
from rewinterp_utils.pipeline.session import open_stage
from rewinterp_utils.pipeline.stages import get_stage


def random_stacks(n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniformly random 84x84x4 uint8 frame stacks (the Atari reward models' input), from ``seed``."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 84, 84, 4), dtype=np.uint8)


def maze_reward_oracle(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """The true maze reward of a terminating variant from (s, s'): the agent's cell in s' held a goal in s
    (written from the definition, independently of the env)."""
    s, s_next = np.asarray(s), np.asarray(s_next)
    assert s.shape == s_next.shape and s.ndim == 3
    return ((s_next == AGENT) & (s == GOAL)).any(axis=(1, 2)).astype(np.float32)


def cell(stage: str, profile: str = "smoke", **given):
    """The cell of ``stage`` at ``profile`` with the parameters ``given``."""
    return get_stage(stage).cell(profile, **given)


def open_(stage: str, profile: str = "smoke", **given):
    """What a notebook does: ``open_stage`` with its namespace."""
    return open_stage(stage, {"profile": profile, **given})


def require(stage: str, profile: str = "smoke", **given) -> Path:
    """The verified folder of a cell (``ArtifactError`` when it is missing, stale or corrupt)."""
    return art.verify(cell(stage, profile, **given))


def finish_with(run, content: bytes = b"weights", metrics: dict | None = None) -> Path:
    """Publish ``run`` with one file (``model.pt`` holding ``content``) and ``metrics``."""
    run.path("model.pt").write_bytes(content)
    return run.finish(metrics if metrics is not None else {"loss": 0.5})

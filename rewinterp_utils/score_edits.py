"""The Atari chapter's tests of the score display, once: the score edits and the score-box share of a saliency map.

The saliency chapter (``atari_saliency``) and the audit (:func:`~rewinterp_utils.audit.score_edit_audit`,
:func:`~rewinterp_utils.audit.score_share_audit`) both call these:

* :func:`score_edits` builds the two edits on held-out stacks (:func:`~rewinterp_utils.envs.atari.score_edit` pastes
  one frame's score box into another's):

  - *fake increment*: into the last frame of an unrewarded stack, the score box of the next rewarded stack in time
    from the same sub-env (:func:`next_rewarded_same_env`), i.e. the same game's next score: the score moves while
    nothing happens in the game;
  - *frozen score*: into the last frame of a rewarded stack, the box of its own previous frame: the event happens,
    the score does not move.

  Only the stacks an edit changed count: a paste of identical digits tests nothing.
* :func:`edit_effects` gives a model's mean reward on those stacks before and after each edit.
* :func:`score_shares` and :func:`mean_share` give the share of a saliency map's mass inside the score box.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from rewinterp_utils.envs.atari import saliency_share, score_box, score_edit
from rewinterp_utils.reward_models import RewardModel

FAKE, FROZEN = "fake increment", "frozen score"
"""The two edits, as :func:`score_edits` and :func:`edit_effects` name them."""


class Edit(NamedTuple):
    """One edit on the picked stacks: ``rows`` (of the dataset) it was tried on, whether it ``changed`` each of them
    (a paste of the same digits, or a stack with no donor, does not), and ``edited``, the stacks it changed after the
    edit (in the order of ``rows[changed]``)."""

    rows: np.ndarray
    changed: np.ndarray
    edited: np.ndarray

    @property
    def changed_rows(self) -> np.ndarray:
        """The rows the edit changed: the only ones it tests."""
        return self.rows[self.changed]


def stack_times(data: Mapping[str, np.ndarray], name: str = "dataset") -> tuple[np.ndarray, np.ndarray]:
    """``(step, game)`` of a dataset :func:`~rewinterp_utils.data.collect_balanced` wrote: when each stack was
    collected and in which game (its ``game``; a dataset with ``env`` but no ``game`` is read as one game per sub-env). ``ValueError`` naming what is missing; a dataset with ``step`` but no
    ``env`` was written before the sub-env was recorded, and its donors cannot be told apart by game."""
    missing = [k for k in ("step", "env") if k not in data]
    if missing == ["env"]:
        raise ValueError(f"{name} has no 'env' (the sub-env each stack was played in), which the score edits need to "
                         "take the donor of a fake score increment from the same game; it was written by an older "
                         "atari_dataset: remake that cell (delete its folder, or rewinterp run --force)")
    if missing:
        raise ValueError(f"{name} lacks {' and '.join(missing)}; expected step (when each stack was collected) and "
                         "env (its sub-env), as atari_dataset writes them")
    # the game: recorded by collect_balanced; a dataset without it is taken as one game per sub-env
    step, env = np.asarray(data["step"]), np.asarray(data["game"] if "game" in data else data["env"])
    if step.shape != env.shape or step.ndim != 1:
        raise ValueError(f"{name}: step and env must be 1-d arrays of one length, got {step.shape}, {env.shape}")
    return step, env


def next_rewarded_same_env(reward: np.ndarray, step: np.ndarray, env: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``: the row of the first rewarded stack (``reward != 0``) after it in time (``step``)
    played in the same sub-env (``env``), or -1 where that sub-env has none later."""
    reward, step, env = np.asarray(reward), np.asarray(step), np.asarray(env)
    rewarded = np.flatnonzero(reward != 0)
    out = np.full(len(rows), -1, np.int64)
    for k, i in enumerate(np.asarray(rows, dtype=np.int64)):
        later = rewarded[(env[rewarded] == env[i]) & (step[rewarded] > step[i])]
        if len(later):
            out[k] = later[np.argmin(step[later])]
    return out


def _paste(stacks: np.ndarray, rows: np.ndarray, donor_frames: np.ndarray,
           game: str) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``donor_frames``' boxes into the last frame of ``stacks[rows]``: whether it changed each stack, and the
    stacks it changed, edited."""
    before = stacks[rows]
    after = score_edit(before, donor_frames, game)
    changed = (after != before).any(axis=(1, 2, 3))
    return changed, after[changed]


def score_edits(data: Mapping[str, np.ndarray], pick: np.ndarray, game: str, key: str = "obs_shown",
                name: str = "dataset") -> dict[str, Edit]:
    """The two score edits (:data:`FAKE`, :data:`FROZEN`) on the picked rows ``pick`` of the stacks ``data[key]``
    (score shown: the digits are there to edit), with ``data``'s ``reward``, ``step`` and ``env``
    (:func:`stack_times`):

    * fake increment, on the picked unrewarded rows: the box of :func:`next_rewarded_same_env`'s donor (any rewarded
      row of ``data``, picked or not) pasted into the last frame; a row whose sub-env has no later rewarded stack is
      not edited;
    * frozen score, on the picked rewarded rows: the box of the stack's own previous frame pasted into its last.
    """
    step, env = stack_times(data, name)
    stacks, reward = np.asarray(data[key]), np.asarray(data["reward"])
    pick = np.asarray(pick, dtype=np.int64)
    yes, no = pick[reward[pick] != 0], pick[reward[pick] == 0]
    donor = next_rewarded_same_env(reward, step, env, no)
    has = donor >= 0
    fake_changed = np.zeros(len(no), bool)
    fake_changed[has], fake_edited = _paste(stacks, no[has], stacks[donor[has]][..., -1], game)
    frozen_changed, frozen_edited = _paste(stacks, yes, stacks[yes][..., -2], game)
    return {FAKE: Edit(no, fake_changed, fake_edited), FROZEN: Edit(yes, frozen_changed, frozen_edited)}


def edit_effects(model: RewardModel, stacks: np.ndarray, edits: Mapping[str, Edit]) -> pd.DataFrame:
    """One row per edit: ``tried`` (stacks it was tried on), ``stacks`` (those it changed, the only ones counted),
    the model's ``mean R unedited`` and ``mean R edited`` on them and the ``change`` (NaN when it changed none)."""
    rows = {}
    for edit, e in edits.items():
        n = int(e.changed.sum())
        before = float(np.mean(model.predict(stacks[e.changed_rows]))) if n else float("nan")
        after = float(np.mean(model.predict(e.edited))) if n else float("nan")
        rows[edit] = {"tried": len(e.rows), "stacks": n, "mean R unedited": before, "mean R edited": after,
                      "change": after - before}
    return pd.DataFrame(rows).T.astype({"tried": int, "stacks": int})


def score_shares(model: RewardModel, obs: np.ndarray, game: str, method: str = "occlusion",
                 **kwargs: Any) -> np.ndarray:
    """Per stack of ``obs``, the share of ``method``'s attribution mass inside ``game``'s score box
    (:func:`~rewinterp_utils.attribution.attribute`, then :func:`~rewinterp_utils.envs.atari.saliency_share`;
    NaN for an all-zero map). ``kwargs`` go to the method (``n_steps`` of Integrated Gradients)."""
    from rewinterp_utils.attribution import attribute

    return np.atleast_1d(saliency_share(attribute(model, obs, method, **kwargs), game))


def mean_share(shares: np.ndarray) -> float:
    """The mean of the shares over the maps that have one (a zero map has none: NaN); NaN when none has."""
    shares = np.asarray(shares, dtype=np.float64)
    return float(np.nanmean(shares)) if np.isfinite(shares).any() else float("nan")


def score_box_changes(stacks: np.ndarray, reward: np.ndarray, game: str) -> pd.DataFrame:
    """Is the score a perfect predictor of reward? Per class of stack (``rewarded``: reward != 0, ``unrewarded``),
    the number of stacks and the share whose score box (every 84 x 84 pixel the box touches) changes between the last
    two frames (``changes, last two frames``) and between any two consecutive frames (``changes anywhere``).

    If the digits change exactly on rewarded steps, reading them is an exact rule; a change that lags the reward by a
    step, or comes on unrewarded steps, makes it an inexact one."""
    stacks, reward = np.asarray(stacks), np.asarray(reward)
    if stacks.ndim != 4 or stacks.shape[-1] < 2 or len(stacks) != len(reward):
        raise ValueError(f"need (N, 84, 84, n_stack >= 2) stacks and N rewards, got {stacks.shape} and "
                         f"{reward.shape}")
    rows, cols = score_box(game).obs_slices(stacks.shape[1], inner=False)
    box = stacks[:, rows, cols, :].astype(np.int16)
    steps = (np.diff(box, axis=-1) != 0).any(axis=(1, 2))  # (N, n_stack - 1): the box moved between frames
    out = {}
    for name, cls in (("rewarded", reward != 0), ("unrewarded", reward == 0)):
        n = int(cls.sum())
        out[name] = {"stacks": n,
                     "changes, last two frames": float(steps[cls, -1].mean()) if n else float("nan"),
                     "changes anywhere": float(steps[cls].any(axis=1).mean()) if n else float("nan")}
    return pd.DataFrame(out).T.astype({"stacks": int})


__all__ = ["FAKE", "FROZEN", "Edit", "edit_effects", "mean_share", "next_rewarded_same_env", "score_box_changes",
           "score_edits", "score_shares", "stack_times"]

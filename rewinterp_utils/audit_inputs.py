"""What an audit reads, loaded and checked before anything runs: the target ``env_id`` names (a maze, or an Atari game
with its score setting), the audited model (a file :func:`~rewinterp_utils.reward_models.save_model` wrote, or a
factory ``package.module:factory``), the reference reward and the held-out dataset. Every function here raises
``ValueError`` with one line naming what is wrong and what was expected; :mod:`~rewinterp_utils.audit` runs the
audits on what they return.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from rewinterp_utils.envs.maze import maze_ids
from rewinterp_utils.envs.maze_transitions import maze_transitions, maze_true_reward
from rewinterp_utils.reward_models import RewardModel, as_reward_model, load_model

FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
"""An import path ``package.module:factory``."""


# ------------------------------------------------------------------------------------------- the target
@dataclass(frozen=True)
class AuditTarget:
    """What ``env_id`` names: a maze (``kind="maze"``, ``env_id`` its id) or an Atari game with its score setting
    (``kind="atari"``, ``env_id`` the ALE id, ``game``, ``score``)."""

    kind: str
    env_id: str
    game: str | None = None
    score: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """What a reward model of this target reads: ``(s, s_next)`` grids (maze) or ``(s_next,)`` stacks (Atari)."""
        return ("s", "s_next") if self.kind == "maze" else ("s_next",)


def audit_target(env_id: str) -> AuditTarget:
    """The :class:`AuditTarget` of ``env_id``: a maze id, or an Atari game (``Breakout`` or
    ``BreakoutNoFrameskip-v4``) with its score setting after a colon (``:shown`` or ``:hidden``; ``shown`` when
    left out). ``ValueError`` naming the valid ids, games and score settings otherwise."""
    from rewinterp_utils.envs.atari import ATARI_IDS, GAMES, SCORES, atari_id, game_of

    env_id = str(env_id)
    if env_id in maze_ids():
        return AuditTarget("maze", env_id)
    name, colon, score = env_id.partition(":")
    if name in GAMES or name in ATARI_IDS:
        score = score if colon else "shown"
        if score not in SCORES:
            raise ValueError(f"unknown score setting {score!r} in {env_id!r}; expected one of {', '.join(SCORES)}, "
                             f"e.g. {atari_id(game_of(name))}:shown")
        game = game_of(name)
        return AuditTarget("atari", atari_id(game), game, score)
    raise ValueError(f"unknown environment {env_id!r}; expected a maze id ({', '.join(maze_ids())}) or an Atari game "
                     f"with its score setting ({', '.join(f'{g}NoFrameskip-v4:shown' for g in GAMES)}; score "
                     f"settings {', '.join(SCORES)})")


# ------------------------------------------------------------------------------------------- the model
def call_factory(spec: str, returns: str = "a reward model or R(s, s_next)") -> object:
    """What the factory ``package.module:factory`` returns, called with no arguments, the working directory
    importable; ``ValueError`` in one line when it does not import or the call raises (``returns``: what it
    should return, for the message)."""
    module, colon, name = spec.partition(":")
    if not colon or not name:
        raise ValueError(f"model {spec!r} is not an import path; expected package.module:factory")
    sys.path.insert(0, str(Path.cwd()))  # a module beside the caller imports as it would in a script
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model {spec!r}: the factory path does not import ({type(e).__name__}: {e}); expected "
                         "an importable package.module:factory") from None
    finally:
        sys.path.remove(str(Path.cwd()))
    try:
        return factory()
    except Exception as e:  # noqa: BLE001 - any failure of the user's factory is bad input
        raise ValueError(f"model {spec!r}: calling the factory raised {type(e).__name__}: {e}; expected a "
                         f"function of no arguments returning {returns}") from None


def _from_factory(spec: str, inputs: tuple[str, ...]) -> RewardModel:
    made = call_factory(spec)
    try:
        return as_reward_model(made, inputs)
    except ValueError as e:
        raise ValueError(f"model {spec!r}: the factory returned {type(made).__name__}: {e}") from None


def load_audited(spec: str, env_id: str) -> RewardModel:
    """The reward model ``spec`` names, checked to run on ``env_id``'s inputs (:func:`audit_target`).

    ``spec``: a file :func:`~rewinterp_utils.reward_models.save_model` wrote, or ``package.module:factory`` (the
    factory is called with no arguments; a plain function is wrapped by
    :func:`~rewinterp_utils.reward_models.as_reward_model`, reading ``(s, s_next)`` for a maze, ``(s_next,)`` for
    Atari). ``ValueError`` naming what is wrong and what was expected: an unknown environment, a file that is
    missing or does not load, a factory path that does not import, a model that does not read the maze's ``(s,
    s')`` grids or Atari's ``(84, 84, 4)`` stacks, or does not return one finite reward per input.
    """
    target = audit_target(env_id)
    spec = str(spec)
    if FACTORY.match(spec) and not Path(spec).exists():
        model = _from_factory(spec, target.inputs)
    elif not Path(spec).is_file():
        raise ValueError(f"model {spec!r} is neither a file nor an import path; expected a reward-model file "
                         "saved with save_model, or package.module:factory")
    else:
        try:
            model = load_model(Path(spec))  # onto REWINTERP_DEVICE, as every other model
        except Exception as e:  # noqa: BLE001 - torch raises many kinds for a file that is not a model
            raise ValueError(f"model file {spec} does not load ({type(e).__name__}: {str(e).splitlines()[0][:160]}); expected "
                             "a reward-model file saved with save_model") from None
    return check_fits(model, env_id, spec)


def _check_atari_fits(model: RewardModel, target: AuditTarget, name: str) -> RewardModel:
    from rewinterp_utils.checks import ATARI_SHAPE

    if tuple(model.inputs) != ("s_next",):
        raise ValueError(f"{name} reads {', '.join(model.inputs)}; an Atari reward model reads s' only, stacks of "
                         f"shape (n, {', '.join(map(str, ATARI_SHAPE))}) uint8 (a maze model reads s, s_next)")
    _try_rewards(model, (np.zeros((8, *ATARI_SHAPE), np.uint8),), name, target.env_id,
                 f"stacks of shape (n, {', '.join(map(str, ATARI_SHAPE))})", "stack")
    return model


def _try_rewards(model: RewardModel, inputs: tuple[np.ndarray, ...], name: str, env_id: str, takes: str,
                 per: str) -> None:
    """Run ``model`` on 8 sample ``inputs``; ``ValueError`` when it raises (naming what it should ``take``) or does
    not return one finite reward per ``per``."""
    try:
        r = np.asarray(model.predict(*inputs), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - a plain function may raise anything on the wrong input
        raise ValueError(f"{name} does not fit {env_id}: expected it to take {takes}; it raised "
                         f"{type(e).__name__}: {str(e)[:300]}") from None
    if r.shape != (8,) or not np.isfinite(r).all():
        raise ValueError(f"{name} must return one finite reward per {per}, shape (8,), got {r.shape}: {r}")


def check_fits(model: RewardModel, env_id: str, name: str = "the model") -> RewardModel:
    """``model`` if it reads what ``env_id``'s models read (:attr:`AuditTarget.inputs`) and gives one finite reward
    per input, else ``ValueError`` naming the shapes expected and what went wrong."""
    target = audit_target(env_id)
    if target.kind == "atari":
        return _check_atari_fits(model, target, name)
    t = maze_transitions(env_id)
    grid = tuple(t["s"].shape[1:])
    if tuple(model.inputs) != ("s", "s_next"):
        raise ValueError(f"{name} reads {', '.join(model.inputs)}; a maze reward model reads (s, s_next), two "
                         f"grids of shape {grid} (an Atari model reads s' only)")
    _try_rewards(model, (t["s"][:8], t["s_next"][:8]), name, env_id,
                 f"s and s_next of shape (n, {grid[0]}, {grid[1]})", "transition")
    return model


def load_reference(spec: str | None, env_id: str) -> RewardModel | None:
    """The reference reward: ``spec`` as :func:`load_audited` reads it, or the maze's true reward for ``None``. An
    Atari audit has none (``None``): it compares the model with the recorded reward; a ``spec`` there is a
    ``ValueError``."""
    if audit_target(env_id).kind == "atari":
        if spec is not None:
            raise ValueError(f"reference {spec!r}: a reference reward is for maze audits (counterfactuals, EPIC); an "
                             "Atari audit compares the model with the recorded reward, so leave it out")
        return None
    if spec is None:
        return as_reward_model(maze_true_reward, ("s", "s_next"))
    return load_audited(spec, env_id)


def _check_atari_dataset(data: Mapping[str, np.ndarray], target: AuditTarget, name: str) -> dict[str, np.ndarray]:
    from rewinterp_utils.checks import ATARI_SHAPE
    from rewinterp_utils.score_edits import stack_times

    key = f"obs_{target.score}" if f"obs_{target.score}" in data else "obs"
    shape = f"(n, {', '.join(map(str, ATARI_SHAPE))})"
    missing = [k for k, there in ((f"obs_{target.score} (or obs)", key in data), ("reward", "reward" in data))
               if not there]
    if missing:
        raise ValueError(f"{name} lacks {' and '.join(missing)}; expected stacks {shape} uint8 and reward (n,), as "
                         "atari_dataset writes them")
    obs, r = np.asarray(data[key]), np.asarray(data["reward"], dtype=np.float64)
    if obs.shape[1:] != ATARI_SHAPE or r.shape != (len(obs),):
        raise ValueError(f"{name}: expected {key} of shape {shape} and reward (n,), got {obs.shape}, {r.shape}")
    if not (r != 0).any() or (r != 0).all():
        raise ValueError(f"{name} must hold rewarded and unrewarded stacks (reward != 0 and == 0)")
    shown = np.asarray(data["obs_shown"]) if "obs_shown" in data else obs
    if "step" in data or "env" in data:  # both, or a clear error (a dataset from before env was recorded)
        step, env = stack_times(data, name)
        if len(step) != len(obs):
            raise ValueError(f"{name}: expected step and env of length {len(obs)}, got {len(step)}")
    else:  # no record of play: one game, in row order
        step, env = np.arange(len(obs)), np.zeros(len(obs), np.int64)
    return {"s_next": obs, "reward": r, "shown": shown, "step": step, "env": env}


def check_dataset(data: Mapping[str, np.ndarray], env_id: str, name: str = "dataset") -> dict[str, np.ndarray]:
    """Held-out transitions of ``env_id`` with both classes, else ``ValueError`` naming what is missing.

    Maze: ``{"s", "s_next", "reward"}`` of the maze's grid shape. Atari: ``obs_<score>`` (or ``obs``) stacks
    ``(n, 84, 84, 4)`` and ``reward``, as ``atari_dataset`` writes them (``obs_shown``, the stacks the score edits
    paste digits into, and ``step`` and ``env``, their time order and sub-env, are read when present: both or
    neither, which reads the rows as one game in time order); returned as ``{"s_next", "reward", "shown", "step",
    "env"}``.
    """
    target = audit_target(env_id)
    if target.kind == "atari":
        return _check_atari_dataset(data, target, name)
    grid = tuple(maze_transitions(env_id)["s"].shape[1:])
    missing = [k for k in ("s", "s_next", "reward") if k not in data]
    if missing:
        raise ValueError(f"{name} lacks {', '.join(missing)}; expected transitions with s, s_next (n, {grid[0]}, "
                         f"{grid[1]}) and reward (n,)")
    s, s_next, r = (np.asarray(data[k]) for k in ("s", "s_next", "reward"))
    if s.shape != s_next.shape or s.shape[1:] != grid or r.shape != (len(s),):
        raise ValueError(f"{name}: expected s, s_next of shape (n, {grid[0]}, {grid[1]}) and reward (n,), got "
                         f"{s.shape}, {s_next.shape}, {r.shape}")
    if not (r > 0).any() or (r > 0).all():
        raise ValueError(f"{name} must hold rewarded and unrewarded transitions (reward > 0 and == 0)")
    return {"s": s, "s_next": s_next, "reward": r.astype(np.float64)}


def load_dataset(path: str | Path, env_id: str) -> dict[str, np.ndarray]:
    """Held-out transitions from a file :func:`~rewinterp_utils.data.save_transitions` wrote, checked by
    :func:`check_dataset`; ``ValueError`` naming the file when it is missing or does not load."""
    from rewinterp_utils.data import load_transitions

    try:
        data = load_transitions(Path(path))
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"dataset {path} does not load ({type(e).__name__}: {str(e)[:200]}); expected an .npz "
                         "of transitions written by save_transitions") from None
    return check_dataset(data, env_id, f"dataset {path}")


def check_inputs(model: str, env_id: str, dataset: str | None = None,
                 reference: str | None = None) -> tuple[RewardModel, RewardModel | None, dict[str, np.ndarray] | None]:
    """Everything an audit reads, loaded and checked before anything runs: the model (:func:`load_audited`), the
    reference (:func:`load_reference`; ``None`` for Atari) and, when given, the dataset (:func:`load_dataset`).
    ``ValueError`` naming what is wrong and what was expected."""
    audit_target(env_id)
    audited = load_audited(model, env_id)
    ref = load_reference(reference, env_id)
    return audited, ref, None if dataset is None else load_dataset(dataset, env_id)

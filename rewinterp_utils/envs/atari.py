"""Atari environments of the paper (its section 3): score masking and DeepMind preprocessing.

The paper trains reward models on ``BreakoutNoFrameskip-v4`` and ``SeaquestNoFrameskip-v4`` and asks whether
they read the *score shown on the screen*. This module

* keeps a table of score boxes (:data:`SCORE_BOXES`, one :class:`ScoreBox` per game; add games there),
* masks the box on the raw 210x160 RGB screen (:class:`ScoreMask`: ``"shown"``, ``"hidden"``, ``"blurred"``),
* measures and edits the box on the 84x84 observations (:func:`saliency_share`, :func:`score_area_share`,
  :func:`score_edit`: the score-box tests of the book's Atari chapter), and
* builds the vectorised, preprocessed env the agents see (:func:`make_atari_venv`); playing a policy in it is
  :func:`rewinterp_utils.evaluation.evaluate_atari`.

Wrapper order of one sub-env of :func:`make_atari_venv`, innermost first::

    gym.make(env_id)             raw ALE env, 210x160x3 RGB, frameskip 1, no sticky actions
    ScoreMask(game, score)       the mask acts on every frame the ALE produces
    Monitor                      unclipped reward of whole games -> info["episode"]["r"], ["l"] in raw frames
    AtariWrapper                 noop reset, MaxAndSkip(4), EpisodicLife, FireReset, WarpFrame 84x84 grey,
                                 ClipReward {-1, 0, 1}
    DummyVecEnv / SubprocVecEnv
    VecFrameStack(4)             observation (n_envs, 84, 84, 4) uint8, channels last

SB3 2.9's ``AtariWrapper`` only ever sees frames through the observations returned by ``step``/``reset`` of
the env below it: ``MaxAndSkipEnv`` max-pools the ``obs`` returned by ``env.step``, ``NoopResetEnv`` and
``FireResetEnv`` return the ``obs`` of their ``env.step`` calls, ``WarpFrame`` transforms the observation.
Only ``EpisodicLifeEnv`` talks to the ALE directly, and only for ``ale.lives()``. So a mask placed right on the
raw env is what the agent sees (checked end to end by ``tests/test_atari_env.py``). ``env.render()`` and
``env.unwrapped.ale.getScreenRGB()`` do bypass the mask: they give the unmasked screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import ale_py
import cv2
import gymnasium as gym
import numpy as np
from stable_baselines3.common.atari_wrappers import AtariWrapper, ClipRewardEnv, WarpFrame
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper, VecFrameStack
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

from rewinterp_utils.device import spare_cores
from rewinterp_utils.seeding import seed_sub_envs, sub_env_seeds

gym.register_envs(ale_py)

ScoreMode = Literal["shown", "hidden", "blurred"]
SCORE_MODES: tuple[str, ...] = ("shown", "hidden", "blurred")
"""Every way :class:`ScoreMask` can show the score."""
SCORES: tuple[str, ...] = ("shown", "hidden")
"""The two score settings the book compares (reward models, saliency, Table 1)."""
SCREEN_SHAPE: tuple[int, int] = (210, 160)
"""(rows, cols) of the raw ALE screen."""
SCORE_BLUR_SIGMA = 3.0
"""Gaussian sigma (raw-screen pixels) of the ``"blurred"`` score mode."""


@dataclass(frozen=True)
class ScoreBox:
    """Where a game draws its score on the raw 210x160 RGB screen.

    ``rows`` and ``cols`` are *inclusive* (start, stop) pixel ranges; ``background`` is the (row, col) of a
    pixel outside the box whose colour is the background the box is painted with in ``"hidden"`` mode.
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    background: tuple[int, int]

    def __post_init__(self) -> None:
        (r0, r1), (c0, c1) = self.rows, self.cols
        if not (0 <= r0 <= r1 < SCREEN_SHAPE[0] and 0 <= c0 <= c1 < SCREEN_SHAPE[1]):
            raise ValueError(f"score box rows {self.rows} cols {self.cols} outside the {SCREEN_SHAPE} screen")
        br, bc = self.background
        if not (0 <= br < SCREEN_SHAPE[0] and 0 <= bc < SCREEN_SHAPE[1]):
            raise ValueError(f"background pixel {self.background} outside the {SCREEN_SHAPE} screen")
        if r0 <= br <= r1 and c0 <= bc <= c1:
            raise ValueError(f"background pixel {self.background} lies inside the box")

    @property
    def row_slice(self) -> slice:
        return slice(self.rows[0], self.rows[1] + 1)

    @property
    def col_slice(self) -> slice:
        return slice(self.cols[0], self.cols[1] + 1)

    @property
    def slices(self) -> tuple[slice, slice]:
        """``frame[box.slices]`` is the box of a (210, 160[, 3]) frame."""
        return self.row_slice, self.col_slice

    def mask(self, shape: tuple[int, int] = SCREEN_SHAPE) -> np.ndarray:
        """Boolean (rows, cols) array, True inside the box."""
        m = np.zeros(shape, dtype=bool)
        m[self.slices] = True
        return m

    def obs_slices(self, screen_size: int = 84, inner: bool = True) -> tuple[slice, slice]:
        """The box on the ``screen_size`` x ``screen_size`` observation of ``WarpFrame`` (``cv2.INTER_AREA``).

        ``inner=True``: the resized pixels computed only from pixels inside the box; ``inner=False``: every
        resized pixel that any box pixel contributes to.
        """
        out = []
        for (start, stop), n in ((self.rows, SCREEN_SHAPE[0]), (self.cols, SCREEN_SHAPE[1])):
            scale = n / screen_size
            lo, hi = start / scale, (stop + 1) / scale
            if inner:
                out.append(slice(math.ceil(lo - 1e-9), math.floor(hi + 1e-9)))
            else:
                out.append(slice(math.floor(lo + 1e-9), min(math.ceil(hi - 1e-9), screen_size)))
        return out[0], out[1]


SCORE_BOXES: dict[str, ScoreBox] = {
    "Breakout": ScoreBox(rows=(4, 16), cols=(35, 81), background=(10, 10)),
    "Seaquest": ScoreBox(rows=(7, 19), cols=(70, 120), background=(8, 65)),
}
"""Score boxes of the paper's games, keyed by game name (the env id without ``NoFrameskip-v4``)."""

GAMES: tuple[str, ...] = tuple(SCORE_BOXES)
"""The games of the paper, in the book's order."""


def atari_id(game: str) -> str:
    """The ALE env id of ``game``: ``"Breakout"`` -> ``"BreakoutNoFrameskip-v4"``."""
    score_box(game)
    return f"{game}NoFrameskip-v4"


def score_box(game: str) -> ScoreBox:
    """The :class:`ScoreBox` of ``game``, or ``ValueError`` naming the supported games."""
    if game not in SCORE_BOXES:
        raise ValueError(f"no score box known for game {game!r}; supported games: {', '.join(SCORE_BOXES)} "
                         "(add one to SCORE_BOXES)")
    return SCORE_BOXES[game]


def saliency_share(saliency_map_84: np.ndarray, game: str) -> float | np.ndarray:
    """Share of the saliency mass ``|map|`` inside ``game``'s score box (``obs_slices(84, inner=False)``).

    ``saliency_map_84``: ``(84, 84)`` -> float, or ``(N, 84, 84)`` -> ``(N,)``; NaN for an all-zero map.
    Compare with :func:`score_area_share`, the share a uniform map gives.
    """
    m = np.abs(np.asarray(saliency_map_84, dtype=np.float64))
    if m.ndim not in (2, 3) or m.shape[-2:] != (84, 84):
        raise ValueError(f"expected a saliency map of shape (84, 84) or (N, 84, 84), got {m.shape}")
    rs, cs = score_box(game).obs_slices(84, inner=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = m[..., rs, cs].sum(axis=(-2, -1)) / m.sum(axis=(-2, -1))
    return float(share) if m.ndim == 2 else share


def score_area_share(game: str) -> float:
    """Fraction of the 84 x 84 frame covered by ``game``'s score box (``obs_slices(84, inner=False)``)."""
    rs, cs = score_box(game).obs_slices(84, inner=False)
    return (rs.stop - rs.start) * (cs.stop - cs.start) / 84**2


def score_edit(stacks: np.ndarray, donor_frames: np.ndarray, game: str, frame: int = -1) -> np.ndarray:
    """Copies of the ``(N, 84, 84, C)`` ``stacks`` whose score box (``obs_slices(84, inner=False)``) in frame
    ``frame`` of the stack axis is taken from the ``(N, 84, 84)`` ``donor_frames`` (one stack and one
    ``(84, 84)`` frame work too). The inputs are not modified.

    The causal test: paste a later frame's score into an unrewarded stack (fake increment) or an earlier
    frame's score into a rewarded stack (frozen score) and compare the model's rewards.
    """
    stacks, donor_frames = np.asarray(stacks), np.asarray(donor_frames)
    if stacks.ndim not in (3, 4) or stacks.shape[-3:-1] != (84, 84):
        raise ValueError(f"expected stacks of shape (N, 84, 84, C) or (84, 84, C), got {stacks.shape}")
    if donor_frames.shape != stacks.shape[:-1]:
        raise ValueError(f"expected donor_frames of shape {stacks.shape[:-1]}, got {donor_frames.shape}")
    if not -stacks.shape[-1] <= frame < stacks.shape[-1]:
        raise ValueError(f"frame {frame} out of range for {stacks.shape[-1]} stacked frames")
    rs, cs = score_box(game).obs_slices(84, inner=False)
    out = stacks.copy()
    out[..., rs, cs, frame] = donor_frames[..., rs, cs]
    return out


ATARI_IDS: tuple[str, ...] = tuple(atari_id(game) for game in GAMES)
"""The env ids :func:`make_atari_venv` accepts: ``<Game>NoFrameskip-v4`` for every game of :data:`SCORE_BOXES`."""


def game_of(env_id: str) -> str:
    """The game name of an ALE id: ``"BreakoutNoFrameskip-v4"`` -> ``"Breakout"``, ``"ALE/Seaquest-v5"`` -> ``"Seaquest"``."""
    name = env_id.split("/")[-1].split("-v")[0]
    for suffix in ("NoFrameskip", "Deterministic"):
        name = name.removesuffix(suffix)
    return name


def _check_mode(mode: str) -> None:
    if mode not in SCORE_MODES:
        raise ValueError(f"unknown score mode {mode!r}; modes: {', '.join(SCORE_MODES)}")


def mask_frame(frame: np.ndarray, game: str, mode: str, sigma: float = SCORE_BLUR_SIGMA) -> np.ndarray:
    """The raw (210, 160, 3) RGB ``frame`` with ``game``'s score box shown, hidden or blurred (a new array
    unless ``mode == "shown"``, which returns ``frame`` itself)."""
    _check_mode(mode)
    if mode == "shown":
        return frame
    box = score_box(game)
    out = frame.copy()
    rs, cs = box.slices
    if mode == "hidden":
        out[rs, cs] = frame[box.background]
        return out
    # blurred: blur a window padded by the kernel radius, so the box's edges mix with their real surroundings
    pad = int(math.ceil(3 * sigma))
    r0, r1 = max(rs.start - pad, 0), min(rs.stop + pad, frame.shape[0])
    c0, c1 = max(cs.start - pad, 0), min(cs.stop + pad, frame.shape[1])
    window = np.ascontiguousarray(frame[r0:r1, c0:c1])
    blurred = cv2.GaussianBlur(window, (2 * pad + 1, 2 * pad + 1), sigmaX=sigma, sigmaY=sigma,
                               borderType=cv2.BORDER_REPLICATE)
    out[rs, cs] = blurred[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0]
    return out


class ScoreMask(gym.ObservationWrapper):
    """Show, hide or blur the score of the raw 210x160x3 RGB screen; put it right on the raw env.

    * ``"shown"``: identity.
    * ``"hidden"``: the box is painted with the colour of the box's background pixel in the current frame.
    * ``"blurred"``: the box is replaced by a Gaussian blur (``sigma``, default 3) of a padded window around it.

    ``game`` defaults to :func:`game_of` of the env's id. Dynamics, rewards and RAM are untouched.
    ``last_raw_frame`` is the unmasked RGB frame behind the last observation (for figures).
    """

    def __init__(self, env: gym.Env, game: str | None = None, mode: str = "shown", sigma: float = SCORE_BLUR_SIGMA):
        super().__init__(env)
        _check_mode(mode)
        if game is None:
            if env.spec is None:
                raise ValueError("ScoreMask needs game= for an env without a spec")
            game = game_of(env.spec.id)
        if mode != "shown":
            score_box(game)
        shape = env.observation_space.shape
        if shape is None or tuple(shape) != (*SCREEN_SHAPE, 3):
            raise ValueError(f"ScoreMask expects raw {(*SCREEN_SHAPE, 3)} RGB observations, got shape {shape}")
        self.game, self.mode, self.sigma = game, mode, float(sigma)
        self.box: ScoreBox | None = SCORE_BOXES.get(game)
        self.last_raw_frame: np.ndarray | None = None

    def observation(self, observation: np.ndarray) -> np.ndarray:
        self.last_raw_frame = observation
        return mask_frame(observation, self.game, self.mode, self.sigma)


class HiddenViewWarp(WarpFrame):
    """SB3's ``WarpFrame`` (grey, 84x84) that also warps the frame with the score box hidden
    (:func:`mask_frame` ``"hidden"``) into ``info["hidden_view"]``, at every step and reset.

    Below ``ScoreMask("shown")`` it sees exactly the frames the agent's observation is made of: the max of the
    last two raw frames of ``MaxAndSkipEnv``, or a raw frame at a reset. Hiding paints the box with one fixed
    background pixel, so it commutes with that pixelwise max: ``mask(max(a, b)) == max(mask(a), mask(b))``. So
    ``hidden_view`` is bit for bit the observation of the same game played with ``ScoreMask("hidden")``, from one
    emulator instead of two (checked against two replayed emulators in ``tests/test_atari_data.py``)."""

    def __init__(self, env: gym.Env, game: str, width: int = 84, height: int = 84) -> None:
        super().__init__(env, width, height)
        score_box(game)
        self.game = game

    def _with_view(self, frame: np.ndarray, info: dict) -> tuple[np.ndarray, dict]:
        return self.observation(frame), {**info, "hidden_view": self.observation(mask_frame(frame, self.game,
                                                                                               "hidden"))}

    def step(self, action):  # type: ignore[override]
        frame, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._with_view(frame, info)
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):  # type: ignore[override]
        frame, info = self.env.reset(**kwargs)
        return self._with_view(frame, info)


class HiddenViewRecorder(VecEnvWrapper):
    """Between the sub-envs and ``VecFrameStack``: keeps the hidden-score frames :class:`HiddenViewWarp` put in the
    infos of the last step (on a step that ended an episode: the next episode's first frame, and the last one
    apart) for :class:`HiddenView`."""

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.frames = np.stack([info["hidden_view"] for info in self.venv.reset_infos])
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        frames, terminal = [], {}
        for i, info in enumerate(infos):
            if dones[i]:
                terminal[i] = info["hidden_view"]
                frames.append(self.venv.reset_infos[i]["hidden_view"])
            else:
                frames.append(info["hidden_view"])
        self.last = (np.stack(frames), np.array(rewards, copy=True), np.array(dones, copy=True), terminal)
        return obs, rewards, dones, infos


class HiddenView:
    """The score-hidden twin of a venv of :func:`make_atari_venv` built with ``hidden_view=True``, without a second
    emulator: ``reset()`` and ``step(actions)`` return what the same game with the score hidden returns (stacked
    like ``VecFrameStack``, ``terminal_observation`` included), once the lead has been reset or stepped with the
    same actions (as :func:`~rewinterp_utils.data.play_lockstep` does with the lead first)."""

    def __init__(self, lead: VecEnv) -> None:
        recorder = getattr(lead, "venv", None)
        if not isinstance(lead, VecFrameStack) or not isinstance(recorder, HiddenViewRecorder):
            raise ValueError("HiddenView needs a venv of make_atari_venv(..., score='shown', hidden_view=True)")
        self.recorder, self.num_envs = recorder, lead.num_envs
        self.observation_space, self.action_space = lead.observation_space, lead.action_space
        self.stacked = StackedObservations(lead.num_envs, lead.stacked_obs.n_stack, recorder.observation_space,
                                           "last")

    def reset(self) -> np.ndarray:
        return self.stacked.reset(self.recorder.frames)

    def step(self, actions: np.ndarray):
        frames, rewards, dones, terminal = self.recorder.last
        infos = [{"terminal_observation": terminal[i]} if i in terminal else {} for i in range(self.num_envs)]
        obs, infos = self.stacked.update(frames, dones, infos)
        return obs, rewards, dones, infos


def vec_env_class(n_envs: int) -> Callable[..., VecEnv]:
    """How :func:`make_atari_venv` vectorises by default: sub-envs in worker processes (SB3's ``SubprocVecEnv``,
    started by its default forkserver, never a bare fork of this multi-threaded process) when there are several
    and a core is spare for them (:func:`~rewinterp_utils.device.spare_cores`), so the emulators step while torch
    keeps its own cores; else ``DummyVecEnv`` in this process. Both give the same observations and rewards (seeded
    per sub-env)."""
    return SubprocVecEnv if n_envs >= 2 and spare_cores() >= 1 else DummyVecEnv


def _check_env_id(env_id: str) -> None:
    if env_id not in ATARI_IDS:
        raise ValueError(f"unknown Atari env id {env_id!r}; supported: {', '.join(ATARI_IDS)}")


def make_atari_venv(
    env_id: str,
    n_envs: int = 1,
    seed: int = 0,
    score: str = "shown",
    n_stack: int = 4,
    vec_env_cls: Callable[..., VecEnv] | None = None,
    stream: str = "train",
    hidden_view: bool = False,
) -> VecEnv:
    """The paper's vectorised Atari env: observation (n_envs, 84, 84, n_stack) uint8, reward in {-1, 0, 1}.

    Per sub-env (innermost first): ``gym.make(env_id)`` -> :class:`ScoreMask` (``score``) -> SB3 ``Monitor``
    -> ``AtariWrapper(clip_reward=True, terminal_on_life_loss=True)``; then ``vec_env_cls`` (default:
    :func:`vec_env_class`, worker processes when a core is spare, else ``DummyVecEnv``) and
    ``VecFrameStack(n_stack)`` (skipped for ``n_stack=1``). Sub-env ``rank`` is seeded with
    ``sub_env_seeds(seed, n_envs, stream)[rank]`` (:mod:`~rewinterp_utils.seeding`; action space now, the env at the
    first ``reset``), so no two runs (``seed``) or roles (``stream``: training, evaluation, ...) share an
    environment, as they would with ``make_vec_env``'s ``seed + rank``.

    Two returns come out of this env:

    * **clipped per-life return** (the paper's metric): the sum of the clipped rewards of ``step`` until
      ``done``, which ``EpisodicLifeEnv`` raises at every lost life. A plain loop over ``venv.step`` sees it.
    * **game score**: ``info["episode"]["r"]`` of the ``infos`` entry at the end of a game (Monitor sits under
      the clipping and the life episodes; ``["l"]`` counts raw frames). SB3's ``evaluate_policy`` detects the
      Monitor and returns *these* game scores, not the clipped per-life return; ``EvalCallback`` likewise.

    :func:`~rewinterp_utils.evaluation.evaluate_atari` records both.

    ``hidden_view=True`` (with ``score="shown"``): each step also computes the score-hidden observation of the same
    game (:class:`HiddenViewWarp`); :class:`HiddenView` of the returned venv serves it as a venv of its own.
    """
    _check_env_id(env_id)
    _check_mode(score)
    if int(n_envs) != n_envs or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    if int(n_stack) != n_stack or n_stack < 1:
        raise ValueError(f"n_stack must be a positive integer, got {n_stack!r}")
    game = game_of(env_id)
    if hidden_view and (score != "shown" or n_stack < 2):
        raise ValueError("hidden_view needs score='shown' and a frame stack (n_stack >= 2)")
    seeds = sub_env_seeds(seed, n_envs, stream)

    def make_env(rank: int) -> Callable[[], gym.Env]:
        def _init() -> gym.Env:
            gym.register_envs(ale_py)  # again in subprocesses
            env = gym.make(env_id)
            env = ScoreMask(env, game, score)
            env.action_space.seed(seeds[rank])
            env = Monitor(env)
            env = AtariWrapper(env, clip_reward=True, terminal_on_life_loss=True)
            if hidden_view:  # the same chain with WarpFrame swapped for its twin that also gives the hidden view
                clip = env.env
                assert isinstance(clip, ClipRewardEnv) and type(clip.env) is WarpFrame, "SB3's AtariWrapper changed"
                clip.env = HiddenViewWarp(clip.env.env, game)
            return env

        return _init

    venv = (vec_env_cls or vec_env_class(n_envs))([make_env(rank) for rank in range(n_envs)])
    seed_sub_envs(venv, seeds)  # sub-env i is reset with seeds[i] at the first reset
    if hidden_view:
        venv = HiddenViewRecorder(venv)
    if n_stack > 1:
        venv = VecFrameStack(venv, n_stack=n_stack)
    return venv


__all__ = [
    "ATARI_IDS", "GAMES", "SCORES", "SCORE_BLUR_SIGMA", "SCORE_BOXES", "SCORE_MODES", "SCREEN_SHAPE", "ScoreBox",
    "ScoreMask", "HiddenView", "HiddenViewRecorder", "HiddenViewWarp", "atari_id", "game_of", "make_atari_venv",
    "mask_frame", "saliency_share", "score_area_share", "score_box", "score_edit", "vec_env_class",
]

"""Atari envs: score boxes, score masking on the raw screen, the preprocessed venv and the two returns."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from helpers import random_stacks as stacks

from rewinterp_utils.envs.atari import (
    ATARI_IDS,
    SCORE_BOXES,
    SCORE_MODES,
    ScoreBox,
    ScoreMask,
    game_of,
    make_atari_venv,
    mask_frame,
    saliency_share,
    score_area_share,
    score_edit,
)
from rewinterp_utils.evaluation import evaluate_atari

GAMES = ("Breakout", "Seaquest")


def raw_env(game: str, mode: str) -> ScoreMask:
    return ScoreMask(gym.make(f"{game}NoFrameskip-v4"), game, mode)


def test_score_box_table():
    assert set(GAMES) <= set(SCORE_BOXES)
    assert SCORE_BOXES["Breakout"] == ScoreBox(rows=(4, 16), cols=(35, 81), background=(10, 10))
    assert SCORE_BOXES["Seaquest"] == ScoreBox(rows=(7, 19), cols=(70, 120), background=(8, 65))
    box = SCORE_BOXES["Breakout"]
    assert box.slices == (slice(4, 17), slice(35, 82))  # inclusive ranges
    assert box.mask().sum() == 13 * 47
    with pytest.raises(dataclasses.FrozenInstanceError):
        box.rows = (0, 1)  # type: ignore[misc]
    with pytest.raises(ValueError, match="inside the box"):
        ScoreBox(rows=(4, 16), cols=(35, 81), background=(5, 40))
    assert ATARI_IDS == ("BreakoutNoFrameskip-v4", "SeaquestNoFrameskip-v4")
    assert [game_of(i) for i in ATARI_IDS] == ["Breakout", "Seaquest"]
    assert game_of("ALE/Pong-v5") == "Pong"
    # WarpFrame pixels computed only from box pixels lie inside the 'touching' ones
    inner, outer = box.obs_slices(), box.obs_slices(inner=False)
    assert outer[0].start <= inner[0].start < inner[0].stop <= outer[0].stop
    assert outer[1].start <= inner[1].start < inner[1].stop <= outer[1].stop


@pytest.mark.parametrize("game", GAMES)
def test_masking_leaves_game_unchanged_and_masks_only_the_box(game):
    """Three raw envs (shown/hidden/blurred) in lockstep on the same seed and actions: same RAM, rewards and
    ends; outside the box the frames agree; hidden box = background colour; blurred box differs; the shown
    box changes once a reward is collected."""
    envs = {mode: raw_env(game, mode) for mode in SCORE_MODES}
    box = SCORE_BOXES[game]
    outside = ~box.mask()
    n_actions = envs["shown"].action_space.n
    min_steps, budget = 300, 6000
    steps, seed, rewarded, shown_changed, blur_differs, first_box = 0, 0, False, False, False, None
    backgrounds = set()
    while steps < budget and (steps < min_steps or not (rewarded and shown_changed)):
        obs = {m: e.reset(seed=seed)[0] for m, e in envs.items()}
        actions = np.random.default_rng(seed).integers(0, n_actions, size=budget)
        for a in actions:
            for m, e in envs.items():
                raw = e.unwrapped.ale.getScreenRGB()
                assert np.array_equal(e.last_raw_frame, raw)  # the unmasked frame is kept
                assert np.array_equal(e.last_raw_frame, obs["shown"])
            s, h, b = obs["shown"], obs["hidden"], obs["blurred"]
            assert s.shape == (210, 160, 3) and h.dtype == np.uint8 and b.dtype == np.uint8
            for o in (h, b):
                assert np.array_equal(o[outside], s[outside])
            background = s[box.background]
            backgrounds.add(tuple(background))
            assert (h[box.slices] == background).all()
            blur_differs |= not np.array_equal(b[box.slices], s[box.slices])
            if first_box is None:
                first_box = s[box.slices].copy()
            shown_changed |= not np.array_equal(s[box.slices], first_box)

            out = {m: e.step(int(a)) for m, e in envs.items()}
            rams = [e.unwrapped.ale.getRAM() for e in envs.values()]
            assert all(np.array_equal(rams[0], r) for r in rams[1:])
            assert len({(o[1], o[2], o[3]) for o in out.values()}) == 1  # reward, terminated, truncated
            rewarded |= out["shown"][1] != 0
            obs = {m: o[0] for m, o in out.items()}
            steps += 1
            if out["shown"][2] or out["shown"][3] or (steps >= min_steps and rewarded and shown_changed):
                break
        seed += 1
    assert steps >= min_steps
    assert rewarded, f"no reward in {steps} random steps"
    assert shown_changed, "the shown score never changed although a reward was collected"
    assert blur_differs
    assert len(backgrounds) == 1  # so the hidden box is one constant colour throughout
    for e in envs.values():
        e.close()


def test_blur_is_a_real_blur():
    frame = np.zeros((210, 160, 3), np.uint8)
    box = SCORE_BOXES["Breakout"]
    frame[box.slices] = 255
    frame[8:12, 50:54] = 0  # a hole in the box
    out = mask_frame(frame, "Breakout", "blurred")
    assert out is not frame and np.array_equal(frame, mask_frame(frame, "Breakout", "shown"))
    assert np.array_equal(out[~box.mask()], frame[~box.mask()])
    inner = out[box.slices].astype(int)
    assert 0 < inner[6, 17, 0] < 255  # the hole is filled in
    assert inner[0, 0, 0] < 200  # the edge mixes with the black surroundings (padded window)


def test_mask_reaches_the_agent_through_atari_wrapper():
    """Hidden vs shown through MaxAndSkip/WarpFrame/FrameStack: the box is constant in what the agent sees,
    and the pixels the box does not touch are identical (same seeds, same actions)."""
    vs = {m: make_atari_venv("BreakoutNoFrameskip-v4", n_envs=2, seed=3, score=m) for m in ("shown", "hidden")}
    box = SCORE_BOXES["Breakout"]
    inner, outer = box.obs_slices(), box.obs_slices(inner=False)
    away = np.ones((84, 84), bool)
    away[outer] = False
    obs = {m: v.reset() for m, v in vs.items()}
    actions = np.random.default_rng(0).integers(0, 4, size=(60, 2))
    for a in actions:
        for m in vs:
            assert obs[m].shape == (2, 84, 84, 4) and obs[m].dtype == np.uint8
        assert np.array_equal(obs["shown"][:, away], obs["hidden"][:, away])
        assert np.unique(obs["hidden"][:, inner[0], inner[1], :]).size == 1
        assert np.unique(obs["shown"][:, inner[0], inner[1], -1]).size > 1  # the digits are visible
        steps = {m: v.step(a) for m, v in vs.items()}
        assert np.array_equal(steps["shown"][1], steps["hidden"][1])
        assert set(np.unique(steps["shown"][1])) <= {-1.0, 0.0, 1.0}
        obs = {m: s[0] for m, s in steps.items()}
    for v in vs.values():
        v.close()


def test_venv_shapes_clipping_and_monitor_game_score():
    venv = make_atari_venv("SeaquestNoFrameskip-v4", n_envs=1, seed=0)
    obs = venv.reset()
    assert obs.shape == (1, 84, 84, 4) and obs.dtype == np.uint8
    venv.action_space.seed(0)
    clipped, life_ends, episode, n = 0.0, 0, None, 0
    for n in range(1, 3001):
        obs, rewards, dones, infos = venv.step(np.array([venv.action_space.sample()]))
        assert obs.shape == (1, 84, 84, 4) and rewards[0] in (-1.0, 0.0, 1.0)
        clipped += rewards[0]
        life_ends += int(dones[0])
        if "episode" in infos[0]:
            episode = infos[0]["episode"]
            break
    assert episode is not None, "no Seaquest game ended within 3000 random steps"
    assert life_ends == 4  # one done per life (EpisodicLifeEnv), Monitor's episode only at game over
    assert clipped >= 1 and episode["r"] >= 20 * clipped  # unclipped: Seaquest kills are worth 20+
    assert episode["l"] > 3 * n  # Monitor counts raw frames: 4 per agent step (noop/fire resets add some)
    venv.close()


def test_evaluate_atari_records_both_returns():
    res = evaluate_atari(None, "BreakoutNoFrameskip-v4", n_episodes=2, n_envs=2, seed=1)
    assert res["n_games"] == 2 and not res["truncated"]
    assert res["n_lives"] == 10  # Breakout: 5 lives per game
    assert len(res["clipped_returns"]) == res["n_lives"] and len(res["game_lengths"]) == 2
    assert res["clipped_return_mean"] == pytest.approx(np.mean(res["clipped_returns"]))
    assert res["game_score_mean"] == pytest.approx(np.mean(res["game_scores"]))
    # Breakout's bricks of the first rows are worth 1, so a random game's score equals its clipped sum
    assert sum(res["game_scores"]) >= sum(res["clipped_returns"])

    class Fire:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.ones(len(obs), dtype=int), state

    with pytest.warns(RuntimeWarning, match="max_steps"):
        res = evaluate_atari(Fire(), "BreakoutNoFrameskip-v4", n_episodes=1, max_steps=20)
    assert res["truncated"] and res["n_games"] == 0 and res["steps"] == 20 and np.isnan(res["game_score_mean"])
    with pytest.warns(RuntimeWarning, match="max_steps"):
        res = evaluate_atari(lambda obs: np.zeros(len(obs), dtype=int), "BreakoutNoFrameskip-v4", n_episodes=1,
                             max_steps=5)
    assert res["steps"] == 5


def test_errors():
    pong = gym.make("PongNoFrameskip-v4")
    ScoreMask(pong, mode="shown")  # no box needed to show the score
    with pytest.raises(ValueError, match="Breakout, Seaquest"):
        ScoreMask(pong, mode="hidden")
    with pytest.raises(ValueError, match="Breakout, Seaquest"):
        ScoreMask(pong, "Pong", "blurred")
    with pytest.raises(ValueError, match="shown, hidden, blurred"):
        ScoreMask(pong, "Breakout", "erased")
    pong.close()
    with pytest.raises(ValueError, match="BreakoutNoFrameskip-v4, SeaquestNoFrameskip-v4"):
        make_atari_venv("PongNoFrameskip-v4", score="hidden")
    with pytest.raises(ValueError, match="shown, hidden, blurred"):
        make_atari_venv("BreakoutNoFrameskip-v4", score="erased")
    with pytest.raises(ValueError, match="n_envs"):
        make_atari_venv("BreakoutNoFrameskip-v4", n_envs=0)
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate_atari(None, "BreakoutNoFrameskip-v4", n_episodes=0)
    with pytest.raises(ValueError, match="210, 160, 3"):
        ScoreMask(gym.make("BreakoutNoFrameskip-v4", obs_type="grayscale"), "Breakout", "hidden")


# ------------------------------------------------------------------------------- score box on observations
@pytest.mark.parametrize("game", list(SCORE_BOXES))
def test_saliency_share_and_area(game):
    rs, cs = SCORE_BOXES[game].obs_slices(84, inner=False)
    inside = np.zeros((84, 84))
    inside[rs, cs] = np.random.default_rng(0).random((rs.stop - rs.start, cs.stop - cs.start))
    outside = np.random.default_rng(1).random((84, 84))
    outside[rs, cs] = 0
    assert saliency_share(inside, game) == 1.0 and saliency_share(outside, game) == 0.0
    np.testing.assert_allclose(saliency_share(np.stack([inside, outside, np.ones((84, 84))]), game),
                               [1.0, 0.0, score_area_share(game)])
    assert score_area_share(game) == (rs.stop - rs.start) * (cs.stop - cs.start) / 84**2


@pytest.mark.parametrize("game", list(SCORE_BOXES))
def test_score_edit(game):
    obs, donor = stacks(3), stacks(1, seed=1)[0, ..., :3].transpose(2, 0, 1)
    obs0, donor0 = obs.copy(), donor.copy()
    edited = score_edit(obs, donor, game)
    np.testing.assert_array_equal(obs, obs0)
    np.testing.assert_array_equal(donor, donor0)
    rs, cs = SCORE_BOXES[game].obs_slices(84, inner=False)
    box = np.zeros((84, 84), dtype=bool)
    box[rs, cs] = True
    np.testing.assert_array_equal(edited[:, box, 3], donor[:, box])
    np.testing.assert_array_equal(edited[:, ~box, 3], obs[:, ~box, 3])
    np.testing.assert_array_equal(edited[..., :3], obs[..., :3])
    np.testing.assert_array_equal(score_edit(obs, donor, game, frame=0)[..., 1:], obs[..., 1:])


def test_score_bad_inputs():
    with pytest.raises(ValueError, match="supported games: Breakout, Seaquest"):
        score_area_share("Pong")
    with pytest.raises(ValueError, match="supported games"):
        saliency_share(np.ones((84, 84)), "Pong")
    with pytest.raises(ValueError, match="supported games"):
        score_edit(stacks(1), np.zeros((1, 84, 84)), "Pong")
    with pytest.raises(ValueError, match="donor_frames"):
        score_edit(stacks(2), np.zeros((1, 84, 84)), "Breakout")
    with pytest.raises(ValueError, match="stacks"):
        score_edit(np.zeros((2, 80, 80, 4)), np.zeros((2, 80, 80)), "Breakout")
    with pytest.raises(ValueError, match="saliency map"):
        saliency_share(np.ones((17, 17)), "Breakout")


# ----------------------------------------------------- the score box on the observation, against WarpFrame itself
class _Screen(gym.Env):
    """A stand-in raw env: one fixed (210, 160, 3) screen, for :class:`WarpFrame` to resize."""

    observation_space = gym.spaces.Box(0, 255, (210, 160, 3), np.uint8)
    action_space = gym.spaces.Discrete(1)


def _resized(box: ScoreBox, dtype: type = np.float64) -> np.ndarray:
    """The 84 x 84 image of a 210 x 160 screen that is 1 inside ``box`` and 0 elsewhere, resized as SB3's
    ``WarpFrame`` does (``cv2.INTER_AREA``; float, so that a sliver of the box does not round to 0)."""
    import cv2

    screen = np.zeros((210, 160), dtype)
    screen[box.slices] = 1
    return cv2.resize(screen, (84, 84), interpolation=cv2.INTER_AREA)


def _where(slices: tuple[slice, slice]) -> np.ndarray:
    out = np.zeros((84, 84), bool)
    out[slices] = True
    return out


def _boxes() -> list[ScoreBox]:
    """The games' boxes, boxes on the screen's edges and on pixel boundaries that fall exactly on a resized pixel's
    (row 5 = 2 x 2.5, column 40 = 21 x 160/84), one-pixel boxes, and random ones."""
    spans = [((4, 16), (35, 81)), ((0, 0), (0, 0)), ((209, 209), (159, 159)), ((5, 9), (40, 40)),
             ((0, 209), (1, 159)), ((5, 5), (0, 79)), ((4, 10), (39, 41))]
    rng = np.random.default_rng(0)
    spans += [(tuple(sorted(rng.integers(0, 210, 2).tolist())), tuple(sorted(rng.integers(0, 160, 2).tolist())))
              for _ in range(200)]
    out = list(SCORE_BOXES.values())
    for rows, cols in spans:
        background = (0, 0) if rows[0] > 0 or cols[0] > 0 else (209, 159)
        out.append(ScoreBox(rows, cols, background))
    return out


def test_obs_slices_are_the_pixels_the_resize_draws_from_the_box():
    """Oracle: ``cv2.resize(INTER_AREA)`` of a screen non-zero only in the box. ``inner=False`` is exactly the
    resized pixels the box reaches (> 0), ``inner=True`` exactly those computed from box pixels only (== 1)."""
    for box in _boxes():
        small = _resized(box)
        np.testing.assert_array_equal(_where(box.obs_slices(84, inner=False)), small > 0, err_msg=str(box))
        np.testing.assert_array_equal(_where(box.obs_slices(84, inner=True)), np.isclose(small, 1.0),
                                      err_msg=str(box))


@pytest.mark.parametrize("game", list(SCORE_BOXES))
def test_the_score_box_is_where_warpframe_shows_it(game):
    """Through SB3's own ``WarpFrame`` (grey, 84 x 84, uint8) on a white box on a black screen: the pixels it
    lights are the box of ``obs_slices(inner=False)``, the full-white ones those of ``inner=True``."""
    from stable_baselines3.common.atari_wrappers import WarpFrame

    box = SCORE_BOXES[game]
    screen = np.zeros((210, 160, 3), np.uint8)
    screen[box.slices] = 255
    small = WarpFrame(_Screen()).observation(screen)[..., 0]
    np.testing.assert_array_equal(_where(box.obs_slices(84, inner=False)), small > 0)
    np.testing.assert_array_equal(_where(box.obs_slices(84, inner=True)), small == 255)


@pytest.mark.parametrize("game", list(SCORE_BOXES))
def test_saliency_share_against_the_resized_box(game):
    """Oracle: the box is where the resized box image is non-zero; the share is a plain loop over pixels of
    |map| inside over |map| everywhere (signed maps: a share of the raw values would differ), the area share the
    box's pixel count over 84 x 84, and an all-zero map has no share (NaN)."""
    inside = _resized(SCORE_BOXES[game]) > 0
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(5, 84, 84))
    maps[1] = np.where(inside, -3.0, 0.5)  # most of the mass in the box, negative there
    maps[2] = 0.0
    expected = []
    for m in maps:
        total = box_mass = 0.0
        for r in range(84):
            for c in range(84):
                total += abs(m[r, c])
                box_mass += abs(m[r, c]) if inside[r, c] else 0.0
        expected.append(box_mass / total if total else np.nan)
    np.testing.assert_allclose(saliency_share(maps, game), expected, rtol=1e-12)
    assert saliency_share(maps[0], game) == pytest.approx(expected[0], rel=1e-12)
    assert np.isnan(saliency_share(maps[2], game))
    assert score_area_share(game) == inside.sum() / 84**2

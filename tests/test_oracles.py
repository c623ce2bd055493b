"""Checks against independent oracles (the environment's own record, plain numpy/scipy loops), each written to fail
on one class of real bug: s instead of s' in the Atari dataset, a stale screen, the wrong s after an auto-reset
in the learned-reward wrapper, per-life returns that do not add up to the game, occlusion that blurs across
frames or twice, upsampling that squeezes the map into a corner."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from stable_baselines3.common.atari_wrappers import MaxAndSkipEnv
from stable_baselines3.common.env_util import make_vec_env

from rewinterp_utils.attribution import occlusion_saliency, occlusion_saliency_loop, upsample_saliency
from rewinterp_utils.data import collect_balanced
from rewinterp_utils.envs.atari import SCORE_BOXES, make_atari_venv
from rewinterp_utils.evaluation import evaluate_atari
from rewinterp_utils.reward_models import AtariRewardCNN
from rewinterp_utils.wrappers import LearnedRewardVecEnv

BREAKOUT = "BreakoutNoFrameskip-v4"


class Scripted:
    """A policy replaying a fixed action sequence, one row per vector step (same actions in every replay)."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions, self.t = actions, 0

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        a = self.actions[self.t]
        self.t += 1
        return a, state

    def __call__(self, obs):
        return self.predict(obs)[0]


def inner(venv, i: int, cls):
    """The wrapper of class ``cls`` around sub-env ``i`` of a (frame-stacked) DummyVecEnv."""
    env = venv.venv.envs[i]
    while not isinstance(env, cls):
        env = env.env
    return env


# ------------------------------------------------------------------------------------------ the Atari dataset
def test_every_kept_sample_is_the_observation_after_its_step():
    """Replay the same actions in a twin env and record, per step, the env's own s', reward, raw screen (the ALE's)
    and the two raw frames MaxAndSkip pooled: every kept sample must match them exactly."""
    n_envs, seed = 2, 3
    actions = np.random.default_rng(0).integers(4, size=(30_000, n_envs))
    data = collect_balanced(Scripted(actions), {s: make_atari_venv(BREAKOUT, n_envs, seed, s)
                                                for s in ("shown", "hidden")},
                            n_rewarded=4, n_unrewarded=6, max_steps=40_000, seed=0, n_screens=8)
    screen_of = dict(zip(data["screen_index"].tolist(), data["screen"]))
    assert len(screen_of) == 8
    last = int(data["step"].max()) // n_envs
    twin = make_atari_venv(BREAKOUT, n_envs, seed, "shown")
    twin.reset()
    record = []
    for t in range(last):
        obs, rewards, dones, _ = twin.step(actions[t])
        screens = [inner(twin, i, MaxAndSkipEnv).unwrapped.ale.getScreenRGB() for i in range(n_envs)]
        pooled = [inner(twin, i, MaxAndSkipEnv)._obs_buffer.max(axis=0) for i in range(n_envs)]
        record.append((obs.copy(), rewards.copy(), dones.copy(), screens, pooled))
    for k in range(len(data["reward"])):
        obs, rewards, dones, screens, pooled = record[data["step"][k] // n_envs - 1]
        matches = [i for i in range(n_envs) if np.array_equal(data["obs_shown"][k], obs[i])]
        assert matches, f"sample {k} is not the s' of the step it was taken at"
        i = matches[0]
        assert data["reward"][k] == rewards[i] and not dones[i]
        if k in screen_of:
            assert np.array_equal(screen_of[k], screens[i]), "the screen behind s' is that step's last frame"
        grey = cv2.cvtColor(pooled[i], cv2.COLOR_RGB2GRAY)
        expected = cv2.resize(grey, (84, 84), interpolation=cv2.INTER_AREA)
        assert np.array_equal(data["obs_shown"][k][:, :, -1], expected), "the last frame pools the last two frames"


# ----------------------------------------------------------------------------- the learned-reward wrapper's s
def _check_s_after_resets(make, actions: np.ndarray) -> int:
    calls = []

    def spy(s, s_next):
        calls.append((np.array(s, copy=True), np.array(s_next, copy=True)))
        return np.zeros(len(s), np.float32)

    venv = LearnedRewardVecEnv(make(), spy)
    previous = venv.reset().copy()
    resets = 0
    for t, a in enumerate(actions):
        obs, _, dones, infos = venv.step(a)
        s, s_next = calls[t]
        assert np.array_equal(s, previous), f"step {t}: s must be the observation the env returned last"
        for i in range(len(a)):
            expected = infos[i]["terminal_observation"] if dones[i] else obs[i]
            assert np.array_equal(s_next[i], expected), f"step {t}, env {i}: s' must be the step's own result"
        resets += int(dones.sum())
        previous = obs.copy()
    return resets


def test_wrapper_s_after_an_auto_reset_maze():
    actions = np.random.default_rng(1).integers(4, size=(1_500, 3))
    resets = _check_s_after_resets(lambda: make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=3, seed=0), actions)
    assert resets >= 5


def test_wrapper_s_after_an_auto_reset_atari_frame_stack():
    actions = np.random.default_rng(2).integers(4, size=(600, 2))
    resets = _check_s_after_resets(lambda: make_atari_venv(BREAKOUT, n_envs=2, seed=0), actions)
    assert resets >= 2  # lives lost: EpisodicLife ends an episode, VecFrameStack restarts its stack


# ----------------------------------------------------------------------------------------- per-life returns
def test_per_life_clipped_returns_add_up_to_the_games_clipped_total():
    actions = np.random.default_rng(4).integers(4, size=(20_000, 1))
    venv = make_atari_venv(BREAKOUT, n_envs=1, seed=5, stream="eval")  # the games evaluate_atari plays
    venv.reset()
    total, lives, t = 0.0, 0, 0
    while True:  # a plain loop over one whole game
        _, rewards, dones, infos = venv.step(actions[t])
        t += 1
        total += float(rewards[0])
        lives += int(dones[0])
        if "episode" in infos[0]:
            score = infos[0]["episode"]["r"]
            break
    res = evaluate_atari(Scripted(actions), BREAKOUT, n_episodes=1, n_envs=1, seed=5)
    assert total > 0, "pick a seed whose game scores"
    assert res["n_lives"] == lives == 5
    assert sum(res["clipped_returns"]) == total
    assert res["game_scores"] == [score]


# --------------------------------------------------------------------------------------- occlusion saliency
def occlusion_reference(model: torch.nn.Module, obs: np.ndarray) -> np.ndarray:
    """Greydanus et al.'s occlusion written out with numpy and scipy only: for each of the 17 x 17 centres,
    I' = I (1 - M) + blur(I) M with M an unnormalised Gaussian (sigma 5) and blur a per-frame Gaussian filter
    (sigma 3); score 0.5 (R(I) - R(I'))^2."""
    rows, cols = np.mgrid[0:84, 0:84]

    def reward(x: np.ndarray) -> float:
        with torch.no_grad():
            return float(model(torch.as_tensor(x[None], dtype=torch.float64))[0])

    out = np.zeros((len(obs), 17, 17))
    for n, frame_stack in enumerate(obs.astype(np.float64)):
        blurred = np.stack([gaussian_filter(frame_stack[:, :, f], 3) for f in range(frame_stack.shape[-1])], -1)
        base = reward(frame_stack)
        for a, ci in enumerate(range(0, 84, 5)):
            for b, cj in enumerate(range(0, 84, 5)):
                mask = np.exp(-((rows - ci) ** 2 + (cols - cj) ** 2) / (2 * 5.0 ** 2))[:, :, None]
                perturbed = frame_stack * (1 - mask) + blurred * mask
                out[n, a, b] = 0.5 * (base - reward(perturbed)) ** 2
    return out


@pytest.mark.usefixtures("one_torch_thread")  # 578 single-sample passes: threads only contend
def test_occlusion_equals_a_plain_per_position_loop():
    torch.manual_seed(0)
    model = AtariRewardCNN().double().eval()  # float64: the comparison is about the method, not rounding
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, size=(2, 84, 84, 4), dtype=np.uint8)
    obs[..., 1] = 0  # frames that differ a lot: blurring across frames would show
    expected = occlusion_reference(model, obs)
    # all 289 masks in one pass, in chunks of 100 (the last one short), and the library's own per-position
    # reference (the "occlusion_loop" method; one observation: it is slow)
    for got, want in ((occlusion_saliency(model, obs), expected),
                      (occlusion_saliency(model, obs, chunk_size=100), expected),
                      (occlusion_saliency_loop(model, obs[:1]), expected[:1])):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * expected.max())


# -------------------------------------------------------------------------------------------- upsampling
@pytest.mark.parametrize("game", list(SCORE_BOXES))
def test_a_map_hot_only_in_the_score_box_peaks_inside_the_raw_screen_box(game):
    box = SCORE_BOXES[game]
    centres = np.arange(0, 84, 5)
    # grid centres (84 x 84 frame) whose raw-screen pixel lies inside the box
    inside_r = [(c + 0.5) * 210 / 84 for c in centres]
    inside_c = [(c + 0.5) * 160 / 84 for c in centres]
    hot = np.zeros((17, 17))
    for a, r in enumerate(inside_r):
        for b, c in enumerate(inside_c):
            if box.rows[0] <= r <= box.rows[1] and box.cols[0] <= c <= box.cols[1]:
                hot[a, b] = 1.0
    assert hot.sum() >= 1
    up = upsample_saliency(hot, shape=(210, 160))
    r, c = np.unravel_index(np.argmax(up), up.shape)
    assert box.rows[0] <= r <= box.rows[1] and box.cols[0] <= c <= box.cols[1], (r, c)
    mass_in_box = up[box.slices].sum() / up.sum()
    assert mass_in_box > 0.3


# ---------------------------------------------------------------------------------------------- score boxes
@pytest.mark.parametrize("game", list(SCORE_BOXES))
def test_the_score_box_covers_every_hud_pixel_that_changes_when_a_reward_comes(game):
    """Random play; on every rewarded step, the raw-screen pixels that changed in the band above the playfield
    (down to 8 rows below the box) must all lie inside the box, and the digits must change there."""
    box = SCORE_BOXES[game]
    band = box.rows[1] + 8
    venv = make_atari_venv(f"{game}NoFrameskip-v4", n_envs=1, seed=0, n_stack=1)
    venv.reset()
    previous = venv.get_attr("last_raw_frame")[0].copy()
    rng = np.random.default_rng(0)
    rewarded = inside = 0
    for _ in range(5_000):
        _, rewards, dones, _ = venv.step(rng.integers(venv.action_space.n, size=1))
        frame = venv.get_attr("last_raw_frame")[0].copy()
        if rewards[0] != 0 and not dones[0]:
            changed = (frame != previous).any(-1)
            changed[box.slices] = False
            assert not changed[:band].any(), f"HUD pixels outside the box changed: {np.argwhere(changed[:band])[:5]}"
            rewarded += 1
            inside += bool((frame[box.slices] != previous[box.slices]).any())
        previous = frame
    assert rewarded >= 10 and inside >= rewarded // 2


def test_fit_regression_equals_a_plain_minibatch_adam_loop():
    """The paper's regression as every reward-model stage runs it, against a loop written out here: a fresh
    permutation per epoch from one seeded generator, minibatch MSE, Adam. Same weights to the last bit."""
    from rewinterp_utils.reward_models import MazeRewardMLP, fit_regression

    rng = np.random.default_rng(0)
    s, s_next = (torch.as_tensor(rng.integers(0, 4, (53, 11, 11)), dtype=torch.float32) for _ in range(2))
    y = torch.as_tensor(rng.random(53), dtype=torch.float32)
    torch.manual_seed(3)
    ours = MazeRewardMLP()
    history = fit_regression(ours, (s, s_next), y, epochs=3, batch_size=10, learning_rate=1e-3, seed=5)
    torch.manual_seed(3)
    plain = MazeRewardMLP()
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        order = torch.randperm(53, generator=gen)
        for start in range(0, 53, 10):
            idx = order[start:start + 10]
            loss = ((plain(s[idx], s_next[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert len(history) == 3
    for a, b in zip(ours.parameters(), plain.parameters()):
        assert torch.equal(a, b)

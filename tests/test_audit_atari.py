"""The audit of an Atari reward model ``R(s')``: the score audits' verdicts against hand-built rules whose answers
are known (one reads the score box, one reads only the play field), bad input naming what is wrong, and
``rewinterp audit`` end to end at smoke on a reward model the book trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewinterp_utils import audit
from rewinterp_utils.checks import atari_checks
from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED
from rewinterp_utils.reward_models import AtariRewardCNN, MazeRewardMLP, as_reward_model, save_model

GAME = "Breakout"
ROWS, COLS = slice(1, 7), slice(18, 44)
"""Breakout's score box on the 84x84 observation, written out by hand from its raw box (rows 4-16, cols 35-81 of
210x160): every resized pixel a box pixel touches."""
FIELD = slice(30, 84)
"""Rows of the play field the field reader looks at, far below the box."""


def outcomes(claims) -> dict[str, str]:
    return {c.key: c.verdict.outcome for c in claims}


def score_reader(obs: np.ndarray) -> np.ndarray:
    """Pays for a change of the score box between the last two frames (the shortcut the Atari chapter tests for)."""
    obs = np.asarray(obs, dtype=np.float64)
    return np.abs(obs[:, ROWS, COLS, -1] - obs[:, ROWS, COLS, -2]).mean(axis=(1, 2)) / 64


def field_reader(obs: np.ndarray) -> np.ndarray:
    """Reads only the play field of the last frame: no score edit can move it."""
    return np.asarray(obs, dtype=np.float64)[:, FIELD, :, -1].mean(axis=(1, 2)) / 255


def stacks(n: int = 24, seed: int = 0) -> dict[str, np.ndarray]:
    """Held-out data in ``atari_dataset``'s form: random screens, every other stack rewarded; a rewarded stack's
    score box differs between its last two frames (new digits), an unrewarded one's does not. Two sub-envs take turns
    in pairs of rows (a rewarded and an unrewarded stack each), so every unrewarded stack but the last two has a
    later rewarded one in its own sub-env."""
    rng = np.random.default_rng(seed)
    obs = np.repeat(rng.integers(0, 256, (n, 84, 84, 1), dtype=np.uint8), 4, axis=-1)
    reward = np.tile([1.0, 0.0], n // 2)
    for i in np.flatnonzero(reward):
        obs[i, ROWS, COLS, -1] = rng.integers(0, 256, (6, 26), dtype=np.uint8)
    return {"obs_shown": obs, "reward": reward, "step": np.arange(n), "env": np.arange(n) // 2 % 2}


def test_the_target_names_a_maze_or_a_game_with_its_score_setting():
    assert audit.audit_target("Breakout") == audit.AuditTarget("atari", "BreakoutNoFrameskip-v4", GAME, "shown")
    assert audit.audit_target("SeaquestNoFrameskip-v4:hidden").score == "hidden"
    assert audit.audit_target("EmptyMaze-10x10-CoinFlipGoal-v3").kind == "maze"
    with pytest.raises(ValueError, match=r"unknown score setting 'blurry'.*shown, hidden"):
        audit.audit_target("Breakout:blurry")
    with pytest.raises(ValueError, match=r"unknown environment 'Pong-v5'; expected a maze id .*BreakoutNoFrameskip"):
        audit.audit_target("Pong-v5")


def test_the_score_reader_fails_every_score_audit_and_the_field_reader_passes_them():
    data = audit.check_dataset(stacks(), "Breakout:shown")
    frames = data["s_next"][:8]
    expected = {"score reader": FAILS, "field reader": HOLDS}
    for name, fn in (("score reader", score_reader), ("field reader", field_reader)):
        model = as_reward_model(fn, ("s_next",))
        edits, c_edits = audit.score_edit_audit(model, data, GAME, n_frames=12)
        _, c_share = audit.score_share_audit(model, frames, GAME)
        _, c_checks = audit.unit_check_audit(model, 8, checks=atari_checks(GAME), inputs=(frames,))
        assert outcomes(c_edits) == {"score_edit.fake_increment": expected[name],
                                     "score_edit.frozen": expected[name]}, name
        assert outcomes(c_share) == {"score_saliency": expected[name]}, name
        assert set(outcomes(c_checks).values()) == {expected[name]}, name
        if name == "score reader":  # pasting new digits pays, freezing them takes the reward away
            assert edits.loc["fake increment", "change"] > 1 and edits.loc["frozen score", "change"] < -1
            assert edits.loc["frozen score", "stacks"] == 6
        else:
            assert np.allclose(edits["change"], 0.0)


def test_an_edit_that_changes_no_input_is_undecided():
    """No rewarded stack's digits move: the frozen-score edit has nothing to freeze. Every box is painted the same
    (a score-hidden setting): pasting another stack's box changes nothing, so the score-digits check is untested."""
    data = stacks()
    data["obs_shown"][..., -1] = data["obs_shown"][..., -2]  # the digits never move
    field = as_reward_model(field_reader, ("s_next",))
    _, claims = audit.score_edit_audit(field, audit.check_dataset(data, GAME), GAME, n_frames=12)
    assert outcomes(claims)["score_edit.frozen"] == UNDECIDED
    painted = data["obs_shown"][:8].copy()
    painted[:, ROWS, COLS, :] = 0
    table, claims = audit.unit_check_audit(field, 8, checks=atari_checks(GAME), inputs=(painted,))
    assert table["n"].tolist() == [0] and outcomes(claims) == {"check.score_digits_change_only": UNDECIDED}


# ------------------------------------------------------------------- score edits: the donor, the count, the guard
REWARDS = {0: (3, 6, 10), 1: (2, 4, 5, 8, 11)}
"""The lockstep steps (1 to 12) on which each of two sub-envs earns a reward: never both on one step."""
START = {0: 200, 1: 20}
"""Each sub-env's score when play starts: another game's score is far off."""


def two_games(painted: tuple[int, ...] = (), seed: int = 0) -> dict[str, np.ndarray]:
    """Two sub-envs played in lockstep for 12 steps (``step`` = 2 t, as collect_balanced counts), each showing its own
    score as the grey level of the whole score box; a rewarded step adds 1 to its sub-env's score (the last frame
    shows the new score, the three before it the old one). Sub-envs in ``painted`` have their box painted over (0 in
    every frame, as with the score hidden). Rows shuffled, as a split's rows are not in time order; ``score`` (the
    score each stack's last frame shows) is the oracle's."""
    rows, score = [], dict(START)
    for t in range(1, 13):
        for env in (0, 1):
            old = score[env]
            score[env] += t in REWARDS[env]
            stack = np.zeros((84, 84, 4), np.uint8)
            stack[ROWS, COLS, :] = 0 if env in painted else old
            stack[ROWS, COLS, -1] = 0 if env in painted else score[env]
            rows.append((stack, float(t in REWARDS[env]), 2 * t, env, score[env]))
    order = np.random.default_rng(seed).permutation(len(rows))
    stacks_, reward, step, env, shows = (np.array(c) for c in zip(*(rows[i] for i in order)))
    return {"obs_shown": stacks_, "reward": reward, "step": step, "env": env, "score": shows}


def increment_reader(obs: np.ndarray) -> np.ndarray:
    """Pays the score's rise between the last two frames: exactly 1 for a real reward, 0 for a still score."""
    box = np.asarray(obs, dtype=np.float64)[:, ROWS, COLS]
    return box[..., -1].mean(axis=(1, 2)) - box[..., -2].mean(axis=(1, 2))


def donor_by_hand(data: dict[str, np.ndarray], i: int) -> int:
    """Oracle: walk play forward in time from row ``i`` and stop at the first rewarded row of the same sub-env."""
    for j in sorted(range(len(data["step"])), key=lambda j: data["step"][j]):
        if data["step"][j] > data["step"][i] and data["env"][j] == data["env"][i] and data["reward"][j] != 0:
            return j
    return -1


def test_the_fake_increment_pastes_the_next_score_of_the_same_game():
    """Every unrewarded stack with a later reward in its own sub-env gets that sub-env's next score, its own plus one
    (hand-computed), from the donor a plain walk through time finds; a stack whose sub-env earns nothing later is not
    edited. Taking the next rewarded stack of either sub-env pastes the other game's score (about 200 against 20)."""
    from rewinterp_utils.score_edits import FAKE, FROZEN, next_rewarded_same_env, score_edits

    data = two_games()
    rows = np.arange(len(data["reward"]))
    no = rows[data["reward"] == 0]
    donors = next_rewarded_same_env(data["reward"], data["step"], data["env"], no)
    assert donors.tolist() == [donor_by_hand(data, i) for i in no]
    edits = score_edits(data, rows, GAME)
    fake = edits[FAKE]
    last = {env: 2 * max(ts) for env, ts in REWARDS.items()}
    assert fake.rows.tolist() == no.tolist()
    assert fake.changed.tolist() == [bool(data["step"][i] < last[data["env"][i]]) for i in no]
    assert [int(e[ROWS, COLS, -1].mean()) for e in fake.edited] == [data["score"][i] + 1 for i in fake.changed_rows]
    assert edits[FROZEN].changed.all() and len(edits[FROZEN].rows) == len(REWARDS[0]) + len(REWARDS[1])
    # through the audit: every changed stack rises by exactly 1 (and a frozen score falls by exactly 1)
    reader = as_reward_model(increment_reader, ("s_next",))
    table, claims = audit.score_edit_audit(reader, audit.check_dataset(data, GAME), GAME, n_frames=len(rows))
    assert table.loc["fake increment", "change"] == 1.0 and table.loc["frozen score", "change"] == -1.0
    assert outcomes(claims) == {"score_edit.fake_increment": FAILS, "score_edit.frozen": FAILS}


def test_only_the_stacks_an_edit_changed_count_and_none_is_undecided():
    """Sub-env 1's box is painted over: its pastes change nothing and must not dilute the change of sub-env 0's (each
    exactly 1); with both painted no edit changes anything, and both claims are undecided (not "holds")."""
    from rewinterp_utils.sanity import balanced_indices

    data = two_games(painted=(1,))
    reader = as_reward_model(increment_reader, ("s_next",))
    n = len(data["reward"])
    table, _ = audit.score_edit_audit(reader, audit.check_dataset(data, GAME), GAME, n_frames=n)
    pick = balanced_indices(data["reward"] != 0, n, 0)
    counted = [i for i in pick if data["reward"][i] == 0 and data["env"][i] == 0 and donor_by_hand(data, i) >= 0]
    assert table.loc["fake increment", "stacks"] == len(counted) > 0
    assert table.loc["fake increment", "tried"] > len(counted)  # sub-env 1's stacks were tried, and not counted
    assert table.loc["fake increment", "change"] == 1.0
    assert table.loc["frozen score", "stacks"] == len(REWARDS[0]) and table.loc["frozen score", "change"] == -1.0

    table, claims = audit.score_edit_audit(reader, audit.check_dataset(two_games(painted=(0, 1)), GAME), GAME,
                                           n_frames=n)
    assert table["stacks"].tolist() == [0, 0] and table["change"].isna().all()
    assert outcomes(claims) == {"score_edit.fake_increment": UNDECIDED, "score_edit.frozen": UNDECIDED}
    assert all("changed none" in c.measured for c in claims)


def test_a_dataset_without_the_sub_env_is_refused():
    """A dataset written before ``env`` was recorded cannot give a same-game donor: a clear error, not the old rule."""
    from rewinterp_utils.score_edits import score_edits

    old = {k: v for k, v in two_games().items() if k != "env"}
    with pytest.raises(ValueError, match=r"no 'env' .*older atari_dataset: remake that cell"):
        audit.check_dataset(old, GAME)
    with pytest.raises(ValueError, match=r"no 'env' .*older atari_dataset"):
        score_edits(old, np.arange(len(old["reward"])), GAME)
    rows_only = {k: v for k, v in old.items() if k != "step"}  # no record of play: one game in row order
    assert audit.check_dataset(rows_only, GAME)["env"].tolist() == [0] * len(old["reward"])


def test_the_score_share_of_a_score_hidden_model_is_not_applicable():
    """The score-hidden model's box is painted over, so its small share says nothing: *undecided*, "not applicable",
    in the audit of that setting, where the same model read as score-shown is judged (and fails: it reads the box)."""
    data = stacks()
    reader = as_reward_model(score_reader, ("s_next",))
    frames = data["obs_shown"][:8]
    _, shown = audit.score_share_audit(reader, frames, GAME, "shown")
    _, hidden = audit.score_share_audit(reader, frames, GAME, "hidden")
    assert shown[0].verdict.outcome == FAILS
    assert hidden[0].verdict.outcome == UNDECIDED and hidden[0].verdict.interval == "not applicable"
    field = as_reward_model(field_reader, ("s_next",))
    result = audit.audit_atari_model(field, audit.check_dataset(data | {"obs_hidden": data["obs_shown"]},
                                                                "Breakout:hidden"),
                                     "Breakout:hidden", n_frames=8, n_saliency_inputs=4, threshold=0.5)
    assert result.metrics["claims.score_saliency"] == UNDECIDED


def test_score_shares_and_their_mean_by_hand():
    """A model that reads only the field far below the box has no occlusion mass on it (share 0 but for the blur's
    Gaussian tails); one that reads only the box has a third or more there, ten times the box's share of the
    image (the discs that touch the box from outside hold the rest); a zero map has no share and is left out of the mean, which is NaN when no map has one."""
    from rewinterp_utils.envs.atari import score_area_share
    from rewinterp_utils.score_edits import mean_share, score_shares

    frames = stacks()["obs_shown"][:3]
    box_only = as_reward_model(lambda o: np.asarray(o, np.float64)[:, ROWS, COLS].mean(axis=(1, 2, 3)) / 255,
                               ("s_next",))
    assert (score_shares(box_only, frames, GAME) > 0.3).all() and score_area_share(GAME) < 0.03
    assert (score_shares(as_reward_model(field_reader, ("s_next",)), frames, GAME) < 1e-6).all()
    assert mean_share(np.array([0.2, np.nan, 0.4])) == pytest.approx(0.3)
    assert np.isnan(mean_share(np.array([np.nan, np.nan])))


def test_the_whole_atari_audit_on_a_cnn_and_its_metrics():
    torch.manual_seed(0)
    data = audit.check_dataset(stacks(), "Breakout:shown")
    result = audit.audit_atari_model(AtariRewardCNN(), data, "Breakout:shown", n_frames=8, n_saliency_inputs=4,
                                     threshold=0.5)
    assert list(result.groups) == ["held-out error", "score edits", "score-box saliency", "unit checks",
                                   "saliency sanity"]
    assert result.counterfactuals is None and result.distances is None
    assert result.curves is not None and result.curves["rank_corr"].iloc[0] == pytest.approx(1.0)
    m = result.metrics
    assert {"score_edit.fake_increment.change", "score.saliency_share", "claims.score_saliency",
            "heldout.mse_rewarded"} <= set(m)
    table = audit.comparison_table({"cnn": m})
    assert table.loc["cnn", "score-box share"] == m["score.saliency_share"]


def test_heldout_error_is_per_class_of_the_recorded_reward():
    data = audit.check_dataset(stacks(), GAME)
    const = as_reward_model(lambda obs: np.full(len(obs), 0.25), ("s_next",))
    table, claims = audit.heldout_audit(const, data, audit.ATARI_HELDOUT_MSE)
    assert table.loc["rewarded", "MSE"] == pytest.approx(0.75**2) and table.loc["unrewarded", "MSE"] == pytest.approx(
        0.25**2)
    assert claims[0].verdict.outcome == FAILS


@pytest.mark.parametrize("make, says", [
    (lambda p: save_model(MazeRewardMLP(), p / "maze.pt") or p / "maze.pt", r"reads s, s_next; an Atari reward model"),
    (lambda p: "rewinterp_utils.audit:paper_rule_model", r"does not fit BreakoutNoFrameskip-v4.*\(n, 84, 84, 4\)"),
])
def test_a_model_that_does_not_fit_an_atari_game_is_refused(tmp_path, make, says):
    with pytest.raises(ValueError, match=says):
        audit.load_audited(str(make(tmp_path)), "Breakout:shown")


def test_bad_atari_reference_and_dataset_are_refused(tmp_path):
    model = tmp_path / "cnn.pt"
    save_model(AtariRewardCNN(), model)
    with pytest.raises(ValueError, match="a reference reward is for maze audits"):
        audit.check_inputs(str(model), "Breakout", reference=str(model))
    with pytest.raises(ValueError, match=r"lacks obs_hidden \(or obs\); expected stacks \(n, 84, 84, 4\)"):
        audit.check_dataset({"reward": np.zeros(2)}, "Breakout:hidden")
    with pytest.raises(ValueError, match="rewarded and unrewarded"):
        audit.check_dataset({"obs": np.zeros((2, 84, 84, 4), np.uint8), "reward": np.zeros(2)}, GAME)


def test_the_command_audits_a_book_model_as_the_side_by_side_page_does(smoke, tmp_path, monkeypatch):
    """``rewinterp audit`` on the smoke build's Breakout score-shown reward model: its held-out errors per class are
    the reward-model page's (computed there in torch, here through the audit), every metric is what Part VII's
    side-by-side page reports for that model, and the report has the Atari audits with their figures."""
    from rewinterp_utils.pipeline.artifacts import cell_dir, read_metrics
    from rewinterp_utils.pipeline.cli import main
    from rewinterp_utils.pipeline.reports import audit_cells
    from rewinterp_utils.pipeline.stages import get_stage

    rm = get_stage("atari_reward_model").cell("smoke", game=GAME, score="shown", model_seed=0)
    model = cell_dir(rm) / "reward_model.pt"
    monkeypatch.chdir(tmp_path)
    assert main(["audit", str(model), "--env", "Breakout:shown", "--profile", "smoke", "--out", "r.html"]) == 0
    (cell,) = audit_cells([str(model)], "Breakout:shown", "smoke")
    got, rm_page = read_metrics(cell_dir(cell)), read_metrics(cell_dir(rm))
    assert got["heldout.mse_rewarded"] == pytest.approx(rm_page["test_mse_rewarded"], rel=1e-4)
    assert got["heldout.mse_unrewarded"] == pytest.approx(rm_page["test_mse_unrewarded"], rel=1e-4)
    command = {k: v for k, v in got.items() if k not in ("model", "env_id")}
    assert {"claims.score_edit.fake_increment", "claims.score_saliency", "claims.sanity.gradient"} <= set(command)
    side_by_side = read_metrics(cell_dir(get_stage("audit_compare").cell("smoke")))
    assert {k: side_by_side[f"atari.shown.{k}"] for k in command} == command
    report = (tmp_path / "r.html").read_text()
    assert "Score edits and the score-box saliency" in report and report.count("data:image/png;base64") >= 3


def test_retraining_scores_the_agent_on_the_true_reward_not_the_model():
    """PPO trained on a model that pays 5 every step: the curve is the game's clipped per-life return (a random
    Breakout agent scores about 1 point a life), not the model's 5 a step; the first evaluation is made before
    any update."""
    from rewinterp_utils.pipeline.profiles import AtariRetrain

    cfg = AtariRetrain(total_timesteps=256, eval_freq=128, n_eval_episodes=1, n_envs=2, n_steps=64, batch_size=64,
                       n_epochs=1)
    generous = as_reward_model(lambda obs: np.full(len(obs), 5.0), ("s_next",))
    curve, claims = audit.retrain_audit(generous, "Breakout:shown", cfg)
    assert curve["timesteps"].iloc[0] <= cfg.n_envs and curve["timesteps"].iloc[-1] >= cfg.total_timesteps
    assert curve["true return"].max() < 5 and claims[0].key == "retrain"


def test_the_donor_never_comes_from_a_later_game_of_the_same_sub_env():
    """One sub-env, two games: an unrewarded stack near the end of game 0 has no donor (game 1's score restarts,
    pasting it would lower the score), while game 1's own stacks take game 1's next rewarded stack."""
    from rewinterp_utils.score_edits import next_rewarded_same_env, stack_times

    data = {"reward": np.array([0, 0, 1, 0, 1]), "step": np.arange(5), "env": np.zeros(5, np.int64),
            "game": np.array([0, 0, 1, 1, 1])}
    step, game = stack_times(data)
    assert next_rewarded_same_env(data["reward"], step, game, np.array([0, 1, 3])).tolist() == [-1, -1, 4]
    del data["game"]  # without the game, one game per sub-env
    step, game = stack_times(data)
    assert next_rewarded_same_env(data["reward"], step, game, np.array([0, 1, 3])).tolist() == [2, 2, 4]


def test_score_box_changes_against_a_plain_loop():
    """The share of stacks whose score box moves, per class, recomputed pixel by pixel over the box's pixels on the
    84 x 84 frames; a change outside the box does not count."""
    from rewinterp_utils.envs.atari import score_box
    from rewinterp_utils.score_edits import score_box_changes

    rng = np.random.default_rng(0)
    stacks = np.zeros((6, 84, 84, 4), np.uint8)
    rows, cols = score_box("Seaquest").obs_slices(84, inner=False)
    r0, c0 = rows.start, cols.start
    stacks[0, r0, c0, 3] = 9  # last frame only: last two and anywhere
    stacks[1, r0, c0, 1:] = 9  # between frames 0 and 1: anywhere only
    stacks[2, 60, 60, 3] = 9  # outside the box: no change
    stacks[3, rows.stop - 1, cols.stop - 1, 2] = 5  # inside at the far corner: frames 1-2 and 2-3 differ
    stacks[4:] = rng.integers(0, 2, (2, 84, 84, 1), dtype=np.uint8)  # the same frame four times: no change
    reward = np.array([1, 1, 1, 0, 0, 0])
    table = score_box_changes(stacks, reward, "Seaquest")

    def moved(x, pairs):
        return any((x[rows, cols, a] != x[rows, cols, a + 1]).any() for a in pairs)

    for name, cls in (("rewarded", reward != 0), ("unrewarded", reward == 0)):
        last = np.mean([moved(x, [2]) for x in stacks[cls]])
        anywhere = np.mean([moved(x, [0, 1, 2]) for x in stacks[cls]])
        assert table.loc[name, "changes, last two frames"] == pytest.approx(last)
        assert table.loc[name, "changes anywhere"] == pytest.approx(anywhere)
    assert table.loc["rewarded"].tolist() == [3, pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert table.loc["unrewarded", "changes, last two frames"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="N rewards"):
        score_box_changes(stacks, reward[:2], "Seaquest")

"""The audit of one's own reward model: the audits' verdicts against what the rules they test must give, bad input
naming what is wrong, and ``rewinterp audit`` end to end at smoke (reports that open cleanly in Chromium)."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch

from rewinterp_utils import audit
from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED
from rewinterp_utils.envs.maze_transitions import maze_transitions
from rewinterp_utils.reward_models import AtariRewardCNN, MazeRewardMLP, as_reward_model, save_model

COINFLIP = "EmptyMaze-10x10-CoinFlipGoal-v3"
TRUE, RULE = "rewinterp_utils.audit:true_reward_model", "rewinterp_utils.audit:paper_rule_model"
RULE_FAILS_FAMILIES = {"no_goal", "two_goals", "many_goals", "goal_vanishes"}
"""Where "pay when no goal is visible in s'" differs from the true reward (Michaud et al. 2020, Figure 2): the goal
erased, a second goal still in view, and a goal vanishing far away; a goal in the centre is paid like a corner."""
RULE_FAILS_CHECKS = {"far goal vanishes", "far goal erased from s and s'", "distant second goal"}
"""The unit checks :func:`~rewinterp_utils.checks.maze_checks` says that rule fails."""


def outcomes(claims) -> dict[str, str]:
    return {c.key: c.verdict.outcome for c in claims}


@pytest.mark.parametrize("spec", [TRUE, RULE])
def test_counterfactuals_and_unit_checks_give_what_the_rule_must(spec):
    t = maze_transitions(COINFLIP)
    ref = audit.load_reference(None, COINFLIP)
    read = audit.in_reference_units(audit.load_audited(spec, COINFLIP), ref, t)
    _, cf = audit.counterfactual_audit(read, ref, max_placements=8)
    _, checks = audit.unit_check_audit(read, n_inputs=60)
    failing_families = RULE_FAILS_FAMILIES if spec == RULE else set()
    assert outcomes(cf) == {f"counterfactual.{k}": FAILS if k in failing_families else HOLDS
                            for k in ("no_goal", "two_goals", "many_goals", "center_goal", "goal_vanishes")}
    failing_checks = RULE_FAILS_CHECKS if spec == RULE else set()
    assert {c.claim.removeprefix("Unit check: "): c.verdict.outcome for c in checks} == {
        name: FAILS if name in failing_checks else HOLDS
        for name in ("far goal vanishes", "stepping onto the goal raises R", "far goal erased from s and s'",
                     "distant second goal")}


def test_heldout_error_by_class_and_the_overview():
    s = np.zeros((4, 11, 11), np.uint8)
    data = {"s": s, "s_next": s, "reward": np.array([1.0, 0.0, 0.0, 0.0])}
    half = as_reward_model(lambda a, b: np.full(len(a), 0.5))
    table, claims = audit.heldout_audit(half, data)
    assert table.loc["rewarded", "MSE"] == pytest.approx(0.25) and table.loc["unrewarded", "MSE"] == pytest.approx(0.25)
    assert table.loc["rewarded", "transitions"] == 1 and claims[0].verdict.outcome == FAILS
    exact = as_reward_model(lambda a, b: np.array([1.0, 0.0, 0.0, 0.0])[: len(a)])
    assert audit.heldout_audit(exact, data)[1][0].verdict.outcome == HOLDS
    view = audit.overview({"a": claims, "b": audit.heldout_audit(exact, data)[1]})
    assert list(view["verdict"]) == [FAILS, HOLDS] and "heldout: MSE" in view.loc["a", "not holding"]


def test_rank_auc_against_a_plain_loop_over_pairs():
    """P(a positive scores above a negative) + P(tie) / 2 by a double loop, on scores with ties across classes;
    blind to an increasing map, reversed by a decreasing one, NaN with an empty class."""
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=40).astype(float)  # many ties
    positive = rng.random(40) < 0.3
    pairs = [(a, b) for a in scores[positive] for b in scores[~positive]]
    by_hand = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert audit.rank_auc(scores, positive) == pytest.approx(by_hand, abs=1e-12)
    assert audit.rank_auc(0.01 * scores + 3, positive) == pytest.approx(by_hand, abs=1e-12)
    assert audit.rank_auc(-scores, positive) == pytest.approx(1 - by_hand, abs=1e-12)
    assert audit.rank_auc(np.ones(5), np.array([1, 0, 0, 1, 0], bool)) == 0.5
    assert np.isnan(audit.rank_auc(scores[:3], np.ones(3, bool)))


def test_the_held_out_rank_audit_fails_an_inverted_model_and_ignores_scale_and_shift():
    s = np.zeros((4, 11, 11), np.uint8)
    data = {"s": s, "s_next": s, "reward": np.array([1.0, 0.0, 0.0, 0.0])}
    outputs = {"exact": [1.0, 0.0, 0.0, 0.0], "rescaled": [3.01, 3.0, 3.0, 3.0], "inverted": [-1.0, 0.0, 0.0, 0.0],
               "constant": [0.5] * 4, "one tie": [0.2, 0.2, 0.0, 0.0]}
    got = {}
    for name, out in outputs.items():
        table, claims = audit.heldout_rank_audit(as_reward_model(lambda a, b, out=out: np.array(out)), data)
        got[name] = (table.loc["rewarded", audit.RANK], claims[0].verdict.outcome)
        assert table.loc["unrewarded", audit.RANK] == pytest.approx(1 - got[name][0])
    assert got == {"exact": (1.0, HOLDS), "rescaled": (1.0, HOLDS), "inverted": (0.0, FAILS),
                   "constant": (0.5, FAILS), "one tie": (pytest.approx(5 / 6), FAILS)}


def _pays(values: np.ndarray):
    """A maze reward paying ``values[i]`` on the i-th enumerated CoinFlip transition (looked up by its grids)."""
    t = maze_transitions(COINFLIP)
    index = {(a.tobytes(), b.tobytes()): i for i, (a, b) in enumerate(zip(t["s"], t["s_next"]))}
    return as_reward_model(lambda s, n: np.array([values[index[(a.tobytes(), b.tobytes())]]
                                                        for a, b in zip(s, n)]))


def test_in_reference_units_is_a_convention_fixed_without_the_reference_s_verdicts():
    """The model's own mean and sd over the maze's transitions matched to the reference's, by hand; a reference
    that rewards other transitions with the same mean and sd gives the same reading (no fit: the map never learns
    which transitions the reference rewards); ``a R + b`` reads as ``R`` for ``a > 0``; ``-R*`` stays inverted."""
    t = maze_transitions(COINFLIP)
    true = t["reward"].astype(np.float64)
    model = _pays(np.random.default_rng(0).normal(size=len(true)) + 4 * true)
    raw = model.predict(t["s"], t["s_next"]).astype(np.float64)
    ref = audit.load_reference(None, COINFLIP)
    read = audit.in_reference_units(model, ref, t).predict(t["s"], t["s_next"])
    by_hand = true.mean() + true.std() * (raw - raw.mean()) / raw.std()
    np.testing.assert_allclose(read, by_hand, atol=1e-5)
    keys = [(a.tobytes(), b.tobytes()) for a, b in zip(t["s"], t["s_next"])]
    once = [i for i, k in enumerate(keys) if keys.count(k) == 1 and not true[i]]
    elsewhere = np.zeros_like(true)
    elsewhere[once[:int(true.sum())]] = 1.0  # as many rewarded transitions as R*, none of them R*'s
    other = _pays(elsewhere)
    assert (other.predict(t["s"], t["s_next"]) == np.sort(true)[np.argsort(np.argsort(elsewhere))]).all()
    np.testing.assert_allclose(audit.in_reference_units(model, other, t).predict(t["s"], t["s_next"]), read,
                               atol=1e-6)
    rescaled = audit.in_reference_units(_pays(0.01 * raw + 3), ref, t).predict(t["s"], t["s_next"])
    np.testing.assert_allclose(rescaled, read, atol=1e-4)
    inverted = audit.in_reference_units(_pays(-true), ref, t).predict(t["s"], t["s_next"])
    np.testing.assert_allclose(inverted, 2 * true.mean() - true, atol=1e-6)  # goal transitions lowest


SIGN_SCALE_SHIFT = {
    "R*": {},
    "-R*": {"heldout": FAILS, "counterfactual.two_goals": FAILS, "counterfactual.many_goals": FAILS,
            "counterfactual.center_goal": FAILS, "check.stepping_onto_the_goal_raises_r": FAILS,
            "distance.epic": FAILS, "distance.dynamics_aware": FAILS},
    "0.01 R* + 3": {"distance.dynamics_aware": FAILS},
}
"""What each audit must conclude, beyond *holds*, for the true reward R*, its negation and a positive rescaling
with a shift. -R* ranks every goal transition below the rest: it fails the rank audit, every family the reference
pays for, the check that stepping onto the goal raises R, and both distances (1, the largest), while the families
and checks on which R* pays 0 everywhere hold (-R* pays 0 there too). 0.01 R* + 3 ranks as R* does, so every
value audit holds, and so does EPIC, which ignores scale and shift; but in the episodic maze its shift is a living
bonus of 3 per step against 3.01 once for reaching the goal, so its optimal policy never ends the episode: the
dynamics-aware distance, which sees a shift, must fail it. The gradient test is undecided for all three (plain
functions have no weights to randomise)."""


@pytest.mark.parametrize("name", list(SIGN_SCALE_SHIFT))
def test_sign_scale_and_shift_each_audit_concludes_what_it_must(name):
    from rewinterp_utils.envs.maze_transitions import maze_true_reward

    t = maze_transitions(COINFLIP)
    test = {"s": t["s"], "s_next": t["s_next"], "reward": t["reward"].astype(np.float64)}
    sign, scale, shift = {"R*": (1, 1, 0), "-R*": (-1, 1, 0), "0.01 R* + 3": (1, 0.01, 3)}[name]
    model = as_reward_model(lambda s, n: sign * scale * maze_true_reward(s, n) + shift)
    result = audit.audit_model(model, audit.load_reference(None, COINFLIP), test, COINFLIP, max_placements=8,
                               n_check_inputs=60, n_saliency_inputs=6, threshold=0.5, gamma=0.97)
    got = {c.key: c.verdict.outcome for group in result.groups.values() for c in group}
    assert got == {k: UNDECIDED if k == "sanity.gradient" else SIGN_SCALE_SHIFT[name].get(k, HOLDS) for k in got}
    assert len(got) == 13
    # the true-reward calibration is beside the verdicts, labelled, and read by none: it flips -R* into R*
    cal = result.calibration["value"]
    assert cal["scale"] == pytest.approx({"R*": 1.0, "-R*": -1.0, "0.01 R* + 3": 100.0}[name], rel=1e-6)
    assert cal["held-out MSE rewarded"] == pytest.approx(0.0, abs=1e-8)
    assert result.metrics["diagnostic.true_fit.scale"] == pytest.approx(cal["scale"])


def test_saliency_needs_trainable_layers_and_distances_are_zero_for_the_reference_itself():
    t = maze_transitions(COINFLIP)
    ref = audit.load_reference(None, COINFLIP)
    inputs = (t["s"][:6], t["s_next"][:6])
    curves, claims = audit.saliency_audit(ref, inputs, 0.5)
    assert curves is None and claims[0].verdict.outcome == UNDECIDED
    torch.manual_seed(0)
    curves, claims = audit.saliency_audit(MazeRewardMLP(), inputs, 0.5)
    assert claims[0].verdict.outcome in (HOLDS, FAILS) and curves["rank_corr"].iloc[0] == pytest.approx(1.0)
    table, claims = audit.distance_audit(ref, ref, t, 0.97)
    assert np.allclose(table.iloc[:, 0], 0.0) and set(outcomes(claims).values()) == {HOLDS}


@pytest.mark.parametrize("make, says", [
    (lambda p: p / "missing.pt", r"neither a file nor an import path"),
    (lambda p: (p / "junk.pt").write_text("x") and p / "junk.pt", r"junk\.pt does not load.*saved with save_model"),
    (lambda p: "no_such_module_xyz:make", r"does not import.*package\.module:factory"),
    (lambda p: "rewinterp_utils.audit:no_such_factory", r"does not import"),
    (lambda p: save_model(MazeRewardMLP((7, 7)), p / "small.pt") or p / "small.pt",
     r"does not fit EmptyMaze.*\(n, 11, 11\).*\(n, 7, 7\)"),
    (lambda p: save_model(AtariRewardCNN(), p / "atari.pt") or p / "atari.pt", r"reads s_next; a maze reward model"),
    (lambda p: "rewinterp_utils.envs.maze:maze_ids", r"the factory returned list: expected a RewardModel"),
])
def test_a_model_that_does_not_fit_is_refused_naming_what_was_expected(tmp_path, make, says):
    with pytest.raises(ValueError, match=says):
        audit.load_audited(str(make(tmp_path)), COINFLIP)


def test_bad_environment_and_dataset_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown environment 'Pong-v5'; expected a maze id"):
        audit.check_inputs(TRUE, "Pong-v5")
    with pytest.raises(ValueError, match="does not load"):
        audit.check_inputs(TRUE, COINFLIP, dataset=str(tmp_path / "none.npz"))
    with pytest.raises(ValueError, match="lacks reward"):
        audit.check_dataset({"s": np.zeros((2, 11, 11)), "s_next": np.zeros((2, 11, 11))}, COINFLIP)


def test_the_comparison_table_has_one_row_per_model_with_its_verdicts():
    table = audit.comparison_table({"a": {"verdict": HOLDS, "distance.epic": 0.5, "claims.heldout": HOLDS},
                                    "b": {"verdict": FAILS, "claims.heldout": FAILS}})
    assert list(table.index) == ["a", "b"] and table.loc["b", "heldout"] == FAILS
    assert table.loc["a", "EPIC"] == 0.5 and np.isnan(table.loc["b", "EPIC"])


# ------------------------------------------------------------------------------------------- the command
def _main(*args: str) -> int:
    from rewinterp_utils.pipeline.cli import main

    return main(list(args))


@pytest.mark.parametrize("make", [
    lambda p: ["junk.pt"], lambda p: ["small.pt"], lambda p: ["no_such_module_xyz:make"],
    lambda p: [TRUE, "--env", "Pong-v5"],
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, make):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "artifacts"))
    (tmp_path / "junk.pt").write_text("x")
    save_model(MazeRewardMLP((7, 7)), tmp_path / "small.pt")
    before = set(tmp_path.iterdir())
    args = make(tmp_path)
    env = [] if "--env" in args else ["--env", COINFLIP]
    assert _main("audit", *args, *env, "--profile", "smoke", "--out", str(tmp_path / "r.html")) == 2
    assert set(tmp_path.iterdir()) == before
    assert capsys.readouterr().err.startswith("rewinterp: ")


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """``rewinterp audit`` at smoke on the true reward and on the paper's rule (one batch: the runner, the
    reports, the comparison table)."""
    import os

    root = tmp_path_factory.mktemp("audit")
    old = os.environ.get("REWINTERP_ARTIFACTS")
    os.environ["REWINTERP_ARTIFACTS"] = str(root / "artifacts")
    try:
        assert _main("audit", TRUE, RULE, "--env", COINFLIP, "--profile", "smoke", "--out", str(root / "reports")) == 0
    finally:
        os.environ.pop("REWINTERP_ARTIFACTS") if old is None else os.environ.__setitem__("REWINTERP_ARTIFACTS", old)
    return root / "reports"


def test_the_command_audits_each_model_and_compares_them(audited):
    with open(audited / "comparison.csv") as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    truth, rule = rows["rewinterp_utils.audit.true_reward_model"], rows["rewinterp_utils.audit.paper_rule_model"]
    verdicts = [k for k in truth if k.startswith(("counterfactual.", "check."))]
    assert len(verdicts) == 9 and all(truth[k] == HOLDS for k in verdicts)
    assert {k for k in verdicts if rule[k] == FAILS} == (
        {f"counterfactual.{k}" for k in RULE_FAILS_FAMILIES}
        | {"check.far_goal_vanishes", "check.far_goal_erased_from_s_and_s", "check.distant_second_goal"})
    assert rule["overall verdict"] == FAILS and rule["worst counterfactual"] in RULE_FAILS_FAMILIES
    page = (audited / "comparison.html").read_text()
    assert all(name in page for name in rows) and page.count("does not hold") >= 7


def test_the_reports_open_cleanly_in_chromium_with_no_network(audited):
    browser_test = pytest.importorskip("test_browser")
    if browser_test.CHROMIUM is None:
        pytest.skip("needs Debian's chromium")
    reports = sorted(audited.glob("*.html"))
    assert len(reports) == 3
    for path in reports:
        text = path.read_text()
        assert not re.search(r"""(?:src|href)=["']https?://""", text), path.name
        assert "pip install" not in text, "the install cell is left out"
    browser = browser_test.Browser()
    try:
        for path in reports:
            seen = browser.visit(path.as_uri(), "file://")
            assert seen["errors"] == [] and seen["images"] == [], (path.name, seen["errors"], seen["images"])
            if "comparison" not in path.name:
                assert "Summary" in seen["text"] and "does not hold" in seen["text"] + "holds"
    finally:
        browser.close()
    rule = (audited / "rewinterp_utils.audit.paper_rule_model.html").read_text()
    assert rule.count("data:image/png;base64") >= 1


def test_the_reports_open_with_their_verdicts_and_hide_their_code(audited):
    from rewinterp_utils.html_report import VERDICT_COLOURS

    rule = (audited / "rewinterp_utils.audit.paper_rule_model.html").read_text()
    body = rule[rule.index("<body"):]
    assert body.index("Verdicts") < body.index('<div class="jp-Cell'), "the verdict table comes first"
    assert 'class="rewinterp-hide-code' in body and "Show code" in body, "code hidden behind a toggle"
    assert not re.search(r"\{(doc|func|mod|class)\}`", rule), "MyST roles written as text"
    assert f'background:{VERDICT_COLOURS[FAILS]}"><td' not in body and VERDICT_COLOURS[FAILS] in body
    page = (audited / "comparison.html").read_text()
    assert 'href="rewinterp_utils.audit.paper_rule_model.html"' in page, "each row links to its report"
    assert VERDICT_COLOURS[FAILS] in page and VERDICT_COLOURS[HOLDS] in page


def test_the_side_by_side_page_reports_what_the_command_reports(smoke, tmp_path, monkeypatch):
    """Part VII's side-by-side page says each of its columns is what ``rewinterp audit`` reports for that model:
    audit the regression model's file with the command, and every one of its metrics equals the page's."""
    from rewinterp_utils.pipeline.artifacts import cell_dir, read_metrics
    from rewinterp_utils.pipeline.reports import audit_cells, run_audits
    from rewinterp_utils.pipeline.stages import get_stage

    page = read_metrics(cell_dir(get_stage("audit_compare").cell("smoke")))
    model = cell_dir(get_stage("maze_reward_model").cell("smoke", model_seed=0)) / "reward_model.pt"
    monkeypatch.chdir(tmp_path)
    run_audits([str(model)], COINFLIP, tmp_path / "report.html", profile="smoke")
    (cell,) = audit_cells([str(model)], COINFLIP, "smoke")
    command = {k: v for k, v in read_metrics(cell_dir(cell)).items() if k not in ("model", "env_id")}
    assert len(command) > 20
    assert {k: page[f"regression.{k}"] for k in command} == command


def test_retraining_on_the_true_reward_reaches_the_goal_and_on_a_silent_model_does_not(one_torch_thread):
    """PPO trained on the maze's true reward (Figure 3's recipe) reaches the goal; trained on a model that pays
    nothing it learns nothing, and its true return stays below the criterion."""
    from rewinterp_utils.pipeline.profiles import MazeRetrain

    cfg = MazeRetrain(total_timesteps=30_000, n_seeds=1, eval_freq=10_000, n_eval_episodes=10)
    truth = audit.load_audited(TRUE, COINFLIP)
    silent = as_reward_model(lambda s, s_next: np.zeros(len(s)))
    curve, claims = audit.retrain_audit(truth, COINFLIP, cfg)
    assert list(curve["timesteps"]) == [10_000, 20_000, 30_000] and claims[0].verdict.outcome == HOLDS
    curve, claims = audit.retrain_audit(silent, COINFLIP, cfg)
    assert curve["true return"].iloc[-1] < audit.RETRAIN_MIN_RETURN and claims[0].verdict.outcome == FAILS

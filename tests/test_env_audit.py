"""The audit of any reward model on any Gymnasium env (:mod:`rewinterp_utils.env_audit`), on envs that ship with
Gymnasium: Pendulum-v1 (continuous actions, a dense reward of state and action), Acrobot-v1 (discrete actions, a
sparse reward) and CartPole-v1 (a constant reward: no ranking, no EPIC). Oracles: the env's own recorded reward
(the reward written by hand must reproduce it), the defining properties of each audit (negation, rescaling,
shaping, an extra input read) and a plain loop over the shuffled groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rewinterp_utils.checks import Check
from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED
from rewinterp_utils.env_audit import (
    GROUPS,
    EnvAuditSizes,
    audit,
    collect_transitions,
    reliance_table,
)

SIZES = EnvAuditSizes(n_transitions=600, epic_samples=64, epic_resamples=5, retrain_steps=4096, eval_episodes=8)


def pendulum_reward(s, a, s_next, done):
    """Pendulum-v1's reward, written from the observation before the step and the torque."""
    th, thdot = np.arctan2(s[:, 1], s[:, 0]), s[:, 2]
    u = np.clip(np.asarray(a, dtype=np.float64).reshape(len(s), -1)[:, 0], -2.0, 2.0)
    return -(th**2 + 0.1 * thdot**2 + 0.001 * u**2)


def acrobot_reward(s, a, s_next, done):
    """Acrobot-v1's reward: 0 on the step that lifts the tip above the bar, else -1 (read from s')."""
    c1, s1, c2, s2 = (s_next[:, i] for i in range(4))
    return np.where(-c1 - (c1 * c2 - s1 * s2) > 1.0, 0.0, -1.0)


def acrobot_pump(obs):
    """Energy pumping: torque along the second joint's velocity (reaches the bar in 65-122 steps on seeds 0-4)."""
    return 2 if obs[5] > 0 else 0


@pytest.fixture(scope="module")
def pendulum():
    return collect_transitions("Pendulum-v1", 600, seed=0)


@pytest.fixture(scope="module")
def acrobot():
    return collect_transitions("Acrobot-v1", 1500, policy=acrobot_pump, seed=0)


def outcomes(result):
    return {c.key: c.verdict.outcome for c in result.claims}


def test_the_hand_written_rewards_are_the_envs_own(pendulum, acrobot):
    np.testing.assert_allclose(pendulum_reward(*(pendulum[g] for g in GROUPS)), pendulum["reward"], atol=1e-4)
    assert (acrobot_reward(*(acrobot[g] for g in GROUPS)) == acrobot["reward"]).all()
    assert 5 <= (acrobot["reward"] == 0).sum() < len(acrobot["reward"]) / 2, "both classes present"


def test_collect_plays_fresh_episodes_from_the_seeds():
    a, b = collect_transitions("Pendulum-v1", 250, seed=3), collect_transitions("Pendulum-v1", 250, seed=3)
    assert all((a[k] == b[k]).all() for k in a), "the same seed gives the same transitions"
    c = collect_transitions("Pendulum-v1", 250, seed=4)
    assert not np.array_equal(a["s"][0], c["s"][0])
    assert not (a["done"]).any(), "Pendulum's 200-step limit is a truncation, not an end of the task"
    assert not np.array_equal(a["s"][200], a["s_next"][199]), "a new episode starts after the time limit"


@pytest.mark.parametrize("env_name", ["Pendulum-v1", "Acrobot-v1"])
def test_the_envs_own_reward_passes_and_its_negation_fails(env_name, pendulum, acrobot):
    reward, data = (pendulum_reward, pendulum) if env_name == "Pendulum-v1" else (acrobot_reward, acrobot)
    own = audit(reward, env_name, transitions=data, reference=reward, sizes=SIZES)
    assert outcomes(own) == {"ranking": HOLDS, "inputs": HOLDS, "epic": HOLDS}
    assert own.epic.high < 1e-6
    negated = audit(lambda *x: -reward(*x), env_name, transitions=data, reference=reward, sizes=SIZES)
    assert outcomes(negated)["ranking"] == FAILS and outcomes(negated)["epic"] == FAILS
    assert negated.epic.distance == pytest.approx(1.0, abs=1e-6)


def test_positive_scale_and_shift_keep_the_verdicts(pendulum):
    result = audit(lambda *x: 0.01 * pendulum_reward(*x) + 3, "Pendulum-v1", transitions=pendulum,
                   reference=pendulum_reward, sizes=SIZES)
    assert outcomes(result) == {"ranking": HOLDS, "inputs": HOLDS, "epic": HOLDS}


def test_a_shaped_copy_is_at_epic_zero_within_its_interval(pendulum):
    def shaped(s, a, s_next, done):
        return pendulum_reward(s, a, s_next, done) + 0.99 * np.cos(s_next[:, 2]) - np.cos(s[:, 2])

    result = audit(shaped, "Pendulum-v1", transitions=pendulum, reference=pendulum_reward, sizes=SIZES)
    assert result.epic.low <= 1e-6 and result.epic.distance < 1e-6
    assert outcomes(result)["epic"] == HOLDS
    assert outcomes(result)["inputs"] == FAILS, "shaping reads s_next, which the reference does not"


def test_a_model_that_reads_an_input_it_should_not_fails(pendulum):
    def peeks(s, a, s_next, done):
        return pendulum_reward(s, a, s_next, done) + 2.0 * s_next[:, 2]

    result = audit(peeks, "Pendulum-v1", transitions=pendulum, reference=pendulum_reward, sizes=SIZES)
    assert outcomes(result)["inputs"] == FAILS
    assert result.reliance.loc["s_next", "model"] > 0.05 and result.reliance.loc["s_next", "reference"] == 0


def test_a_random_network_fails_and_gets_gradient_x_input(pendulum):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(7, 32), nn.Tanh(), nn.Linear(32, 1))

        def forward(self, s, a, s_next):
            return self.body(torch.cat([s, a, s_next], dim=1))[:, 0]

    torch.manual_seed(0)
    result = audit(Net(), "Pendulum-v1", transitions=pendulum, reference=pendulum_reward, sizes=SIZES)
    assert outcomes(result) == {"ranking": FAILS, "inputs": FAILS, "epic": FAILS}
    gxi = result.reliance["model |gradient x input|"]
    assert set(gxi.dropna().index) == {"s", "a", "s_next"} and (gxi.dropna() > 0).all()


def test_reliance_against_a_plain_loop(pendulum):
    def peeks(s, a, s_next, done):
        return s[:, 0] + 3 * s_next[:, 1]

    table = reliance_table({"model": peeks}, pendulum, seed=5)
    perm = np.random.default_rng(5).permutation(len(pendulum["s"]))
    base = peeks(*(pendulum[g] for g in GROUPS))
    for g in GROUPS:
        moved = {k: (v[perm] if k == g else v) for k, v in pendulum.items()}
        want = np.mean([abs(x - y) for x, y in zip(peeks(*(moved[k] for k in GROUPS)), base)]) / base.std()
        assert table.loc[g, "model"] == pytest.approx(want)
    assert table.loc["a", "model"] == 0 and table.loc["done", "model"] == 0


def test_a_constant_reward_is_undecided_not_a_division_by_zero():
    result = audit(lambda s, a, s_next, done: np.ones(len(s)), "CartPole-v1", reference=lambda *x: np.ones(len(x[0])),
                   sizes=SIZES)
    assert outcomes(result) == {"ranking": UNDECIDED, "inputs": HOLDS, "epic": UNDECIDED}
    assert "constant" in next(c for c in result.claims if c.key == "epic").verdict.criterion


def test_user_checks_run_as_the_books(pendulum):
    def more_torque(inputs):
        s, a, s_next, done = inputs
        return s, np.clip(a * 0 + 2.0, -2, 2), s_next, done

    check = Check("torque costs", more_torque, "decreases", 1e-4)
    good = audit(pendulum_reward, "Pendulum-v1", transitions=pendulum, checks=[check], sizes=SIZES)
    bad = audit(lambda *x: -pendulum_reward(*x), "Pendulum-v1", transitions=pendulum, checks=[check], sizes=SIZES)
    assert outcomes(good)["check.torque_costs"] == HOLDS and outcomes(bad)["check.torque_costs"] == FAILS
    assert good.checks.loc[0, "n"] > 0


def test_retraining_scores_on_the_envs_own_reward(one_torch_thread):
    own = audit(lambda s, a, s_next, done: np.ones(len(s)), "CartPole-v1", retrain=True, sizes=SIZES)
    assert outcomes(own)["retrain"] == HOLDS, own.retraining.mean()
    dies = audit(lambda s, a, s_next, done: -np.ones(len(s)), "CartPole-v1", retrain=True, sizes=SIZES)
    assert outcomes(dies)["retrain"] != HOLDS, dies.retraining.mean()


def test_the_report_opens_with_the_verdicts(tmp_path, pendulum):
    result = audit(pendulum_reward, "Pendulum-v1", transitions=pendulum, reference=pendulum_reward, sizes=SIZES)
    text = result.to_html(tmp_path / "r.html").read_text()
    assert text.index("<table") < text.index("<h2>") and "holds" in text and "data:image/png;base64," in text
    assert "http" not in text.replace("http-equiv", "")


@pytest.mark.parametrize("bad, match", [
    (dict(env="NoSuchEnv-v9"), "does not make"),
    (dict(env="Blackjack-v1"), "observation space is Tuple"),
    (dict(transitions={"s": np.zeros((3, 3)), "a": np.zeros((3, 1))}), "missing 's_next'"),
    (dict(transitions={"s": np.zeros((3, 3)), "a": np.zeros((2, 1)), "s_next": np.zeros((3, 3))}), "differ in length"),
    (dict(transitions={"s": np.zeros((3, 4)), "a": np.zeros((3, 1)), "s_next": np.zeros((3, 4))}), "shape"),
    (dict(transitions={"s": np.zeros((3, 3)), "a": np.zeros((3, 1)), "s_next": np.zeros((3, 3)),
                       "reward": np.array([0, np.nan, 1])}), "NaN"),
    (dict(model=lambda s, a, s_next, done: np.zeros((len(s), 2))), "one reward per transition"),
    (dict(model=lambda s, a, s_next, done: s[:, 5]), "failed on"),
    (dict(model=lambda s, a, s_next, done: np.full(len(s), np.nan)), "NaN"),
    (dict(model="not a reward"), "must be a RewardModel"),
])
def test_bad_input_stops_in_one_line_before_anything_runs(bad, match):
    kwargs = {"model": pendulum_reward, "env": "Pendulum-v1", "sizes": SIZES, **bad}
    with pytest.raises(ValueError, match=match) as e:
        audit(kwargs.pop("model"), kwargs.pop("env"), **kwargs)
    assert "\n" not in str(e.value)


def test_an_input_the_reference_reads_however_weakly_is_not_an_extra_one(pendulum):
    """Pendulum's reward reads the torque only through 0.001 u^2 (a shuffle moves it by a tiny share of its sd): a
    model that weighs the torque more reads nothing the reference ignores."""
    def heavy_torque(s, a, s_next, done):
        return pendulum_reward(s, a, s_next, done) - 2.0 * np.asarray(a, dtype=np.float64)[:, 0] ** 2

    result = audit(heavy_torque, "Pendulum-v1", transitions=pendulum, reference=pendulum_reward, sizes=SIZES)
    assert 0 < result.reliance.loc["a", "reference"] < 0.01 < result.reliance.loc["a", "model"]
    assert outcomes(result)["inputs"] == HOLDS


def test_the_command_audits_a_factory_on_a_gymnasium_id(tmp_path, monkeypatch):
    """``rewinterp audit mymod:make --env Pendulum-v1 --reference mymod:truth``: one report, verdicts first; a
    factory that does not import stops with exit code 2 and one line, writing nothing."""
    from rewinterp_utils.pipeline.cli import main

    (tmp_path / "mymod.py").write_text(
        "from rewinterp_utils.envs.classic import pendulum_reward\n"
        "def make():\n    return lambda s, a, s_next, done: -pendulum_reward(s, a, s_next, done)\n"
        "def truth():\n    return pendulum_reward\n")
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "mymod:make", "--env", "Pendulum-v1", "--reference", "mymod:truth", "--profile", "smoke",
                 "--out", "r.html"]) == 0
    text = (tmp_path / "r.html").read_text()
    assert text.index("does not hold") < text.index("<h2>") and "Orders transitions" in text
    assert main(["audit", "nomod:make", "--env", "Pendulum-v1", "--profile", "smoke", "--out", "x.html"]) == 2
    assert not (tmp_path / "x.html").exists()

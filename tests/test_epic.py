"""The maze's transition set and the two reward distances (rewinterp_utils.epic), checked against independent
oracles: the gym maze's own dynamics; for the dynamics-aware distance a hand-written value iteration, the EPIC
paper's closed form on a fully connected chain and its invariances (episodic shaping, positive scale); for EPIC
as Gleave et al. 2021 define it, their definition written out as plain loops, its invariances (any potential,
scale, constants) and the pseudometric axioms."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import rewinterp_utils  # noqa: F401  (registers the maze ids)
from rewinterp_utils import epic
from rewinterp_utils.envs import maze_transitions as mt
from rewinterp_utils.envs.maze import AGENT, COINFLIP, GOAL, TWOGOALS, WALL, draw, empty_layout
from rewinterp_utils.reward_models import MazeRewardMLP, RewardModel, as_reward_model
from rewinterp_utils.stats import mse, pearson_distance, spearman

GAMMA = 0.97
N, S, W, E = 0, 1, 2, 3


@pytest.fixture(scope="module")
def tr() -> dict:
    return mt.maze_transitions()


def shaped(reward: np.ndarray, tr: dict, phi: np.ndarray, k: float, gamma: float) -> np.ndarray:
    """``k * R + gamma * Phi(s') - Phi(s)``."""
    return k * reward + gamma * phi[tr["next_state_id"]] - phi[tr["state_id"]]


def random_potential(tr: dict, rng: np.random.Generator, scale: float = 3.0) -> np.ndarray:
    """A random potential over the state table, 0 at terminal states (episodic shaping)."""
    phi = rng.normal(scale=scale, size=len(tr["states"]))
    phi[tr["terminal"]] = 0.0
    return phi


def full_support_coverage(tr: dict, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 1.0, size=len(tr["reward"])) ** 3


def agent_of(grid: np.ndarray) -> tuple[int, int]:
    return tuple(int(v) for v in np.argwhere(grid == AGENT)[0])


# -- the transition set ---------------------------------------------------------------------------------
def test_maze_transitions_shapes_and_semantics(tr):
    n = 2 * 80 * 4  # two goal layouts x 80 free non-goal agent cells x 4 actions
    assert tr["s"].shape == tr["s_next"].shape == (n, 11, 11) and tr["s"].dtype == tr["s_next"].dtype == np.uint8
    assert tr["reward"].shape == (n,) and tr["reward"].dtype == np.float32
    assert tr["state_id"].shape == tr["next_state_id"].shape == (n,)
    assert tr["states"].shape == (162, 11, 11) and tr["states"].dtype == np.uint8
    np.testing.assert_array_equal(tr["states"][tr["state_id"]], tr["s"])
    np.testing.assert_array_equal(tr["states"][tr["next_state_id"]], tr["s_next"])
    assert len(np.unique(tr["states"].reshape(len(tr["states"]), -1), axis=0)) == len(tr["states"])
    # four goal-entering transitions (from beside each corner), all of them terminal, none from a goal cell
    assert tr["reward"].sum() == 4 and (tr["done"] == (tr["reward"] == 1)).all()
    assert (tr["s"] == GOAL).any(axis=(1, 2)).all(), "every s shows its goal (no agent on one)"
    # terminal states: exactly the two 'agent on the goal' grids (no goal visible), never a start state
    assert tr["terminal"].sum() == 2
    for grid in tr["states"][tr["terminal"]]:
        assert not (grid == GOAL).any() and agent_of(grid) in ((1, 1), (9, 9))
    assert not np.isin(np.flatnonzero(tr["terminal"]), tr["state_id"]).any()
    assert tr["terminal"][tr["next_state_id"][tr["reward"] == 1]].all()
    assert sorted(map(int, np.unique(tr["action"], return_counts=True)[1])) == [160] * 4


def test_maze_transitions_match_the_gym_env(tr):
    """Every enumerated transition replayed in the registered env via its documented ``set_state``."""
    env = gym.make(COINFLIP).unwrapped
    env.reset(seed=0)
    for t in range(len(tr["reward"])):
        goals = [tuple(map(int, g)) for g in tr["goals"][tr["layout_id"][t]]]
        obs = env.set_state(tuple(map(int, tr["agent"][t])), goals)
        np.testing.assert_array_equal(obs, tr["s"][t])
        nxt, reward, terminated, truncated, _ = env.step(int(tr["action"][t]))
        np.testing.assert_array_equal(nxt, tr["s_next"][t])
        assert reward == tr["reward"][t] and terminated == tr["done"][t] and not truncated


def _find(tr, agent, goals, action) -> int:
    s = draw(empty_layout(), agent, goals)
    hits = [t for t in np.flatnonzero(tr["action"] == action) if (tr["s"][t] == s).all()]
    assert len(hits) == 1, (agent, goals, action, hits)
    return hits[0]


def test_hand_written_transitions(tr):
    t = _find(tr, (1, 2), [(1, 1)], W)  # step west onto the goal: it disappears under the agent, reward 1
    assert agent_of(tr["s_next"][t]) == (1, 1) and not (tr["s_next"][t] == GOAL).any()
    assert tr["reward"][t] == 1 and tr["done"][t] and tr["terminal"][tr["next_state_id"][t]]
    t = _find(tr, (2, 1), [(1, 1)], N)
    assert agent_of(tr["s_next"][t]) == (1, 1) and tr["reward"][t] == 1
    t = _find(tr, (1, 1), [(9, 9)], N)  # bump into the top wall: stay, the far goal still visible, reward 0
    assert (tr["s_next"][t] == tr["s"][t]).all() and tr["s_next"][t][9, 9] == GOAL and tr["reward"][t] == 0
    t = _find(tr, (9, 8), [(1, 1)], E)  # (9, 9) is not a goal in this layout
    assert agent_of(tr["s_next"][t]) == (9, 9) and tr["reward"][t] == 0 and not tr["done"][t]
    t = _find(tr, (5, 5), [(9, 9)], S)
    assert agent_of(tr["s_next"][t]) == (6, 5) and tr["s_next"][t][9, 9] == GOAL and tr["reward"][t] == 0
    # an agent standing on the goal has ended its episode: no transition starts there
    on_goal = draw(empty_layout(), (1, 1), [(1, 1)])
    assert not (tr["s"] == on_goal).all(axis=(1, 2)).any()


def test_other_goal_layouts_and_walled_maze():
    two = mt.maze_transitions(TWOGOALS)
    assert len(two["reward"]) == 79 * 4 and two["reward"].sum() == 4 and two["terminal"].sum() == 2
    assert ((two["s"] == GOAL).sum(axis=(1, 2)) == 2).all()
    assert len(mt.maze_transitions(COINFLIP, goal_layouts="fixed")["reward"]) == 80 * 4
    walled = mt.maze_transitions("Maze-10x10-CoinFlipGoal-v3")
    n_free = int((walled["s"][0] != WALL).sum())  # agent and goal cells are free cells too
    assert len(walled["reward"]) == 2 * (n_free - 1) * 4
    env = gym.make("Maze-10x10-CoinFlipGoal-v3").unwrapped
    env.reset(seed=0)
    for t in range(0, len(walled["reward"]), 7):
        env.set_state(tuple(map(int, walled["agent"][t])), [tuple(map(int, g)) for g in
                                                            walled["goals"][walled["layout_id"][t]]])
        nxt, reward, *_ = env.step(int(walled["action"][t]))
        np.testing.assert_array_equal(nxt, walled["s_next"][t])
        assert reward == walled["reward"][t]


@pytest.mark.parametrize("kwargs, match", [
    ({"goal_layouts": "three"}, "goal_layouts"),
    ({"env_id": "EmptyMaze-10x10-CoinFlipGoal-NonTerminating-v3"}, "env_id"),
    ({"env_id": "EmptyMaze-10x10-RandomGoal-v3"}, "env_id"),
    ({"env_id": "CartPole-v1"}, "unknown maze env id"),
])
def test_maze_transitions_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mt.maze_transitions(**kwargs)


# -- canonicalisation against independent oracles -------------------------------------------------------
def value_iteration(reward: np.ndarray, tr: dict, w: np.ndarray, gamma: float, sweeps: int = 3000) -> np.ndarray:
    """V(x) = sum over covered transitions leaving x of w/W(x) * (R + gamma V(s')), by plain loops; 0 elsewhere."""
    leaving: dict[int, list[int]] = {}
    for t in range(len(reward)):
        if w[t] > 0:
            leaving.setdefault(int(tr["state_id"][t]), []).append(t)
    v = np.zeros(len(tr["states"]))
    for _ in range(sweeps):
        new = np.zeros_like(v)
        for x, ts in leaving.items():
            total = sum(w[t] for t in ts)
            new[x] = sum(w[t] / total * (reward[t] + gamma * v[tr["next_state_id"][t]]) for t in ts)
        if np.abs(new - v).max() < 1e-13:
            return new
        v = new
    return v


@pytest.mark.parametrize("gamma", [0.5, GAMMA])
def test_canonicalize_matches_value_iteration(tr, gamma):
    rng = np.random.default_rng(1)
    reward = rng.normal(size=len(tr["reward"]))
    w = full_support_coverage(tr, rng)
    v = value_iteration(reward, tr, w, gamma, sweeps=200 if gamma == 0.5 else 3000)
    expected = reward + gamma * v[tr["next_state_id"]] - v[tr["state_id"]]
    np.testing.assert_allclose(epic.canonicalize_dynamics_aware(reward, tr, w, gamma), expected, atol=1e-8)


def test_canonicalize_reduces_to_the_epic_paper_formula_on_a_fully_connected_chain():
    """Every state leads to every state (one action): the paper's C(R) = R + g m(s') - m(s) - g E[m]."""
    rng = np.random.default_rng(2)
    n = 5
    sid, nsid = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    tr = {"state_id": sid, "next_state_id": nsid, "states": np.zeros((n, 1, 1), np.uint8)}
    reward = rng.normal(size=n * n)
    m = reward.reshape(n, n).mean(axis=1)  # E over A, S' (uniform) of R(x, A, S')
    paper = reward + GAMMA * m[nsid] - m[sid] - GAMMA * m.mean()
    np.testing.assert_allclose(epic.canonicalize_dynamics_aware(reward, tr, "uniform", GAMMA), paper, atol=1e-12)


# -- invariances --------------------------------------------------------------------------------------
@pytest.mark.parametrize("coverage_kind", ["uniform", "random"])
@pytest.mark.parametrize("gamma", [0.5, GAMMA])
def test_shaping_and_scale_invariance_true_reward(tr, coverage_kind, gamma):
    rng = np.random.default_rng(3)
    cov = "uniform" if coverage_kind == "uniform" else full_support_coverage(tr, rng)
    true = tr["reward"].astype(np.float64)
    for k in (0.01, 1.0, 2.5, 40.0):
        other = shaped(true, tr, random_potential(tr, rng), k, gamma)
        assert epic.dynamics_aware_distance(true, other, tr, cov, gamma) < 1e-6
        assert epic.dynamics_aware_distance(other, true, tr, cov, gamma) < 1e-6


@pytest.mark.parametrize("gamma", [0.5, GAMMA, 1.0])
def test_shaping_and_scale_invariance_random_rewards(tr, gamma):
    rng = np.random.default_rng(4)
    for coverage in ("uniform", full_support_coverage(tr, rng)):
        for _ in range(5):
            reward = rng.normal(size=len(tr["reward"]))
            other = shaped(reward, tr, random_potential(tr, rng, scale=10.0), rng.uniform(0.1, 10), gamma)
            assert epic.dynamics_aware_distance(reward, other, tr, coverage, gamma) < 1e-6


def test_shaping_hides_from_epic_not_from_mse(tr):
    rng = np.random.default_rng(5)
    true = tr["reward"].astype(np.float64)
    other = shaped(true, tr, random_potential(tr, rng, scale=1.0), 1.0, GAMMA)
    assert mse(true, other) > 0.01
    assert spearman(true, other) < 0.9
    assert epic.dynamics_aware_distance(true, other, tr) < 1e-6


def test_shaping_through_callables_and_torch(tr):
    """The same invariance with rewards given as functions of the grids (numpy and torch outputs)."""
    rng = np.random.default_rng(6)
    table = {grid.tobytes(): float(p) for grid, p in zip(tr["states"], random_potential(tr, rng))}

    def phi(grids: np.ndarray) -> np.ndarray:
        return np.array([table[g.astype(np.uint8).tobytes()] for g in grids])

    def true_reward(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        """1 when s' puts the agent on a cell that was a goal in s."""
        return np.array([float(a[tuple(np.argwhere(b == AGENT)[0])] == GOAL) for a, b in zip(s, s_next)])

    def shaped_torch(s, s_next):
        return torch.as_tensor(3.0 * true_reward(s, s_next) + GAMMA * phi(s_next) - phi(s))

    np.testing.assert_array_equal(as_reward_model(true_reward).predict(tr["s"], tr["s_next"]), tr["reward"])
    assert epic.dynamics_aware_distance(true_reward, shaped_torch, tr) < 1e-6
    assert epic.dynamics_aware_distance(tr["reward"], shaped_torch, tr, full_support_coverage(tr, rng)) < 1e-6


def test_terminal_potentials_and_constants(tr):
    """What is *not* an invariance here, and why: the goal reward is itself a shaping with Phi(goal) = 1/gamma,
    and a constant (living) reward is a negative multiple of the goal reward up to episodic shaping."""
    true = tr["reward"].astype(np.float64)
    phi = np.zeros(len(tr["states"]))
    phi[tr["terminal"]] = 1 / GAMMA
    np.testing.assert_allclose(shaped(np.zeros_like(true), tr, phi, 1.0, GAMMA), true, atol=1e-12)
    assert epic.dynamics_aware_distance(true, -np.ones_like(true), tr) < 1e-6
    assert epic.dynamics_aware_distance(true, np.ones_like(true), tr) > 1 - 1e-6
    rng = np.random.default_rng(7)
    reward = rng.normal(size=len(true))
    phi = rng.normal(size=len(tr["states"]))  # non-zero at terminal states
    assert epic.dynamics_aware_distance(reward, shaped(reward, tr, phi, 1.0, GAMMA), tr) > 1e-3


# -- metric properties -------------------------------------------------------------------------------
def test_symmetry_and_triangle_inequality(tr):
    rng = np.random.default_rng(8)
    n = len(tr["reward"])
    for coverage in ("uniform", full_support_coverage(tr, rng)):
        canon = [epic.canonicalize_dynamics_aware(rng.normal(size=n) * rng.uniform(0.1, 5), tr, coverage, GAMMA)
                 for _ in range(12)]
        w = mt.coverage_weights(coverage, tr)
        d = np.array([[pearson_distance(a, b, w) for b in canon] for a in canon])
        np.testing.assert_allclose(d, d.T, atol=1e-12)
        assert np.allclose(np.diag(d), 0, atol=1e-7)  # [0, 1] holds by construction (a clipped correlation)
        # every ordered triple of 12 rewards (1,728) satisfies the triangle inequality
        assert (d[:, None, :] <= d[:, :, None] + d[None, :, :] + 1e-12).all()
    for _ in range(50):
        a, b, c = (rng.normal(size=n) for _ in range(3))
        ab, bc, ac = (epic.dynamics_aware_distance(x, y, tr) for x, y in ((a, b), (b, c), (a, c)))
        assert ac <= ab + bc + 1e-12
        assert epic.dynamics_aware_distance(b, a, tr) == pytest.approx(ab, abs=1e-12)


def test_opposite_reward_is_at_distance_one(tr):
    rng = np.random.default_rng(9)
    true = tr["reward"].astype(np.float64)
    assert epic.dynamics_aware_distance(true, -true, tr) == pytest.approx(1.0, abs=1e-6)
    cov = full_support_coverage(tr, rng)
    assert epic.dynamics_aware_distance(true, -true, tr, cov) == pytest.approx(1.0, abs=1e-6)
    r = rng.normal(size=len(true))
    assert epic.dynamics_aware_distance(r, -2 * r, tr) == pytest.approx(1.0, abs=1e-6)


def test_reward_model_gives_the_distance_of_its_outputs_and_keeps_its_mode(tr):
    torch.manual_seed(0)
    model = MazeRewardMLP(hidden=16).train()
    with torch.no_grad():
        expected = model(torch.as_tensor(tr["s"], dtype=torch.float32),
                         torch.as_tensor(tr["s_next"], dtype=torch.float32)).double().numpy()
    d = epic.dynamics_aware_distance(tr["reward"], model, tr)
    assert model.training
    assert d == pytest.approx(epic.dynamics_aware_distance(tr["reward"], expected, tr), abs=1e-9)
    assert epic.dynamics_aware_distance(model, model, tr) < 1e-6


# -- coverage from observed transitions ---------------------------------------------------------------
def test_visitation_coverage(tr):
    picks = [_find(tr, (5, 5), [(9, 9)], S), _find(tr, (5, 5), [(9, 9)], S), _find(tr, (1, 2), [(1, 1)], W)]
    cov = mt.visitation_coverage(tr["s"][picks], tr["s_next"][picks], tr)
    assert cov.shape == tr["reward"].shape and cov.sum() == pytest.approx(1.0)
    assert cov[picks[0]] == pytest.approx(2 / 3) and cov[picks[2]] == pytest.approx(1 / 3)
    assert (cov > 0).sum() == 2
    # a wall bump in a corner: two actions leave the agent in place, the count is split unless actions say which
    north, west = _find(tr, (1, 1), [(9, 9)], N), _find(tr, (1, 1), [(9, 9)], W)
    cov = mt.visitation_coverage(tr["s"][[north]], tr["s_next"][[north]], tr)
    assert cov[north] == pytest.approx(0.5) and cov[west] == pytest.approx(0.5)
    cov = mt.visitation_coverage(tr["s"][[north]], tr["s_next"][[north]], tr, actions=np.array([N]))
    assert cov[north] == pytest.approx(1.0)
    teleport = draw(empty_layout(), (5, 5), [(9, 9)]), draw(empty_layout(), (7, 7), [(9, 9)])
    with pytest.raises(ValueError, match="not a transition"):
        mt.visitation_coverage(teleport[0][None], teleport[1][None], tr)


def test_expert_visitation_coverage_gives_a_finite_distance(tr):
    """Coverage from whole episodes of a goal-seeking walk is closed (every s' is terminal or the next s)."""
    env = gym.make(COINFLIP)
    rng = np.random.default_rng(10)
    s, s_next = [], []
    for ep in range(10):
        obs, _ = env.reset(seed=ep)
        done = False
        while not done:
            agent, goal = np.argwhere(obs == AGENT)[0], np.argwhere(obs == GOAL)[0]
            moves = [a for a, ok in ((N, goal[0] < agent[0]), (S, goal[0] > agent[0]), (W, goal[1] < agent[1]),
                                     (E, goal[1] > agent[1])) if ok]
            action = int(rng.integers(4)) if rng.random() < 0.3 else int(rng.choice(moves))
            nxt, _, terminated, truncated, _ = env.step(action)
            s.append(obs)
            s_next.append(nxt)
            obs, done = nxt, terminated or truncated
    cov = mt.visitation_coverage(np.array(s), np.array(s_next), tr)
    true = tr["reward"].astype(np.float64)
    other = shaped(true, tr, random_potential(tr, rng), 2.0, GAMMA)
    assert epic.dynamics_aware_distance(true, other, tr, cov) < 1e-6
    assert epic.dynamics_aware_distance(true, -true, tr, cov) == pytest.approx(1.0, abs=1e-6)


# -- bad input ----------------------------------------------------------------------------------------
def test_bad_rewards(tr):
    n = len(tr["reward"])
    good = tr["reward"]
    for bad, match in [
        (lambda s, s_next: np.zeros(n - 1), r"reward_a: .*one reward per sample, shape \(640,\), got \(639,\)"),
        (lambda s, s_next: np.zeros((n, 1)), "shape"),
        (lambda s, s_next: np.full(n, np.nan), "reward_a must give finite rewards"),
        (lambda s, s_next: torch.full((n,), float("inf")), "finite"),
        (np.zeros(3), "shape"),
    ]:
        with pytest.raises(ValueError, match=match):
            epic.dynamics_aware_distance(bad, good, tr)
    with pytest.raises(ValueError, match="reward_b"):
        epic.dynamics_aware_distance(good, lambda s, s_next: np.zeros(2), tr)

    class Wide(RewardModel):
        def forward(self, s, s_next):
            return torch.zeros(len(s), 2)

    class Unlabelled(nn.Module):  # a torch module that does not say what it reads
        def forward(self, s, s_next):
            return torch.zeros(len(s))

    with pytest.raises(ValueError, match=r"reward_b: Wide must return one reward per sample, shape \(640,\)"):
        epic.dynamics_aware_distance(good, Wide(), tr)
    with pytest.raises(ValueError, match="reward_b: Unlabelled is a torch module but not a RewardModel"):
        epic.dynamics_aware_distance(good, Unlabelled(), tr)
    # a reward that is pure episodic shaping is equivalent to no reward: the distance is undefined
    phi = random_potential(tr, np.random.default_rng(11))
    with pytest.raises(ValueError, match="reward_b is equivalent to a zero reward"):
        epic.dynamics_aware_distance(good, shaped(np.zeros(n), tr, phi, 1.0, GAMMA), tr)


def test_bad_coverage(tr):
    n = len(tr["reward"])
    good = tr["reward"]
    for cov, match in [
        ("expert", "coverage must be 'uniform' or an array"),
        (np.ones(n - 1), r"coverage must have one weight per transition, shape \(640,\)"),
        (np.where(np.arange(n) == 0, -1.0, 1.0), r"coverage must be finite and non-negative .*\[0, inf\)"),
        (np.full(n, np.nan), "non-negative"),
        (np.zeros(n), r"coverage must have a positive total \(sum > 0\)"),
    ]:
        with pytest.raises(ValueError, match=match):
            epic.dynamics_aware_distance(good, -good, tr, cov)
    # mass only on (5,5) -> (6,5): the next state's leaving transitions carry no mass
    only = np.zeros(n)
    only[_find(tr, (5, 5), [(9, 9)], S)] = 1.0
    with pytest.raises(ValueError, match="coverage must put positive mass on some transition leaving every"):
        epic.dynamics_aware_distance(good, -good, tr, only)


def test_bad_gamma(tr):
    good = tr["reward"]
    for gamma in (0.0, -0.1, 1.5, float("nan"), "0.9"):
        with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
            epic.dynamics_aware_distance(good, -good, tr, gamma=gamma)
    # gamma = 1 with coverage on a wall bump only: the chain never ends, the undiscounted value is undefined
    bump = np.zeros(len(good))
    bump[_find(tr, (1, 1), [(9, 9)], N)] = 1.0
    with pytest.raises(ValueError, match="gamma must be < 1 for this coverage"):
        epic.canonicalize_dynamics_aware(np.ones(len(good)), tr, bump, 1.0)


# -- EPIC as the EPIC paper defines it ------------------------------------------------------------------
def tiny_world(rng: np.random.Generator, m: int = 3, n_covered: int = 9) -> dict:
    """A made-up world of ``m`` states and the maze's 4 actions, with ``n_covered`` distinct transitions."""
    triples = [(s, a, t) for s in range(m) for a in range(4) for t in range(m)]
    pick = sorted(rng.choice(len(triples), n_covered, replace=False))
    sid, act, nsid = (np.array([triples[i][k] for i in pick]) for k in range(3))
    return {"states": np.arange(m, dtype=np.uint8).reshape(m, 1, 1), "state_id": sid, "action": act,
            "next_state_id": nsid}


def epic_by_loops(ra: np.ndarray, rb: np.ndarray, tr: dict, w: np.ndarray, gamma: float, p_s: np.ndarray,
                  p_a: np.ndarray) -> float:
    """The EPIC paper's definition written out: expectations over independent S, A, S' by plain loops, then a
    weighted Pearson correlation over the covered transitions by plain loops."""
    m, n_a = len(p_s), len(p_a)

    def canon(r: np.ndarray) -> list[float]:
        def mean_from(x: int) -> float:  # E[R(x, A, S')]
            return sum(p_a[a] * p_s[y] * r[x, a, y] for a in range(n_a) for y in range(m))

        total = sum(p_s[x] * p_a[a] * p_s[y] * r[x, a, y] for x in range(m) for a in range(n_a) for y in range(m))
        return [r[s, a, t] + gamma * mean_from(t) - mean_from(s) - gamma * total
                for s, a, t in zip(tr["state_id"], tr["action"], tr["next_state_id"])]

    ca, cb = canon(ra), canon(rb)
    wsum = sum(w)
    mean_a = sum(wi * x for wi, x in zip(w, ca)) / wsum
    mean_b = sum(wi * x for wi, x in zip(w, cb)) / wsum
    cov = sum(wi * (x - mean_a) * (y - mean_b) for wi, x, y in zip(w, ca, cb)) / wsum
    var_a = sum(wi * (x - mean_a) ** 2 for wi, x in zip(w, ca)) / wsum
    var_b = sum(wi * (y - mean_b) ** 2 for wi, y in zip(w, cb)) / wsum
    rho = cov / math.sqrt(var_a * var_b)
    return math.sqrt((1 - rho) / 2)


@pytest.mark.parametrize("gamma", [0.5, GAMMA, 1.0])
def test_epic_matches_the_papers_definition_by_loops(gamma):
    rng = np.random.default_rng(20)
    for _ in range(4):
        tr = tiny_world(rng)
        ra, rb = rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 4, 3))
        w, p_s, p_a = rng.uniform(0.1, 1, 9), rng.uniform(0.1, 1, 3), rng.uniform(0.1, 1, 4)
        expected = epic_by_loops(ra, rb, tr, w, gamma, p_s / p_s.sum(), p_a / p_a.sum())
        got = epic.epic_distance(ra, rb, tr, w, gamma, state_dist=p_s, action_dist=p_a)
        assert got == pytest.approx(expected, abs=1e-12)
        uniform = epic_by_loops(ra, rb, tr, np.ones(9), gamma, np.full(3, 1 / 3), np.full(4, 1 / 4))
        assert epic.epic_distance(ra, rb, tr, gamma=gamma) == pytest.approx(uniform, abs=1e-12)


def test_maze_true_reward_is_the_transitions_reward_and_defined_on_jumps(tr):
    np.testing.assert_array_equal(mt.maze_true_reward(tr["s"], tr["s_next"]), tr["reward"])
    # a jump the maze cannot make: from (5, 5) with the goal at (1, 1) onto (1, 1) of the other goal layout
    s, s_next = draw(empty_layout(), (5, 5), [(1, 1)]), draw(empty_layout(), (1, 1), [(9, 9)])
    assert mt.maze_true_reward(s[None], s_next[None])[0] == 1.0
    assert mt.maze_true_reward(s_next[None], s[None])[0] == 0.0


def state_function(tr: dict, values: np.ndarray):
    """``f(grids) -> values[state index of each grid]``: a function of the maze's states given by a table."""
    index = {grid.tobytes(): i for i, grid in enumerate(tr["states"])}
    return lambda grids: values[[index[g.astype(np.uint8).tobytes()] for g in grids]]


@pytest.mark.parametrize("gamma", [0.5, GAMMA, 1.0])
def test_epic_ignores_any_potential_scale_and_constant(tr, gamma):
    """EPIC draws S' independently of s, so every potential is an invariance, non-zero at the goal too."""
    rng = np.random.default_rng(21)
    for k, c in ((0.05, 0.0), (1.0, -3.0), (30.0, 2.0)):
        phi = state_function(tr, rng.normal(scale=5.0, size=len(tr["states"])))

        def shaped_true(s, s_next, phi=phi, k=k, c=c):
            return k * mt.maze_true_reward(s, s_next) + gamma * phi(s_next) - phi(s) + c

        for coverage in ("uniform", full_support_coverage(tr, rng)):
            assert epic.epic_distance(mt.maze_true_reward, shaped_true, tr, coverage, gamma) < 1e-7
            assert epic.epic_distance(shaped_true, mt.maze_true_reward, tr, coverage, gamma) < 1e-7
    # on a random table over S x A x S', with random state and action distributions
    m = len(tr["states"])
    table = rng.normal(size=(m, 4, m))
    phi = rng.normal(size=m)
    other = 2.5 * table + gamma * phi[None, None, :] - phi[:, None, None] + 7.0
    p_s, p_a = rng.uniform(0.1, 1, m), rng.uniform(0.1, 1, 4)
    assert epic.epic_distance(table, other, tr, gamma=gamma, state_dist=p_s, action_dist=p_a) < 1e-7


def test_the_two_distances_differ_where_the_definitions_do(tr):
    """A potential non-zero at the goal: invisible to EPIC, not to the dynamics-aware distance (module docstring)."""
    rng = np.random.default_rng(22)
    values = rng.normal(size=len(tr["states"]))
    phi = state_function(tr, values)

    def shaped_true(s, s_next):
        return mt.maze_true_reward(s, s_next) + GAMMA * phi(s_next) - phi(s)

    assert epic.epic_distance(mt.maze_true_reward, shaped_true, tr) < 1e-7
    assert epic.dynamics_aware_distance(mt.maze_true_reward, shaped_true, tr) > 1e-3


def test_epic_is_a_pseudometric(tr):
    rng = np.random.default_rng(23)
    small = tiny_world(rng, m=4, n_covered=20)
    for world, m in ((small, 4), (tr, len(tr["states"]))):
        tables = [rng.normal(size=(m, 4, m)) * rng.uniform(0.1, 5) for _ in range(8)]
        d = np.array([[epic.epic_distance(a, b, world) for b in tables] for a in tables])
        np.testing.assert_allclose(d, d.T, atol=1e-12)
        assert np.allclose(np.diag(d), 0, atol=1e-7)
        assert (d[:, None, :] <= d[:, :, None] + d[None, :, :] + 1e-12).all()  # every ordered triple
        assert epic.epic_distance(tables[0], -2 * tables[0], world) == pytest.approx(1.0, abs=1e-9)


def test_epic_of_a_model_is_that_of_its_table(tr):
    torch.manual_seed(0)
    model = MazeRewardMLP(hidden=16).train()
    table = epic.reward_table(model, tr)
    m = len(tr["states"])
    assert table.shape == (m, 4, m) and model.training
    i, j = 7, 100
    with torch.no_grad():
        direct = model(torch.as_tensor(tr["states"][[i]], dtype=torch.float32),
                       torch.as_tensor(tr["states"][[j]], dtype=torch.float32)).double().numpy()[0]
    np.testing.assert_allclose(table[i, :, j], direct, rtol=1e-6)
    assert epic.epic_distance(mt.maze_true_reward, model, tr) == pytest.approx(
        epic.epic_distance(mt.maze_true_reward, table, tr), abs=1e-9)


def test_epic_bad_input(tr):
    m = len(tr["states"])
    good = epic.reward_table(mt.maze_true_reward, tr)
    with pytest.raises(ValueError, match=r"reward_a and reward_b must have the same shape, got \(162, 4, 162\) and "
                                         r"\(162, 4, 161\)"):
        epic.epic_distance(good, np.zeros((m, 4, m - 1)), tr)
    with pytest.raises(ValueError, match=r"reward_a must give one reward per \(state, action, next state\)"):
        epic.epic_distance(tr["reward"], tr["reward"], tr)
    with pytest.raises(ValueError, match="reward_b must give finite rewards"):
        epic.epic_distance(good, np.full_like(good, np.nan), tr)
    with pytest.raises(ValueError, match=r"reward_b: .*one reward per sample"):
        epic.epic_distance(good, lambda s, s_next: np.zeros(3), tr)
    with pytest.raises(ValueError, match=r"coverage must have a positive total \(sum > 0\)"):
        epic.epic_distance(good, -good, tr, np.zeros(len(tr["reward"])))
    for gamma in (0.0, -0.1, 1.5, float("nan"), "0.9", True):
        with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
            epic.epic_distance(good, -good, tr, gamma=gamma)
    with pytest.raises(ValueError, match=r"state_dist must have one weight per entry, shape \(162,\)"):
        epic.epic_distance(good, -good, tr, state_dist=np.ones(3))
    with pytest.raises(ValueError, match=r"action_dist must have a positive total \(sum > 0\)"):
        epic.epic_distance(good, -good, tr, action_dist=np.zeros(4))
    with pytest.raises(ValueError, match="action_dist must be finite and non-negative"):
        epic.epic_distance(good, -good, tr, action_dist=np.array([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="reward_b is equivalent to a zero reward"):
        epic.epic_distance(good, np.full_like(good, 3.0), tr)
    with pytest.raises(ValueError, match="missing 'action'"):
        epic.epic_distance(good, -good, {k: v for k, v in tr.items() if k != "action"})

"""The gridworld mazes: drawing, dynamics, rewards, termination, truncation, seeding and API conformance."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import rewinterp_utils  # noqa: F401  (registers the ids)
from rewinterp_utils.envs.maze import (
    AGENT,
    CORNERS,
    FREE,
    GOAL,
    GOAL_MODES,
    MAX_EPISODE_STEPS,
    WALL,
    MazeEnv,
    check_maze_id,
    draw,
    empty_layout,
    maze_ids,
    walled_layout,
)

N, S, W, E = 0, 1, 2, 3
MOVES = {N: (-1, 0), S: (1, 0), W: (0, -1), E: (0, 1)}


def agent_cell(grid: np.ndarray) -> tuple[int, int]:
    cells = np.argwhere(grid == AGENT)
    assert len(cells) == 1, f"expected exactly one agent cell, got {cells.tolist()}"
    return tuple(int(v) for v in cells[0])


def goal_cells(grid: np.ndarray) -> set[tuple[int, int]]:
    return {tuple(int(v) for v in c) for c in np.argwhere(grid == GOAL)}


# -- layouts and drawing -----------------------------------------------------------------------------
def test_layouts():
    e = empty_layout()
    assert e.shape == (11, 11) and e.dtype == np.uint8
    assert (e[0] == WALL).all() and (e[-1] == WALL).all() and (e[:, 0] == WALL).all() and (e[:, -1] == WALL).all()
    assert (e[1:-1, 1:-1] == FREE).all()
    w = walled_layout()
    assert w.shape == (11, 11) and w.dtype == np.uint8
    assert set(np.unique(w).tolist()) == {FREE, WALL}
    assert (w[0] == WALL).all() and (w[-1] == WALL).all() and (w[:, 0] == WALL).all() and (w[:, -1] == WALL).all()
    for c in CORNERS:
        assert w[c] == FREE
    assert CORNERS == ((1, 1), (9, 9))
    # every free cell is reachable from (1, 1): both goal corners can be reached from any start
    free = {tuple(int(v) for v in c) for c in np.argwhere(w == FREE)}
    seen, todo = {(1, 1)}, [(1, 1)]
    while todo:
        r, c = todo.pop()
        for dr, dc in MOVES.values():
            nb = (r + dr, c + dc)
            if nb in free and nb not in seen:
                seen.add(nb)
                todo.append(nb)
    assert seen == free


def test_draw_agent_over_goal():
    layout = empty_layout()
    grid = draw(layout, (9, 9), [(9, 9), (1, 1)])
    assert grid[9, 9] == AGENT
    assert goal_cells(grid) == {(1, 1)}
    assert (layout == empty_layout()).all(), "draw must not modify the layout"
    grid = draw(layout, (5, 4), [(9, 9)])
    assert grid[5, 4] == AGENT and grid[9, 9] == GOAL
    expected = empty_layout()
    expected[9, 9], expected[5, 4] = GOAL, AGENT
    assert (grid == expected).all()


def test_set_state_agent_on_goal_hides_goal():
    env = MazeEnv(goal_mode="CoinFlipGoal")
    env.reset(seed=0)
    obs = env.set_state((1, 1), [(1, 1)])
    assert obs.dtype == np.uint8 and obs.shape == (11, 11)
    assert obs[1, 1] == AGENT
    assert not (obs == GOAL).any()
    assert int((obs == AGENT).sum()) == 1
    assert (env.observation() == obs).all()


# -- rewards and termination -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", GOAL_MODES)
@pytest.mark.parametrize("prefix", ["EmptyMaze", "Maze"])
def test_entering_goal_rewards_and_terminates(prefix, mode):
    env = gym.make(f"{prefix}-10x10-{mode}-v3").unwrapped
    obs, _ = env.reset(seed=3)
    goals = list(env.goals)
    assert goals and goal_cells(obs) == set(goals)
    if mode == "FixedGoal":
        assert goals == [(9, 9)]
    elif mode == "CoinFlipGoal":
        assert len(goals) == 1 and goals[0] in CORNERS
    elif mode == "TwoGoals":
        assert sorted(goals) == [(1, 1), (9, 9)]
    else:
        assert len(goals) == 1 and env.layout[goals[0]] == FREE
    goal = goals[0]
    # put the agent on a free neighbour of the goal and step into it
    for action, (dr, dc) in MOVES.items():
        nb = (goal[0] - dr, goal[1] - dc)
        if env.layout[nb] == FREE and nb not in goals:
            break
    else:  # pragma: no cover
        pytest.fail(f"goal {goal} has no free neighbour")
    env.set_state(nb, goals)
    obs, reward, terminated, truncated, info = env.step(action)
    assert reward == 1.0 and isinstance(reward, float)
    assert terminated is True and truncated is False
    assert info["is_success"] is True
    assert obs[goal] == AGENT
    assert goal_cells(obs) == set(goals) - {goal}


@pytest.mark.parametrize("goal", CORNERS)
def test_twogoals_episode_ends_at_either_goal(goal):
    env = gym.make("EmptyMaze-10x10-TwoGoals-v3")
    env.reset(seed=0)
    other = CORNERS[1] if goal == CORNERS[0] else CORNERS[0]
    start = (goal[0] + (1 if goal == (1, 1) else -1), goal[1])
    env.unwrapped.set_state(start, list(CORNERS))
    obs, reward, terminated, truncated, _ = env.step(N if goal == (1, 1) else S)
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert obs[goal] == AGENT and obs[other] == GOAL


def test_non_goal_step_gives_zero_reward():
    env = gym.make("EmptyMaze-10x10-TwoGoals-v3")
    env.reset(seed=0)
    env.unwrapped.set_state((5, 5), list(CORNERS))
    obs, reward, terminated, truncated, info = env.step(E)
    assert (reward, terminated, truncated, info["is_success"]) == (0.0, False, False, False)
    assert agent_cell(obs) == (5, 6)
    assert goal_cells(obs) == set(CORNERS)


@pytest.mark.parametrize("mode", GOAL_MODES)
def test_non_terminating_rewards_and_continues(mode):
    env = gym.make(f"EmptyMaze-10x10-{mode}-NonTerminating-v3")
    env.reset(seed=1)
    u = env.unwrapped
    assert u.terminating is False
    env.unwrapped.set_state((8, 9), [(9, 9)])
    obs, reward, terminated, truncated, info = env.step(S)
    assert (reward, terminated, truncated, info["is_success"]) == (1.0, False, False, True)
    assert obs[9, 9] == AGENT and not (obs == GOAL).any()
    # staying on the goal (bumping into the border) keeps rewarding
    obs, reward, terminated, truncated, _ = env.step(S)
    assert (reward, terminated, truncated) == (1.0, False, False)
    # leaving it: no reward, goal visible again
    obs, reward, terminated, truncated, _ = env.step(N)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs[9, 9] == GOAL and obs[8, 9] == AGENT
    # and coming back rewards again
    _, reward, terminated, _, _ = env.step(S)
    assert (reward, terminated) == (1.0, False)


# -- walls ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "start, action, expected",
    [
        ((1, 1), N, (1, 1)),  # border
        ((1, 1), W, (1, 1)),  # border
        ((9, 9), E, (9, 9)),  # border (9,9) is no goal here
        ((1, 5), E, (1, 5)),  # internal wall at (1,6)
        ((1, 2), S, (1, 2)),  # internal wall at (2,2)
        ((3, 1), E, (3, 1)),  # internal wall at (3,2)
        ((5, 1), S, (5, 1)),  # internal wall at (6,1)
        ((1, 1), S, (2, 1)),  # free: moves
        ((1, 5), W, (1, 4)),  # free: moves
        ((7, 5), N, (6, 5)),  # free: moves through the gap at (6,5)
    ],
)
def test_walled_maze_walls_block(start, action, expected):
    env = gym.make("Maze-10x10-CoinFlipGoal-v3")
    env.reset(seed=0)
    u = env.unwrapped
    target = (start[0] + MOVES[action][0], start[1] + MOVES[action][1])
    assert (u.layout[target] == WALL) == (expected == start)
    u.set_state(start, [(9, 1)])  # goal out of the way
    obs, reward, terminated, _, _ = env.step(action)
    assert agent_cell(obs) == expected and u.agent == expected
    assert (reward, terminated) == (0.0, False)
    assert (obs == WALL).sum() == (walled_layout() == WALL).sum()


def test_empty_maze_border_blocks_every_side():
    env = MazeEnv(goal_mode="FixedGoal")
    env.reset(seed=0)
    for start, action in [((1, 4), N), ((9, 4), S), ((4, 1), W), ((4, 9), E)]:
        env.set_state(start, [(9, 9)] if start != (9, 9) else [(1, 1)])
        obs, reward, *_ = env.step(action)
        assert agent_cell(obs) == start and reward == 0.0


def reference_step(layout, agent, goals, action, terminating):
    dr, dc = MOVES[action]
    tgt = (agent[0] + dr, agent[1] + dc)
    if layout[tgt] != WALL:
        agent = tgt
    reached = agent in goals
    return agent, float(reached), bool(reached and terminating)


@pytest.mark.parametrize("env_id", maze_ids())
def test_dynamics_match_reference_model(env_id):
    """Random-action episodes agree step by step with an independent model of the maze."""
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    layout = walled_layout() if env_id.startswith("Maze") else empty_layout()
    terminating = "NonTerminating" not in env_id
    n_steps = 0
    for ep in range(3):
        obs, _ = env.reset(seed=100 + ep)
        goals = sorted(goal_cells(obs))
        agent = agent_cell(obs)
        assert agent not in goals
        assert (obs == draw(layout, agent, goals)).all()
        for t in range(1, MAX_EPISODE_STEPS + 1):
            a = int(rng.integers(4))
            agent, r, term = reference_step(layout, agent, goals, a, terminating)
            obs, reward, terminated, truncated, _ = env.step(a)
            n_steps += 1
            assert (obs == draw(layout, agent, goals)).all()
            assert (reward, terminated) == (r, term)
            assert truncated == (t == MAX_EPISODE_STEPS and not term)
            if terminated or truncated:
                break
    assert n_steps > 50


# -- truncation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["EmptyMaze-10x10-FixedGoal-v3", "Maze-10x10-TwoGoals-v3"])
def test_truncation_at_exactly_200_steps(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    start = (1, 5)
    env.unwrapped.set_state(start, [(9, 9)])
    for t in range(1, MAX_EPISODE_STEPS + 1):
        obs, reward, terminated, truncated, _ = env.step(N)  # into the border: never moves
        assert agent_cell(obs) == start and reward == 0.0 and not terminated
        assert truncated == (t == MAX_EPISODE_STEPS), t
    assert MAX_EPISODE_STEPS == 200


def test_non_terminating_truncates_at_200_while_on_goal():
    env = gym.make("EmptyMaze-10x10-CoinFlipGoal-NonTerminating-v3")
    env.reset(seed=0)
    env.unwrapped.set_state((8, 9), [(9, 9)])
    total = 0.0
    for t in range(1, 201):
        _, reward, terminated, truncated, _ = env.step(S)
        total += reward
        assert not terminated
        assert truncated == (t == 200)
    assert total == 200.0


# -- reset distribution and seeding --------------------------------------------------------------------
def test_coinflip_goal_distribution():
    env = MazeEnv(goal_mode="CoinFlipGoal")
    counts = {c: 0 for c in CORNERS}
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        g = goal_cells(obs)
        assert len(g) == 1
        (goal,) = g
        assert goal in CORNERS and env.goals == [goal]
        counts[goal] += 1
    assert 70 <= counts[(1, 1)] <= 130, counts


def test_coinflip_goal_varies_across_resets_without_reseeding():
    env = MazeEnv(goal_mode="CoinFlipGoal")
    env.reset(seed=0)
    seen = set()
    for _ in range(100):
        env.reset()
        seen.add(env.goals[0])
    assert seen == set(CORNERS)


@pytest.mark.parametrize("mode", GOAL_MODES)
@pytest.mark.parametrize("layout_fn", [empty_layout, walled_layout])
def test_start_never_on_goal(mode, layout_fn):
    env = MazeEnv(layout=layout_fn(), goal_mode=mode)
    n_goals = 2 if mode == "TwoGoals" else 1
    starts = set()
    for seed in range(150):
        obs, info = env.reset(seed=seed)
        assert info == {}
        assert env.agent not in env.goals
        assert env.layout[env.agent] == FREE
        assert agent_cell(obs) == env.agent
        assert len(goal_cells(obs)) == n_goals
        starts.add(env.agent)
    assert len(starts) > 30  # the start is random


def test_random_goal_is_random():
    env = MazeEnv(goal_mode="RandomGoal")
    goals = set()
    for s in range(100):
        obs, _ = env.reset(seed=s)
        assert goal_cells(obs) == {env.goals[0]}
        goals.add(env.goals[0])
    assert len(goals) > 30
    assert all(env.layout[g] == FREE for g in goals)


@pytest.mark.parametrize("env_id", ["EmptyMaze-10x10-CoinFlipGoal-v3", "Maze-10x10-RandomGoal-NonTerminating-v3"])
def test_same_seed_same_trajectory(env_id):
    actions = np.random.default_rng(1).integers(4, size=150)

    def run(seed):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        traj = [obs.copy()]
        for a in actions:
            obs, r, term, trunc, _ = env.step(int(a))
            traj.append((obs.copy(), r, term, trunc))
            if term or trunc:
                obs, _ = env.reset()
                traj.append(obs.copy())
        return traj

    a, b = run(7), run(7)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, tuple):
            assert (x[0] == y[0]).all() and x[1:] == y[1:]
        else:
            assert (x == y).all()
    c = run(8)
    assert not np.array_equal(a[0], c[0])  # different seeds: different first observation


def test_reseeding_same_env_reproduces_reset():
    env = MazeEnv(goal_mode="RandomGoal")
    o1, _ = env.reset(seed=42)
    env.reset()
    env.reset()
    o2, _ = env.reset(seed=42)
    assert (o1 == o2).all()


def test_observations_are_not_aliased():
    env = MazeEnv(goal_mode="FixedGoal")
    obs0, _ = env.reset(seed=0)
    env.set_state((5, 5), [(9, 9)])
    obs1, *_ = env.step(E)
    snap = obs1.copy()
    env.step(E)
    obs1[0, 0] = 7  # the caller scribbling on an observation does not change the env
    assert np.array_equal(snap[1:], obs1[1:]) and env.layout[0, 0] == WALL
    assert agent_cell(env.observation()) == (5, 7)


def test_different_seeds_differ():
    obs = [MazeEnv(goal_mode="CoinFlipGoal").reset(seed=s)[0] for s in range(5)]
    assert len({o.tobytes() for o in obs}) > 1


# -- input validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [(0, 0), (0, 5), (10, 10), (5, 0)])
def test_set_state_rejects_border_cells(bad):
    env = MazeEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.set_state(bad, [(9, 9)])
    with pytest.raises(ValueError):
        env.set_state((5, 5), [bad])


def test_set_state_rejects_internal_walls():
    env = MazeEnv(layout=walled_layout())
    env.reset(seed=0)
    before = env.observation()
    for bad in [(1, 6), (2, 2), (6, 1)]:
        assert walled_layout()[bad] == WALL
        with pytest.raises(ValueError, match="not a free cell"):
            env.set_state(bad, [(9, 9)])
        with pytest.raises(ValueError, match="not a free cell"):
            env.set_state((1, 1), [(9, 9), bad])
    assert (env.observation() == before).all(), "a rejected set_state must not change the state"


@pytest.mark.parametrize("bad", [4, -1, 1.5, "0", None, 100])
def test_step_rejects_invalid_action(bad):
    env = MazeEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(bad)


@pytest.mark.parametrize("action", [0, 3, np.int64(1), np.int32(2)])
def test_step_accepts_valid_actions(action):
    """Integer actions of any integer type move the agent the way the action says."""
    env = MazeEnv()
    env.reset(seed=0)
    env.set_state((5, 5), [(9, 9)])
    obs, *_ = env.step(action)
    dr, dc = MOVES[int(action)]
    assert agent_cell(obs) == (5 + dr, 5 + dc) == env.agent


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError, match="goal_mode"):
        MazeEnv(goal_mode="ThreeGoals")
    with pytest.raises(ValueError, match="render_mode"):
        MazeEnv(render_mode="human")


def test_render_rgb_array():
    env = MazeEnv(render_mode="rgb_array")
    env.reset(seed=0)
    env.set_state((5, 5), [(9, 9)])
    img = env.render()
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == (176, 176, 3)
    px = 16
    agent_px = img[5 * px + 8, 5 * px + 8]
    goal_px = img[9 * px + 8, 9 * px + 8]
    free_px = img[3 * px + 8, 3 * px + 8]
    wall_px = img[8, 8]
    assert len({tuple(agent_px), tuple(goal_px), tuple(free_px), tuple(wall_px)}) == 4
    # each cell is a uniform block
    assert (img[5 * px:6 * px, 5 * px:6 * px] == agent_px).all()
    assert MazeEnv().render() is None
    env2 = gym.make("EmptyMaze-10x10-TwoGoals-v3", render_mode="rgb_array")
    env2.reset(seed=0)
    assert env2.render().shape == (176, 176, 3)


def test_spaces():
    env = MazeEnv()
    assert env.observation_space.shape == (11, 11) and env.observation_space.dtype == np.uint8
    assert env.observation_space.low.min() == 0 and env.observation_space.high.max() == GOAL
    assert env.action_space.n == 4


# -- registration and API checks -----------------------------------------------------------------------
def test_maze_ids():
    ids = maze_ids()
    assert len(ids) == 16 == len(set(ids))
    for prefix in ("EmptyMaze-10x10", "Maze-10x10"):
        for mode in GOAL_MODES:
            assert f"{prefix}-{mode}-v3" in ids and f"{prefix}-{mode}-NonTerminating-v3" in ids
    for env_id in ids:
        assert env_id in gym.registry
        assert gym.registry[env_id].max_episode_steps == 200


@pytest.mark.parametrize("env_id", maze_ids())
def test_registered_kwargs(env_id):
    u = gym.make(env_id).unwrapped
    assert isinstance(u, MazeEnv)
    expected_layout = walled_layout() if env_id.startswith("Maze-") else empty_layout()
    assert (u.layout == expected_layout).all()
    assert u.goal_mode == env_id.split("-")[2]
    assert u.terminating == ("NonTerminating" not in env_id)


@pytest.mark.parametrize("env_id", maze_ids())
def test_gymnasium_and_sb3_env_checkers(env_id):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(gym.make(env_id).unwrapped, skip_render_check=True)
        sb3_check_env(gym.make(env_id).unwrapped, warn=True)
        gym_check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)


def test_check_maze_id():
    assert check_maze_id("Maze-10x10-TwoGoals-v3") == "Maze-10x10-TwoGoals-v3"
    with pytest.raises(ValueError) as e:
        check_maze_id("CartPole-v1")
    msg = str(e.value)
    assert "CartPole-v1" in msg
    for env_id in maze_ids():
        assert env_id in msg
    with pytest.raises(ValueError):
        check_maze_id("EmptyMaze-10x10-CoinFlipGoal-v2")

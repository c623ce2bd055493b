"""Gymnasium re-implementation of the `mazelab` mazes used by the paper (the paper's section 2; see the book's page "The paper and what we reproduce").

Observation: an 11x11 ``uint8`` grid, border wall included, with FREE=0, WALL=1, AGENT=2, GOAL=3.
The agent is drawn *over* the goal, so while the agent stands on a goal that goal is not visible.
Actions: 0 north, 1 south, 2 west, 3 east; moving into a wall leaves the agent where it is.
Reward +1 when the agent ends a step on a goal cell; the episode then terminates (unless the variant is
``NonTerminating``). The 200-step limit is the ``TimeLimit`` added by registration.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FREE, WALL, AGENT, GOAL = 0, 1, 2, 3
ACTIONS: dict[int, tuple[int, int]] = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}
"""Action index -> (d_row, d_col): north, south, west, east."""

Square = tuple[int, int]
"""A square of the maze grid: ``(row, col)``."""
GoalMode = Literal["FixedGoal", "CoinFlipGoal", "TwoGoals", "RandomGoal"]
GOAL_MODES: tuple[str, ...] = ("FixedGoal", "CoinFlipGoal", "TwoGoals", "RandomGoal")
CORNERS: tuple[Square, Square] = ((1, 1), (9, 9))
"""The two goal corners of the 10x10 mazes: top-left and bottom-right interior cells."""
MAX_EPISODE_STEPS = 200
COINFLIP = "EmptyMaze-10x10-CoinFlipGoal-v3"
"""The paper's training maze: the goal in one of the two corners, a fair coin each episode."""
TWOGOALS = "EmptyMaze-10x10-TwoGoals-v3"
"""Both corners hold a goal at once (the paper's test of the learned reward)."""
COLOURS: dict[int, tuple[int, int, int]] = {FREE: (255, 255, 255), WALL: (60, 60, 60), AGENT: (214, 39, 40),
                                            GOAL: (44, 160, 44)}
"""RGB of each cell value: free white, wall grey, agent red, goal green."""


def grid_to_rgb(grid: np.ndarray, cell_px: int = 16) -> np.ndarray:
    """An ``(H*cell_px, W*cell_px, 3)`` uint8 picture of a maze grid."""
    rgb = np.zeros((*grid.shape, 3), dtype=np.uint8)
    for value, colour in COLOURS.items():
        rgb[grid == value] = colour
    return np.kron(rgb, np.ones((cell_px, cell_px, 1), dtype=np.uint8))


def empty_layout(size: int = 11) -> np.ndarray:
    """A square layout whose only walls are the border."""
    layout = np.full((size, size), WALL, dtype=np.uint8)
    layout[1:-1, 1:-1] = FREE
    return layout


def walled_layout() -> np.ndarray:
    """The fixed 11x11 walled maze of the ``Maze-10x10-*`` ids (corners (1,1) and (9,9) are free)."""
    rows = [
        "11111111111",
        "10000010001",
        "10111010101",
        "10100000101",
        "10101111101",
        "10001000001",
        "11101011101",
        "10000010001",
        "10111110111",
        "10000000001",
        "11111111111",
    ]
    return np.array([[int(ch) for ch in row] for row in rows], dtype=np.uint8)


def draw(layout: np.ndarray, agent: Square, goals: Iterable[Square]) -> np.ndarray:
    """The observation for ``agent`` and ``goals`` on ``layout``: goals first, then the agent over them."""
    grid = layout.copy()
    for g in goals:
        grid[g] = GOAL
    grid[agent] = AGENT
    return grid


class MazeEnv(gym.Env[np.ndarray, np.int64]):
    """A gridworld maze with one of the paper's goal rules.

    Args:
        layout: 2-D array of FREE/WALL cells.
        goal_mode: ``FixedGoal`` (9,9); ``CoinFlipGoal`` (1,1) or (9,9) by a fair coin each episode;
            ``TwoGoals`` both corners; ``RandomGoal`` a uniformly random free cell.
        terminating: end the episode when a goal is reached (``False`` for the NonTerminating variants).
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        layout: np.ndarray | None = None,
        goal_mode: GoalMode = "CoinFlipGoal",
        terminating: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if goal_mode not in GOAL_MODES:
            raise ValueError(f"goal_mode must be one of {GOAL_MODES}, got {goal_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.layout = (empty_layout() if layout is None else np.asarray(layout, dtype=np.uint8)).copy()
        self.goal_mode = goal_mode
        self.terminating = terminating
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, GOAL, shape=self.layout.shape, dtype=np.uint8)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.free_cells: list[Square] = [tuple(map(int, c)) for c in np.argwhere(self.layout == FREE)]
        self.agent: Square = self.free_cells[0]
        self.goals: list[Square] = []

    # -- state -------------------------------------------------------------------------------------
    def observation(self) -> np.ndarray:
        """The current 11x11 grid."""
        return draw(self.layout, self.agent, self.goals)

    def set_state(self, agent: Square, goals: Sequence[Square]) -> np.ndarray:
        """Place the agent and any number of goals explicitly (for counterfactuals); returns the observation.

        Every cell must be a free cell of the layout; the agent may stand on a goal (it is then hidden).
        """
        for cell in (agent, *goals):
            cell = tuple(int(v) for v in cell)
            if cell not in self.free_cells:
                raise ValueError(f"cell {cell} is not a free cell of this maze")
        self.agent = (int(agent[0]), int(agent[1]))
        self.goals = [(int(r), int(c)) for r, c in goals]
        return self.observation()

    def _sample_goals(self) -> list[Square]:
        if self.goal_mode == "FixedGoal":
            return [CORNERS[1]]
        if self.goal_mode == "CoinFlipGoal":
            return [CORNERS[int(self.np_random.integers(2))]]
        if self.goal_mode == "TwoGoals":
            return list(CORNERS)
        return [self.free_cells[int(self.np_random.integers(len(self.free_cells)))]]

    # -- gymnasium API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        goals = self._sample_goals()
        starts = [c for c in self.free_cells if c not in goals]
        agent = starts[int(self.np_random.integers(len(starts)))]
        return self.set_state(agent, goals), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in 0..{len(ACTIONS) - 1}, got {action!r}")
        dr, dc = ACTIONS[int(action)]
        target = (self.agent[0] + dr, self.agent[1] + dc)
        if self.layout[target] != WALL:
            self.agent = target
        reached = self.agent in self.goals
        terminated = bool(reached and self.terminating)
        return self.observation(), float(reached), terminated, False, {"is_success": reached}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return grid_to_rgb(self.observation())


def maze_ids() -> list[str]:
    """Every maze id this package registers."""
    ids = []
    for prefix in ("EmptyMaze-10x10", "Maze-10x10"):
        for mode in GOAL_MODES:
            ids += [f"{prefix}-{mode}-v3", f"{prefix}-{mode}-NonTerminating-v3"]
    return ids


def register_mazes() -> None:
    """Register all maze ids with gymnasium (idempotent)."""
    for env_id in maze_ids():
        if env_id in gym.registry:
            continue
        prefix, _, mode, *rest = env_id.split("-")
        gym.register(
            id=env_id,
            entry_point="rewinterp_utils.envs.maze:MazeEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
            kwargs={
                "layout": walled_layout() if prefix == "Maze" else empty_layout(),
                "goal_mode": mode,
                "terminating": rest[0] != "NonTerminating",
            },
        )


def check_maze_id(env_id: str) -> str:
    """Return ``env_id`` if it is a registered maze id, else raise ``ValueError`` listing the valid ids."""
    if env_id not in maze_ids():
        raise ValueError(f"unknown maze env id {env_id!r}; valid ids: {', '.join(maze_ids())}")
    return env_id


def maze_short_name(env_id: str) -> str:
    """Short name of a maze id for labels and metric keys: ``EmptyMaze-10x10-TwoGoals-v3`` -> ``TwoGoals``."""
    parts = env_id.removesuffix("-v3").split("-")
    return "-".join(parts[2:]) if parts[0] == "EmptyMaze" else "-".join(parts)

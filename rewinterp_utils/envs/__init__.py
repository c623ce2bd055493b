"""Environments: the gridworld mazes (and, later, Atari)."""

from rewinterp_utils.envs.maze import (
    ACTIONS,
    AGENT,
    CORNERS,
    FREE,
    GOAL,
    WALL,
    MazeEnv,
    check_maze_id,
    draw,
    empty_layout,
    maze_ids,
    register_mazes,
    walled_layout,
)

register_mazes()

__all__ = [
    "ACTIONS",
    "AGENT", "CORNERS", "FREE", "GOAL", "WALL", "MazeEnv", "check_maze_id", "draw", "empty_layout",
    "maze_ids", "register_mazes", "walled_layout",
]

"""Environments: the gridworld mazes (registered with gymnasium on import) and the Atari games (`envs.atari`)."""

from rewinterp_utils.envs.maze import (
    ACTIONS,
    AGENT,
    COINFLIP,
    COLOURS,
    CORNERS,
    FREE,
    GOAL,
    WALL,
    TWOGOALS,
    MazeEnv,
    check_maze_id,
    draw,
    empty_layout,
    grid_to_rgb,
    maze_ids,
    maze_short_name,
    register_mazes,
    walled_layout,
)

register_mazes()

__all__ = [
    "ACTIONS",
    "AGENT", "COINFLIP", "COLOURS", "CORNERS", "FREE", "GOAL", "TWOGOALS", "WALL", "MazeEnv", "check_maze_id",
    "draw", "empty_layout", "grid_to_rgb", "maze_ids", "maze_short_name", "register_mazes", "walled_layout",
]

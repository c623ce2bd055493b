"""rewinterp: reproduce and extend "Understanding Learned Reward Functions" (Michaud, Gleave, Russell 2020).

Importing the package registers the maze environments with gymnasium.
"""

from rewinterp_utils import envs  # noqa: F401  (registers the gymnasium ids)

__version__ = "0.1.0"

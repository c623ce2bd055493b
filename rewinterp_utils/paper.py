"""The numbers the paper reports, in one place (Michaud, Gleave & Russell 2020, "Understanding Learned Reward
Functions"). Notebooks set their results beside these; none types a paper number of its own.

Values read off a figure rather than printed in the text are marked approximate (``APPROXIMATE``).
"""

from __future__ import annotations

MAZE: dict[str, float] = {
    "rm.reward_on_goal": 0.975,  #: Section 4.1: the regression model's reward for stepping onto a goal
    "rm.reward_off_goal": 0.0,  #: ... and for every other transition
    "counterfactual.no_goal": 0.949,  #: Figure 2 (a): goal erased from s and s' (true reward 0)
    "counterfactual.two_goals": 0.004,  #: Figure 2 (b): two goals, the agent steps onto one (true reward 1)
    "counterfactual.many_goals": -1.727,  #: Figure 2 (c): a checkerboard of goals (true reward 1)
}
"""The gridworld's regression model on CoinFlipGoal (Section 4.1, Figure 2)."""

MAZE_RERUN: dict[str, float] = {
    "counterfactual.no_goal": 0.954,
    "counterfactual.two_goals": -0.074,
    "counterfactual.many_goals": -1.489,
}
"""Figure 2's counterfactuals (a)-(c) again, from the paper's rerun of its gridworld pipeline."""

MAZE_RETRAIN_RETURN = 0.9
"""Figure 3: every retrained agent reaches a true return of about 1; we count "about 1" as at least this."""

ATARI_TEST_MSE: dict[tuple[str, str], float] = {
    ("Breakout", "shown"): 0.076,
    ("Seaquest", "shown"): 0.002,
}
"""Held-out MSE of the Atari reward models trained with the score shown (Section 4.2)."""

TABLE1: dict[tuple[str, str, str], float] = {
    ("Breakout", "shown", "true"): 13.5,
    ("Breakout", "shown", "learned_shown"): 3.8,
    ("Breakout", "hidden", "true"): 13.2,
    ("Breakout", "hidden", "learned_shown"): 10.4,
    ("Seaquest", "shown", "true"): 22.6,
    ("Seaquest", "shown", "learned_shown"): 8.7,
    ("Seaquest", "hidden", "true"): 11.3,
    ("Seaquest", "hidden", "learned_shown"): 6.6,
}
"""Table 1: mean clipped return per life of PPO agents, keyed by (game, score setting of the environment, reward
the agent was trained on: ``true`` or the score-shown model ``learned_shown``); one seed each."""

APPROXIMATE = frozenset({"ATARI_TEST_MSE"})
"""Names of the tables above whose values the paper gives only roughly (``~``)."""

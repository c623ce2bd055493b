"""Seeds of vectorised envs (no two runs or roles share one) and Atari evaluations that play new games each time."""

from __future__ import annotations

import numpy as np
import pytest

from rewinterp_utils.seeding import STREAMS, seed_sub_envs, seeded_vec_env, sub_env_seeds


def test_no_two_runs_or_roles_share_a_sub_env_seed():
    """Seeds 0..99 of every role, 8 sub-envs each: 6,400 seeds, all distinct (``seed + rank`` would give runs 0 and
    1 seven shared envs), and the same on every call."""
    seen = [s for seed in range(100) for stream in STREAMS for s in sub_env_seeds(seed, 8, stream)]
    assert len(seen) == len(set(seen)) == 100 * len(STREAMS) * 8
    assert sub_env_seeds(3, 8, "eval") == sub_env_seeds(3, 8, "eval")
    assert sub_env_seeds(3, 4, "eval") == sub_env_seeds(3, 8, "eval")[:4]  # a prefix: the same envs, fewer of them


@pytest.mark.parametrize("bad", [dict(seed=-1, n_envs=2), dict(seed=1.5, n_envs=2), dict(seed=0, n_envs=0),
                                 dict(seed=0, n_envs=2, stream="evaluation")])
def test_bad_seed_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        sub_env_seeds(**bad)


def test_maze_venv_resets_each_sub_env_with_its_own_seed():
    from stable_baselines3 import PPO

    venv = seeded_vec_env("EmptyMaze-10x10-RandomGoal-v3", 3, 5, "train")
    assert venv.unwrapped._seeds == sub_env_seeds(5, 3, "train")
    PPO("MlpPolicy", venv, seed=5, n_steps=8, batch_size=8)  # PPO(seed=) puts back seed + rank ...
    assert venv._seeds == [5, 6, 7]
    seed_sub_envs(venv, sub_env_seeds(5, 3, "train"))  # ... and this undoes it, through any wrapper
    first = venv.reset()
    again = seeded_vec_env("EmptyMaze-10x10-RandomGoal-v3", 3, 5, "train").reset()
    np.testing.assert_array_equal(first, again)
    with pytest.raises(ValueError, match="2 seeds for 3"):
        seed_sub_envs(venv, [1, 2])


# --------------------------------------------------------------------------------------------- Atari evaluation
class ReplayPolicy:
    """Uniform random actions from a generator made anew at the start of each evaluation (``state`` is None then):
    the same play in every evaluation that meets the same games."""

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        rng = state if state is not None else np.random.default_rng(0)
        return rng.integers(0, 4, size=len(obs)), rng


class StubModel:
    """What :class:`~rewinterp_utils.agents.AtariEvalCallback` reads of PPO."""

    num_timesteps, logger = 0, None
    policy = ReplayPolicy()

    def predict(self, *args, **kwargs):
        return self.policy.predict(*args, **kwargs)

    def get_env(self):
        return None


def test_each_atari_evaluation_plays_new_games_of_its_own():
    """Two evaluations of the same play give the same games: nothing of the first evaluation's games leaks into the
    second (with one reused venv, the second would finish games the first left with lives to spare)."""
    from rewinterp_utils.agents import AtariEvalCallback
    from rewinterp_utils.envs.atari import make_atari_venv

    built = []

    def make():
        built.append(make_atari_venv("BreakoutNoFrameskip-v4", n_envs=2, seed=0, stream="eval"))
        return built[-1]

    callback = AtariEvalCallback(make, eval_freq=10, n_games=3)
    callback.init_callback(StubModel())
    callback._evaluate()
    callback._evaluate()
    first, second = callback.curve
    assert len(built) == 2 and built[0] is not built[1]
    assert first["game_scores"] == second["game_scores"] and len(first["game_scores"]) == 3
    assert first["clipped_returns"] == second["clipped_returns"]
    assert len(first["clipped_returns"]) == 3 * 5  # 5 lives a game: every game from its first life


def test_evaluating_on_a_venv_that_played_is_refused():
    """``evaluate_atari`` on a venv whose sub-envs are inside games an earlier evaluation left (the bug behind
    continued games) stops with a message instead of counting that play."""
    from rewinterp_utils.envs.atari import make_atari_venv
    from rewinterp_utils.evaluation import evaluate_atari

    venv = make_atari_venv("BreakoutNoFrameskip-v4", n_envs=2, seed=0, stream="eval")
    evaluate_atari(ReplayPolicy(), venv, 1)  # sub-env 0 plays one game; sub-env 1 stops mid-game
    with pytest.raises(ValueError, match="inside a game"):
        evaluate_atari(ReplayPolicy(), venv, 1)
    with pytest.raises(TypeError, match="not a venv"):
        from rewinterp_utils.agents import AtariEvalCallback

        AtariEvalCallback(venv, 10, 1)
    venv.close()

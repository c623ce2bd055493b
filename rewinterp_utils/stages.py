"""The pipeline's stages: one notebook each, in dependency order, with the parameter cells each profile runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewinterp_utils.envs import check_maze_id
from rewinterp_utils.profiles import resolve

CHAPTERS: tuple[str, ...] = ("gridworld", "atari", "table1")
ATARI_GAMES: tuple[str, ...] = ("Breakout", "Seaquest")
SCORES: tuple[str, ...] = ("shown", "hidden")
COINFLIP = "EmptyMaze-10x10-CoinFlipGoal-v3"
TWOGOALS = "EmptyMaze-10x10-TwoGoals-v3"
REWARDS: tuple[str, ...] = ("true", "learned")
ATARI_REWARDS: tuple[str, ...] = ("true", "learned_shown", "learned_hidden")
"""Table 1's rewards: the game's own, or the reward model trained with the score shown or hidden."""


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: ``notebooks/<name>.ipynb`` writing ``artifacts/<profile>/<name>/<key>/``."""

    name: str  #: notebook stem and artifact folder
    chapter: str  #: book chapter the stage belongs to
    title: str  #: one line for logs and the book
    key_fields: tuple[str, ...]  #: parameters that name one cell of the stage (its artifact folder)
    defaults: tuple[tuple[str, Any], ...]  #: non-size parameters and their defaults
    sizes: str | None  #: the profile entry holding its sizes (see ``profiles.SIZES``)
    always_run: bool = False  #: rerun on every ``rewinterp run`` (pages that report on the other stages)
    each_page: bool = False  #: the book shows every cell's executed notebook (else only the first cell's)

    def pages(self, profile: str) -> dict[str, dict[str, Any]]:
        """The book pages of this stage: ``notebooks/<page>`` -> the cell executed for it.

        ``atari_expert`` with ``each_page`` gives ``atari_expert_Breakout`` and ``atari_expert_Seaquest``.
        """
        cells = self.grid(profile)
        if not self.each_page:
            return {self.name: cells[0]}
        return {"_".join([self.name, *map(str, cell.values())]): cell for cell in cells}

    def params(self, **given: Any) -> dict[str, Any]:
        """This stage's non-size parameters: defaults updated by ``given``, validated."""
        out = dict(self.defaults)
        unknown = set(given) - set(out)
        if unknown:
            raise ValueError(f"{self.name} has no parameter {sorted(unknown)}; valid: {sorted(out)}")
        out.update({k: v for k, v in given.items() if v is not None})
        for name, value in out.items():
            if name.endswith("seed") and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{self.name}.{name} must be a non-negative integer, got {value!r}")
            if name.endswith("env_id"):
                check_maze_id(value)
            valid = ATARI_REWARDS if self.chapter == "table1" else REWARDS
            if name == "reward" and value not in valid:
                raise ValueError(f"unknown reward {value!r}; valid rewards: {', '.join(valid)}")
            if name == "game" and value not in ATARI_GAMES:
                raise ValueError(f"unknown game {value!r}; valid games: {', '.join(ATARI_GAMES)}")
            if name == "score" and value not in SCORES:
                raise ValueError(f"unknown score setting {value!r}; valid: {', '.join(SCORES)}")
        return out

    def key(self, params: dict[str, Any]) -> str:
        """The artifact folder name of one cell, e.g. ``EmptyMaze-10x10-CoinFlipGoal-v3_seed0``."""
        parts = [f"seed{params[f]}" if f == "seed" else str(params[f]) for f in self.key_fields]
        return "_".join(parts) or "all"

    def grid(self, profile: str, n_seeds: int | None = None) -> list[dict[str, Any]]:
        """The parameter cells the runner executes for ``profile`` (one papermill run each)."""
        if self.name == "maze_retrain":
            seeds = resolve("maze_retrain", profile, n_seeds=n_seeds).n_seeds
            return [
                {"env_id": env, "reward": reward, "seed": seed}
                for env in (COINFLIP, TWOGOALS)
                for reward in REWARDS
                for seed in range(seeds)
            ]
        if self.name == "maze_figure3" and n_seeds is not None:
            return [{"n_seeds": n_seeds}]
        if self.name == "atari_retrain":
            cfg = resolve("atari_retrain", profile, n_seeds=n_seeds)
            return [{"game": g, "score": sc, "reward": r, "seed": seed} for g in ATARI_GAMES[:cfg.n_games]
                    for sc in SCORES for r in ATARI_REWARDS[:cfg.n_rewards] for seed in range(cfg.n_seeds)]
        if self.name == "atari_table1" and n_seeds is not None:
            return [{"n_seeds": n_seeds}]
        if self.name == "atari_reward_model":
            return [{"game": g, "score": s} for g in ATARI_GAMES for s in SCORES]
        if "game" in dict(self.defaults):
            return [{"game": g} for g in ATARI_GAMES]
        return [{}]


_PIPE = (("seed", 0), ("env_id", COINFLIP))
_GAME = (("game", "Breakout"), ("seed", 0))
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("maze_expert", "gridworld", "Train the PPO expert", ("env_id", "seed"), _PIPE, "maze_expert"),
        Stage("maze_dataset", "gridworld", "Collect (s, s', r) transitions", ("env_id", "seed"), _PIPE,
              "maze_dataset"),
        Stage("maze_reward_model", "gridworld", "Fit the reward model R(s, s')", ("env_id", "seed"), _PIPE,
              "maze_reward_model"),
        Stage("maze_saliency", "gridworld", "Gradient saliency (Figure 1)", ("env_id", "seed"), _PIPE,
              "maze_saliency"),
        Stage("maze_counterfactuals", "gridworld", "Counterfactual inputs (Figure 2)", ("env_id", "seed"),
              _PIPE, "maze_counterfactuals"),
        Stage("maze_retrain", "gridworld", "Retrain PPO on true or learned reward", ("env_id", "reward", "seed"),
              (("env_id", COINFLIP), ("reward", "learned"), ("seed", 0), ("rm_env_id", COINFLIP), ("rm_seed", 0)),
              "maze_retrain"),
        Stage("maze_figure3", "gridworld", "Retraining curves (Figure 3)", (), (("rm_env_id", COINFLIP),
              ("rm_seed", 0)), "maze_retrain"),
        Stage("atari_expert", "atari", "Train the PPO Atari experts", ("game", "seed"), _GAME, "atari_expert",
              each_page=True),
        Stage("atari_dataset", "atari", "Collect balanced observations", ("game", "seed"), _GAME, "atari_dataset",
              each_page=True),
        Stage("atari_reward_model", "atari", "Fit R(s') with the score shown and hidden", ("game", "score", "seed"),
              (("game", "Breakout"), ("score", "shown"), ("seed", 0)), "atari_reward_model", each_page=True),
        Stage("atari_saliency", "atari", "Saliency and the score display (Figure 4)", ("game", "seed"), _GAME,
              "atari_saliency", each_page=True),
        Stage("atari_figure5", "atari", "Reward models across score settings (Figure 5)", ("game", "seed"), _GAME,
              "atari_figure5", each_page=True),
        Stage("atari_retrain", "table1", "Retrain PPO on the true or a learned reward",
              ("game", "score", "reward", "seed"), (("game", "Breakout"), ("score", "shown"), ("reward", "learned_shown"),
                                                     ("seed", 0), ("rm_seed", 0)), "atari_retrain"),
        Stage("atari_table1", "table1", "Table 1 and the learned reward on the agents' own play", (), (("rm_seed", 0),),
              "atari_retrain"),
        Stage("reproducing", "book", "Sizes and timings of this build", (), (), None, always_run=True),
    )
}


def get_stage(name: str) -> Stage:
    """The stage called ``name``, or ``ValueError`` naming the valid stages."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES)}")
    return STAGES[name]


def check_chapter(chapter: str) -> tuple[str, ...]:
    """The chapters meant by ``chapter`` (``all`` means every one), or ``ValueError``."""
    if chapter == "all":
        return CHAPTERS
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; valid chapters: {', '.join(CHAPTERS)}, all")
    return (chapter,)


def env_key(env_id: str) -> str:
    """Short name of a maze id for metric keys: ``EmptyMaze-10x10-TwoGoals-v3`` -> ``TwoGoals``."""
    parts = env_id.removesuffix("-v3").split("-")
    return "-".join(parts[2:]) if parts[0] == "EmptyMaze" else "-".join(parts)

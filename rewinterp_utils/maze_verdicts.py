"""The gridworld chapter's claims about its regression reward models, as one function of the per-seed values.

One function, so that :doc:`maze_seeds <../notebooks/maze_seeds>` can judge the same claims twice: on the models as
built, and with model seed 0 replaced by its refit after a one-ulp nudge of the initial weights (another machine,
emulated), which shows which verdicts another machine could flip.
"""

from __future__ import annotations

import pandas as pd

from rewinterp_utils.claims import Claim, errs_like_paper, fmt_spread, interval_verdict
from rewinterp_utils.paper import MAZE

TRUE_REWARD: dict[str, float] = {"counterfactual.no_goal": 0, "counterfactual.two_goals": 1,
                                 "counterfactual.many_goals": 1}
"""The paper's counterfactuals (Figure 2 (a)-(c)) and the true reward of each."""
FAMILY: dict[str, str] = {"counterfactual.no_goal": "(a) goal erased",
                          "counterfactual.two_goals": "(b) two goals, step onto one",
                          "counterfactual.many_goals": "(c) checkerboard of goals"}
"""How the claims table names each of them."""
QUANTITIES: tuple[str, ...] = ("rm.test_mse", *TRUE_REWARD, "counterfactual.goal_vanishes", "saliency.focus_share")
"""The columns of ``values`` the claims read (one row per reward-model seed)."""


def reward_model_claims(values: pd.DataFrame) -> list[Claim]:
    """The chapter's claims on ``values`` (one row per reward-model seed, columns :data:`QUANTITIES`): near-zero
    held-out error, the paper's counterfactuals erring on the paper's side, the goal-vanishing rule (ours), and
    diffuse gradient saliency. ``ValueError`` naming a missing column."""
    missing = [q for q in QUANTITIES if q not in values.columns]
    if missing:
        raise ValueError(f"values lack the columns {missing}; the claims read {list(QUANTITIES)}")
    mse, vanishes, focus = values["rm.test_mse"], values["counterfactual.goal_vanishes"], values["saliency.focus_share"]
    claims = [Claim(key="test_mse", claim="Near-zero held-out error", paper="near perfect",
                    measured=fmt_spread(mse, 2, sci=True), where="reward model",
                    verdict=interval_verdict(mse, lambda x: x < 0.01, "held-out MSE < 0.01"))]
    claims += [Claim(key=q.split(".")[1], claim=f"Counterfactual {FAMILY[q]} (true reward {true:g})",
                     paper=f"{MAZE[q]:g}", measured=fmt_spread(values[q]), where="Figure 2",
                     verdict=errs_like_paper(values[q], MAZE[q], true))
               for q, true in TRUE_REWARD.items()]
    claims.append(Claim(key="goal_vanishes", claim="The model pays when a goal disappears from view (ours)",
                        paper="the paper's reading", measured=fmt_spread(vanishes), where="Figure 2",
                        verdict=interval_verdict(vanishes, lambda x: x > 0.5,
                                                 "R(goal vanishes far from the agent) > 0.5")))
    claims.append(Claim(key="saliency_diffuse", claim="Gradient saliency is spread over the grid (Figure 1)",
                        paper="spread over the grid", measured=fmt_spread(focus) + " on agent and goal cells",
                        where="Figure 1",
                        verdict=interval_verdict(focus, lambda x: x < 0.5,
                                                 "under half of the gradient mass is on agent and goal cells")))
    return claims


def verdict_flips(values: pd.DataFrame, seed0: dict[str, float]) -> pd.DataFrame:
    """Each claim's outcome on ``values`` and with model seed 0's quantities replaced by ``seed0`` (e.g. its refit
    after a one-ulp nudge); index: claim key; columns ``as built``, ``seed 0 replaced``, ``flips``."""
    other = values.copy()
    for q, v in seed0.items():
        other.loc[values.index[0], q] = v
    before = {c.key: c.verdict.outcome for c in reward_model_claims(values)}
    after = {c.key: c.verdict.outcome for c in reward_model_claims(other)}
    out = pd.DataFrame({"as built": before, "seed 0 replaced": after})
    out["flips"] = out["as built"] != out["seed 0 replaced"]
    return out.rename_axis("claim")

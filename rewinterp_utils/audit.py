"""Audit one maze reward model ``R(s, s')``: the book's audits as functions, each ending in a verdict.

``notebooks/audit.ipynb`` (and ``rewinterp audit MODEL --env ENV``) runs them in order on any model: a file
:func:`~rewinterp_utils.reward_models.save_model` wrote, or an import path ``package.module:factory`` whose factory
returns a reward model or a plain function ``R(s, s_next)`` of grid batches (:func:`load_audited`). Every audit
compares the model with a *reference* reward (default: the maze's true reward,
:func:`~rewinterp_utils.envs.maze_transitions.maze_true_reward`) and returns a table and :class:`Claim` rows
whose verdicts (:mod:`~rewinterp_utils.claims`) follow the criterion each states:

* :func:`heldout_audit`: the mean squared error on held-out transitions, per class (rewarded, unrewarded), below
  :data:`HELDOUT_MSE` (Michaud et al. 2020, section 3: the error a reward model is usually judged by);
* :func:`counterfactual_audit`: the paper's counterfactual families and ours
  (:func:`~rewinterp_utils.counterfactuals.counterfactual_scores`), the model's mean within
  :data:`COUNTERFACTUAL_TOL` of the reference's on the same placements;
* :func:`unit_check_audit`: the unit checks of :func:`~rewinterp_utils.checks.maze_checks`;
* :func:`saliency_audit`: gradient saliency and the model-parameter randomisation test (Adebayo et al. 2018);
* :func:`distance_audit`: EPIC (Gleave et al. 2021) and the dynamics-aware distance to the reference
  (:mod:`~rewinterp_utils.epic`), below :data:`DISTANCE_MAX`.

Audits that compare reward *values* (held-out error, counterfactuals, unit checks) read the model in the
reference's units (:func:`in_reference_units`): a preference-learned model has no scale of its own. The distances
ignore scale and read the model as it is.
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from rewinterp_utils.checks import maze_check_inputs, maze_checks, run_checks
from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED, Claim, Verdict, exact_verdict
from rewinterp_utils.counterfactuals import counterfactual_scores, families
from rewinterp_utils.envs.maze import GOAL, check_maze_id
from rewinterp_utils.envs.maze_transitions import maze_transitions, maze_true_reward
from rewinterp_utils.keys import metric_key
from rewinterp_utils.reward_models import RewardModel, as_reward_model, load_model

HELDOUT_MSE = 0.05
"""Held-out error criterion: the mean squared error on each class of held-out transitions is below this."""
COUNTERFACTUAL_TOL = 0.5
"""Counterfactual criterion: the model's mean reward on a family lies within this of the reference's (half the
goal reward: the model would not rank the family on the reference's side)."""
DISTANCE_MAX = 0.1
"""Distance criterion: EPIC and the dynamics-aware distance to the reference are below this."""
FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
"""An import path ``package.module:factory``."""


# ------------------------------------------------------------------------------------------- the model
def _from_factory(spec: str) -> RewardModel:
    module, _, name = spec.partition(":")
    sys.path.insert(0, str(Path.cwd()))  # a module beside the caller imports as it would in a script
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model {spec!r}: the factory path does not import ({type(e).__name__}: {e}); expected "
                         "an importable package.module:factory") from None
    finally:
        sys.path.remove(str(Path.cwd()))
    try:
        made = factory()
    except Exception as e:  # noqa: BLE001 - any failure of the user's factory is bad input
        raise ValueError(f"model {spec!r}: calling the factory raised {type(e).__name__}: {e}; expected a "
                         "function of no arguments returning a reward model or R(s, s_next)") from None
    try:
        return as_reward_model(made, ("s", "s_next"))
    except ValueError as e:
        raise ValueError(f"model {spec!r}: the factory returned {type(made).__name__}: {e}") from None


def load_audited(spec: str, env_id: str) -> RewardModel:
    """The reward model ``spec`` names, checked to run on the maze ``env_id``'s grids.

    ``spec``: a file :func:`~rewinterp_utils.reward_models.save_model` wrote, or ``package.module:factory`` (the
    factory is called with no arguments; a plain function is wrapped by
    :func:`~rewinterp_utils.reward_models.as_reward_model`, reading ``(s, s_next)``). ``ValueError`` naming what
    is wrong and what was expected: an unknown maze id, a file that is missing or does not load, a factory path
    that does not import, a model that does not read ``(s, s')`` grids of the maze's shape or does not return one
    finite reward per transition.
    """
    check_maze_id(env_id)
    spec = str(spec)
    if FACTORY.match(spec) and not Path(spec).exists():
        model = _from_factory(spec)
    elif not Path(spec).is_file():
        raise ValueError(f"model {spec!r} is neither a file nor an import path; expected a reward-model file "
                         "saved with save_model, or package.module:factory")
    else:
        try:
            model = load_model(Path(spec), "cpu")
        except Exception as e:  # noqa: BLE001 - torch raises many kinds for a file that is not a model
            raise ValueError(f"model file {spec} does not load ({type(e).__name__}: {str(e).splitlines()[0][:160]}); expected "
                             "a reward-model file saved with save_model") from None
    return check_fits(model, env_id, spec)


def check_fits(model: RewardModel, env_id: str, name: str = "the model") -> RewardModel:
    """``model`` if it reads ``(s, s')`` and gives one finite reward per transition of ``env_id``'s grids, else
    ``ValueError`` naming the shapes expected and what went wrong."""
    t = maze_transitions(env_id)
    grid = tuple(t["s"].shape[1:])
    if tuple(model.inputs) != ("s", "s_next"):
        raise ValueError(f"{name} reads {', '.join(model.inputs)}; a maze reward model reads (s, s_next), two "
                         f"grids of shape {grid} (an Atari model reads s' only)")
    try:
        r = np.asarray(model.predict(t["s"][:8], t["s_next"][:8]), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - a plain function may raise anything on the wrong input
        raise ValueError(f"{name} does not fit {env_id}: expected it to take s and s_next of shape "
                         f"(n, {grid[0]}, {grid[1]}); it raised {type(e).__name__}: {str(e)[:300]}") from None
    if r.shape != (8,) or not np.isfinite(r).all():
        raise ValueError(f"{name} must return one finite reward per transition, shape (8,), got {r.shape}: {r}")
    return model


def load_reference(spec: str | None, env_id: str) -> RewardModel:
    """The reference reward: ``spec`` as :func:`load_audited` reads it, or the maze's true reward for ``None``."""
    if spec is None:
        return as_reward_model(maze_true_reward, ("s", "s_next"))
    return load_audited(spec, env_id)


def check_dataset(data: Mapping[str, np.ndarray], env_id: str, name: str = "dataset") -> dict[str, np.ndarray]:
    """Held-out transitions ``{"s", "s_next", "reward"}`` of ``env_id``'s grid shape, with both classes, else
    ``ValueError`` naming what is missing."""
    grid = tuple(maze_transitions(env_id)["s"].shape[1:])
    missing = [k for k in ("s", "s_next", "reward") if k not in data]
    if missing:
        raise ValueError(f"{name} lacks {', '.join(missing)}; expected transitions with s, s_next (n, {grid[0]}, "
                         f"{grid[1]}) and reward (n,)")
    s, s_next, r = (np.asarray(data[k]) for k in ("s", "s_next", "reward"))
    if s.shape != s_next.shape or s.shape[1:] != grid or r.shape != (len(s),):
        raise ValueError(f"{name}: expected s, s_next of shape (n, {grid[0]}, {grid[1]}) and reward (n,), got "
                         f"{s.shape}, {s_next.shape}, {r.shape}")
    if not (r > 0).any() or (r > 0).all():
        raise ValueError(f"{name} must hold rewarded and unrewarded transitions (reward > 0 and == 0)")
    return {"s": s, "s_next": s_next, "reward": r.astype(np.float64)}


def load_dataset(path: str | Path, env_id: str) -> dict[str, np.ndarray]:
    """Held-out transitions from a file :func:`~rewinterp_utils.data.save_transitions` wrote, checked by
    :func:`check_dataset`; ``ValueError`` naming the file when it is missing or does not load."""
    from rewinterp_utils.data import load_transitions

    try:
        data = load_transitions(Path(path))
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"dataset {path} does not load ({type(e).__name__}: {str(e)[:200]}); expected an .npz "
                         "of transitions written by save_transitions") from None
    return check_dataset(data, env_id, f"dataset {path}")


def check_inputs(model: str, env_id: str, dataset: str | None = None,
                 reference: str | None = None) -> tuple[RewardModel, RewardModel, dict[str, np.ndarray] | None]:
    """Everything an audit reads, loaded and checked before anything runs: the model (:func:`load_audited`), the
    reference (:func:`load_reference`) and, when given, the dataset (:func:`load_dataset`). ``ValueError``
    naming what is wrong and what was expected."""
    check_maze_id(env_id)
    audited = load_audited(model, env_id)
    ref = load_reference(reference, env_id)
    return audited, ref, None if dataset is None else load_dataset(dataset, env_id)


def in_reference_units(model: RewardModel, reference: RewardModel, transitions: dict) -> RewardModel:
    """``model`` shifted and scaled so that its mean on the maze's transitions the reference does not reward is 0
    and on those it rewards 1 (:func:`~rewinterp_utils.preferences.true_reward_fit` with the reference's values);
    the model as it is when no such fit exists (a model constant on both classes)."""
    from rewinterp_utils.preferences import true_reward_fit

    grids = (transitions["s"], transitions["s_next"])
    try:
        return true_reward_fit(model, *grids, reference.predict(*grids).astype(np.float64))[2]
    except ValueError as e:
        print(f"read as it is, not in the reference's units: {e}")
        return model


# --------------------------------------------------------------------------------------------- audits
def _claim(key: str, claim: str, measured: str, verdict: Verdict, where: str) -> Claim:
    return Claim(key=key, claim=claim, paper="–", measured=measured, verdict=verdict, where=where)


def heldout_audit(model: RewardModel, data: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, list[Claim]]:
    """Per class of held-out transitions (rewarded: reward > 0): count, the model's mean reward and its mean
    squared error; one claim, *holds* when both errors are below :data:`HELDOUT_MSE`."""
    pred = model.predict(data["s"], data["s_next"]).astype(np.float64)
    rows = {}
    for name, sel in (("rewarded", data["reward"] > 0), ("unrewarded", data["reward"] <= 0)):
        err = (pred[sel] - data["reward"][sel]) ** 2
        rows[name] = {"transitions": int(sel.sum()), "mean R": float(pred[sel].mean()), "MSE": float(err.mean())}
    table = pd.DataFrame(rows).T
    measured = ", ".join(f"{k} {v:.3g}" for k, v in table["MSE"].items())
    verdict = exact_verdict(bool((table["MSE"] < HELDOUT_MSE).all()),
                            f"held-out MSE below {HELDOUT_MSE:g} on rewarded and on unrewarded transitions")
    return table, [_claim("heldout", "Small held-out error on both classes", f"MSE {measured}", verdict,
                          "held-out error")]


def counterfactual_audit(model: RewardModel, reference: RewardModel, max_placements: int,
                         seed: int = 0) -> tuple[pd.DataFrame, list[Claim]]:
    """Every counterfactual family on the same placements for the model and the reference: their mean rewards,
    the gap ``|model - reference|`` and one claim per family, *holds* when the gap is at most
    :data:`COUNTERFACTUAL_TOL`. Rows sorted from the worst gap."""
    ours = counterfactual_scores(model, max_placements, seed)
    ref = counterfactual_scores(reference, max_placements, seed)
    about = {name: fam.description for name, fam in families().items()}
    table = pd.DataFrame({"reference": ref["R mean"], "model": ours["R mean"], "placements": ours["placements"]})
    table["gap"] = (table["model"] - table["reference"]).abs()
    table["what"] = [about[k] for k in table.index]
    table = table.sort_values("gap", ascending=False, kind="stable")
    claims = [_claim(metric_key("counterfactual", name), f"Counterfactual {name}: {about[name]}",
                     f"R {r.model:.3g}, reference {r.reference:.3g}",
                     exact_verdict(bool(r.gap <= COUNTERFACTUAL_TOL),
                                   f"|mean R - reference| <= {COUNTERFACTUAL_TOL:g} on the family"),
                     "counterfactuals") for name, r in table.iterrows()]
    return table, claims


def unit_check_audit(model: RewardModel, n_inputs: int, seed: int = 0) -> tuple[pd.DataFrame, list[Claim]]:
    """:func:`~rewinterp_utils.checks.maze_checks` on ``n_inputs`` hand-built transitions; one claim per check,
    *holds* when the check passes at its tolerance."""
    table = run_checks(maze_checks(), model, maze_check_inputs(n_inputs, np.random.default_rng(seed)))
    claims = [_claim(metric_key("check", r.name), f"Unit check: {r.name}",
                     f"effect {r.effect:+.3g} over {r.n} inputs",
                     exact_verdict(bool(r.passed), f"{r.kind} within tolerance {r.tolerance:g}: {r.description}"),
                     "unit checks") for r in table.itertuples()]
    return table, claims


def saliency_audit(model: RewardModel, inputs: tuple[np.ndarray, np.ndarray], threshold: float,
                   seed: int = 0) -> tuple[pd.DataFrame | None, list[Claim]]:
    """The model-parameter randomisation test of gradient saliency (Adebayo et al. 2018): *holds* when the rank
    correlation between the trained and the fully randomised model's maps is below ``threshold``; *undecided*
    for a model without trainable layers (a plain function), which the test cannot randomise. Returns the
    randomisation curve (``None`` then) and the claim."""
    from rewinterp_utils.attribution import attribution_method
    from rewinterp_utils.sanity import parametric_layers, randomisation_curves

    says = f"rank corr. of |dR/dx| maps after full randomisation < {threshold:g}"
    if not parametric_layers(model):
        verdict = Verdict(UNDECIDED, f"holds: {says}; undecided: the model has no trainable layers to randomise",
                          "not applicable")
        return None, [_claim("sanity.gradient", "Gradient saliency depends on the model", "no trainable layers",
                             verdict, "saliency")]
    curves, metrics = randomisation_curves({"model": model}, {"gradient": attribution_method("maze", "gradient")},
                                           inputs, threshold, seed)
    final = metrics["model.gradient.rank_corr_final"]
    return curves, [_claim("sanity.gradient", "Gradient saliency depends on the model",
                           f"rank corr. after randomisation {final:.2f}", exact_verdict(final < threshold, says),
                           "saliency")]


def distance_audit(model: RewardModel, reference: RewardModel, transitions: dict,
                   gamma: float) -> tuple[pd.DataFrame, list[Claim]]:
    """EPIC and the dynamics-aware distance to the reference, uniform coverage of the maze's transitions; one
    claim each, *holds* when below :data:`DISTANCE_MAX` (*undecided* where the distance is undefined: a reward
    constant on the transitions)."""
    from rewinterp_utils.pref_audit import DISTANCES, distance_or_nan

    values = {name: distance_or_nan(name, model, reference, transitions, "uniform", gamma) for name in DISTANCES}
    claims = []
    for name, d in values.items():
        says = f"{name} distance to the reference below {DISTANCE_MAX:g}"
        verdict = (exact_verdict(d < DISTANCE_MAX, says) if np.isfinite(d)
                   else Verdict(UNDECIDED, f"holds: {says}; undecided: the distance is undefined", "undefined"))
        claims.append(_claim(metric_key("distance", name), f"Close to the reference ({name})", f"{d:.3g}",
                             verdict, "distances"))
    return pd.DataFrame({"distance to the reference": values}), claims


@dataclass(frozen=True)
class AuditResult:
    """Every audit of one model (:func:`audit_model`): per audit its claims (``groups``, in the summary's order),
    the evidence tables and the metrics (:func:`audit_metrics` and each claim's verdict as ``claims.<key>``)."""

    groups: dict[str, list[Claim]]
    heldout: pd.DataFrame
    counterfactuals: pd.DataFrame
    checks: pd.DataFrame
    curves: pd.DataFrame | None
    distances: pd.DataFrame
    saliency_inputs: np.ndarray
    """Indices of the held-out transitions the saliency test read (balanced over rewarded and not)."""
    metrics: dict[str, Any]


def audit_model(model: RewardModel, reference: RewardModel, test: Mapping[str, np.ndarray], env_id: str, *,
                max_placements: int, n_check_inputs: int, n_saliency_inputs: int, threshold: float, gamma: float,
                seed: int = 0) -> AuditResult:
    """Every audit of this module on ``model`` against ``reference`` on maze ``env_id``: the value audits on the
    model in the reference's units (:func:`in_reference_units`), saliency and distances on the model as it is.
    ``test``: held-out transitions (``s``, ``s_next``, ``reward``). The sizes and the saliency threshold are the
    book's (its profiles), passed in."""
    from rewinterp_utils.sanity import balanced_indices

    transitions = maze_transitions(env_id)
    read = in_reference_units(model, reference, transitions)
    heldout, c_heldout = heldout_audit(read, test)
    cf, c_cf = counterfactual_audit(read, reference, max_placements, seed)
    checks, c_checks = unit_check_audit(read, n_check_inputs, seed)
    pick = balanced_indices(test["reward"] > 0, n_saliency_inputs, seed)
    curves, c_sal = saliency_audit(model, (test["s"][pick], test["s_next"][pick]), threshold, seed)
    distances, c_dist = distance_audit(model, reference, transitions, gamma)
    groups = {"held-out error": c_heldout, "counterfactuals": c_cf, "unit checks": c_checks,
              "saliency sanity": c_sal, "distances": c_dist}
    metrics = audit_metrics(groups, heldout, cf, checks, curves, distances)
    metrics |= {f"claims.{c.key}": c.verdict.outcome for claims in groups.values() for c in claims}
    return AuditResult(groups, heldout, cf, checks, curves, distances, pick, metrics)


# ---------------------------------------------------------------------------------- hand-written models
def true_reward_model() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The maze's true reward as an audited model (``rewinterp_utils.audit:true_reward_model``): every
    counterfactual and unit check holds."""
    return maze_true_reward


def paper_rule_model() -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The rule Michaud et al. (2020, Figure 2) found their maze model had learned, written by hand
    (``rewinterp_utils.audit:paper_rule_model``): pay 1 when no goal is visible in s'. It equals the true reward
    on every transition of the CoinFlip maze (the agent hides the goal it steps onto), and not when a goal is
    erased or a second one added."""

    def no_goal_visible(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        return (~(np.asarray(s_next) == GOAL).any(axis=(1, 2))).astype(np.float64)

    return no_goal_visible


# -------------------------------------------------------------------------------------------- summaries
def all_of(verdicts: Sequence[Verdict]) -> str:
    """One outcome for a group of verdicts: *holds* when every one holds, *does not hold* when one does not,
    else *undecided*."""
    outcomes = [v.outcome for v in verdicts]
    return HOLDS if all(o == HOLDS for o in outcomes) else FAILS if FAILS in outcomes else UNDECIDED


def overview(groups: Mapping[str, Sequence[Claim]]) -> pd.DataFrame:
    """The one-screen summary: per audit, its outcome (:func:`all_of`), how many of its claims hold, and what
    each claim that does not hold measured."""
    rows = {}
    for audit, claims in groups.items():
        bad = [f"{c.key}: {c.measured}" for c in claims if c.verdict.outcome != HOLDS]
        rows[audit] = {"verdict": all_of([c.verdict for c in claims]),
                       "holding": f"{sum(c.verdict.outcome == HOLDS for c in claims)} of {len(claims)}",
                       "not holding": "; ".join(bad) or "–"}
    return pd.DataFrame(rows).T


def audit_metrics(groups: Mapping[str, Sequence[Claim]], heldout: pd.DataFrame, counterfactuals: pd.DataFrame,
                  checks: pd.DataFrame, curves: pd.DataFrame | None, distances: pd.DataFrame) -> dict[str, Any]:
    """The audit's metrics (local keys; :data:`COMPARISON` names the ones the comparison table shows): the overall
    verdict, per-class held-out errors, every family's mean, the worst family and its gap, the checks passed,
    every check's effect, the saliency test's final rank correlation (when it ran) and both distances."""
    worst = counterfactuals["gap"].idxmax()
    m: dict[str, Any] = {"verdict": all_of([c.verdict for claims in groups.values() for c in claims]),
                         "counterfactual.worst": worst,
                         "counterfactual.worst_gap": float(counterfactuals.loc[worst, "gap"]),
                         "checks.passed": f"{int(checks['passed'].sum())} of {len(checks)}"}
    m |= {f"heldout.mse_{k}": float(v) for k, v in heldout["MSE"].items()}
    m |= {metric_key("counterfactual", k): float(v) for k, v in counterfactuals["model"].items()}
    m |= {metric_key("checks", r.name, "effect"): float(r.effect) for r in checks.itertuples()}
    if curves is not None:
        m["sanity.gradient.rank_corr_final"] = float(curves["rank_corr"].iloc[-1])
    m |= {metric_key("distance", k): float(v) for k, v in distances.iloc[:, 0].items()}
    return m


COMPARISON: dict[str, str] = {
    "verdict": "overall verdict", "heldout.mse_rewarded": "MSE rewarded", "heldout.mse_unrewarded": "MSE unrewarded",
    "counterfactual.worst": "worst counterfactual", "counterfactual.worst_gap": "its gap",
    "checks.passed": "unit checks passed", "sanity.gradient.rank_corr_final": "saliency rank corr.",
    "distance.epic": "EPIC", "distance.dynamics_aware": "dynamics-aware",
}
"""The metrics of an audit (local keys) the comparison table shows, and their column names."""


def comparison_table(audits: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per audited model (``name -> the audit's metrics``): :data:`COMPARISON`'s numbers and every
    ``claims.*`` verdict (columns named by the claim key)."""
    if not audits:
        raise ValueError("comparison_table needs at least one audit's metrics")
    rows = {}
    for name, m in audits.items():
        row = {col: m.get(key, np.nan) for key, col in COMPARISON.items()}
        row |= {k.removeprefix("claims."): v for k, v in m.items() if k.startswith("claims.")}
        rows[name] = row
    return pd.DataFrame(rows).T.rename_axis("model")


__all__ = [
    "AuditResult", "audit_model", "COMPARISON", "COUNTERFACTUAL_TOL", "DISTANCE_MAX", "HELDOUT_MSE", "all_of",
    "audit_metrics", "check_dataset",
    "check_fits", "check_inputs", "load_dataset",
    "comparison_table", "counterfactual_audit", "distance_audit", "heldout_audit", "in_reference_units",
    "load_audited", "load_reference", "overview", "paper_rule_model", "saliency_audit", "true_reward_model",
    "unit_check_audit",
]

"""Audit any reward model on any Gymnasium environment: one call, the book's method on the user's own model and env.

    from rewinterp_utils.env_audit import audit
    result = audit(my_reward, "Pendulum-v1", reference=pendulum_reward)
    result.verdicts                     # one row per audit: claim, measured, verdict, criterion
    result.to_html("audit.html")       # a self-contained report

``model`` and ``reference`` are any reward :func:`~rewinterp_utils.adapters.transition_reward` takes (a function
of ``(s, a, s_next, done)`` batches, a torch module, an ``imitation``-style reward net, a
:class:`~rewinterp_utils.reward_models.RewardModel`). ``env``: a Gymnasium id or an env instance with ``Box`` or
``Discrete`` spaces. Transitions are the user's (``s``, ``a``, ``s_next`` and optionally ``done`` and ``reward``,
the env's own reward) or collected from ``policy`` (else uniformly random actions), with the env's own reward
recorded. Each audit states its criterion and decides it without fitting the model to the reference (no sign or
scale is borrowed from the truth):

* **ranking** (:func:`ranking_audit`): on the transitions, the model orders them as the env's own recorded reward
  does. Sparse rewards (two values): the probability that a transition of the higher class scores above one of
  the lower (:func:`~rewinterp_utils.audit.rank_auc`) is at least :data:`RANK_MIN`; dense rewards: the Spearman
  correlation is at least :data:`RANK_MIN`. Blind to any increasing map of the model; a negated model fails. A
  constant recorded reward has nothing to rank: undecided. Beside it, the mean squared error per class in the
  recorded reward's units (a diagnostic: a learned model's units are its own);
* **sampled EPIC** (:func:`~rewinterp_utils.sampled_epic.sampled_epic`) to the reference, *holds* when the
  interval's upper end is below :data:`~rewinterp_utils.audit.DISTANCE_MAX`, *fails* when its lower end is not;
  undecided for a reward equivalent to a constant (no EPIC);
* **inputs read** (:func:`reliance_table`): each input group (``s``, ``a``, ``s_next``, ``done``) shuffled across
  the transitions, the mean absolute change of the reward in units of its standard deviation; *holds* when the
  model reads no group the reference ignores by more than :data:`READS_MAX`. Beside it, gradient x input per
  group for a differentiable model (:func:`gradient_x_input`);
* **unit checks** written by the user (:class:`~rewinterp_utils.checks.Check` on ``(s, a, s_next, done)``),
  run as the book's are;
* **retraining** (``retrain=True``): PPO trained on the model's reward alone, scored on the env's own reward;
  *holds* when its episodes return more than those of the untrained policy (:func:`~rewinterp_utils.claims.below`
  on per-episode returns).

The maze's and Atari's own audits (counterfactual families, score edits) stay in :mod:`~rewinterp_utils.audit`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from rewinterp_utils.adapters import transition_reward
from rewinterp_utils.checks import Check, run_checks
from rewinterp_utils.claims import FAILS, HOLDS, UNDECIDED, Claim, Verdict, below, exact_verdict
from rewinterp_utils.html_report import figure_html, page, table_html
from rewinterp_utils.keys import metric_key
from rewinterp_utils.sampled_epic import ConstantReward, SampledEpic, sampled_epic

GROUPS: tuple[str, ...] = ("s", "a", "s_next", "done")
"""The input groups of a transition, in the order a reward reads them."""
RANK_MIN = 0.9
"""Ranking criterion: the model's rank agreement with the recorded reward (AUC for two values, Spearman otherwise)."""
READS_MAX = 0.05
"""Inputs-read criterion: shuffling a group the reference ignores moves the model's reward by at most this many of
its standard deviations on average."""
DISTANCE_MAX = 0.1
"""EPIC criterion (the book's audit uses the same, :data:`rewinterp_utils.audit.DISTANCE_MAX`)."""


@dataclass(frozen=True)
class EnvAuditSizes:
    """How much an :func:`audit` measures (the profiles' values are in :mod:`~rewinterp_utils.pipeline.profiles`)."""

    n_transitions: int = 2000  #: transitions collected when none are given
    epic_samples: int = 256  #: draws (A, S') per mean of sampled EPIC
    epic_resamples: int = 20  #: resamples for EPIC's interval
    retrain_steps: int = 20_000  #: PPO steps on the model's reward (``retrain=True``)
    eval_episodes: int = 20  #: episodes scored on the env's own reward, before and after retraining
    gamma: float = 0.99  #: discount of EPIC's canonicalisation

    @classmethod
    def of(cls, config: Any) -> EnvAuditSizes:
        """The sizes ``config`` holds under the same names (e.g. the ``audit_gym`` stage's)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


@dataclass
class EnvAuditResult:
    """What :func:`audit` measured: the verdicts (one row per claim, verdict first), the claims, the evidence tables,
    the metrics (flat keys) and the figures. :meth:`to_html` writes it as one self-contained page."""

    env_id: str
    name: str
    claims: list[Claim]
    metrics: dict[str, Any]
    ranking: pd.DataFrame
    reliance: pd.DataFrame
    epic: SampledEpic | None = None
    checks: pd.DataFrame | None = None
    retraining: pd.DataFrame | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def verdicts(self) -> pd.DataFrame:
        """One row per claim: the claim, what was measured, the verdict and its criterion."""
        return pd.DataFrame([{"claim": c.claim, "measured": c.measured, "verdict": c.verdict.outcome,
                              "criterion": c.verdict.criterion} for c in self.claims])

    def to_html(self, path: str | Path) -> Path:
        """Write the report (verdicts first, then each table and figure) as one HTML file that loads nothing."""
        return write_report(self, Path(path))


# ------------------------------------------------------------------------------------------------- the inputs
def make_env(env: Any) -> tuple[Any, str]:
    """``env`` (an id or an instance) as ``(env, id)``, its spaces checked: ``ValueError`` in one line for an id
    that does not make or spaces other than ``Box`` and ``Discrete``."""
    import gymnasium as gym

    if isinstance(env, str):
        try:
            made = gym.make(env)
        except Exception as e:  # noqa: BLE001 - gymnasium raises several kinds for an id it cannot make
            raise ValueError(f"environment {env!r} does not make: {type(e).__name__}: {str(e).splitlines()[0]}") \
                from None
        env_id = env
    elif isinstance(env, gym.Env):
        made, env_id = env, getattr(env.spec, "id", None) or type(env.unwrapped).__name__
    else:
        raise ValueError(f"env must be a Gymnasium id or gymnasium.Env, got {type(env).__name__}")
    for what, space in (("observation", made.observation_space), ("action", made.action_space)):
        if not isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise ValueError(f"{env_id}: the {what} space is {type(space).__name__}; the audit reads Box and "
                             "Discrete spaces")
    return made, env_id


def _act(policy: Any, obs: np.ndarray, env: Any) -> Any:
    if policy is None:
        return env.action_space.sample()
    if callable(getattr(policy, "predict", None)):  # a Stable-Baselines3 model
        return policy.predict(obs, deterministic=False)[0]
    return policy(obs)


def collect_transitions(env: Any, n: int, policy: Any = None, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` transitions of ``env`` (an id or an instance) played by ``policy`` (an SB3 model, a function of the
    observation, or ``None`` for uniformly random actions), episodes reset with seeds ``seed, seed + 1, ...``:
    ``s``, ``a``, ``s_next``, ``done`` (the episode *terminated*: a time limit is not an end of the task) and
    ``reward``, the env's own."""
    made, _ = make_env(env)
    made.action_space.seed(seed)
    rows: dict[str, list] = {k: [] for k in ("s", "a", "s_next", "done", "reward")}
    episode = 0
    obs, _ = made.reset(seed=seed)
    while len(rows["s"]) < n:
        action = _act(policy, obs, made)
        nxt, reward, terminated, truncated, _ = made.step(action)
        for k, v in (("s", obs), ("a", action), ("s_next", nxt), ("done", terminated), ("reward", reward)):
            rows[k].append(v)
        obs = nxt
        if terminated or truncated:
            episode += 1
            obs, _ = made.reset(seed=seed + episode)
    return {"s": np.asarray(rows["s"], dtype=np.float32), "a": np.asarray(rows["a"]),
            "s_next": np.asarray(rows["s_next"], dtype=np.float32), "done": np.asarray(rows["done"], dtype=bool),
            "reward": np.asarray(rows["reward"], dtype=np.float64)}


def check_transitions(data: Mapping[str, np.ndarray], env: Any, name: str = "transitions") -> dict[str, np.ndarray]:
    """The user's transitions checked against ``env``'s spaces: ``s``, ``a``, ``s_next`` present, every array of
    one length, states shaped like the observation space, finite rewards. ``done`` defaults to all False.
    ``ValueError`` in one line otherwise."""
    missing = [k for k in ("s", "a", "s_next") if k not in data]
    if missing:
        raise ValueError(f"{name} need 's', 'a' and 's_next' arrays (missing {', '.join(map(repr, missing))})")
    out = {k: np.asarray(v) for k, v in data.items() if k in (*GROUPS, "reward")}
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{name}: the arrays differ in length ({', '.join(f'{k} {n}' for k, n in lengths.items())})")
    shape = tuple(env.observation_space.shape)
    for k in ("s", "s_next"):
        if out[k].shape[1:] != shape:
            raise ValueError(f"{name}: {k!r} holds states of shape {out[k].shape[1:]}, the env's are {shape}")
    if "reward" in out and not np.isfinite(out["reward"].astype(np.float64)).all():
        raise ValueError(f"{name}: 'reward' holds NaN or infinite values")
    out.setdefault("done", np.zeros(len(out["s"]), dtype=bool))
    return out


def _reward_fn(reward: Any, data: Mapping[str, np.ndarray], name: str) -> Callable[..., np.ndarray]:
    """``reward`` as one call on batches, tried on the first transitions before anything runs."""
    fn = transition_reward(reward, name)
    k = min(8, len(data["s"]))
    fn(*(data[g][:k] for g in GROUPS))  # ValueError now: wrong shape, dtype, an input the env does not give
    return fn


def _call(fn: Callable[..., np.ndarray], data: Mapping[str, np.ndarray]) -> np.ndarray:
    return fn(*(data[g] for g in GROUPS))


# ------------------------------------------------------------------------------------------------- the audits
def _claim(key: str, claim: str, measured: str, verdict: Verdict, where: str) -> Claim:
    return Claim(key=key, claim=claim, paper="–", measured=measured, verdict=verdict, where=where)


def _undecided(says: str, why: str) -> Verdict:
    return Verdict(UNDECIDED, f"holds: {says}; undecided: {why}", why)


def ranking_audit(pred: np.ndarray, reward: np.ndarray) -> tuple[pd.DataFrame, Claim]:
    """Does the model order the transitions as the recorded reward does? See the module docstring."""
    from scipy.stats import spearmanr

    from rewinterp_utils.audit import rank_auc

    values = np.unique(reward)
    rows = {}
    for v in values if len(values) <= 2 else ():
        cls = reward == v
        rows[f"reward {v:g}"] = {"transitions": int(cls.sum()), "model mean": float(pred[cls].mean()),
                                 "MSE (recorded units)": float(((pred[cls] - v) ** 2).mean())}
    rows["all"] = {"transitions": len(reward), "model mean": float(pred.mean()),
                   "MSE (recorded units)": float(((pred - reward) ** 2).mean())}
    table = pd.DataFrame(rows).T
    if len(values) < 2:
        says = f"the model ranks transitions as the recorded reward does (>= {RANK_MIN:g})"
        return table, _claim("ranking", "Orders transitions as the env's reward does", "constant recorded reward",
                             _undecided(says, "the recorded reward is constant here: nothing to rank"), "ranking")
    if len(values) == 2:
        stat, what = rank_auc(pred, reward == values[1]), "P(a higher-reward transition scores above a lower one)"
    elif np.ptp(pred) == 0:
        stat, what = 0.0, "Spearman correlation with the recorded reward (a constant model: 0)"
    else:
        stat, what = float(spearmanr(pred, reward).statistic), "Spearman correlation with the recorded reward"
    table.attrs["statistic"] = stat
    verdict = exact_verdict(bool(stat >= RANK_MIN), f"{what} >= {RANK_MIN:g}")
    return table, _claim("ranking", "Orders transitions as the env's reward does", f"{stat:.3g}", verdict, "ranking")


def reliance_table(fns: Mapping[str, Callable[..., np.ndarray]], data: Mapping[str, np.ndarray],
                   seed: int = 0) -> pd.DataFrame:
    """How much each reward reads each input group: the group's rows shuffled across the transitions (the same
    permutation for every reward), the mean absolute change of the reward divided by its standard deviation on
    the transitions (0 for a group it does not read; NaN for a constant reward)."""
    perm = np.random.default_rng(seed).permutation(len(data["s"]))
    out = {}
    for name, fn in fns.items():
        base = _call(fn, data)
        sd = float(base.std())
        row = {}
        for g in GROUPS:
            shuffled = {**data, g: np.asarray(data[g])[perm]}
            change = float(np.abs(_call(fn, shuffled) - base).mean())
            row[g] = change / sd if sd > 0 else float("nan")
        out[name] = row
    return pd.DataFrame(out)


def reliance_audit(table: pd.DataFrame) -> Claim:
    """*holds* when the model reads no input group the reference ignores (reference 0 after shuffling) by more than
    :data:`READS_MAX`; *fails* naming the groups."""
    says = f"the model reads no input group the reference ignores (shuffle effect <= {READS_MAX:g} sd)"
    if "reference" not in table:
        return _claim("inputs", "Reads only what the reference reads", "no reference",
                      _undecided(says, "no reference reward given"), "inputs read")
    ignored = [g for g in GROUPS if table.loc[g, "reference"] == 0]
    extra = [g for g in ignored if not table.loc[g, "model"] <= READS_MAX]
    measured = (", ".join(f"{g} {table.loc[g, 'model']:.3g}" for g in extra) if extra
                else f"groups the reference ignores: {', '.join(ignored) or 'none'}")
    return _claim("inputs", "Reads only what the reference reads", measured, exact_verdict(not extra, says),
                  "inputs read")


def gradient_x_input(model: Any, data: Mapping[str, np.ndarray], n: int = 256) -> pd.Series | None:
    """Mean |gradient x input| per input group on the first ``n`` transitions, for a torch module whose ``forward``
    takes ``(s, a, s_next, done)`` tensors (or the first 2 or 3 of them); ``None`` for other rewards."""
    import torch
    from torch import nn

    from rewinterp_utils.adapters import _args, _arity, _is_imitation_net
    from rewinterp_utils.reward_models import RewardModel

    if not isinstance(model, nn.Module) or isinstance(model, RewardModel) or _is_imitation_net(model):
        return None
    k = _arity(model.forward)
    device = next(iter(model.parameters()), torch.empty(0)).device
    names = _args(k, *GROUPS)
    xs = [torch.as_tensor(np.asarray(data[g][:n], dtype=np.float32), device=device).requires_grad_(True)
          for g in names]
    out = model(*xs).sum()
    grads = torch.autograd.grad(out, xs, allow_unused=True)
    return pd.Series({g: (0.0 if gr is None else float((gr * x).abs().mean().detach()))
                      for g, gr, x in zip(names, grads, xs)}, name="|gradient x input|")


def epic_audit(model: Any, reference: Any, data: Mapping[str, np.ndarray], env: Any,
               sizes: EnvAuditSizes, seed: int) -> tuple[SampledEpic | None, Claim]:
    """Sampled EPIC between the model and the reference over the transitions (the action space as ``D_A``)."""
    says = f"sampled EPIC distance to the reference below {DISTANCE_MAX:g} (the whole interval)"
    if reference is None:
        return None, _claim("epic", "Close to the reference (sampled EPIC)", "no reference",
                            _undecided(says, "no reference reward given"), "EPIC")
    try:
        d = sampled_epic(model, reference, data, gamma=sizes.gamma, n_samples=sizes.epic_samples,
                         n_resamples=sizes.epic_resamples, action_space=env.action_space, seed=seed)
    except ConstantReward as e:
        why = "the model" if e.which == "reward_a" else "the reference"
        return None, _claim("epic", "Close to the reference (sampled EPIC)", "undefined",
                            _undecided(says, f"{why} is equivalent to a constant here, so EPIC is undefined"), "EPIC")
    measured = f"{d.distance:.3g} [{d.low:.3g}, {d.high:.3g}]"
    outcome = HOLDS if d.high < DISTANCE_MAX else FAILS if d.low >= DISTANCE_MAX else UNDECIDED
    verdict = Verdict(outcome, f"holds: {says}; does not hold: its lower end at or above it; undecided: between",
                      f"{d.level:.0%} interval over {len(d.resampled)} resamples")
    return d, _claim("epic", "Close to the reference (sampled EPIC)", measured, verdict, "EPIC")


def checks_audit(checks: Sequence[Check], fn: Callable[..., np.ndarray],
                 data: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, list[Claim]]:
    """The user's checks on ``(s, a, s_next, done)``, one claim each (*holds* when the check passes)."""
    table = run_checks(checks, fn, tuple(data[g] for g in GROUPS))
    claims = [_claim(metric_key("check", r.name), f"Unit check: {r.name}", f"effect {r.effect:+.3g} over {r.n} inputs",
                     exact_verdict(bool(r.passed), f"{r.kind} within tolerance {r.tolerance:g}"), "unit checks")
              for r in table.itertuples()]
    return table, claims


def episode_returns(env: Any, policy: Any, n: int, seed: int) -> np.ndarray:
    """The env's own undiscounted return of ``n`` episodes of ``policy`` (reset seeds ``seed, seed + 1, ...``)."""
    made, _ = make_env(env)
    out = []
    for i in range(n):
        obs, _ = made.reset(seed=seed + i)
        total, over = 0.0, False
        while not over:
            obs, r, terminated, truncated, _ = made.step(_act(policy, obs, made))
            total, over = total + float(r), terminated or truncated
        out.append(total)
    return np.asarray(out)


def retrain_audit(fn: Callable[..., np.ndarray], env: Any, sizes: EnvAuditSizes,
                  seed: int) -> tuple[pd.DataFrame, Claim]:
    """PPO (Stable-Baselines3's MLP defaults, where :func:`~rewinterp_utils.device.policy_device` puts an MLP)
    trained ``sizes.retrain_steps`` steps on the model's reward
    alone, its episodes scored on the env's own reward against the untrained policy's (fresh games, the same
    reset seeds)."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from rewinterp_utils.device import policy_device

    class ModelReward(gym.Wrapper):
        def step(self, action):
            s = self._obs
            nxt, _, terminated, truncated, info = self.env.step(action)
            self._obs = nxt
            r = fn(np.asarray([s], np.float32), np.asarray([action]), np.asarray([nxt], np.float32),
                   np.asarray([terminated]))
            return nxt, float(r[0]), terminated, truncated, info

        def reset(self, **kwargs):
            self._obs, info = self.env.reset(**kwargs)
            return self._obs, info

    made, _ = make_env(env)
    agent = PPO("MlpPolicy", ModelReward(made), seed=seed, device=policy_device(False), verbose=0)
    eval_seed = seed + 10_000  # games no training episode started from
    before = episode_returns(env, agent, sizes.eval_episodes, eval_seed)
    agent.learn(sizes.retrain_steps)
    after = episode_returns(env, agent, sizes.eval_episodes, eval_seed)
    table = pd.DataFrame({"untrained": before, "trained on the model": after})
    verdict = below(before, after, "the untrained policy's return", "the trained policy's return")
    return table, _claim("retrain", "PPO trained on the model does better on the env's reward",
                         f"{before.mean():.3g} -> {after.mean():.3g}", verdict, "retraining")


# ------------------------------------------------------------------------------------------------- one call
def audit(model: Any, env: Any, *, transitions: Mapping[str, np.ndarray] | None = None, reference: Any = None,
          policy: Any = None, checks: Sequence[Check] = (), sizes: EnvAuditSizes | None = None,
          retrain: bool = False, seed: int = 0, name: str = "the model") -> EnvAuditResult:
    """Every audit of this module on ``model`` in ``env`` (see the module docstring). Bad input (an env that does not
    make, transitions with missing keys or mismatched lengths, NaN rewards, a model or reference that fails or
    gives the wrong shape on the env's transitions) stops with ``ValueError`` before anything is measured."""
    import matplotlib.pyplot as plt

    sizes = sizes or EnvAuditSizes()
    made, env_id = make_env(env)
    if transitions is None:
        data = collect_transitions(made, sizes.n_transitions, policy, seed)
    else:
        data = check_transitions(transitions, made)
    fn = _reward_fn(model, data, name)
    ref = None if reference is None else _reward_fn(reference, data, "the reference")
    pred = _call(fn, data)
    claims: list[Claim] = []
    if "reward" in data:
        ranking, c = ranking_audit(pred, np.asarray(data["reward"], dtype=np.float64))
        claims.append(c)
    else:
        ranking = pd.DataFrame()
    reliance = reliance_table({"model": fn, **({"reference": ref} if ref else {})}, data, seed)
    gxi = gradient_x_input(model, data)
    if gxi is not None:
        reliance["model |gradient x input|"] = gxi
    claims.append(reliance_audit(reliance))
    epic, c = epic_audit(fn, ref, data, made, sizes, seed)
    claims.append(c)
    check_table = None
    if checks:
        check_table, cs = checks_audit(checks, fn, data)
        claims += cs
    retraining = None
    if retrain:
        retraining, c = retrain_audit(fn, env if isinstance(env, str) else made, sizes, seed)
        claims.append(c)
    metrics = {f"claims.{c.key}": c.verdict.outcome for c in claims}
    metrics |= {f"reads.{g}": float(reliance.loc[g, "model"]) for g in GROUPS}
    if epic is not None:
        metrics |= {"epic.distance": epic.distance, "epic.low": epic.low, "epic.high": epic.high}
    if "statistic" in ranking.attrs:
        metrics["ranking.statistic"] = ranking.attrs["statistic"]
    figures = {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    reliance[["model", *(["reference"] if ref else [])]].plot.bar(ax=axes[0], rot=0)
    axes[0].set_title("Inputs read: reward change when a group is shuffled")
    axes[0].set_ylabel("mean |change| / sd")
    if ref is not None:
        axes[1].scatter(_call(ref, data), pred, s=4, alpha=0.5)
        axes[1].set_xlabel("reference reward")
    else:
        axes[1].scatter(np.arange(len(pred)), pred, s=4, alpha=0.5)
        axes[1].set_xlabel("transition")
    axes[1].set_ylabel(f"{name}'s reward")
    axes[1].set_title("The model's reward on the transitions")
    fig.tight_layout()
    figures["inputs and rewards"] = fig
    plt.close(fig)
    return EnvAuditResult(env_id, name, claims, metrics, ranking, reliance, epic, check_table, retraining, figures)


# ------------------------------------------------------------------------------------------------- the report
def write_report(result: EnvAuditResult, path: Path) -> Path:
    """``result`` as one HTML file: the verdict table first (each verdict marked by colour and word), then the
    evidence tables and figures (embedded), nothing loaded from the network."""
    parts = [f"<h1>Audit of {html.escape(result.name)} on {html.escape(result.env_id)}</h1>",
             table_html(result.verdicts.set_index("claim"))]
    for title, table in (("Ranking against the env's reward", result.ranking), ("Inputs read", result.reliance),
                         ("Unit checks", result.checks), ("Retraining: returns on the env's reward",
                                                          result.retraining)):
        if table is not None and len(table):
            parts += [f"<h2>{title}</h2>", table.to_html(float_format=lambda x: f"{x:.4g}")]
    if result.epic is not None:
        e = result.epic
        parts += ["<h2>Sampled EPIC</h2>", f"<p>{e.distance:.4g}, {e.level:.0%} interval [{e.low:.4g}, {e.high:.4g}] "
                  f"over {len(e.resampled)} resamples; {e.n_samples} draws per mean, {e.n_transitions} "
                  "transitions.</p>"]
    parts += [f"<h2>{html.escape(t)}</h2>{figure_html(f)}" for t, f in result.figures.items()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(f"audit of {result.name}", parts), encoding="utf-8")
    return path


__all__ = ["DISTANCE_MAX", "GROUPS", "READS_MAX", "RANK_MIN", "EnvAuditResult", "EnvAuditSizes", "audit",
           "check_transitions", "collect_transitions", "episode_returns", "gradient_x_input", "make_env",
           "ranking_audit", "reliance_table", "write_report"]

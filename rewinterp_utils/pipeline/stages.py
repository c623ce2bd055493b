"""The pipeline's stages as data, and :class:`Cell`, one execution of a stage notebook.

A stage is one notebook, ``notebooks/<name>.ipynb``. Its row in :data:`STAGES` says which chapter it belongs to,
which profile sizes it reads (:mod:`~rewinterp_utils.pipeline.profiles`), which parameters it sweeps, which
stages it reads from, and the namespace its metrics take in ``summary.json``. Everything else about its
parameters (their names and defaults) is the notebook's own ``parameters`` cell, read with
``papermill.inspect_notebook``: defaults live in exactly one place.

A :class:`Cell` is a stage with every parameter set: it owns its identity (the parameters, resolved sizes, the
other stages' sizes its notebook reads and its notebook's code: everything that determines its results), its
folder name (:attr:`Cell.key`) and its metrics namespace. Where its artifacts live and what they hold is the
artifact store's business (:mod:`~rewinterp_utils.pipeline.artifacts`): this module imports nothing of the
pipeline but the profiles and the code hashes (:mod:`~rewinterp_utils.pipeline.codehash`).

**Metric keys.** A notebook writes keys local to its cell (``test_mse``, ``clipped_return``). In
``summary.json`` every key is ``<namespace>.<local key>``, the namespace being the stage's ``metrics``
template filled with the cell's parameter labels (:func:`label`): for example the ``atari_retrain`` cell
``game="Seaquest", score="shown", reward="true", seed=0`` writes ``clipped_return`` and the summary holds
``atari.table1.Seaquest.shown.true.seed0.clipped_return``. The book quotes the same number as
``{glue:text}`<page>.ipynb::clipped_return``` on the cell's own page.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from rewinterp_utils.envs.atari import GAMES, SCORES, atari_id
from rewinterp_utils.envs.classic import CLASSIC_REWARDS
from rewinterp_utils.envs.maze import COINFLIP, TWOGOALS, maze_ids, maze_short_name
from rewinterp_utils.pipeline.codehash import code_cells, notebook_code_hash, size_reads
from rewinterp_utils.pipeline.profiles import PROFILES, SIZES, check_profile, resolve
from rewinterp_utils.wrappers import ATARI_REWARDS, MAZE_REWARDS

CHAPTERS: tuple[str, ...] = ("gridworld", "atari", "table1", "preferences", "audit")
"""The chapters ``rewinterp run --chapter`` accepts (stages of chapter ``book`` always run)."""

CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "env_id": tuple(maze_ids()), "rm_env_id": tuple(maze_ids()), "game": GAMES, "score": SCORES,
})
"""Valid values of parameters shared by several stages (a stage's ``choices`` add its own)."""

LABELS: Mapping[str, Any] = MappingProxyType({"env_id": maze_short_name, "rm_env_id": maze_short_name})
"""How a parameter's value is written in folder names and metric keys (default: ``str``)."""

PREF_VARIANTS: tuple[str, ...] = ("full", "few_pairs", "noisy")
"""Preference-learned maze models: all pairs with noiseless labels, few pairs, or a noisy annotator."""
AUDITED_MODELS: tuple[str, ...] = ("regression", *(f"pref_{v}" for v in PREF_VARIANTS))
AUDIT_ENV_IDS: tuple[str, ...] = (*maze_ids(), *(f"{name}{setting}" for game in GAMES for name in (game, atari_id(game))
                                                 for setting in ("", *(f":{score}" for score in SCORES))))
"""What the ``audit`` stage audits on (:func:`rewinterp_utils.audit.audit_target`): a maze id, or an Atari game
(``Breakout`` or ``BreakoutNoFrameskip-v4``) with or without its score setting (``:shown``, ``:hidden``)."""
"""The learned maze rewards whose audits are compared with the outcome of retraining on them."""


def _fields(entry: str) -> tuple[str, ...]:
    """The fields of a ``profiles.SIZES`` entry."""
    return tuple(f.name for f in dataclasses.fields(SIZES["default"][entry]))


RESERVED: tuple[str, ...] = ("stage", "profile", "sizes", "reads", "code")
"""Keys of a cell's identity besides its parameters: no notebook parameter may take these names."""


def _read_ref(ref: str) -> tuple[str, str | None]:
    """``(profiles.SIZES entry, fixed profile or None)`` of an entry of :attr:`Stage.reads`."""
    entry, _, profile = ref.partition("@")
    return entry, profile or None


def label(name: str, value: Any) -> str:
    """A parameter value as folder names and metric keys write it: ``label("env_id", COINFLIP) == "CoinFlipGoal"``."""
    return str(LABELS.get(name, str)(value))


def notebooks_dir() -> Path:
    """The folder of the stage notebooks: the repository's ``notebooks/`` (installed as ``rewinterp_notebooks``)."""
    import rewinterp_notebooks

    return Path(rewinterp_notebooks.__file__).parent


@cache
def notebook_parameters(name: str) -> dict[str, Any]:
    """The parameters of ``notebooks/<name>.ipynb`` and their defaults, from its ``parameters`` cell."""
    import papermill as pm

    path = notebooks_dir() / f"{name}.ipynb"
    if not path.is_file():
        raise ValueError(f"stage {name!r} has no notebook {path}")
    return {k: ast.literal_eval(p["default"]) for k, p in pm.inspect_notebook(str(path)).items()}


@dataclass(frozen=True)
class Stage:
    """One row of :data:`STAGES`: a notebook and how the runner sweeps it."""

    name: str  #: notebook stem and artifact folder
    chapter: str  #: book chapter (``book``: pages about the whole build, part of every run)
    title: str  #: one line for logs
    sizes: str | None = None  #: entry of ``profiles.SIZES`` holding its sizes (``None``: no sizes)
    sweep: Mapping[str, tuple | str] = field(default_factory=dict)
    """parameter -> its values, or a size: ``"n_seeds"`` (this stage's sizes) or ``"maze_reward_model.n_seeds"``
    (another entry's); an ``int`` n gives ``range(n)``, a tuple its items"""
    upstream: tuple[str, ...] = ()  #: stages whose artifacts it reads
    metrics: str = ""  #: namespace of its metrics in ``summary.json`` (a template over parameter labels)
    choices: Mapping[str, tuple] = field(default_factory=dict)  #: valid values of its own parameters
    each_page: bool = False  #: the book shows every cell's executed notebook (else only the first cell's)
    page_by: tuple[str, ...] | None = None
    """with ``each_page``: the swept parameters that get a page each (default: all); for the others (seeds) the
    page shows the sweep's first value"""
    always_run: bool = False  #: rerun on every ``rewinterp run`` (pages that report on the whole build)
    reads: tuple[str, ...] = ()
    """other ``profiles.SIZES`` entries whose sizes its notebook reads with ``resolve("<entry>", profile)``
    (``"<entry>@<profile>"``: with ``resolve("<entry>", "<profile>")``); they are part of each cell's identity, and
    :meth:`check` fails for a ``resolve`` call in the notebook that this does not cover"""

    @property
    def parameters(self) -> dict[str, Any]:
        """The notebook's parameters (``profile`` excluded) and their defaults."""
        return {k: v for k, v in notebook_parameters(self.name).items() if k != "profile"}

    @property
    def size_fields(self) -> tuple[str, ...]:
        """The fields of this stage's sizes (``profiles.SIZES``)."""
        return _fields(self.sizes) if self.sizes else ()

    def _size_ref(self, ref: str) -> tuple[str | None, str]:
        """``(profile entry, field)`` of a sweep size."""
        entry, _, name = ref.rpartition(".")
        return entry or self.sizes, name

    @property
    def sweep_sizes(self) -> tuple[str, ...]:
        """Size fields that only say how far the sweep goes (``n_seeds``): not part of a cell's identity."""
        return tuple(self._size_ref(v)[1] for v in self.sweep.values() if isinstance(v, str))

    @property
    def accepts(self) -> tuple[str, ...]:
        """What :meth:`cells` takes: the notebook's parameters, this stage's sizes and the sizes its sweep reads."""
        return tuple(dict.fromkeys([*self.parameters, *self.size_fields, *self.sweep_sizes]))

    def check(self, stages: Mapping[str, "Stage"]) -> None:
        """``ValueError`` naming the stage and the culprit if this row does not fit its notebook or the pipeline."""
        params = self.parameters
        if "profile" not in notebook_parameters(self.name):
            raise ValueError(f"stage {self.name!r}: its notebook has no 'profile' parameter")
        for name, values in self.sweep.items():
            if name not in params:
                raise ValueError(f"stage {self.name!r} sweeps {name!r}, which its notebook "
                                 f"notebooks/{self.name}.ipynb does not have; its parameters: {', '.join(params)}")
            if isinstance(values, str):
                entry, size = self._size_ref(values)
                if entry not in SIZES["default"] or size not in _fields(entry):
                    raise ValueError(f"stage {self.name!r} sweeps {name!r} over size {values!r}, which "
                                     f"profiles.SIZES[...][{entry!r}] does not have")
            if "{" + name + "}" not in self.metrics:
                raise ValueError(f"stage {self.name!r} sweeps {name!r} but its metrics namespace {self.metrics!r} "
                                 f"does not name it: two cells would write the same summary keys")
        for up in self.upstream:
            if up not in stages:
                raise ValueError(f"stage {self.name!r} names upstream stage {up!r}, which does not exist; "
                                 f"stages: {', '.join(stages)}")
            if list(stages).index(up) > list(stages).index(self.name):
                raise ValueError(f"stage {self.name!r} reads {up!r}, which comes after it in STAGES")
        if self.page_by is not None and not set(self.page_by) <= set(self.sweep):
            raise ValueError(f"stage {self.name!r}: page_by {self.page_by} names parameters it does not sweep")
        if self.sizes is not None and self.sizes not in SIZES["default"]:
            raise ValueError(f"stage {self.name!r} reads sizes {self.sizes!r}, which profiles.SIZES does not have")
        clash = set(params) & set(RESERVED)
        if clash:
            raise ValueError(f"stage {self.name!r}: its notebook's parameter(s) {', '.join(sorted(clash))} take names "
                             f"a cell's identity uses ({', '.join(RESERVED)})")
        for ref in self.reads:
            entry, profile = _read_ref(ref)
            if entry not in SIZES["default"] or (profile is not None and profile not in PROFILES):
                raise ValueError(f"stage {self.name!r} declares it reads {ref!r}: profiles.SIZES has no such entry "
                                 f"or profile (write '<entry>' or '<entry>@<profile>')")
        if not self.always_run:  # a page remade on every run hides nothing
            self.check_reads()

    def check_reads(self) -> None:
        """``ValueError`` naming the notebook and the sizes if its code reads sizes that are neither this stage's own
        nor declared in :attr:`reads` (they would be hidden inputs: not part of its cells' identity)."""
        path = notebooks_dir() / f"{self.name}.ipynb"
        for source in code_cells(path):
            try:
                found = size_reads(source)
            except ValueError as e:
                raise ValueError(f"notebooks/{self.name}.ipynb (stage {self.name!r}): {e}") from None
            for entry, profile in found:
                if profile is None and entry == self.sizes:
                    continue
                ref = entry if profile is None else f"{entry}@{profile}"
                if ref not in self.reads:
                    raise ValueError(f"notebooks/{self.name}.ipynb reads the sizes of {entry!r}"
                                     f"{'' if profile is None else f' at profile {profile!r}'}, which stage "
                                     f"{self.name!r} does not declare: add {ref!r} to its row's reads in STAGES")

    def cell(self, profile: str, **given: Any) -> "Cell":
        """The cell of this stage with the notebook's defaults updated by ``given`` (parameters and size
        overrides), validated: ``ValueError`` naming the parameter and its valid values."""
        check_profile(profile)
        params = self.parameters
        unknown = set(given) - set(params)
        if unknown:
            raise ValueError(f"{self.name} has no parameter {', '.join(sorted(unknown))}; valid: {', '.join(params)}")
        values = {**params, **{k: v for k, v in given.items() if v is not None}}
        for name, value in values.items():
            default = params[name]
            valid = self.choices.get(name, CHOICES.get(name))
            if valid is not None and value not in valid:
                raise ValueError(f"{self.name}: unknown {name} {value!r}; valid: {', '.join(map(str, valid))}")
            if isinstance(default, int) and not isinstance(default, bool) and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{self.name}.{name} must be a non-negative integer, got {value!r}")
        return Cell(self, profile, MappingProxyType(values))

    def cells(self, profile: str, **given: Any) -> list["Cell"]:
        """The cells the runner executes at ``profile``: one per point of the sweep. ``given`` fixes other
        parameters, narrows the sweep of a swept one to the value given (``game="Seaquest"``), or overrides sizes
        (e.g. ``n_seeds=3``); size overrides that are not parameters of the notebook only shape the sweep."""
        unknown = set(given) - set(self.accepts)
        if unknown:
            raise ValueError(f"{self.name} has no parameter or size {', '.join(sorted(unknown))}; valid: "
                             f"{', '.join(self.accepts)}")
        fixed = {k: v for k, v in given.items() if k in self.parameters}
        points: list[dict[str, Any]] = [{}]
        for name, values in self.sweep.items():
            if isinstance(values, str):
                entry, size = self._size_ref(values)
                values = getattr(resolve(entry, profile, **{k: v for k, v in given.items() if k in _fields(entry)}),
                                 size)
                values = range(values) if isinstance(values, int) else values
            if name in fixed:  # a value given for a swept parameter narrows the sweep to it
                if fixed[name] not in values:
                    raise ValueError(f"{self.name}: {name}={fixed[name]!r} is not in its sweep at profile "
                                     f"{profile!r}; valid: {', '.join(map(repr, values))}")
                values = [fixed[name]]
            points = [{**p, name: v} for p in points for v in values]
        return [self.cell(profile, **{**fixed, **p}) for p in points]

    def pages(self, profile: str) -> dict[str, "Cell"]:
        """The book pages of this stage: ``notebooks/<page>`` -> the cell shown there.

        ``atari_expert`` with ``each_page`` gives ``atari_expert_Breakout`` and ``atari_expert_Seaquest``.
        """
        cells = self.cells(profile)
        if not self.each_page:
            return {self.name: cells[0]}
        by = self.sweep if self.page_by is None else self.page_by
        pages: dict[str, Cell] = {}
        for c in cells:
            pages.setdefault("_".join([self.name, *(label(k, c.params[k]) for k in by)]), c)
        return pages


@dataclass(frozen=True, eq=False)
class Cell:
    """One stage with every parameter set, at one profile (make it with :meth:`Stage.cell`)."""

    stage: Stage
    profile: str
    params: Mapping[str, Any]  #: every notebook parameter (size overrides ``None`` when the profile's are used)

    def _id(self) -> tuple[str, str, str]:
        return self.stage.name, self.profile, json.dumps(dict(self.params), sort_keys=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and self._id() == other._id()

    def __hash__(self) -> int:
        return hash(self._id())

    @property
    def overrides(self) -> dict[str, Any]:
        """The size overrides among the parameters (those not ``None``)."""
        return {k: v for k, v in self.params.items() if k in self.stage.size_fields and v is not None}

    @property
    def config(self) -> Any:
        """The resolved sizes (a ``profiles`` dataclass), or ``None`` for a stage without sizes."""
        if self.stage.sizes is None:
            return None
        return resolve(self.stage.sizes, self.profile, **self.overrides)

    @property
    def identity(self) -> dict[str, Any]:
        """Everything that determines the cell's results: stage, profile, parameters, resolved sizes (sizes that
        only bound a sweep, such as ``n_seeds`` of a retraining stage, excluded), the other stages' sizes its
        notebook reads (``reads``) and a hash of its notebook's code (``code``, see
        :mod:`~rewinterp_utils.pipeline.codehash`)."""
        config = self.config
        sizes = {k: v for k, v in dataclasses.asdict(config).items() if k not in self.stage.sweep_sizes} \
            if config is not None else {}
        reads = {}
        for ref in self.stage.reads:
            entry, profile = _read_ref(ref)
            reads[ref] = dataclasses.asdict(resolve(entry, profile or self.profile))
        params = {k: v for k, v in self.params.items() if k not in self.stage.size_fields}
        code = notebook_code_hash(notebooks_dir() / f"{self.stage.name}.ipynb")
        return json.loads(json.dumps({"stage": self.stage.name, "profile": self.profile, **params, "sizes": sizes,
                                      "reads": reads, "code": code}))

    @property
    def key(self) -> str:
        """The folder name: the swept parameters' labels and a hash of the identity, e.g.
        ``CoinFlipGoal_learned_0-3fa2c1d9``; a run with other sizes or parameters gets its own folder."""
        digest = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:8]
        readable = "_".join(label(k, self.params[k]) for k in self.stage.sweep) or "all"
        return f"{readable}-{digest}"

    @property
    def namespace(self) -> str:
        """The prefix of this cell's metrics in ``summary.json`` (see the module docstring)."""
        return self.stage.metrics.format(**{k: label(k, v) for k, v in self.params.items()})

    def spec(self) -> str:
        """The cell as one JSON argument (``{"stage", "profile", "params"}``) for a worker process; :func:`cell_of`
        reads it back."""
        return json.dumps({"stage": self.stage.name, "profile": self.profile, "params": dict(self.params)})

    def describe(self) -> str:
        """``stage(param=value, ...)`` for messages."""
        return f"{self.stage.name}({', '.join(f'{k}={v!r}' for k, v in self.params.items() if v is not None)})"


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("maze_expert", "gridworld", "Train the PPO expert", "maze_expert", metrics="maze.expert"),
    Stage("maze_dataset", "gridworld", "Collect (s, s', r) transitions", "maze_dataset", upstream=("maze_expert",),
          metrics="maze.dataset"),
    Stage("maze_reward_model", "gridworld", "Fit the reward model R(s, s')", "maze_reward_model",
          sweep={"model_seed": "n_seeds"}, upstream=("maze_dataset",), metrics="maze.rm.model{model_seed}"),
    Stage("maze_saliency", "gridworld", "Gradient saliency (Figure 1)", "maze_saliency", upstream=("maze_reward_model",),
          sweep={"model_seed": "maze_reward_model.n_seeds"}, metrics="maze.saliency.model{model_seed}"),
    Stage("maze_counterfactuals", "gridworld", "Counterfactual inputs (Figure 2)", "maze_counterfactuals",
          sweep={"model_seed": "maze_reward_model.n_seeds"}, upstream=("maze_reward_model",),
          metrics="maze.counterfactual.model{model_seed}"),
    Stage("maze_seeds", "gridworld", "Every audit over reward-model seeds", "maze_reward_model",
          upstream=("maze_dataset", "maze_reward_model", "maze_saliency", "maze_counterfactuals"), metrics="maze",
          reads=("maze_counterfactuals",)),
    Stage("maze_sanity", "gridworld", "Saliency sanity checks and reward-model unit checks", "maze_sanity",
          upstream=("maze_dataset", "maze_reward_model"), metrics="maze.sanity", reads=("maze_reward_model",)),
    Stage("maze_retrain", "gridworld", "Retrain PPO on true or learned reward", "maze_retrain",
          sweep={"env_id": (COINFLIP, TWOGOALS), "reward": MAZE_REWARDS, "seed": "n_seeds"}, upstream=("maze_reward_model",),
          metrics="maze.retrain.{env_id}.{reward}.seed{seed}", choices={"reward": MAZE_REWARDS}),
    Stage("maze_figure3", "gridworld", "Retraining curves (Figure 3)", "maze_retrain",
          upstream=("maze_expert", "maze_reward_model", "maze_retrain"), metrics="maze.retrain"),
    Stage("atari_expert", "atari", "Train the PPO Atari experts", "atari_expert", sweep={"game": GAMES},
          metrics="atari.{game}", each_page=True),
    Stage("atari_dataset", "atari", "Collect balanced observations", "atari_dataset", sweep={"game": GAMES},
          upstream=("atari_expert",), metrics="atari.{game}.dataset", each_page=True),
    Stage("atari_reward_model", "atari", "Fit R(s') with the score shown and hidden", "atari_reward_model",
          sweep={"game": GAMES, "score": SCORES, "model_seed": "n_seeds"}, upstream=("atari_dataset",),
          metrics="atari.{game}.{score}.model{model_seed}", each_page=True, page_by=("game", "score"),
          reads=("atari_reward_model@paper",)),
    Stage("atari_saliency", "atari", "Saliency and the score display (Figure 4)", "atari_saliency",
          sweep={"game": GAMES, "model_seed": "atari_reward_model.n_seeds"},
          upstream=("atari_dataset", "atari_reward_model"), metrics="atari.{game}.model{model_seed}",
          each_page=True, page_by=("game",)),
    Stage("atari_figure5", "atari", "Reward models across score settings (Figure 5)", "atari_figure5",
          sweep={"game": GAMES}, upstream=("atari_expert", "atari_reward_model"), metrics="atari.{game}.figure5",
          each_page=True, reads=("atari_reward_model",)),
    Stage("atari_seeds", "atari", "Every Atari audit over reward-model seeds, and the chapter's claims",
          "atari_reward_model", upstream=("atari_dataset", "atari_reward_model", "atari_saliency", "atari_figure5"),
          metrics="atari"),
    Stage("atari_sanity", "atari", "Saliency sanity checks and reward-model unit checks", "atari_sanity",
          sweep={"game": GAMES}, upstream=("atari_dataset", "atari_reward_model"), metrics="atari.sanity.{game}",
          each_page=True, reads=("atari_reward_model",)),
    Stage("atari_retrain", "table1", "Retrain PPO on the true or a learned reward", "atari_retrain",
          sweep={"game": "games", "score": SCORES, "reward": "rewards", "seed": "n_seeds"},
          upstream=("atari_reward_model",), metrics="atari.table1.{game}.{score}.{reward}.seed{seed}",
          choices={"reward": ATARI_REWARDS}),
    Stage("atari_table1", "table1", "Table 1 and the learned reward on the agents' own play", "atari_retrain",
          upstream=("atari_expert", "atari_reward_model", "atari_retrain"), metrics="atari.table1"),
    Stage("maze_pref_model", "preferences", "Learn R(s, s') from preferences", "maze_preference",
          sweep={"variant": PREF_VARIANTS, "model_seed": "n_seeds"}, upstream=("maze_dataset",),
          metrics="maze.pref.{variant}.model{model_seed}", choices={"variant": PREF_VARIANTS}, reads=("maze_dataset",)),
    Stage("maze_pref_retrain", "preferences", "PPO on TwoGoals rewarded by each learned model", "maze_pref_retrain",
          sweep={"model": AUDITED_MODELS, "model_seed": "maze_preference.n_seeds"},
          upstream=("maze_dataset", "maze_reward_model", "maze_pref_model"),
          metrics="maze.pref.retrain.{model}.model{model_seed}",
          choices={"model": AUDITED_MODELS}),
    Stage("maze_pref_audit", "preferences", "The paper's audits and two reward distances on every learned model",
          "maze_preference", upstream=("maze_dataset", "maze_reward_model", "maze_pref_model"),
          metrics="maze", reads=("maze_expert", "maze_counterfactuals", "maze_sanity")),
    Stage("maze_pref_predict", "preferences", "Does an audit predict retraining? The part's claims", "maze_preference",
          upstream=("maze_pref_audit", "maze_pref_retrain"), metrics="maze", reads=("maze_sanity",)),
    Stage("audit", "audit", "Audit one reward model: the book's audits, each with a verdict",
          upstream=("maze_dataset", "atari_dataset"), metrics="audit", choices={"env_id": AUDIT_ENV_IDS},
          reads=("maze_expert", "maze_counterfactuals", "maze_sanity", "maze_retrain", "atari_saliency",
                 "atari_sanity", "atari_retrain")),
    Stage("audit_compare", "audit", "The book's models audited side by side",
          upstream=("maze_dataset", "maze_reward_model", "maze_pref_model", "atari_dataset", "atari_reward_model"),
          metrics="audit.compare",
          reads=("maze_expert", "maze_counterfactuals", "maze_sanity", "atari_saliency", "atari_sanity")),
    Stage("audit_gym", "audit", "Two reward models of a classic-control env, audited from Python", "audit_gym",
          metrics="audit.gym", choices={"gym_id": tuple(CLASSIC_REWARDS)}),
    Stage("reproducing", "book", "Sizes and timings of this build", always_run=True),
    Stage("results", "book", "Every claim and its verdict, at a glance", metrics="results", always_run=True),
)}
"""Every stage, in an order where each comes after the stages it reads."""

for _stage in STAGES.values():
    _stage.check(STAGES)


def get_stage(name: str) -> Stage:
    """The stage called ``name``, or ``ValueError`` naming the valid stages."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; valid stages: {', '.join(STAGES)}")
    return STAGES[name]


def cell_of(spec: str) -> Cell:
    """The cell a :meth:`Cell.spec` names."""
    data = json.loads(spec)
    return get_stage(data["stage"]).cell(data["profile"], **data["params"])


def check_chapter(chapter: str) -> tuple[str, ...]:
    """The chapters meant by ``chapter`` (``all`` means every one), or ``ValueError``."""
    if chapter == "all":
        return CHAPTERS
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; valid chapters: {', '.join(CHAPTERS)}, all")
    return (chapter,)

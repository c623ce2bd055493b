"""``rewinterp audit``: one ``audit`` cell per model through the runner, each written as one self-contained HTML file.

:func:`audit_cells` checks everything first (:func:`~rewinterp_utils.audit.check_inputs` on every model, the
environment, the dataset and the reference; the output path), so bad input ends with ``ValueError`` before
anything is written. :func:`run_audits` then runs the cells with :func:`~rewinterp_utils.pipeline.runner.run`
(``cells=``: always rerun, since a model file may have changed under the same name; each notebook under the
watchdog), renders each executed notebook with :func:`render_html` and, for several models, writes
``comparison.csv`` and ``comparison.html`` beside the reports (:func:`~rewinterp_utils.audit.comparison_table`).
"""

from __future__ import annotations

import glob
import html
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from rewinterp_utils.pipeline.stages import Cell, get_stage

OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
"""
"""nbconvert's lab template without the scripts it loads from the network (require.js, MathJax, Mermaid, widgets)."""
MODEL_SUFFIXES: tuple[str, ...] = (".pt", ".pth")
"""The files a folder of models is read for."""


def render_html(executed: Path, out: Path, metrics: Mapping[str, Any] | None = None) -> Path:
    """The executed notebook ``executed`` as one HTML file ``out`` that loads nothing from the network: figures
    embedded as data URIs, cells tagged ``remove-cell`` (the install cell) left out, MyST roles written as text,
    code hidden behind a "Show code" button, and, given the cell's ``metrics``, its verdicts (``claims.*``) in a
    table at the top, each marked by colour and word."""
    import nbformat
    import pandas as pd
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    from rewinterp_utils.html_report import myst_roles_as_text, table_html, with_code_hidden

    exporter = HTMLExporter(extra_loaders=[DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
                            template_file="offline.html.j2", embed_images=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags=("remove-cell",)), enabled=True)
    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = myst_roles_as_text(cell.source)
    with warnings.catch_warnings():  # glued metrics are hidden outputs, meant for the book: not shown here
        warnings.filterwarnings("ignore", message="Your element with mimetype", category=UserWarning)
        body, _ = exporter.from_notebook_node(nb)
    first = ""
    verdicts = {k.removeprefix("claims."): v for k, v in (metrics or {}).items() if k.startswith("claims.")}
    if verdicts:
        table = pd.DataFrame({"verdict": verdicts}).rename_axis("audit")
        first = f"<h2>Verdicts</h2>{table_html(table)}"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(with_code_hidden(body, first), encoding="utf-8")
    tmp.replace(out)
    return out


def expand_models(specs: Sequence[str]) -> list[str]:
    """Every model ``specs`` name: a folder gives its ``*.pt``/``*.pth`` files, a glob its matches (sorted), anything
    else (a file, an import path) itself. ``ValueError`` for a folder or glob that matches no file."""
    out = []
    for spec in specs:
        if Path(spec).is_dir():
            found = sorted(str(p) for p in Path(spec).iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())
            if not found:
                raise ValueError(f"folder {spec} holds no model file (expected {', '.join(MODEL_SUFFIXES)} files)")
            out += found
        elif glob.has_magic(spec):
            found = sorted(p for p in glob.glob(spec) if Path(p).is_file())
            if not found:
                raise ValueError(f"{spec!r} matches no file; expected a glob of reward-model files")
            out += found
        else:
            out.append(spec)
    return list(dict.fromkeys(out))


def report_name(spec: str) -> str:
    """A file name for the report of ``spec``: a file's stem, an import path's ``module.factory``."""
    return Path(spec).stem if ":" not in spec or Path(spec).exists() else spec.replace(":", ".")


def _absolute(spec: str | None) -> str | None:
    """A path that exists, made absolute (the notebook runs in another folder); an import path as it is."""
    return str(Path(spec).resolve()) if spec is not None and Path(spec).exists() else spec


def audit_cells(specs: Sequence[str], env_id: str, profile: str, dataset: str | None = None,
                reference: str | None = None, retrain: bool = False) -> list[Cell]:
    """One ``audit`` cell per model, every input checked (``ValueError`` naming what is wrong, nothing written);
    ``retrain``: the cells also retrain PPO on each model."""
    from rewinterp_utils.audit import check_inputs

    cells = []
    for spec in specs:
        check_inputs(spec, env_id, dataset, reference)
        cells.append(get_stage("audit").cell(profile, model=_absolute(spec), env_id=env_id, dataset=_absolute(dataset),
                                             reference=_absolute(reference), retrain=bool(retrain)))
    return cells


@contextmanager
def _importable_from_here() -> Iterator[None]:
    """The working directory on ``PYTHONPATH`` for the run: a factory module beside the caller imports in the
    notebook's kernel, which runs in the artifact folder."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), *([old] if old else [])])
    try:
        yield
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.__setitem__("PYTHONPATH", old)


def report_targets(models: Sequence[str], out: Path | str | None, batch: bool) -> tuple[list[str], Path, list[Path]]:
    """The report names, folder and files of ``models``: one model's report at ``out`` (default
    ``audit-<name>.html``; an existing folder gets ``<name>.html``), a batch's ``<name>.html`` in the folder ``out``
    (default ``audit-reports``). ``ValueError`` for an ``--out`` that cannot hold them, before anything runs."""
    names = [report_name(m) for m in models]
    if len(set(names)) != len(names):
        names = [f"{k:02d}-{n}" for k, n in enumerate(names)]
    if batch:
        folder = Path(out or "audit-reports")
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"--out {folder} is a file; several models need a folder for their reports")
        targets = [folder / f"{n}.html" for n in names]
    else:
        target = Path(out or f"audit-{names[0]}.html")
        target = target / f"{names[0]}.html" if target.is_dir() else target
        if target.suffix != ".html":
            raise ValueError(f"--out {target} must end in .html (or be a folder)")
        folder, targets = target.parent, [target]
    if not folder.is_dir() and not (batch and folder.parent.is_dir()):
        raise ValueError(f"--out: folder {folder if not batch else folder.parent} does not exist")
    return names, folder, targets


def run_audits(specs: Sequence[str], env_id: str, out: Path | None = None, profile: str = "default",
               dataset: str | None = None, reference: str | None = None, jobs: int | None = None,
               retrain: bool = False) -> list[Path]:
    """Audit every model of ``specs`` (:func:`expand_models`) on ``env_id`` and return the files written.

    One model (a single file or import path): its report at ``out`` (default ``audit-<name>.html``; an existing
    folder gets ``<name>.html``). Several (or a folder or glob): ``out`` (default ``audit-reports``) is a folder
    holding ``<name>.html`` per model and the comparison table. ``ValueError`` on bad input before anything runs.
    """
    from rewinterp_utils.audit import comparison_table
    from rewinterp_utils.pipeline import runner
    from rewinterp_utils.pipeline.artifacts import cell_dir, executed_path, read_metrics

    models = expand_models(specs)
    batch = len(models) > 1 or any(Path(s).is_dir() or glob.has_magic(s) for s in specs)
    names, folder, targets = report_targets(models, out, batch)
    cells = audit_cells(models, env_id, profile, dataset, reference, retrain)
    with _importable_from_here():
        runner.run(profile, force=True, jobs=jobs, cells=cells)
    folder.mkdir(exist_ok=True)
    metrics = [read_metrics(cell_dir(c)) for c in cells]
    written = [render_html(executed_path(c), t, m) for c, t, m in zip(cells, targets, metrics)]
    if batch:
        from rewinterp_utils.html_report import page, table_html

        table = comparison_table(dict(zip(names, metrics)))
        table.to_csv(folder / "comparison.csv")
        links = {n: t.name for n, t in zip(names, targets)}
        (folder / "comparison.html").write_text(page(f"Reward-model audits on {env_id}", [
            f"<h1>Reward-model audits on {html.escape(env_id)}</h1>",
            "<p>One row per model, linked to its report; each verdict marked by colour and word.</p>",
            table_html(table, links)]), encoding="utf-8")
        written += [folder / "comparison.csv", folder / "comparison.html"]
    return written


def is_gym_env(env_id: str) -> bool:
    """Whether ``env_id`` is a Gymnasium id the book's own audits do not cover (audited by
    :func:`rewinterp_utils.env_audit.audit`)."""
    import gymnasium as gym

    from rewinterp_utils.audit import audit_target

    try:
        audit_target(env_id)
        return False
    except ValueError:
        return env_id in gym.registry


def run_env_audits(specs: Sequence[str], env_id: str, out: Path | None = None, profile: str = "default",
                   reference: str | None = None, retrain: bool = False) -> list[Path]:
    """``rewinterp audit pkg.mod:factory --env Pendulum-v1``: :func:`rewinterp_utils.env_audit.audit` on each model
    (``reference``: another factory path; default none), one report each (as :func:`run_audits` names them).
    Every model and the reference are loaded and tried before any audit runs."""
    from rewinterp_utils.audit_inputs import call_factory
    from rewinterp_utils.env_audit import audit, collect_transitions, make_env
    from rewinterp_utils.pipeline.profiles import env_audit_sizes

    sizes = env_audit_sizes(profile)
    made, _ = make_env(env_id)
    returns = "a reward of transition batches (see rewinterp_utils.adapters)"
    models = [call_factory(s, returns) for s in specs]
    ref = call_factory(reference, returns) if reference else None
    names, _, targets = report_targets(specs, out, len(specs) > 1)
    data = collect_transitions(made, sizes.n_transitions, seed=0)
    from rewinterp_utils.env_audit import _reward_fn

    for m, n in zip(models, names):
        _reward_fn(m, data, f"model {n!r}")  # every model tried before any audit runs
    return [audit(m, made, transitions=data, reference=ref, sizes=sizes, retrain=retrain, name=n).to_html(t)
            for m, n, t in zip(models, names, targets)]


__all__ = ["audit_cells", "expand_models", "is_gym_env", "render_html", "report_name", "report_targets", "run_audits",
           "run_env_audits"]

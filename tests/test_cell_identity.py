"""A cell is what made it: the sizes its notebook reads (its own and other stages'), its notebook's code, and the
package code recorded in its manifest; the worker's command line has one home."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import plant_notebooks

from rewinterp_utils.pipeline import artifacts as art
from rewinterp_utils.pipeline.session import open_stage
from rewinterp_utils.pipeline import profiles, stages
from rewinterp_utils.pipeline.codehash import package_hash, size_reads
from rewinterp_utils.pipeline.stages import STAGES, get_stage
from rewinterp_utils.pipeline.summary import other_package_cells

REPO = Path(__file__).resolve().parents[1]


def make(stage: str, reads: tuple[str, ...] = (), **given) -> Path:
    """Publish a cell of ``stage`` at smoke (one file), recording the upstream cells of ``reads``."""
    run = open_stage(stage, {"profile": "smoke", **given})
    for up in reads:
        run.require(up)
    run.path("out.txt").write_text("x")
    return run.finish({"x": 1.0})


def set_size(monkeypatch, profile: str, entry: str, **sizes) -> None:
    monkeypatch.setitem(profiles.SIZES[profile], entry, dataclasses.replace(profiles.SIZES[profile][entry], **sizes))


# ------------------------------------------------------------------------------ sizes of other stages
def test_a_size_the_notebook_reads_from_another_stage_makes_another_cell(root, monkeypatch):
    """maze_pref_audit reads maze_sanity's sizes (not an upstream stage): a new maze_sanity size gives the audit
    another folder, so the old audit is not counted done; a stage that does not read it keeps its cell."""
    audit, expert = get_stage("maze_pref_audit").cell("smoke").key, get_stage("maze_expert").cell("smoke").key
    make("maze_pref_audit")
    assert art.is_complete(get_stage("maze_pref_audit").cell("smoke"))
    set_size(monkeypatch, "smoke", "maze_sanity", n_inputs=profiles.SIZES["smoke"]["maze_sanity"].n_inputs + 1)
    again = get_stage("maze_pref_audit").cell("smoke")
    assert again.key != audit and not art.is_complete(again) and art.done_reason(again) == "missing"
    assert again.identity["reads"]["maze_sanity"]["n_inputs"] == profiles.SIZES["smoke"]["maze_sanity"].n_inputs
    assert get_stage("maze_expert").cell("smoke").key == expert


def test_another_profiles_size_the_notebook_reads_is_part_of_the_identity(monkeypatch):
    """atari_reward_model reads the paper's learning rate at every profile."""
    before = get_stage("atari_reward_model").cell("smoke").key  # a cell's key follows today's sizes and code
    set_size(monkeypatch, "paper", "atari_reward_model", learning_rate=0.5)
    assert get_stage("atari_reward_model").cell("smoke").key != before


def test_size_reads_finds_every_resolve_call():
    source = ('from rewinterp_utils.pipeline import profiles\n'
              'a = resolve("maze_sanity", profile).n_inputs  # resolve("not_read", profile)\n'
              'b = profiles.resolve(\n    "maze_expert",\n    "paper",\n).gamma\n'
              'c = Path(".").resolve()\n')
    assert size_reads(source) == [("maze_sanity", None), ("maze_expert", "paper")]
    # a cell Python cannot tokenize (an unclosed string) is read line by line
    assert size_reads('a = resolve("maze_sanity", profile)\nb = """open\n') == [("maze_sanity", None)]
    for unreadable in ('resolve(name, profile)', 'resolve("maze_expert", other)', 'resolve("maze_expert")',
                       'resolve(f"maze_{x}", profile)', 'x = SIZES["default"]["maze_expert"]'):
        with pytest.raises(ValueError):
            size_reads(unreadable)


def test_every_size_read_must_be_declared(tmp_path, monkeypatch):
    for stage in STAGES.values():  # the real table passes (it is also checked at import)
        stage.check(STAGES)
    undeclared = dataclasses.replace(STAGES["maze_pref_audit"], reads=("maze_expert", "maze_sanity"))
    with pytest.raises(ValueError) as e:
        undeclared.check(STAGES)
    assert "notebooks/maze_pref_audit.ipynb" in str(e.value) and "'maze_counterfactuals'" in str(e.value)
    with pytest.raises(ValueError, match="'paper'"):
        dataclasses.replace(STAGES["atari_reward_model"], reads=()).check(STAGES)
    # a read added to a notebook later is caught too
    planted = plant_notebooks(tmp_path, "maze_expert", 'n = resolve("maze_dataset", profile).n_train')
    monkeypatch.setattr(stages, "notebooks_dir", lambda: planted / "rewinterp_notebooks")
    with pytest.raises(ValueError) as e:
        STAGES["maze_expert"].check(STAGES)
    assert "notebooks/maze_expert.ipynb" in str(e.value) and "'maze_dataset'" in str(e.value)


# ------------------------------------------------------------------------------ the notebook's code
def edited_notebooks(folder: Path, stage: str, edit) -> Path:
    """A copy of the notebooks in which ``edit(nb)`` changed ``stage``'s notebook."""
    shutil.copytree(REPO / "notebooks", folder)
    path = folder / f"{stage}.ipynb"
    nb = nbformat.read(path, as_version=4)
    edit(nb)
    nbformat.write(nb, path)
    return folder


def first_code(nb, tag: str | None = None):
    return next(c for c in nb.cells if c.cell_type == "code" and (tag in c.metadata.get("tags", []) if tag else
                                                                  not c.metadata.get("tags")))


def code_change(nb):
    first_code(nb).source += "\nEXTRA = 1"


def layout_change(nb):
    cell = first_code(nb)
    cell.source = "# a new comment\n\n" + cell.source.replace("\n", "  \n").replace(" = ", "=") + "\n\n\n"
    first_code(nb, "parameters").source += "  # a comment in the parameters cell"
    next(c for c in nb.cells if c.cell_type == "markdown").source += "\n\nAnother sentence."


@pytest.mark.parametrize("edit, same", [(code_change, False), (layout_change, True)])
def test_the_notebooks_code_is_part_of_the_identity(tmp_path, monkeypatch, edit, same):
    before = get_stage("maze_expert").cell("smoke").identity
    folder = edited_notebooks(tmp_path / "nb", "maze_expert", edit)
    monkeypatch.setattr(stages, "notebooks_dir", lambda: folder)
    after = get_stage("maze_expert").cell("smoke").identity
    assert (after == before) is same and (after["code"] == before["code"]) is same


def test_a_new_default_changes_only_the_cells_that_take_it(tmp_path, monkeypatch, request):
    """The parameters cell is not code of the identity: its values are, one by one. A new default seed changes the
    cell that takes the default, not the cell given its seed."""
    stage = get_stage("maze_expert")
    default, given = stage.cell("smoke").identity, stage.cell("smoke", seed=3).identity

    def new_default(nb):
        cell = first_code(nb, "parameters")
        cell.source = cell.source.replace("seed = 0", "seed = 7")

    folder = edited_notebooks(tmp_path / "nb", "maze_expert", new_default)
    monkeypatch.setattr(stages, "notebooks_dir", lambda: folder)
    stages.notebook_parameters.cache_clear()  # papermill reads the new default (and the real ones after the test)
    request.addfinalizer(stages.notebook_parameters.cache_clear)
    assert stage.cell("smoke", seed=3).identity == given
    assert stage.cell("smoke").identity["seed"] == 7 != default["seed"]


def test_a_cell_made_by_other_notebook_code_is_remade_and_so_are_the_cells_that_read_it(root, tmp_path,
                                                                                          monkeypatch):
    make("maze_expert")
    make("maze_dataset", reads=("maze_expert",))
    expert, dataset = get_stage("maze_expert").cell("smoke"), get_stage("maze_dataset").cell("smoke")
    assert art.is_complete(expert) and art.is_complete(dataset)
    folder = edited_notebooks(tmp_path / "nb", "maze_expert", code_change)
    monkeypatch.setattr(stages, "notebooks_dir", lambda: folder)
    assert not art.is_complete(get_stage("maze_expert").cell("smoke"))
    with pytest.raises(art.ArtifactError, match="no longer give"):  # the dataset's own code did not change
        art.verify(get_stage("maze_dataset").cell("smoke"))


# ------------------------------------------------------------------------------ the package's code
def test_the_package_hash_follows_code_not_layout(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("def f(x):\n    return x + 1\n")
    first = package_hash(pkg)
    (pkg / "a.py").write_text("# f adds one\ndef f( x ):\n\n    return x+1   \n")
    assert package_hash.__wrapped__(pkg) == first
    (pkg / "a.py").write_text("def f(x):\n    return x + 2\n")
    assert package_hash.__wrapped__(pkg) != first


def test_cells_made_by_other_package_code_are_listed(root):
    folder = make("maze_expert")
    expert = get_stage("maze_expert").cell("smoke")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["package"] == package_hash() and other_package_cells("smoke") == []
    for recorded in ("0123456789abcdef", None):
        manifest["package"] = recorded
        (folder / "manifest.json").write_text(json.dumps(manifest))
        assert art.is_complete(expert), "listed, not remade"
        assert other_package_cells("smoke") == [(expert, recorded)]


def test_the_worker_command_line_has_one_home():
    package = REPO / "rewinterp_utils"
    spelled = sorted(p.relative_to(package).as_posix() for p in package.rglob("*.py")
                     if '"rewinterp_utils.pipeline.worker"' in p.read_text() or '"-m"' in p.read_text())
    assert spelled == ["pipeline/worker.py"]

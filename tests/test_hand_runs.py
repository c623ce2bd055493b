"""A notebook run by hand (Jupyter, Colab, papermill) and ``rewinterp run`` agree: hand runs are kept apart.

A hand run publishes into ``<profile>/by-hand/`` (:func:`~rewinterp_utils.pipeline.artifacts.hand_dir`): other
notebooks run by hand read it instead of building it again, the runner neither reads, remakes over nor deletes it,
and a runner cell made from a hand run's cell is not counted as done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cell, finish_with, open_

from rewinterp_utils.pipeline import artifacts as art
from rewinterp_utils.pipeline import on_demand, session


@pytest.fixture
def by_hand(tmp_path, monkeypatch):
    """An empty store, and no runner: what a notebook in Jupyter or under papermill sees."""
    store = tmp_path / "artifacts"
    store.mkdir()
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(store))
    monkeypatch.delenv(art.HANDOFF_ENV, raising=False)
    monkeypatch.delenv(art.RUNNER_ENV, raising=False)

    def no_build(c):
        raise AssertionError(f"built {c.describe()} although a hand run made it")

    monkeypatch.setattr(session, "build_on_demand", no_build)
    return store


def as_the_runner(c, monkeypatch, tmp_path, content=b"runner"):
    """Make ``c`` as a worker does: the kernel hands its folder over, the worker publishes it with the executed
    notebook."""
    handoff = tmp_path / f"handoff-{c.key}.json"
    monkeypatch.setenv(art.HANDOFF_ENV, str(handoff))
    finish_with(open_(c.stage.name, **c.params), content)
    monkeypatch.delenv(art.HANDOFF_ENV)
    executed = tmp_path / "executed.ipynb"
    executed.write_text("{}")
    moved = json.loads(handoff.read_text())
    return art.publish(Path(moved["tmp"]), Path(moved["final"]), executed=executed)


def test_a_hand_run_goes_apart_and_the_runner_still_makes_its_own(by_hand):
    folder = finish_with(open_("maze_expert", seed=0))
    expert = cell("maze_expert", seed=0)
    assert folder == art.hand_dir(expert) and folder.is_relative_to(by_hand / "smoke" / "by-hand")
    assert not art.cell_dir(expert).exists() and art.done_reason(expert) == "missing"
    assert art.find(expert) == folder


def test_a_notebook_run_by_hand_reads_a_hand_run_instead_of_building_it(by_hand):
    expert = finish_with(open_("maze_expert", seed=0))
    run = open_("maze_dataset", seed=0)
    assert run.require("maze_expert", seed=0) == expert  # no_build would raise
    data = finish_with(run)
    manifest = json.loads((data / "manifest.json").read_text())
    assert list(manifest["upstream"]) == [expert.relative_to(by_hand).as_posix()]
    assert art.verify(cell("maze_dataset", seed=0), data) == data
    assert on_demand.plan(cell("maze_dataset", seed=0)) == [], "nothing to build: hand runs count"


def test_the_runners_cell_comes_first_and_is_never_replaced_by_a_hand_run(by_hand, monkeypatch, tmp_path):
    expert = cell("maze_expert", seed=0)
    made = as_the_runner(expert, monkeypatch, tmp_path)
    hand = finish_with(open_("maze_expert", seed=0), b"by hand")
    assert made == art.cell_dir(expert) and art.is_done(expert), "the runner's cell is still done"
    assert (made / "model.pt").read_bytes() == b"runner" and (hand / "model.pt").read_bytes() == b"by hand"
    assert art.find(expert) == made
    assert open_("maze_dataset", seed=0).require("maze_expert", seed=0) == made


def test_under_the_runner_a_hand_run_is_not_read(by_hand, monkeypatch):
    finish_with(open_("maze_expert", seed=0))
    monkeypatch.setenv(art.RUNNER_ENV, "1")
    with pytest.raises(art.ArtifactError, match="missing"):
        open_("maze_dataset", seed=0).require("maze_expert", seed=0)


def test_a_runner_cell_made_from_a_hand_run_is_not_done(by_hand, monkeypatch, tmp_path):
    finish_with(open_("maze_expert", seed=0))
    dataset = cell("maze_dataset", seed=0)
    handoff = tmp_path / "handoff.json"
    monkeypatch.setenv(art.HANDOFF_ENV, str(handoff))  # a worker of an on-demand build, reading the hand run
    run = open_("maze_dataset", seed=0)
    run.require("maze_expert", seed=0)
    finish_with(run)
    monkeypatch.delenv(art.HANDOFF_ENV)
    executed = tmp_path / "executed.ipynb"
    executed.write_text("{}")
    moved = json.loads(handoff.read_text())
    art.publish(Path(moved["tmp"]), Path(moved["final"]), executed=executed)
    assert art.is_complete(dataset), "a notebook run by hand may read it"
    assert "run by hand" in art.done_reason(dataset), "the runner remakes it from its own expert"

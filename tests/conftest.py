"""Shared fixtures: the whole pipeline at `smoke`, run once per test session."""

from __future__ import annotations

import json
import os

import pytest

from rewinterp_utils.pipeline import runner


SMOKE_FIXTURES = frozenset({"smoke", "smoke_book"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """``make test`` runs one pytest-xdist worker per core (``--dist loadgroup``): every test that uses the smoke
    build goes to one worker, so that the build (a session fixture) is made once, and runs first, being the longest;
    every other test goes with its module, so that a module's fixtures are made once. Without xdist the markers
    do nothing and the order is the same."""
    for item in items:
        group = "smoke" if SMOKE_FIXTURES & set(item.fixturenames) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not SMOKE_FIXTURES & set(item.fixturenames))


@pytest.fixture(scope="module")
def one_torch_thread():
    """PyTorch on one thread for the module (small models run faster and the same on every machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_notebook(path, out, parameters=None, cwd=None):
    """Execute a notebook with papermill under the runner's watchdog (a code cell that stops answering is
    interrupted, the notebook rerun once, then ``CellHung``): no test waits on a silent kernel for ever."""
    from rewinterp_utils.pipeline.watchdog import Limits, execute_watched

    return execute_watched(path, out, Limits(cell_s=900), parameters, cwd=cwd)


def assert_bad_setting_writes_nothing(tmp_path, monkeypatch, variable, value):
    """``variable=value`` (a device or precision nobody can use) fails a notebook's ``open_stage`` with a
    ``ValueError`` naming the variable, and ``rewinterp run`` with exit 2 and that message; no artifact is written."""
    import subprocess
    import sys

    from rewinterp_utils.pipeline.artifacts import open_stage

    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        open_stage("maze_expert", {"profile": "smoke"})
    done = subprocess.run([sys.executable, "-m", "rewinterp_utils.pipeline.cli", "run", "--profile", "smoke"],
                          env={**os.environ, "REWINTERP_ARTIFACTS": str(tmp_path / "artifacts"), variable: value},
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"{variable} must be one of" in done.stderr, done.stderr
    assert not (tmp_path / "artifacts").exists()


def plant_notebooks(folder, stage, code):
    """A copy of the stage notebooks, importable as ``rewinterp_notebooks`` from the returned folder (put it first
    on ``PYTHONPATH``), in which ``stage``'s notebook runs ``code`` right after its parameters."""
    import shutil
    from pathlib import Path

    import nbformat

    pkg = Path(folder) / "planted" / "rewinterp_notebooks"
    shutil.copytree(Path(__file__).resolve().parents[1] / "notebooks", pkg)
    path = pkg / f"{stage}.ipynb"
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(code))
    nbformat.write(nb, path)
    return pkg.parent


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """Every stage notebook executed by papermill at `smoke`, through the runner (as `make book` does)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker makes it: a second one means the grouping failed
        claim = tmp_path_factory.getbasetemp().parent / "smoke-build-worker"
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pytest.fail(f"worker {os.environ['PYTEST_XDIST_WORKER']} was given a test of the smoke build, which worker "
                        f"{claim.read_text()} makes: xdist's --dist loadgroup did not group them (pytest-xdist#1386)")
        os.write(fd, os.environ["PYTEST_XDIST_WORKER"].encode())
        os.close(fd)
    root = tmp_path_factory.mktemp("smoke") / "artifacts"
    old = os.environ.get("REWINTERP_ARTIFACTS")
    os.environ["REWINTERP_ARTIFACTS"] = str(root)
    (root / "smoke").mkdir(parents=True)
    (root / "smoke" / "summary.json").write_text(json.dumps({"maze.from_an_old_run": 1.0}))
    try:
        summary = runner.run("smoke", "all")
        yield root, summary
    finally:
        if old is None:
            os.environ.pop("REWINTERP_ARTIFACTS", None)
        else:
            os.environ["REWINTERP_ARTIFACTS"] = old


@pytest.fixture(scope="session")
def smoke_book(smoke, tmp_path_factory):
    """The HTML book built (strictly: a Sphinx warning fails) from the smoke pipeline's executed notebooks."""
    from rewinterp_utils.pipeline.book import build_book

    return build_book("smoke", out=tmp_path_factory.mktemp("book"), strict=True)

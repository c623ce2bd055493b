"""Shared fixtures: the whole pipeline at `smoke`, run once per test session."""

from __future__ import annotations

import json
import os

import pytest

from rewinterp_utils.pipeline import runner

SMOKE_FIXTURES = frozenset({"smoke", "smoke_book"})


#: the module whose tests make the smoke build: its group goes first, so one worker starts the build at once
BUILDER_MODULE = "tests/test_pipeline.py"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """``make test`` runs one pytest-xdist worker per core (``--dist loadgroup --no-loadscope-reorder``): tests go
    to workers module by module (a module's fixtures are made once), in this order: the tests of
    :data:`BUILDER_MODULE` that use the smoke build (the first worker free makes the build, the longest item),
    then every test that does not use it, then the other modules' tests of the smoke build, which by then is made
    (a worker that did not make it copies it, see :func:`smoke`). Without xdist the order is the same."""
    def rank(item):
        smoke = bool(SMOKE_FIXTURES & set(item.fixturenames))
        return 0 if smoke and item.nodeid.startswith(BUILDER_MODULE) else 2 if smoke else 1

    for item in items:
        module = item.nodeid.split("::")[0]
        group = f"smoke:{module}" if SMOKE_FIXTURES & set(item.fixturenames) else module
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=rank)


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty artifact store (``tmp_path/artifacts``) as the runner's notebooks see it: a missing upstream cell is
    an error there, not built on demand."""
    from rewinterp_utils.pipeline import artifacts as art

    store = tmp_path / "artifacts"
    store.mkdir()
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(store))
    monkeypatch.delenv(art.HANDOFF_ENV, raising=False)
    monkeypatch.setenv(art.RUNNER_ENV, "1")
    return store


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

    from rewinterp_utils.pipeline.session import open_stage

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


SMOKE_WAIT_S = 3600  #: how long a worker waits for another worker's smoke build


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """Every stage notebook executed by papermill at `smoke`, through the runner (as `make book` does): ``(root,
    summary)``, with ``REWINTERP_ARTIFACTS`` set to ``root`` for the session.

    Under xdist the first worker that asks makes the build and, before any test changes it, leaves a copy in the
    session's shared folder; a worker that asks later waits for that copy and works on its own copy of it (tests
    may rerun or remove cells of their worker's build). A failed build is reported by every worker that waits."""
    base = tmp_path_factory.mktemp("smoke")
    root = base / "artifacts"
    shared = tmp_path_factory.getbasetemp().parent / "smoke-build"
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    builder = worker is None or _claim(shared, worker)
    old = os.environ.get("REWINTERP_ARTIFACTS")
    os.environ["REWINTERP_ARTIFACTS"] = str(root)
    try:
        if builder:
            summary = _build_smoke(root, shared if worker else None)
        else:
            summary = _copy_smoke(shared, root)
        yield root, summary
    finally:
        if old is None:
            os.environ.pop("REWINTERP_ARTIFACTS", None)
        else:
            os.environ["REWINTERP_ARTIFACTS"] = old


def _claim(shared, worker: str) -> bool:
    """True for the first worker of the session to claim the smoke build (an exclusive file in ``shared``)."""
    shared.mkdir(exist_ok=True)
    try:
        fd = os.open(shared / "builder", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, worker.encode())
    os.close(fd)
    return True


def _build_smoke(root, shared):
    """Make the smoke build in ``root``; with ``shared``, publish a copy there (``done``) or the error (``failed``)."""
    import shutil

    (root / "smoke").mkdir(parents=True)
    (root / "smoke" / "summary.json").write_text(json.dumps({"maze.from_an_old_run": 1.0}))
    try:
        summary = runner.run("smoke", "all")
    except BaseException as err:
        if shared is not None:
            (shared / "failed").write_text(f"{type(err).__name__}: {err}")
        raise
    if shared is not None:
        shutil.copytree(root, shared / "artifacts")
        (shared / "done").touch()
    return summary


def _copy_smoke(shared, root):
    """Wait for the builder's copy in ``shared`` and copy it to ``root``; the build's summary."""
    import shutil
    import time

    deadline = time.monotonic() + SMOKE_WAIT_S
    while not (shared / "done").exists():
        if (shared / "failed").exists():
            pytest.fail(f"the smoke build failed on worker {(shared / 'builder').read_text()}: "
                        f"{(shared / 'failed').read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no smoke build after {SMOKE_WAIT_S} s from worker {(shared / 'builder').read_text()}")
        time.sleep(1)
    shutil.copytree(shared / "artifacts", root)
    return json.loads((root / "smoke" / "summary.json").read_text())


@pytest.fixture(scope="session")
def smoke_book(smoke, tmp_path_factory):
    """The HTML book built (strictly: a Sphinx warning fails) from the smoke pipeline's executed notebooks."""
    from rewinterp_utils.pipeline.book import build_book

    return build_book("smoke", out=tmp_path_factory.mktemp("book"), strict=True)

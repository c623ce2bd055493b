"""What a Colab user does, minus the network: install the built wheel into a fresh virtual environment and run one
notebook of each part with papermill from a folder outside the repository, building the cells it reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A new virtual environment holding the wheel of this checkout; the dependencies (torch, SB3, ...) are
    seen through a path file pointing at the test environment's site-packages, whose editable install of
    rewinterp stays inactive there (path files inside a path entry are not processed)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist")], check=True, cwd=tmp)
    wheel = next((tmp / "dist").glob("rewinterp-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True)
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_package_comes_from_the_wheel(fresh):
    out = subprocess.run([str(fresh), "-c", "import rewinterp_utils, rewinterp_notebooks; "
                                           "print(rewinterp_utils.__file__); print(rewinterp_notebooks.__file__)"],
                         capture_output=True, text=True, check=True, cwd="/").stdout.split()
    assert all(str(fresh.parents[1]) in path and str(REPO) not in path for path in out), out


def test_the_book_command_of_a_wheel_says_it_needs_a_checkout_and_writes_nothing(fresh, tmp_path):
    site = fresh.parents[1]
    before = sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts)
    done = subprocess.run([str(fresh), "-m", "rewinterp_utils.pipeline.cli", "book", "--profile", "smoke"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": f"{fresh.parent}:/usr/bin:/bin", "HOME": str(tmp_path),
                               "REWINTERP_ARTIFACTS": str(tmp_path / "artifacts")})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a checkout of the repository" in lines[0], done.stderr
    assert sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts) == before, "nothing is written"
    assert not list(tmp_path.iterdir()), "nothing is written"


#: notebook -> the stages removed from a copy of the session's smoke build before it runs (None: no build at all)
MISSING = {"maze_counterfactuals": None, "maze_pref_audit": ("maze_pref_model",),
           "atari_saliency": ("atari_reward_model",)}


@pytest.mark.parametrize("name", list(MISSING))
def test_a_downstream_notebook_runs_alone_against_the_installed_wheel(fresh, smoke, tmp_path, name):
    """One downstream notebook of each part, with cells it reads missing, builds them (saying so first) and
    succeeds: the maze chain from an empty folder (expert, dataset, reward model), the others from the session's
    build without their direct upstream (the same code builds one stage or a chain; the chains are the build's)."""
    root = tmp_path / "artifacts"
    if MISSING[name] is not None:
        shutil.copytree(smoke[0], root)
        for stage in (name, *MISSING[name]):
            shutil.rmtree(root / "smoke" / stage)
    work = tmp_path / "colab"
    work.mkdir()
    shutil.copy(REPO / "notebooks" / f"{name}.ipynb", work / f"{name}.ipynb")
    done = subprocess.run([str(fresh), "-m", "papermill", f"{name}.ipynb", "out.ipynb", "-p", "profile", "smoke",
                           "--kernel", "python3", "--no-progress-bar", "--execution-timeout", "900"], cwd=work,
                          capture_output=True, text=True, timeout=1500,
                          env={"PATH": f"{fresh.parent}:/usr/bin:/bin", "HOME": str(tmp_path),
                               "REWINTERP_ARTIFACTS": str(root), "TQDM_DISABLE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((root / "smoke" / "by-hand" / name).glob("*/manifest.json")), "the cell was published, by hand"
    printed = (work / "out.ipynb").read_text()
    assert "is missing at profile 'smoke': building it first" in printed, "the notebook says what it builds"
    assert "REWINTERP_ARTIFACTS" in printed and "built " in printed, "where the cells go, and each as it is made"
    for stage in MISSING[name] or ("maze_expert", "maze_dataset", "maze_reward_model"):
        assert list((root / "smoke" / stage).glob("*/manifest.json")), f"{stage} was built"

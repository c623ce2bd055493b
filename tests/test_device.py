"""One device choice, ``REWINTERP_DEVICE``: validated before anything is written, recorded in every manifest, and
``cpu`` and ``auto`` give the same results on a machine without CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_bad_setting_writes_nothing

from rewinterp_utils.device import torch_device
from rewinterp_utils.pipeline.artifacts import StoredCell, find
from rewinterp_utils.pipeline.session import open_stage
from rewinterp_utils.pipeline.stages import get_stage

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cpu:0", "tpu"])
def test_an_unknown_device_is_a_valueerror_naming_the_choices(monkeypatch, name):
    monkeypatch.setenv("REWINTERP_DEVICE", name)
    with pytest.raises(ValueError, match="auto, cpu, cuda, cuda:N"):
        torch_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_is_a_valueerror(monkeypatch):
    monkeypatch.setenv("REWINTERP_DEVICE", "cuda")
    with pytest.raises(ValueError, match="CUDA is not available here; choices: auto, cpu"):
        torch_device()
    monkeypatch.setenv("REWINTERP_DEVICE", "auto")
    assert torch_device() == torch.device("cpu")


def test_a_bad_device_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("REWINTERP_DEVICE", "cuda:x")
    with pytest.raises(ValueError, match="REWINTERP_DEVICE"):
        open_stage("maze_expert", {"profile": "smoke"})
    assert_bad_setting_writes_nothing(tmp_path, monkeypatch, "REWINTERP_DEVICE", "gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto means CUDA on this machine")
def test_cpu_and_auto_give_the_same_metrics_and_record_the_device(tmp_path, monkeypatch):
    """The maze dataset at smoke, run alone (it builds its PPO expert on demand), once per setting."""
    found = {}
    for choice in ("cpu", "auto"):
        root = tmp_path / choice
        env = {**os.environ, "REWINTERP_ARTIFACTS": str(root), "REWINTERP_DEVICE": choice, "TQDM_DISABLE": "1",
               "OMP_NUM_THREADS": "1"}  # one core: the other runs the rest of the suite
        done = subprocess.run([sys.executable, "-m", "papermill", str(REPO / "notebooks" / "maze_dataset.ipynb"),
                               str(tmp_path / f"{choice}.ipynb"), "-p", "profile", "smoke", "--no-progress-bar",
                               "--execution-timeout", "600"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        monkeypatch.setenv("REWINTERP_ARTIFACTS", str(root))  # restored after the test (the smoke build's)
        cells = [get_stage(s).cell("smoke") for s in ("maze_expert", "maze_dataset")]
        stored = [StoredCell(c, find(c)) for c in cells]  # the expert built on demand, the dataset run by hand
        assert [s.dir.parent.parent.name for s in stored] == ["smoke", "by-hand"]
        found[choice] = [s.metrics for s in stored]
        assert [json.loads((s.dir / "manifest.json").read_text())["device"] for s in stored] == ["cpu", "cpu"]
    assert found["cpu"] == found["auto"] and found["cpu"][0]

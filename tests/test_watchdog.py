"""Nothing hangs: a code cell whose kernel never answers, or that runs past its limit, is interrupted, its notebook
rerun once with a fresh kernel, and then failed with a message naming the code cell; live widgets stay out of
batch runs. The plants are real kernels that really stop answering (the execute reply swallowed inside the
kernel, as in jupyter/nbclient#312) or really sleep."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from conftest import plant_notebooks

from rewinterp_utils.pipeline import stages
from rewinterp_utils.pipeline.stages import get_stage
from rewinterp_utils.pipeline.artifacts import cell_dir
from rewinterp_utils.pipeline.watchdog import CellHung, Limits, execute_watched, limits_for, positive_seconds

REPO = Path(__file__).resolve().parents[1]

SWALLOW_REPLY = '''k = get_ipython().kernel
send = k.session.send
def swallow(stream, msg_type, *args, **kwargs):
    if msg_type == "execute_reply":  # the kernel goes idle; the client never hears back
        k.session.send = send
        return {"content": {"status": "ok"}}
    return send(stream, msg_type, *args, **kwargs)
k.session.send = swallow'''


def hang_once(marker: Path) -> str:
    """Code that swallows its own execute reply the first time it runs (``marker`` remembers), then runs."""
    body = "\n".join("    " + line for line in SWALLOW_REPLY.splitlines())
    return f"import pathlib\nif not pathlib.Path({str(marker)!r}).exists():\n" \
           f"    pathlib.Path({str(marker)!r}).touch()\n{body}"


def notebook(tmp_path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "plant.ipynb"
    nbformat.write(nb, path)
    return path


def count_runs(counter: Path) -> str:
    return f"open({str(counter)!r}, 'a').write('x')"


def test_a_kernel_that_never_answers_fails_within_the_limit_after_one_retry(tmp_path):
    counter = tmp_path / "runs"
    nb = notebook(tmp_path, count_runs(counter), "x = 1\ny = 2", SWALLOW_REPLY, "print('never')")
    t0 = time.monotonic()
    with pytest.raises(CellHung) as err:
        execute_watched(nb, tmp_path / "out.ipynb", Limits(cell_s=600, idle_s=3, poll_s=0.5))
    took = time.monotonic() - t0
    assert took < 90, f"two attempts with a 3 s idle limit took {took:.0f} s"
    assert counter.read_text() == "xx", "the notebook ran twice: once, then once more with a fresh kernel"
    message = str(err.value)
    assert "plant.ipynb" in message and "attempt 1" in message and "attempt 2" in message
    assert message.count("code cell 3 (`k = get_ipython().kernel`)") == 2, message
    assert "used no CPU" in message and "sent no reply" in message and "--idle-timeout" in message
    assert len(err.value.stops) == 2


def test_a_cell_that_hangs_once_is_retried_and_the_notebook_succeeds(tmp_path):
    nb = notebook(tmp_path, "x = 41", hang_once(tmp_path / "hung-before"), "print(x + 1)")
    stops = execute_watched(nb, tmp_path / "out.ipynb", Limits(cell_s=600, idle_s=3, poll_s=0.5))
    assert [(s.code_cell, s.first_line) for s in stops] == [(2, "import pathlib")]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "42\n", "the rerun went through every cell"


def test_a_cell_past_its_limit_is_stopped_even_while_it_works(tmp_path):
    """The limit is on wall time: a busy loop (CPU in use, so never idle) is stopped too."""
    nb = notebook(tmp_path, "import time\nt = time.time()\nwhile time.time() - t < 300:\n    pass")
    t0 = time.monotonic()
    with pytest.raises(CellHung, match="ran past its limit of 2 s") as err:
        execute_watched(nb, tmp_path / "out.ipynb", Limits(cell_s=2, idle_s=600, poll_s=0.5))
    assert time.monotonic() - t0 < 60
    assert [s.code_cell for s in err.value.stops] == [1, 1]


def test_an_ordinary_error_is_not_retried(tmp_path):
    counter = tmp_path / "runs"
    nb = notebook(tmp_path, count_runs(counter), "raise ValueError('bad input')")
    with pytest.raises(pm.PapermillExecutionError, match="bad input"):
        execute_watched(nb, tmp_path / "out.ipynb", Limits(cell_s=600, idle_s=3, poll_s=0.5))
    assert counter.read_text() == "x"


def test_batch_kernels_get_no_live_widgets(tmp_path, monkeypatch):
    """Under the watchdog's executor (as under the runner) a kernel sees batch mode; REWINTERP_WIDGETS wins."""
    code = "from rewinterp_utils.frontend import live_widgets\nprint(live_widgets())"
    nb = notebook(tmp_path, code)
    # a limit of fractional seconds (4x a recorded stage time) is fine: nbclient's own timeout takes whole seconds
    execute_watched(nb, tmp_path / "out.ipynb", Limits(cell_s=811.456))
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0]["text"] == "False\n"
    monkeypatch.setenv("REWINTERP_WIDGETS", "live")
    execute_watched(nb, tmp_path / "out.ipynb", Limits(cell_s=600))
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0]["text"] == "True\n"


def test_widget_mode_is_validated_and_no_widget_is_made_outside_a_kernel(monkeypatch):
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from rewinterp_utils.frontend import live_widgets
    from rewinterp_utils.reward_models import AtariRewardCNN
    from rewinterp_utils.scrubber import AtariScrubber

    assert live_widgets() is False
    monkeypatch.setenv("REWINTERP_WIDGETS", "sometimes")
    with pytest.raises(ValueError, match="REWINTERP_WIDGETS must be one of live, static"):
        live_widgets()
    monkeypatch.delenv("REWINTERP_WIDGETS")
    torch.manual_seed(0)
    arrays = {s: np.zeros((3, 84, 84, 4), np.uint8) for s in ("shown", "hidden")}
    screens = {s: np.zeros((3, 210, 160, 3), np.uint8) for s in ("shown", "hidden")}
    scrubber = AtariScrubber("Seaquest", np.arange(3), screens, arrays,
                             {s: AtariRewardCNN().eval() for s in ("shown", "hidden")}, np.array([0.0, 1.0, 0.0]))
    still = scrubber.interactive()
    assert isinstance(still, Figure) and scrubber._widget is None
    assert still.axes[-1].lines[-1].get_xdata()[0] == 1, "the still shows the first rewarded step"


# ---------------------------------------------------------------------------------------------------- limits
@pytest.mark.parametrize("text", ["0", "-5", "soon", "inf", "nan", ""])
def test_a_limit_that_is_not_a_positive_number_is_refused(text):
    with pytest.raises(ValueError, match="--cell-timeout must be a positive number of seconds"):
        positive_seconds(text, "--cell-timeout")


@pytest.mark.parametrize("args, env, named", [
    (["--cell-timeout", "0"], {}, "--cell-timeout"),
    (["--idle-timeout", "never"], {}, "--idle-timeout"),
    ([], {"REWINTERP_CELL_TIMEOUT": "-1"}, "REWINTERP_CELL_TIMEOUT"),
    ([], {"REWINTERP_IDLE_TIMEOUT": "abc"}, "REWINTERP_IDLE_TIMEOUT"),
])
def test_a_bad_limit_exits_2_naming_it_and_runs_nothing(tmp_path, args, env, named):
    root = tmp_path / "artifacts"
    done = subprocess.run([sys.executable, "-m", "rewinterp_utils.pipeline.cli", "run", "--profile", "smoke", *args],
                          env={**os.environ, "REWINTERP_ARTIFACTS": str(root), **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and named in done.stderr, done.stderr
    assert not root.exists(), "nothing was written"


def test_the_cell_limit_follows_the_stages_recorded_time(tmp_path, monkeypatch):
    """No record: the profile's first-run limit; a record: 4x the longest, at least 600 s; the environment wins."""
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("REWINTERP_CELL_TIMEOUT", raising=False)
    cell = get_stage("maze_expert").cell("smoke")
    assert limits_for(cell).cell_s == 1800 and limits_for(cell).idle_s == 120
    for name, elapsed in (("a", 90.0), ("b", 400.0)):
        (cell_dir(cell).parent / name).mkdir(parents=True)
        (cell_dir(cell).parent / name / "manifest.json").write_text(json.dumps({"elapsed_s": elapsed}))
    assert limits_for(cell).cell_s == 1600
    (cell_dir(cell).parent / "b" / "manifest.json").write_text(json.dumps({"elapsed_s": 20.0}))
    assert limits_for(cell).cell_s == 600
    monkeypatch.setenv("REWINTERP_CELL_TIMEOUT", "42")
    assert limits_for(cell).cell_s == 42


# ---------------------------------------------------------------------------------------------------- runner
def planted_notebooks(tmp_path: Path, hang_always: str, hang_once_marker: Path) -> Path:
    """Stage notebooks in which ``maze_retrain`` swallows its reply for good when ``reward == hang_always``, and
    once (``hang_once_marker``) for the other reward."""
    body = "\n".join("    " + line for line in SWALLOW_REPLY.splitlines())
    return plant_notebooks(tmp_path, "maze_retrain",
                           f"import pathlib\nmarker = pathlib.Path({str(hang_once_marker)!r})\n"
                           f"hang = reward == {hang_always!r} or not marker.exists()\n"
                           f"if reward != {hang_always!r}:\n    marker.touch()\n"
                           f"if hang:\n{body}")


def test_a_run_with_a_hung_cell_finishes_the_others_and_exits_1_naming_it(smoke, tmp_path, monkeypatch):
    """Gridworld at smoke, from the session's build with the retraining cells removed: every learned-reward cell
    never answers (code cell 4: after the install, parameters and injected-parameters cells) (failed after one retry, named with its code cell), the true-reward cell hangs once (retried,
    recorded in its manifest), every other retraining cell is made, Figure 3 (which reads them) is skipped."""
    root = tmp_path / "artifacts"
    shutil.copytree(smoke[0], root)
    shutil.rmtree(root / "smoke" / "maze_retrain")
    planted = planted_notebooks(tmp_path, "learned", tmp_path / "hung-once")
    env = {**os.environ, "REWINTERP_ARTIFACTS": str(root), "REWINTERP_IDLE_TIMEOUT": "3",
           "PYTHONPATH": os.pathsep.join([str(planted), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "rewinterp_utils.pipeline.cli", "run", "--profile", "smoke",
                           "--chapter", "gridworld"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 1, done.stderr[-3000:]
    monkeypatch.setattr(stages, "notebooks_dir", lambda: planted / "rewinterp_notebooks")  # the planted code's cells
    cells = get_stage("maze_retrain").cells("smoke")
    hung = [c for c in cells if c.params["reward"] == "learned"]
    assert hung and all(f"{c.describe()} failed" in done.stderr for c in hung), done.stderr[-3000:]
    assert "stopped answering on every attempt" in done.stderr
    assert "code cell 4 (`import pathlib`)" in done.stderr and "sent no reply" in done.stderr
    assert "maze_figure3: skipped: it reads maze_retrain, which did not complete" in done.stderr
    assert "results: skipped" in done.stderr, "the book's pages wait for a complete build"
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(root))
    others = [c for c in cells if c not in hung]
    assert others and all((cell_dir(c) / "manifest.json").is_file() for c in others), "the other cells went on"
    retried = [json.loads((cell_dir(c) / "manifest.json").read_text()).get("watchdog") for c in others]
    assert sum(bool(r) for r in retried) == 1, "exactly one cell hung once and was retried"
    assert "the rerun with a fresh kernel succeeded" in done.stderr

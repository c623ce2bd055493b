"""Profiles, stages, artifacts (atomic publishing, verification), model and transition I/O."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle

import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

import rewinterp_utils.reward_models as rm
from rewinterp_utils import artifacts as art
from rewinterp_utils.data import load_transitions, rollout_transitions, save_transitions
from rewinterp_utils.envs.maze import AGENT, GOAL
from rewinterp_utils.profiles import PROFILES, SIZES, check_profile, resolve
from rewinterp_utils.stages import COINFLIP, REWARDS, STAGES, TWOGOALS, check_chapter, get_stage
from rewinterp_utils.wrappers import LearnedRewardVecEnv

COINFLIP_ID = "EmptyMaze-10x10-CoinFlipGoal-v3"


# -- profiles ------------------------------------------------------------------------------------------
def test_profiles_cover_every_stage():
    assert PROFILES == ("smoke", "default", "paper")
    assert set(SIZES) == set(PROFILES)
    needed = {st.sizes for st in STAGES.values() if st.sizes}
    for p in PROFILES:
        assert needed <= set(SIZES[p])


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("stage", sorted(SIZES["default"]))
def test_resolve_every_stage_and_profile(stage, profile):
    cfg = resolve(stage, profile)
    assert cfg == SIZES[profile][stage]
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        assert isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
    # None overrides are ignored
    assert resolve(stage, profile, **{f.name: None for f in dataclasses.fields(cfg)}) == cfg


def test_resolve_known_values_and_overrides():
    assert resolve("maze_expert", "default").total_timesteps == 45_000
    assert resolve("maze_retrain", "default").n_seeds == 5
    assert resolve("maze_retrain", "paper").n_seeds == 10
    assert resolve("maze_dataset", "paper").n_train == 25_000
    cfg = resolve("maze_expert", "smoke", total_timesteps=2048, learning_rate=3e-4)
    assert cfg.total_timesteps == 2048 and cfg.learning_rate == 3e-4
    assert cfg.eval_freq == SIZES["smoke"]["maze_expert"].eval_freq
    assert SIZES["smoke"]["maze_expert"].total_timesteps == 1_024, "resolve must not modify the profile"
    # an int for a float field is fine
    assert resolve("maze_expert", "smoke", learning_rate=1).learning_rate == 1


def test_resolve_unknown_profile_stage_field():
    with pytest.raises(ValueError) as e:
        resolve("maze_expert", "fast")
    assert all(p in str(e.value) for p in ("smoke", "default", "paper"))
    with pytest.raises(ValueError) as e:
        resolve("maze_expertt", "smoke")
    assert "maze_expert" in str(e.value) and "maze_retrain" in str(e.value)
    with pytest.raises(ValueError) as e:
        resolve("maze_expert", "smoke", total_steps=10)
    assert "total_steps" in str(e.value) and "total_timesteps" in str(e.value)
    with pytest.raises(ValueError, match="smoke"):
        check_profile("SMOKE")
    assert check_profile("paper") == "paper"


@pytest.mark.parametrize(
    "stage, field, value",
    [
        ("maze_expert", "total_timesteps", 0),
        ("maze_expert", "total_timesteps", -5),
        ("maze_expert", "total_timesteps", 1.5),
        ("maze_expert", "total_timesteps", 2.0),
        ("maze_expert", "total_timesteps", "100"),
        ("maze_expert", "total_timesteps", True),
        ("maze_expert", "learning_rate", 0.0),
        ("maze_expert", "learning_rate", -1e-3),
        ("maze_expert", "gamma", "0.9"),
        ("maze_dataset", "n_train", 0),
        ("maze_dataset", "n_envs", -1),
        ("maze_reward_model", "epochs", 0.5),
        ("maze_counterfactuals", "max_placements", 0),
        ("maze_retrain", "n_seeds", 0),
        ("maze_retrain", "n_seeds", 2.5),
        ("maze_retrain", "eval_freq", -1000),
    ],
)
def test_resolve_rejects_bad_sizes(stage, field, value):
    with pytest.raises(ValueError) as e:
        resolve(stage, "smoke", **{field: value})
    assert field in str(e.value)


def test_resolve_rejects_nan():
    with pytest.raises(ValueError):
        resolve("maze_expert", "smoke", learning_rate=float("nan"))


# -- stages --------------------------------------------------------------------------------------------
def test_stage_params_defaults_and_valid_values():
    st = get_stage("maze_expert")
    assert st.params() == {"seed": 0, "env_id": COINFLIP}
    assert st.params(seed=3, env_id="Maze-10x10-TwoGoals-v3") == {"seed": 3, "env_id": "Maze-10x10-TwoGoals-v3"}
    assert st.params(seed=None) == {"seed": 0, "env_id": COINFLIP}
    rt = get_stage("maze_retrain")
    assert rt.params(reward="true")["reward"] == "true"
    assert rt.params() == {"env_id": COINFLIP, "reward": "learned", "seed": 0, "rm_env_id": COINFLIP, "rm_seed": 0}


@pytest.mark.parametrize("bad", [-1, 1.5, True, False, "0", [0]])
def test_stage_params_rejects_bad_seed(bad):
    for name in ("maze_expert", "maze_retrain"):
        with pytest.raises(ValueError, match="seed"):
            get_stage(name).params(seed=bad)
    with pytest.raises(ValueError, match="rm_seed"):
        get_stage("maze_retrain").params(rm_seed=bad)


def test_stage_params_rejects_bad_env_reward_and_unknown():
    with pytest.raises(ValueError, match="valid ids"):
        get_stage("maze_expert").params(env_id="CartPole-v1")
    with pytest.raises(ValueError, match="valid ids"):
        get_stage("maze_retrain").params(rm_env_id="EmptyMaze-10x10-CoinFlipGoal-v2")
    with pytest.raises(ValueError) as e:
        get_stage("maze_retrain").params(reward="oracle")
    assert "true" in str(e.value) and "learned" in str(e.value)
    with pytest.raises(ValueError, match="reward"):
        get_stage("maze_expert").params(reward="true")  # the expert has no reward parameter
    with pytest.raises(ValueError):
        get_stage("maze_expert").params(sed=1)


def test_get_stage_and_chapter():
    with pytest.raises(ValueError) as e:
        get_stage("maze_expet")
    assert "maze_expert" in str(e.value)
    assert check_chapter("all") == ("gridworld", "atari", "table1")
    assert check_chapter("gridworld") == ("gridworld",)
    with pytest.raises(ValueError, match="gridworld"):
        check_chapter("mars")


def test_stage_keys():
    assert get_stage("maze_expert").key({"env_id": COINFLIP, "seed": 0}) == f"{COINFLIP}_seed0"
    assert get_stage("maze_retrain").key({"env_id": TWOGOALS, "reward": "true", "seed": 3}) == f"{TWOGOALS}_true_seed3"
    assert get_stage("maze_figure3").key({"rm_seed": 0}) == "all"


@pytest.mark.parametrize("profile, n", [("smoke", 1), ("default", 5), ("paper", 10)])
def test_retrain_grid(profile, n):
    st = get_stage("maze_retrain")
    grid = st.grid(profile)
    assert len(grid) == 2 * 2 * n
    assert {g["env_id"] for g in grid} == {COINFLIP, TWOGOALS}
    assert {g["reward"] for g in grid} == set(REWARDS) == {"true", "learned"}
    assert {g["seed"] for g in grid} == set(range(n))
    assert len({st.key(st.params(**g)) for g in grid}) == len(grid)
    assert len(st.grid(profile, n_seeds=2)) == 8
    with pytest.raises(ValueError):
        st.grid(profile, n_seeds=0)


def test_other_grids():
    assert get_stage("maze_expert").grid("default") == [{}]
    assert get_stage("maze_figure3").grid("default") == [{}]
    assert get_stage("maze_figure3").grid("default", n_seeds=3) == [{"n_seeds": 3}]


# -- artifacts -----------------------------------------------------------------------------------------
@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path))
    return tmp_path


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _finish(run, content=b"weights", metrics=None):
    run.path("model.pt").write_bytes(content)
    return run.finish(metrics if metrics is not None else {"loss": 0.5})


def test_artifacts_root(root):
    assert art.artifacts_root() == root.resolve()


@pytest.mark.parametrize(
    "stage, profile, given",
    [
        ("maze_expert", "smoke", {"seed": -1}),
        ("maze_expert", "smoke", {"seed": 1.5}),
        ("maze_expert", "smoke", {"seed": True}),
        ("maze_expert", "smoke", {"env_id": "CartPole-v1"}),
        ("maze_expert", "smoke", {"total_timesteps": 0}),
        ("maze_expert", "smoke", {"no_such_size": 3}),
        ("maze_expert", "fast", {}),
        ("maze_expertt", "smoke", {}),
        ("maze_retrain", "smoke", {"reward": "oracle"}),
        ("maze_retrain", "smoke", {"rm_seed": -2}),
    ],
)
def test_open_stage_bad_input_writes_nothing(root, stage, profile, given):
    with pytest.raises(ValueError):
        art.open_stage(stage, profile, **given)
    assert list(root.iterdir()) == []


def test_unfinished_run_is_never_accepted(root):
    run = art.open_stage("maze_expert", "smoke", seed=0)
    assert run.dir.is_dir() and run.dir.name.startswith(".")
    run.path("model.pt").write_bytes(b"half written")
    (run.dir / "manifest.json").write_text("{}")  # even a stray manifest in the temp folder is ignored
    ident = art.identity("maze_expert", "smoke", seed=0)
    assert not art.is_complete(ident)
    assert not art.cell_dir(ident).exists()
    with pytest.raises(art.ArtifactError, match="missing"):
        art.require("maze_expert", "smoke", seed=0)
    # a later complete run still works next to the abandoned temp folder
    folder = _finish(art.open_stage("maze_expert", "smoke", seed=0))
    assert art.require("maze_expert", "smoke", seed=0) == folder


def test_finish_publishes_manifest_and_metrics(root):
    run = art.open_stage("maze_expert", "smoke", seed=1)
    assert run.config == resolve("maze_expert", "smoke")
    ident = art.identity("maze_expert", "smoke", seed=1)
    assert run.identity == ident
    assert ident["sizes"] == dataclasses.asdict(resolve("maze_expert", "smoke"))
    tmp = run.dir
    folder = _finish(run, b"abc", {"loss": 0.25, "return": 1.0})
    assert folder == art.cell_dir(ident) == root.resolve() / "smoke" / "maze_expert" / f"{COINFLIP_ID}_seed1"
    assert not tmp.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "metrics.json", "model.pt"]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name], "no temp folder left behind"
    metrics = art.read_metrics(folder)
    assert metrics["loss"] == 0.25 and metrics["return"] == 1.0
    timing = [k for k in metrics if k.startswith("timing.")]
    assert timing == [f"timing.maze_expert.{COINFLIP_ID}_seed1_s"]
    assert metrics[timing[0]] >= 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["identity"] == ident
    assert manifest["files"] == {
        "metrics.json": hashlib.sha256((folder / "metrics.json").read_bytes()).hexdigest(),
        "model.pt": hashlib.sha256(b"abc").hexdigest(),
    }
    assert art.require("maze_expert", "smoke", seed=1) == folder
    assert art.is_complete(ident)
    assert run.require("maze_expert", seed=1) == folder


def test_require_other_parameters(root):
    _finish(art.open_stage("maze_expert", "smoke", seed=0))
    # another seed: another folder, missing
    with pytest.raises(art.ArtifactError, match="missing"):
        art.require("maze_expert", "smoke", seed=1)
    # another profile
    with pytest.raises(art.ArtifactError, match="missing"):
        art.require("maze_expert", "default", seed=0)
    # same folder, other sizes: other parameters
    with pytest.raises(art.ArtifactError, match="other parameters") as e:
        art.require("maze_expert", "smoke", seed=0, total_timesteps=2048)
    assert "'sizes'" in str(e.value) and "2048" in str(e.value)
    assert "--force" in str(e.value)


def test_require_edited_manifest_identity(root):
    folder = _finish(art.open_stage("maze_expert", "smoke", seed=0))
    mpath = folder / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["identity"]["sizes"]["gamma"] = 0.5
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(art.ArtifactError, match="other parameters"):
        art.require("maze_expert", "smoke", seed=0)
    assert not art.is_complete(art.identity("maze_expert", "smoke", seed=0))


@pytest.mark.parametrize("name", ["model.pt", "metrics.json"])
def test_require_corrupt_file(root, name):
    folder = _finish(art.open_stage("maze_expert", "smoke", seed=0), b"0123456789")
    f = folder / name
    data = bytearray(f.read_bytes())
    data[0] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(art.ArtifactError, match="corrupt"):
        art.require("maze_expert", "smoke", seed=0)


def test_require_deleted_file_and_bad_manifest(root):
    folder = _finish(art.open_stage("maze_expert", "smoke", seed=0))
    (folder / "model.pt").unlink()
    with pytest.raises(art.ArtifactError, match="corrupt"):
        art.require("maze_expert", "smoke", seed=0)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(art.ArtifactError, match="corrupt"):
        art.require("maze_expert", "smoke", seed=0)


def test_missing_message_says_what_to_run(root):
    with pytest.raises(art.ArtifactError) as e:
        art.require("maze_expert", "smoke", seed=2)
    msg = str(e.value)
    assert "notebooks/maze_expert.ipynb" in msg
    assert "rewinterp run" in msg and "--profile smoke" in msg and "--chapter gridworld" in msg
    assert "'seed': 2" in msg
    with pytest.raises(art.ArtifactError) as e:
        art.require("maze_retrain", "default", reward="true", seed=4)
    assert "notebooks/maze_retrain.ipynb" in str(e.value)


def test_rerun_replaces_old_folder(root):
    run1 = art.open_stage("maze_expert", "smoke", seed=0)
    run1.path("old_only.txt").write_text("x")
    folder1 = _finish(run1, b"first")
    folder2 = _finish(art.open_stage("maze_expert", "smoke", seed=0), b"second", {"loss": 0.1})
    assert folder1 == folder2
    assert (folder2 / "model.pt").read_bytes() == b"second"
    assert not (folder2 / "old_only.txt").exists()
    assert art.read_metrics(folder2)["loss"] == 0.1
    assert [p.name for p in folder2.parent.iterdir()] == [folder2.name], "old/temp folders must be removed"
    assert art.require("maze_expert", "smoke", seed=0) == folder2


def test_figure3_cell(root):
    run = art.open_stage("maze_figure3", "smoke", n_seeds=2)
    assert run.config.n_seeds == 2
    folder = run.finish({})
    assert folder.name == "all"
    assert art.require("maze_figure3", "smoke", n_seeds=2) == folder
    with pytest.raises(art.ArtifactError, match="other parameters"):
        art.require("maze_figure3", "smoke")


# -- reward model I/O ----------------------------------------------------------------------------------
def test_save_load_model_round_trip(tmp_path, monkeypatch):
    torch.manual_seed(0)
    a = rm.MazeRewardMLP()
    torch.manual_seed(1)
    b = rm.MazeRewardMLP().train()
    path = tmp_path / "rm.pt"
    rm.save_model(a, path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    out = rm.load_model(b, path)
    assert out is b and not b.training
    assert calls and calls[0].get("weights_only") is True
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randint(0, 4, (3, 11, 11), dtype=torch.uint8)
    assert torch.equal(a(x, x), b(x, x))
    assert a.net[-1].bias is None


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_model_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        rm.load_model(rm.MazeRewardMLP(), path)


# -- transition data -----------------------------------------------------------------------------------
def oracle(s, s_next):
    return ((s_next == AGENT) & (s == GOAL)).any(axis=(1, 2)).astype(np.float32)


@pytest.mark.parametrize("env_id", [COINFLIP_ID, "Maze-10x10-TwoGoals-v3"])
def test_rollout_transitions_random_policy(env_id):
    n_envs, n = 4, 2_001
    venv = make_vec_env(env_id, n_envs=n_envs, seed=0)
    d = rollout_transitions(None, venv, n)
    assert set(d) == {"s", "s_next", "reward", "done", "learned_reward"}
    assert d["s"].shape == d["s_next"].shape == (n, 11, 11)
    assert d["s"].dtype == d["s_next"].dtype == np.uint8
    for k in ("reward", "done", "learned_reward"):
        assert d[k].shape == (n,)
    assert d["reward"].dtype == np.float32 and d["done"].dtype == bool
    assert set(np.unique(d["reward"]).tolist()) == {0.0, 1.0}
    assert np.array_equal(d["learned_reward"], d["reward"])  # no wrapper: the env's own reward
    # every row: exactly one agent in s and s', the agent moved at most one cell
    for key in ("s", "s_next"):
        assert ((d[key] == AGENT).sum(axis=(1, 2)) == 1).all()
    pos = np.argwhere(d["s"] == AGENT)[:, 1:]
    pos_next = np.argwhere(d["s_next"] == AGENT)[:, 1:]
    assert (np.abs(pos - pos_next).sum(axis=1) <= 1).all()
    # terminating variant: reward 1 exactly on goal-entering steps, which all end their episode
    np.testing.assert_array_equal(d["reward"], oracle(d["s"], d["s_next"]))
    ones = d["reward"] == 1
    assert ones.sum() >= 5 and d["done"][ones].all()
    assert (d["reward"][~d["done"]] == 0).all()
    for k in np.flatnonzero(ones):
        r, c = pos_next[k]
        assert d["s"][k, r, c] == GOAL and d["s_next"][k, r, c] == AGENT
    # rows are step-major: row k + n_envs continues row k's episode unless row k ended it
    for k in range(n - n_envs):
        if d["done"][k]:
            assert ((d["s"][k + n_envs] == GOAL).sum() >= 1)
        else:
            assert np.array_equal(d["s"][k + n_envs], d["s_next"][k]), k
    assert d["done"].sum() >= 5


def test_rollout_transitions_wrapped_and_io(tmp_path):
    venv = LearnedRewardVecEnv(make_vec_env(COINFLIP_ID, n_envs=3, seed=1), lambda s, s2: 2 * oracle(s, s2) + 0.25)
    d = rollout_transitions(None, venv, 700)
    assert d["s"].shape == (700, 11, 11)
    np.testing.assert_array_equal(d["learned_reward"], 2 * d["reward"] + 0.25)
    assert (d["reward"] == 1).any()
    path = tmp_path / "t.npz"
    save_transitions(path, d)
    back = load_transitions(path)
    assert back.keys() == d.keys()
    for k in d:
        assert back[k].dtype == d[k].dtype and np.array_equal(back[k], d[k])
    with pytest.raises(ValueError):
        rollout_transitions(None, venv, 0)


def test_corrupt_file_in_subfolder_detected(root):
    run = art.open_stage("maze_expert", "smoke", seed=0)
    run.path("evals").mkdir()
    (run.path("evals") / "e.npz").write_bytes(b"abc")
    folder = run.finish({})
    (folder / "evals" / "e.npz").write_bytes(b"corrupted")
    with pytest.raises(art.ArtifactError, match="corrupt"):
        art.require("maze_expert", "smoke", seed=0)


def test_remade_upstream_invalidates_downstream(root):
    _finish(art.open_stage("maze_expert", "smoke", seed=0))
    run = art.open_stage("maze_dataset", "smoke", seed=0)
    run.require("maze_expert", seed=0)
    _finish(run)
    ident = art.identity("maze_dataset", "smoke", seed=0)
    assert art.is_complete(ident)
    _finish(art.open_stage("maze_expert", "smoke", seed=0), b"retrained")  # the expert is remade
    assert not art.is_complete(ident)
    with pytest.raises(art.ArtifactError, match="upstream artifact that has changed"):
        art.verify(ident)


def test_stage_failing_before_writing_leaves_no_folder(root):
    run = art.open_stage("maze_dataset", "smoke", seed=0)
    with pytest.raises(art.ArtifactError):
        run.require("maze_expert", seed=0)
    assert list(root.rglob("*")) == []

"""The one reward-model interface: RewardModel.predict against a plain per-sample loop, its mode and shape
rules, plain functions as reward models, and saved files with their header (round trip and bad files)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from helpers import random_stacks as stacks
from torch import nn

import rewinterp_utils.reward_models as rm
from rewinterp_utils.envs.maze import AGENT, GOAL

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def grids(n: int, seed: int = 0, shape: tuple[int, int] = (11, 11)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, (n, *shape)).astype(np.uint8)


def loop(model: nn.Module, *arrays: np.ndarray) -> np.ndarray:
    """The oracle: one plain forward pass per sample, float32 tensors, no gradients."""
    with torch.no_grad():
        return np.array([float(model(*(torch.as_tensor(a[i:i + 1], dtype=torch.float32) for a in arrays))[0])
                         for i in range(len(arrays[0]))])


# -- predict ------------------------------------------------------------------------------------------------
def test_predict_equals_a_plain_per_sample_loop():
    torch.manual_seed(0)
    maze = rm.MazeRewardMLP(hidden=16)
    s, s_next = grids(37, 1), grids(37, 2)
    out = maze.predict(s, s_next, batch_size=8)  # 37 = 4 full chunks and a partial one
    assert out.shape == (37,) and out.dtype == np.float32
    np.testing.assert_allclose(out, loop(maze, s, s_next), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maze.predict(s=s, s_next=s_next), out, rtol=1e-5, atol=1e-6)
    normalised = rm.Normalised(maze, 0.25, -3.0)
    np.testing.assert_allclose(normalised.predict(s, s_next, batch_size=5), (loop(maze, s, s_next) + 0.25) * -3.0,
                               rtol=1e-5, atol=1e-5)
    atari = rm.AtariRewardCNN()
    obs = stacks(5)
    np.testing.assert_allclose(atari.predict(obs, batch_size=2), loop(atari, obs), rtol=1e-5, atol=1e-6)
    # by name, a model of s' takes s' and leaves s alone
    np.testing.assert_allclose(atari.predict(s=stacks(5, 9), s_next=obs), loop(atari, obs), rtol=1e-5, atol=1e-6)
    assert maze.predict(s[:0], s_next[:0]).shape == (0,)


class Probe(rm.RewardModel):
    """Records the mode and the gradient switch each forward pass ran under."""

    inputs = ("s_next",)

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, s_next: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        return self.weight * s_next.flatten(1).float().sum(dim=1)


@pytest.mark.parametrize("training", [True, False])
def test_predict_runs_in_eval_mode_without_gradients_and_restores_the_mode(training):
    model = Probe().train(training)
    out = model.predict(np.ones((5, 2, 2)), batch_size=2)
    assert out.tolist() == [4.0] * 5
    assert model.seen == [(False, False)] * 3
    assert model.training is training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_runs_on_the_models_device():
    torch.manual_seed(0)
    model = rm.MazeRewardMLP(hidden=16)
    s, s_next = grids(300, 1), grids(300, 2)
    on_cpu = model.predict(s, s_next)
    model.to("cuda")
    assert model.device.type == "cuda"
    np.testing.assert_allclose(model.predict(s, s_next, batch_size=128), on_cpu, rtol=1e-5, atol=1e-5)


def test_predict_restores_the_mode_when_the_model_fails():
    class Broken(Probe):
        def forward(self, s_next):
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        model.predict(np.ones((2, 2, 2)))
    assert model.training


def test_wrong_input_shapes_name_the_expected_and_received_shapes():
    maze, atari = rm.MazeRewardMLP(hidden=4), rm.AtariRewardCNN()
    with pytest.raises(ValueError, match=re.escape("s must have shape (n, 11, 11), got (5, 10, 11)")):
        maze.predict(grids(5, shape=(10, 11)), grids(5))
    with pytest.raises(ValueError, match=re.escape("s_next must have shape (n, 11, 11), got (11, 11)")):
        maze.predict(grids(5), grids(1)[0])
    with pytest.raises(ValueError, match=re.escape("s_next must have shape (n, 84, 84, 4), got (2, 4, 84, 84)")):
        atari.predict(stacks(2).transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match=re.escape("reads 2 array(s) (s, s_next), got 1")):
        maze.predict(grids(5))
    with pytest.raises(ValueError, match="differ in length"):
        maze.predict(grids(5), grids(4))
    with pytest.raises(ValueError, match="reads s, s_next; got arrays named s_next"):
        maze.predict(s_next=grids(5))
    with pytest.raises(ValueError, match="either in order or by name"):
        maze.predict(grids(5), s_next=grids(5))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        maze.predict(grids(5), grids(5), batch_size=0)


def test_a_model_that_returns_the_wrong_shape_is_refused():
    class Wide(rm.RewardModel):
        def forward(self, s, s_next):
            return torch.zeros(len(s), 2)

    with pytest.raises(ValueError, match=re.escape("Wide must return one reward per sample, shape (3,), got (3, 2)")):
        Wide().predict(grids(3), grids(3))


# -- plain functions ----------------------------------------------------------------------------------------
def test_a_plain_function_becomes_a_reward_model():
    seen = []

    def true_reward(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
        seen.append((s.dtype, len(s)))
        return ((s_next == AGENT) & (s == GOAL)).any(axis=(1, 2))  # bool: becomes a float reward

    s = np.zeros((3, 11, 11), np.uint8)
    s[:, 1, 1] = GOAL
    s[:, 1, 2] = AGENT
    s_next = s.copy()
    s_next[0, 1, 1], s_next[0, 1, 2] = AGENT, 0  # stepped onto the goal
    model = rm.as_reward_model(true_reward)
    assert model.inputs == ("s", "s_next") and rm.as_reward_model(model) is model
    assert model.predict(s, s_next).tolist() == [1.0, 0.0, 0.0]
    assert seen == [(np.uint8, 3)]  # the function sees the grids as given, the whole batch at once
    next_only = rm.as_reward_model(lambda s_next: (s_next == AGENT).sum(axis=(1, 2)), inputs=("s_next",))
    assert next_only.predict(s=s, s_next=s_next).tolist() == [1.0, 1.0, 1.0]


def test_as_reward_model_refuses_what_it_cannot_wrap():
    class Unlabelled(nn.Module):
        def forward(self, s, s_next):
            return s.sum()

    with pytest.raises(ValueError, match="Unlabelled is a torch module but not a RewardModel"):
        rm.as_reward_model(Unlabelled())
    with pytest.raises(ValueError, match="inputs must be one of"):
        rm.as_reward_model(lambda s: s, inputs=("obs",))
    with pytest.raises(ValueError, match=re.escape("MazeRewardMLP reads ('s', 's_next'), not ('s_next',)")):
        rm.as_reward_model(rm.MazeRewardMLP(hidden=4), inputs=("s_next",))
    with pytest.raises(ValueError, match="expected a RewardModel or a function"):
        rm.as_reward_model(3.0)


# -- saved files --------------------------------------------------------------------------------------------
def _models() -> list[rm.RewardModel]:
    torch.manual_seed(0)
    return [rm.MazeRewardMLP((7, 7), hidden=5), rm.AtariRewardCNN(n_stack=2, size=84),
            rm.Normalised(rm.MazeRewardMLP(hidden=3), 0.5, -2.0)]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_save_load_round_trip(tmp_path, monkeypatch, index):
    model = _models()[index].train()
    path = tmp_path / "rm.pt"
    rm.save_model(model, path)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    out = rm.load_model(path)
    assert calls and calls[0].get("weights_only") is True
    assert type(out) is type(model) and out is not model and not out.training
    assert out.config() == model.config() and out.inputs == model.inputs
    sa, sb = model.state_dict(), out.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_reward_model_reads_the_stage_file(tmp_path):
    model = _models()[2]
    rm.save_model(model, tmp_path / rm.MODEL_FILE)
    out = rm.load_reward_model(tmp_path)
    s, s_next = grids(4, 3), grids(4, 4)
    np.testing.assert_array_equal(out.predict(s, s_next), model.predict(s, s_next))
    assert out.model.hidden == 3 and float(out.shift) == 0.5 and float(out.scale) == -2.0


def test_a_function_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="a FunctionReward cannot be saved"):
        rm.save_model(rm.as_reward_model(lambda s, s_next: s.sum()), tmp_path / "f.pt")
    assert not (tmp_path / "f.pt").exists()


def _header(model: rm.RewardModel, **changes) -> dict:
    return {"format": rm.FORMAT, "kind": type(model).__name__, "config": model.config(),
            "state_dict": model.state_dict(), **changes}


def test_bad_files_name_the_file_and_what_is_wrong(tmp_path):
    maze = rm.MazeRewardMLP(hidden=8)
    cases = {
        "plain_state_dict.pt": (maze.state_dict(), "has no reward-model header"),
        "unknown_kind.pt": (_header(maze, kind="Transformer"),
                            "unknown reward-model kind 'Transformer'; known kinds: MazeRewardMLP"),
        "wrong_width.pt": (_header(maze, config={"grid_shape": [11, 11], "hidden": 16}),
                           "the weights do not fit the header's MazeRewardMLP"),
        "wrong_grid.pt": (_header(maze, config={"grid_shape": [9, 9], "hidden": 8}),
                          "the weights do not fit the header's MazeRewardMLP"),
        "missing_weights.pt": (_header(maze, state_dict={k: v for k, v in maze.state_dict().items()
                                                        if k != "net.5.weight"}),
                               "the weights do not fit the header's MazeRewardMLP"),
        "bad_config.pt": (_header(maze, config={"width": 8}), "does not build a MazeRewardMLP"),
    }
    for name, (payload, what) in cases.items():
        path = tmp_path / name
        torch.save(payload, path)
        with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(what)):
            rm.load_model(path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_load_model_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        rm.load_model(path)


def test_fit_shuffled_atari_is_the_regression_on_permuted_rewards():
    """Oracle: the same model and fit written out by hand, with the rewards permuted by the seed's generator."""
    from rewinterp_utils.reward_models import (
        AtariRewardCNN,
        fit_regression,
        fit_shuffled_atari,
    )

    rng = np.random.default_rng(3)
    obs = rng.integers(0, 256, (6, 84, 84, 4), dtype=np.uint8)
    rewards = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    ours = fit_shuffled_atari(obs, rewards, epochs=1, batch_size=3, learning_rate=1e-3, seed=4)
    torch.manual_seed(0)
    by_hand = AtariRewardCNN()
    shuffled = torch.tensor(np.random.default_rng(4).permutation(rewards), dtype=torch.float32)
    assert not np.array_equal(shuffled.numpy(), rewards)  # the seed does move the rewards
    fit_regression(by_hand, (torch.as_tensor(obs),), shuffled, 1, 3, 1e-3, seed=4)
    assert not ours.training
    for (name, a), (_, b) in zip(ours.state_dict().items(), by_hand.state_dict().items()):
        assert torch.equal(a, b), name

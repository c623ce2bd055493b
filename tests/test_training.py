"""The regression recipes: fit_maze_reward_model against the recipe written out with fit_regression, its
shuffled-target and nudged variants, and the one-ulp nudge against numpy's nextafter; fit_atari_reward_model against
the fit the Atari reward-model notebook used to write out; per-class held-out error against a plain loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rewinterp_utils.reward_models import AtariRewardCNN, MazeRewardMLP, fit_regression
from rewinterp_utils.training import fit_atari_reward_model, fit_maze_reward_model, heldout_errors, nudge_weights


def _data(n: int = 31) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"s": rng.integers(0, 4, (n, 11, 11)).astype(np.float32),
            "s_next": rng.integers(0, 4, (n, 11, 11)).astype(np.float32),
            "reward": rng.integers(0, 2, n).astype(np.float32)}


def _state(model: torch.nn.Module) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in model.parameters()]


def test_fit_maze_reward_model_is_the_written_out_recipe():
    d = _data()
    ours, history = fit_maze_reward_model(d, 8, epochs=2, batch_size=5, learning_rate=1e-3, seed=7)
    torch.manual_seed(7)
    plain = MazeRewardMLP(hidden=8)
    fit_regression(plain, (torch.as_tensor(d["s"]), torch.as_tensor(d["s_next"])), torch.as_tensor(d["reward"]),
                   2, 5, 1e-3, seed=7)
    assert len(history) == 2 and not ours.training
    for a, b in zip(_state(ours), _state(plain)):
        np.testing.assert_array_equal(a, b)
    shuffled, _ = fit_maze_reward_model(d, 8, 2, 5, 1e-3, seed=7, targets=d["reward"][::-1].copy())
    assert any((a != b).any() for a, b in zip(_state(shuffled), _state(plain)))


def test_nudge_moves_every_weight_by_one_ulp():
    torch.manual_seed(0)
    model = MazeRewardMLP(hidden=8)
    before = _state(model)
    nudge_weights(model)
    for a, b in zip(before, _state(model)):
        np.testing.assert_array_equal(b, np.nextafter(a, np.float32(np.inf)))
    d = _data()
    nudged, _ = fit_maze_reward_model(d, 8, 1, 5, 1e-3, seed=0, nudge=True)
    plain, _ = fit_maze_reward_model(d, 8, 1, 5, 1e-3, seed=0)
    assert any((a != b).any() for a, b in zip(_state(nudged), _state(plain)))


def test_the_atari_fit_is_the_notebook_fit_it_replaced(one_torch_thread):
    """Oracle: the ``fit`` of ``atari_reward_model.ipynb`` before the package took it over, pasted verbatim (uint8
    stacks and float32 rewards as the notebook read them from the dataset): the same seed gives bit for bit the same
    weights, history and per-class held-out errors, so the book's Atari reward models did not change."""
    rng = np.random.default_rng(5)
    train = {"obs_shown": rng.integers(0, 256, (10, 84, 84, 4), dtype=np.uint8),
             "reward": np.array([1, 0, 0, 1, -1, 0, 1, 0, 0, 1], np.float32)}
    test = {"obs_shown": rng.integers(0, 256, (6, 84, 84, 4), dtype=np.uint8),
            "reward": np.array([1, 0, -1, 0, 0, 1], np.float32)}
    model_seed, batch_size, learning_rate, epochs = 3, 4, 3e-4, 2
    x_train, y_train = torch.as_tensor(train["obs_shown"]), torch.as_tensor(train["reward"])
    x_test, y_test = torch.as_tensor(test["obs_shown"]), torch.as_tensor(test["reward"])

    def mse(pred, y, where=None) -> float:  # the notebook's, verbatim
        pred, y = np.asarray(pred), np.asarray(y)
        if where is not None:
            pred, y = pred[where], y[where]
        return float(np.mean((pred - y) ** 2))

    def fit(learning_rate, epochs):  # the notebook's, verbatim
        torch.manual_seed(model_seed)
        model = AtariRewardCNN()
        history = fit_regression(model, (x_train,), y_train, epochs, batch_size, learning_rate, seed=model_seed,
                                 evaluate=lambda m: {"test MSE": mse(m.predict(x_test), y_test)})
        return model, pd.DataFrame(history).set_index("epoch")

    old, old_history = fit(learning_rate, epochs)
    new, history = fit_atari_reward_model(train["obs_shown"], train["reward"], epochs, batch_size, learning_rate,
                                          model_seed, evaluate=lambda m: {"test MSE": mse(m.predict(x_test), y_test)})
    assert not new.training
    for (name, a), (_, b) in zip(old.state_dict().items(), new.state_dict().items()):
        assert torch.equal(a, b), name
    pd.testing.assert_frame_equal(pd.DataFrame(history).set_index("epoch"), old_history, check_exact=True)
    pred = new.predict(test["obs_shown"])
    rewarded = (y_test != 0).numpy()
    errors = heldout_errors(pred, test["reward"])
    assert errors.loc["rewarded", "MSE"] == mse(pred, y_test, rewarded)
    assert errors.loc["unrewarded", "MSE"] == mse(pred, y_test, ~rewarded)
    assert errors.loc["rewarded", "mean R"] == float(pred[rewarded].mean())
    other, _ = fit_atari_reward_model(train["obs_shown"], train["reward"], 1, batch_size, learning_rate, model_seed + 1)
    assert any(not torch.equal(a, b) for a, b in zip(other.state_dict().values(), old.state_dict().values()))


def heldout_by_hand(pred, reward) -> dict[str, tuple[int, float, float]]:
    """Oracle: one pass over the inputs, each into its class (any reward but 0 is rewarded: a clipped loss of -1 too),
    summing in Python floats; (count, mean prediction, mean squared error) per class."""
    sums = {"rewarded": [0, 0.0, 0.0], "unrewarded": [0, 0.0, 0.0]}
    for p, r in zip(pred.tolist(), reward.tolist()):
        acc = sums["rewarded" if r != 0 else "unrewarded"]
        acc[0] += 1
        acc[1] += p
        acc[2] += (p - r) ** 2
    return {k: (n, s / n if n else math.nan, q / n if n else math.nan) for k, (n, s, q) in sums.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_heldout_errors_per_class_against_a_plain_loop(dtype):
    """Rewards of -1 are a class of their own in no naive split (``reward > 0`` would call them unrewarded), and the
    classes are unbalanced (a pooled error would hide the rare one); float32 stays float32 (the notebook's numbers)."""
    rng = np.random.default_rng(2)
    reward = rng.choice([0.0, 0.0, 0.0, 1.0, -1.0], 200).astype(dtype)
    pred = (reward * 0.7 + rng.normal(0, 0.2, 200)).astype(dtype)
    table = heldout_errors(pred, reward)
    for cls, (n, mean_r, err) in heldout_by_hand(pred, reward).items():
        assert table.loc[cls, "n"] == n
        assert table.loc[cls, "mean R"] == pytest.approx(mean_r, rel=1e-5 if dtype == np.float32 else 1e-12)
        assert table.loc[cls, "MSE"] == pytest.approx(err, rel=1e-5 if dtype == np.float32 else 1e-12)
    assert table.loc["rewarded", "n"] > (reward > 0).sum()
    none = heldout_errors(np.array([0.5, 0.2]), np.zeros(2))
    assert none.loc["rewarded", "n"] == 0 and np.isnan(none.loc["rewarded", "MSE"])
    with pytest.raises(ValueError, match="one length"):
        heldout_errors(np.zeros(3), np.zeros(2))


def test_a_bf16_trained_atari_model_trains_its_convolutions_in_bf16_and_predicts_in_fp32(tmp_path):
    """Training mode with ``train_precision="bf16"``: the features differ from fp32's by bf16's rounding only; eval
    mode: exactly the float32 computation of the same weights; the setting survives saving."""
    from rewinterp_utils.reward_models import load_model, save_model

    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.integers(0, 256, (6, 84, 84, 4), dtype=np.uint8))
    torch.manual_seed(0)
    bf = AtariRewardCNN(train_precision="bf16")
    fp = AtariRewardCNN()
    fp.load_state_dict(bf.state_dict())
    with torch.no_grad():
        bf.train(), fp.train()
        a, b = bf(x), fp(x)
        assert a.dtype == torch.float32 and not torch.equal(a, b)
        assert float((a - b).abs().max()) < 0.05 * float(b.abs().max()) + 1e-3
        bf.eval(), fp.eval()
        assert torch.equal(bf(x), fp(x))
    save_model(bf, tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").config()["train_precision"] == "bf16"
    with pytest.raises(ValueError, match="fp32 or bf16"):
        AtariRewardCNN(train_precision="fp16")
    model, history = fit_atari_reward_model(x.numpy(), np.array([0, 1, 0, 1, 0, 1], np.float32), 2, 3, 1e-3, 0,
                                            train_precision="bf16")
    assert model.train_precision == "bf16" and len(history) == 2 and np.isfinite(history[-1]["train MSE"])

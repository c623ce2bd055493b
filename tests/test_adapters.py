"""Every kind of reward a researcher has gives the same numbers through ``transition_reward``: the oracle is the
reward written out by hand on the same batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from rewinterp_utils.adapters import from_state_dict, transition_reward
from rewinterp_utils.reward_models import FunctionReward

RNG = np.random.default_rng(0)
S, A, S2 = RNG.normal(size=(7, 3)), RNG.integers(0, 2, 7), RNG.normal(size=(7, 3))
DONE = np.array([0, 0, 1, 0, 0, 0, 1], bool)


def by_hand(s, a, s_next, done):
    """The reward every adapter wraps: a linear function of all four inputs."""
    return s_next.sum(axis=1) - 0.5 * s[:, 0] + 0.25 * a - 2.0 * done


class Linear(nn.Module):
    def forward(self, s, a, s_next, done):
        return s_next.sum(dim=1) - 0.5 * s[:, 0] + 0.25 * a - 2.0 * done


class ImitationStyle(nn.Module):
    """Duck-typed like ``imitation.rewards.reward_nets.RewardNet``: ``preprocess`` (numpy -> tensors, actions
    one-hot) and ``forward`` on tensors; no ``predict`` of its own here."""

    def __init__(self):
        super().__init__()
        self.observation_space, self.action_space = spaces.Box(-9, 9, (3,)), spaces.Discrete(2)

    def preprocess(self, state, action, next_state, done):
        one_hot = torch.nn.functional.one_hot(torch.as_tensor(action), 2).float()
        return (torch.as_tensor(state, dtype=torch.float32), one_hot, torch.as_tensor(next_state, dtype=torch.float32),
                torch.as_tensor(done, dtype=torch.float32))

    def forward(self, state, action, next_state, done):
        return next_state.sum(dim=1) - 0.5 * state[:, 0] + 0.25 * action[:, 1] - 2.0 * done


class WithPredict(ImitationStyle):
    def predict(self, state, action, next_state, done):
        return by_hand(state, action, next_state, done) + 100.0  # its own predict wins (a marker)


@pytest.mark.parametrize("kind", ["function", "module", "imitation", "state_dict"])
def test_every_kind_gives_the_rewards_written_by_hand(kind, tmp_path):
    if kind == "function":
        reward = transition_reward(lambda s, a, s_next, done: by_hand(s, a, s_next, done))
    elif kind == "module":
        reward = transition_reward(Linear())
    elif kind == "imitation":
        reward = transition_reward(ImitationStyle())
    else:
        torch.save(OnNext().state_dict(), tmp_path / "w.pt")
        weights = torch.load(tmp_path / "w.pt", weights_only=True)
        reward = from_state_dict(tmp_path / "w.pt", OnNext)
        expected = S2 @ weights["head.weight"].numpy()[0].astype(np.float64) + float(weights["head.bias"])
        assert np.allclose(reward(S, A, S2, DONE), expected, atol=1e-5)
        return
    assert np.allclose(reward(S, A, S2, DONE), by_hand(S, A, S2, DONE), atol=1e-5)


class OnNext(nn.Module):
    """A learned reward of s_next only, returning an (n, 1) column as many nets do."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 1)

    def forward(self, s, a, s_next, done):
        return self.head(s_next)


def test_an_imitation_net_with_its_own_predict_is_called_through_it():
    assert np.allclose(transition_reward(WithPredict())(S, A, S2, DONE), by_hand(S, A, S2, DONE) + 100.0)


def test_functions_of_two_or_three_arguments_and_the_books_models():
    assert np.allclose(transition_reward(lambda s, s_next: s_next[:, 0])(S, A, S2), S2[:, 0])
    assert np.allclose(transition_reward(lambda s, a, s_next: a * 1.0)(S, A, S2), A)
    model = FunctionReward(lambda s, s_next: np.asarray(s_next).sum(axis=(1, 2)), ("s", "s_next"))
    grids = RNG.integers(0, 4, (5, 11, 11)).astype(np.float32)
    assert np.allclose(transition_reward(model)(grids, np.zeros(5), grids), grids.sum(axis=(1, 2)))


def test_bad_rewards_get_one_line_naming_them(tmp_path):
    with pytest.raises(ValueError, match="not 1 arguments"):
        transition_reward(lambda s: s)
    with pytest.raises(ValueError, match="must be a RewardModel"):
        transition_reward(3.0)
    with pytest.raises(ValueError, match=r"my_net must give one reward per transition, shape \(7,\), got \(7, 3\)"):
        transition_reward(lambda s, a, s_next: s_next, "my_net")(S, A, S2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        transition_reward(lambda s, s_next: np.full(len(s), np.inf))(S, A, S2)
    with pytest.raises(ValueError, match="reward failed on 7 transitions: ZeroDivisionError"):
        transition_reward(lambda s, s_next: 1 / 0)(S, A, S2)
    torch.save(nn.Linear(4, 1).state_dict(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="does not load into Linear"):
        from_state_dict(tmp_path / "w.pt", lambda: nn.Linear(3, 1))

"""Which device and precision each part computes in, tested on the CPU with CUDA's answers stubbed."""

from __future__ import annotations

import pytest
import torch

from rewinterp_utils import device


@pytest.fixture
def cuda_cards(monkeypatch):
    """CUDA made to answer as a machine whose cards have the given compute capabilities, ``is_bf16_supported``
    answering True as it does for emulated bf16 on a T4."""
    asked = []

    def install(*capabilities):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(capabilities))
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

        def capability(index=None):
            asked.append(index)
            return capabilities[index]

        monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
        return asked

    return install


def test_emulated_bf16_does_not_count(cuda_cards):
    """A T4 (7.5) emulates bf16: not native, so ``auto`` stays fp32 on it; an A100 (8.0) has it."""
    cuda_cards((7, 5))
    assert not device.gpu_has_bf16("cuda:0") and not device.bf16_supported(torch.device("cuda:0"))
    cuda_cards((8, 0))
    assert device.gpu_has_bf16("cuda") and device.bf16_supported(torch.device("cuda"))


def test_the_chosen_card_is_asked_not_the_current_one(cuda_cards, monkeypatch):
    """On a machine with an old card 0 and a new card 1, ``REWINTERP_DEVICE=cuda:1`` asks card 1 (and ``auto``'s
    bf16 follows it)."""
    asked = cuda_cards((7, 5), (9, 0))
    monkeypatch.setenv("REWINTERP_DEVICE", "cuda:1")
    monkeypatch.delenv("REWINTERP_PRECISION", raising=False)
    assert device.precision() == "bf16" and asked[-1] == 1
    monkeypatch.setenv("REWINTERP_DEVICE", "cuda:0")
    assert device.precision() == "fp32" and asked[-1] == 0


def test_maze_policies_stay_on_the_cpu(monkeypatch):
    """Whatever device is chosen (``meta`` stands in for a GPU), the maze's MLP PPO and its loaded policies compute
    on the CPU, and the Atari CNN policy follows the device."""
    from stable_baselines3.common.env_util import make_vec_env

    from rewinterp_utils.agents import maze_ppo

    monkeypatch.setattr(device, "torch_device", lambda: torch.device("meta"))
    assert device.policy_device(True) == torch.device("meta")
    assert device.policy_device(False) == torch.device("cpu")
    ppo = maze_ppo(make_vec_env("EmptyMaze-10x10-CoinFlipGoal-v3", n_envs=1), 3e-4, 0.97, seed=0)
    assert ppo.device == torch.device("cpu") and next(ppo.policy.parameters()).device.type == "cpu"

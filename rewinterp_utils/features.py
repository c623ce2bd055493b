"""The PPO agents' image features in the precision :func:`~rewinterp_utils.device.precision` picks.

:class:`AutocastNatureCNN` is SB3's ``NatureCNN`` (same layers, same parameter names, so its weights load into a
stock ``ActorCriticCnnPolicy`` and back) whose forward pass runs under ``torch.autocast`` in bfloat16 and returns
float32 features. Everything after it (policy and value heads, log-probabilities, the PPO ratio, losses, value
targets and advantages) sees float32 only: a bfloat16 ratio (8 bits of mantissa, steps of 2**-7 near 1) could not
resolve PPO's clip range of 0.1 decaying to 0. With ``precision="fp32"`` it is the stock module, bit for bit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import NatureCNN

from rewinterp_utils.device import PRECISION_CHOICES, Precision, precision as chosen_precision

AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16}
"""Precisions that run under ``torch.autocast``, and their dtype (``fp32`` runs without autocast)."""


class AutocastNatureCNN(NatureCNN):
    """``NatureCNN`` computing in ``precision`` (``"fp32"`` or ``"bf16"``), returning float32 features.

    Use it through SB3's extension point: ``policy_kwargs={"features_extractor_class": AutocastNatureCNN,
    "features_extractor_kwargs": {"precision": "bf16"}}`` (what :func:`~rewinterp_utils.agents.atari_ppo` does).
    """

    def __init__(self, observation_space: gym.Space, features_dim: int = 512, normalized_image: bool = False,
                 precision: Precision = "fp32") -> None:
        if precision not in PRECISION_CHOICES or precision == "auto":
            raise ValueError(f"precision must be fp32 or bf16 (resolve auto with device.precision()), got "
                             f"{precision!r}")
        super().__init__(observation_space, features_dim, normalized_image)
        self.precision: Precision = precision

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        dtype = AUTOCAST_DTYPES.get(self.precision)
        if dtype is None:
            return super().forward(observations)
        with torch.autocast(device_type=observations.device.type, dtype=dtype):
            features = super().forward(observations)
        return features.float()


def cnn_policy_kwargs(precision: Precision | None = None) -> dict[str, Any]:
    """``policy_kwargs`` for ``PPO("CnnPolicy", ...)`` with :class:`AutocastNatureCNN` in ``precision`` (default:
    ``REWINTERP_PRECISION`` resolved for ``REWINTERP_DEVICE``).

    ``net_arch=[]`` is explicit: SB3 gives the heads no hidden layers only when the extractor *is* ``NatureCNN``,
    and two hidden layers of 64 for any other class, a subclass included.
    """
    return {"features_extractor_class": AutocastNatureCNN, "net_arch": [],
            "features_extractor_kwargs": {"precision": precision or chosen_precision()}}


__all__ = ["AUTOCAST_DTYPES", "AutocastNatureCNN", "cnn_policy_kwargs"]

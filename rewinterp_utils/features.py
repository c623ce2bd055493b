"""The PPO agents' image features in the precision :func:`~rewinterp_utils.device.precision` picks.

:class:`AutocastNatureCNN` is SB3's ``NatureCNN`` (same layers, same parameter names, so its weights load into a
stock ``ActorCriticCnnPolicy`` and back) whose forward pass runs under ``torch.autocast`` in bfloat16 and returns
float32 features. Everything after it (policy and value heads, log-probabilities, the PPO ratio, losses, value
targets and advantages) sees float32 only: a bfloat16 ratio (8 bits of mantissa, steps of 2**-7 near 1) could not
resolve PPO's clip range of 0.1 decaying to 0. With ``precision="fp32"`` it is the stock module, bit for bit.

:class:`RawImageCnnPolicy` is SB3's ``ActorCriticCnnPolicy`` handing the uint8 observations to that extractor
unscaled: the extractor scales them itself, straight into bfloat16 under bf16 (``x.to(bfloat16) / 255`` equals
``(x.float() / 255).to(bfloat16)`` for every byte, so the features are the same bits), which skips the float32
copy of every PPO minibatch that SB3's ``preprocess_obs`` makes. Under fp32 it scales as ``preprocess_obs`` does.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticCnnPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN

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
        """Features of ``observations``: images scaled to [0, 1] (SB3's ``preprocess_obs``), or raw uint8 images
        (from :class:`RawImageCnnPolicy`), scaled here in the compute precision."""
        dtype = AUTOCAST_DTYPES.get(self.precision)
        if observations.dtype == torch.uint8:
            observations = observations.to(dtype or torch.float32) / 255.0
        if dtype is None:
            return super().forward(observations)
        with torch.autocast(device_type=observations.device.type, dtype=dtype):
            features = super().forward(observations)
        return features.float()


class RawImageCnnPolicy(ActorCriticCnnPolicy):
    """SB3's ``ActorCriticCnnPolicy`` whose uint8 image observations reach :class:`AutocastNatureCNN` unscaled (it
    scales them in its own precision); otherwise the stock policy, with the same parameter names.

    Use it as ``PPO(RawImageCnnPolicy, venv, policy_kwargs=cnn_policy_kwargs())``.
    """

    def extract_features(  # type: ignore[override]
        self, obs: torch.Tensor, features_extractor: BaseFeaturesExtractor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        extractor = features_extractor or self.features_extractor
        if self.share_features_extractor and isinstance(extractor, AutocastNatureCNN) and obs.dtype == torch.uint8:
            return extractor(obs)
        return super().extract_features(obs, features_extractor)


def cnn_policy_kwargs(precision: Precision | None = None) -> dict[str, Any]:
    """``policy_kwargs`` for ``PPO("CnnPolicy", ...)`` with :class:`AutocastNatureCNN` in ``precision`` (default:
    ``REWINTERP_PRECISION`` resolved for ``REWINTERP_DEVICE``).

    ``net_arch=[]`` is explicit: SB3 gives the heads no hidden layers only when the extractor *is* ``NatureCNN``,
    and two hidden layers of 64 for any other class, a subclass included.
    """
    return {"features_extractor_class": AutocastNatureCNN, "net_arch": [],
            "features_extractor_kwargs": {"precision": precision or chosen_precision()}}


__all__ = ["AUTOCAST_DTYPES", "AutocastNatureCNN", "RawImageCnnPolicy", "cnn_policy_kwargs"]

"""The one place that picks where tensors live: ``REWINTERP_DEVICE`` = ``auto`` (default: CUDA when available,
else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. PPO, reward models (training and prediction), the learned-reward
wrapper, attributions and sanity checks all follow it; the manifest of every cell records it."""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "REWINTERP_DEVICE"
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N")


def torch_device() -> torch.device:
    """The device ``REWINTERP_DEVICE`` asks for; ``ValueError`` naming the choices for an unknown name, or for
    ``cuda`` where CUDA is missing."""
    choice = os.environ.get(DEVICE_ENV, "").strip() or "auto"
    kind, _, index = choice.partition(":")
    if kind not in ("auto", "cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"{DEVICE_ENV} must be one of {', '.join(DEVICE_CHOICES)}, got {choice!r}")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{DEVICE_ENV}={choice!r} but CUDA is not available here; choices: auto, cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"{DEVICE_ENV}={choice!r} but this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s)")
    return torch.device(choice)


__all__ = ["DEVICE_CHOICES", "DEVICE_ENV", "torch_device"]

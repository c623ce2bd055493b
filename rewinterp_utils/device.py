"""The one place that picks where tensors live and in which precision convolutions run.

``REWINTERP_DEVICE`` = ``auto`` (default: CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. The
Atari PPO agents, reward models (training and prediction), the learned-reward wrapper, attributions and sanity checks
all follow it; the maze's small MLP policies stay on the CPU (:func:`policy_device`).

``REWINTERP_PRECISION`` = ``auto`` (default: ``bf16`` where the device has native bfloat16, i.e. a CPU with
AVX-512 BF16 / AMX or a bf16-capable GPU, else ``fp32``), ``fp32`` or ``bf16``. Only the PPO agents' convolutional
features run in it (:class:`~rewinterp_utils.features.AutocastNatureCNN`); heads, losses, the PPO ratio, values and
advantages, reward models and every attribution stay fp32. The manifest of every cell records both.

``REWINTERP_CORES`` (set by the runner for its kernels) caps the cores a process takes for itself.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

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


CORES_ENV = "REWINTERP_CORES"
"""Cores a process may take for itself; the runner sets it for its kernels (the machine's cores over its parallel
jobs), so that two Atari jobs side by side do not each start worker processes for a core the other one uses."""


def spare_cores() -> int:
    """Cores this process may use beyond torch's intra-op threads: those it may run on
    (``os.sched_getaffinity``), at most ``REWINTERP_CORES`` when that is set."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = os.environ.get(CORES_ENV, "")
    if share:
        if not share.isdigit() or int(share) < 1:
            raise ValueError(f"{CORES_ENV} must be a positive integer, got {share!r}")
        usable = min(usable, int(share))
    return max(0, usable - torch.get_num_threads())


PRECISION_ENV = "REWINTERP_PRECISION"
PRECISION_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16")
Precision = Literal["fp32", "bf16"]
CPU_BF16_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of CPUs with native bfloat16 arithmetic (oneDNN uses them for bf16 convolutions)."""


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (a flag of :data:`CPU_BF16_FLAGS`; False off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.partition(":")[2].split()}
    return any(f in flags for f in CPU_BF16_FLAGS)


NATIVE_BF16_CAPABILITY: tuple[int, int] = (8, 0)
"""The first CUDA compute capability with bfloat16 tensor cores (Ampere). Older cards (a T4 is 7.5) emulate bf16,
which ``torch.cuda.is_bf16_supported()`` counts as support, slower than their fp32."""


def gpu_has_bf16(device: torch.device | str | None = None) -> bool:
    """Whether the CUDA ``device`` (default: the one :func:`torch_device` chooses, else CUDA's current one) computes
    bfloat16 natively: compute capability at least :data:`NATIVE_BF16_CAPABILITY`."""
    if not torch.cuda.is_available():
        return False
    device = torch.device(device) if device is not None else torch.device("cuda")
    if device.type != "cuda":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return tuple(torch.cuda.get_device_capability(index)) >= NATIVE_BF16_CAPABILITY


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` (a CPU or a CUDA device) runs bfloat16 natively."""
    return gpu_has_bf16(device) if device.type == "cuda" else device.type == "cpu" and cpu_has_bf16()


def policy_device(image_observations: bool) -> torch.device:
    """Where a PPO policy computes: the Atari Nature CNN (``image_observations``) on :func:`torch_device`; a small MLP
    policy (the maze's) on the CPU whatever the device, as SB3 advises (a GPU only adds transfer time to an MLP of
    a few thousand weights stepping one env at a time)."""
    return torch_device() if image_observations else torch.device("cpu")


def precision(device: torch.device | None = None) -> Precision:
    """The precision of convolutional features ``REWINTERP_PRECISION`` asks for on ``device`` (default:
    :func:`torch_device`), resolved to ``"fp32"`` or ``"bf16"``; ``ValueError`` naming the choices for an unknown
    name, or for ``bf16`` where the device lacks it (saying what this machine supports)."""
    choice = os.environ.get(PRECISION_ENV, "").strip().lower() or "auto"
    if choice not in PRECISION_CHOICES:
        raise ValueError(f"{PRECISION_ENV} must be one of {', '.join(PRECISION_CHOICES)}, got {choice!r}")
    device = torch_device() if device is None else torch.device(device)
    native = bf16_supported(device)
    if choice == "bf16" and not native:
        raise ValueError(f"{PRECISION_ENV}='bf16' but the {device.type} device has no native bfloat16 "
                         f"(CPU bf16: {'yes' if cpu_has_bf16() else 'no'}, GPU bf16: "
                         f"{'yes' if gpu_has_bf16(device) else 'no'}); choices here: auto, fp32")
    if choice == "auto":
        return "bf16" if native else "fp32"
    return choice  # type: ignore[return-value]


def autocast_dtype(device: torch.device | None = None) -> torch.dtype:
    """``torch.bfloat16`` or ``torch.float32``: the dtype :func:`precision` names."""
    return torch.bfloat16 if precision(device) == "bf16" else torch.float32


__all__ = ["CPU_BF16_FLAGS", "DEVICE_CHOICES", "DEVICE_ENV", "PRECISION_CHOICES", "PRECISION_ENV", "Precision",
           "NATIVE_BF16_CAPABILITY", "autocast_dtype", "bf16_supported", "cpu_has_bf16", "gpu_has_bf16",
           "policy_device", "precision", "torch_device"]

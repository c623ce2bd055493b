"""Attribution maps of reward models: gradient saliency (maze R(s, s') and Atari R(s')), occlusion and
Integrated Gradients on Atari R(s'), and one registry of the methods the sanity checks compare.

:func:`gradient_saliency` works on any model and any number of inputs (Figure 1 of the paper).

Every method takes observations as SB3's Atari wrappers give them: ``(N, 84, 84, 4)`` (or one ``(84, 84, 4)``)
channels-last stacks, pixels 0..255 (uint8 or float), and a reward model of s' mapping such a batch to rewards
``(N,)`` (a :class:`~rewinterp_utils.reward_models.RewardModel`, e.g.
:class:`~rewinterp_utils.reward_models.AtariRewardCNN`; occlusion runs it by its ``predict``). Outputs keep the
batch axis iff the input has it.

Methods (:func:`attribute` dispatches on ``method``; every one gives a per-pixel ``(N, 84, 84)`` map):

* ``"occlusion"``: Greydanus et al. 2018, "Visualizing and understanding Atari agents", as used by the paper.
  For every mask centre ``(ci, cj)`` on a grid of stride 5 (0, 5, ..., 80: 17 x 17 = 289 centres) the input is
  perturbed by ``I' = I * (1 - M) + A(I, 3) * M`` with the unnormalised Gaussian mask
  ``M[i, j] = exp(-((i - ci)^2 + (j - cj)^2) / (2 * 5^2))`` (the same at every stacked frame) and ``A(I, 3)``
  a Gaussian blur (sigma 3) of every frame (``scipy.ndimage.gaussian_filter``, its default ``reflect`` border
  and truncation at 4 sigma, as in Greydanus' code). The score is ``S(ci, cj) = 0.5 * (R(I) - R(I'))^2``.
  :func:`occlusion_saliency` computes it batched (all 289 perturbed inputs in a few forward passes);
  :func:`occlusion_saliency_loop` (``"occlusion_loop"``) is the literal per-position reference.
  The 17 x 17 maps are upsampled to 84 x 84 (or to the 210 x 160 screen) by :func:`upsample_saliency`.
* ``"gradient"``: ``|dR/dI|`` (captum ``Saliency``), :func:`gradient_attribution`.
* ``"integrated_gradients"``: captum ``IntegratedGradients`` from an all-zero (black) baseline,
  :func:`integrated_gradients_attribution`; signed, its sum is ``R(I) - R(0)`` (completeness).

Gradient methods are in pixel units (0..255) and :func:`attribute` sums them over the frame-stack axis.

Registry: :func:`attribution_method` gives every method of both domains (maze and Atari, with the ``"edge"``
control that ignores the model) in one form, ``attribute_fn(model, inputs) -> maps``.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any, Callable

import numpy as np
import torch
from captum.attr import IntegratedGradients, Saliency
from scipy.ndimage import correlate1d, gaussian_filter
from torch import nn

from rewinterp_utils.reward_models import RewardModel

AttributeFn = Callable[[nn.Module, Any], np.ndarray]
"""``attribute_fn(model, inputs) -> maps``: an array with one map per input along its first axis."""
METHODS: tuple[str, ...] = ("occlusion", "occlusion_loop", "gradient", "integrated_gradients")
"""The ``method`` names :func:`attribute` (Atari per-pixel maps) accepts."""
MAZE_METHODS: tuple[str, ...] = ("gradient", "integrated_gradients", "edge")
"""The maze methods of :func:`attribution_method`."""
ATARI_METHODS: tuple[str, ...] = ("occlusion", "gradient", "integrated_gradients", "edge")
"""The Atari methods of :func:`attribution_method`."""
DOMAINS: dict[str, tuple[str, ...]] = {"maze": MAZE_METHODS, "atari": ATARI_METHODS}
"""The methods of :func:`attribution_method`, by domain."""
OBS_SHAPE: tuple[int, int, int] = (84, 84, 4)
"""Default ``(height, width, n_stack)`` of one observation; a reward model's ``input_shapes`` override it."""
STRIDE, MASK_SIGMA, BLUR_SIGMA = 5, 5.0, 3.0
"""Greydanus et al.'s occlusion grid stride, mask sigma and blur sigma (pixels of the 84 x 84 frame)."""


# ----------------------------------------------------------------------------------------------- helpers
def _obs_shape(model: nn.Module) -> tuple[int, int, int]:
    if isinstance(model, RewardModel) and model.input_shapes is not None:
        return tuple(model.input_shapes[0])  # type: ignore[return-value]
    return OBS_SHAPE


def _check_obs(obs: np.ndarray | torch.Tensor, model: nn.Module) -> tuple[np.ndarray, bool]:
    """``obs`` as an ``(N, H, W, C)`` numpy array, and whether it came without the batch axis."""
    if isinstance(obs, torch.Tensor):
        obs = obs.detach().cpu().numpy()
    obs = np.asarray(obs)
    shape = _obs_shape(model)
    if obs.shape == shape:
        return obs[None], True
    if obs.ndim == 4 and obs.shape[1:] == shape:
        return obs, False
    raise ValueError(f"expected observations of shape (N, {', '.join(map(str, shape))}) or {shape} "
                     f"(channels last, pixels 0..255), got {obs.shape}")


def _param(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    """Float dtype and device of the model's parameters (float32 on torch's default device for a parameter-free
    model)."""
    p = next(model.parameters(), None)
    return (p.dtype, p.device) if p is not None and p.is_floating_point() else (torch.float32,
                                                                                torch.get_default_device())


def gradient_saliency(model: nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """|dR/dx| for every input of ``model`` (e.g. ``(s, s')`` of the maze model), one CPU tensor per input.

    Inputs (tensors or arrays, on any device) are moved to the model's device, integer ones cast to its float dtype;
    the model is put in eval mode (captum ``Saliency``).
    """
    model.eval()
    dtype, device = _param(model)
    xs = tuple(torch.as_tensor(x).detach() for x in inputs)  # float inputs keep their dtype; others take the model's
    xs = tuple(x.to(device=device, dtype=x.dtype if x.is_floating_point() else dtype).requires_grad_(True) for x in xs)
    attr = Saliency(model).attribute(xs if len(xs) > 1 else xs[0], abs=True)
    return tuple(a.detach().cpu() for a in (attr if isinstance(attr, tuple) else (attr,)))


def _squeeze(x: np.ndarray, single: bool) -> np.ndarray:
    return x[0] if single else x


# --------------------------------------------------------------------------------------------- occlusion
def mask_centres(size: int = 84, stride: int = STRIDE) -> np.ndarray:
    """Mask centres along one axis: ``0, stride, ...`` below ``size`` (17 centres for 84 and stride 5)."""
    return np.arange(0, size, stride)


def gaussian_mask(size: int, centre: tuple[int, int], sigma: float = MASK_SIGMA) -> np.ndarray:
    """Unnormalised Gaussian ``(size, size)`` mask, 1 at ``centre``: ``exp(-|p - centre|^2 / (2 sigma^2))``."""
    i, j = np.ogrid[:size, :size]
    return np.exp(-((i - centre[0]) ** 2 + (j - centre[1]) ** 2) / (2.0 * sigma**2))


@lru_cache(maxsize=16)
def _masks(size: int, stride: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    c = mask_centres(size, stride)
    masks = np.stack([gaussian_mask(size, (ci, cj), sigma) for ci in c for cj in c])
    return torch.as_tensor(masks.reshape(len(c), len(c), size, size), dtype=dtype, device=device)


def occlusion_masks(size: int = 84, stride: int = STRIDE, sigma: float = MASK_SIGMA,
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All masks, ``(K, K, size, size)`` with ``K = len(mask_centres(size, stride))``: ``[a, b]`` is centred
    at ``(stride * a, stride * b)``. Built once per ``(size, stride, sigma, device, dtype)`` and cached:
    treat the returned tensor as read-only. ``device``: torch's default device unless given."""
    device = torch.device(device) if device is not None else torch.get_default_device()
    return _masks(int(size), int(stride), float(sigma), device, dtype)


def blur_frames(obs: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """``A(I, sigma)``: each frame of ``(..., H, W, C)`` stacks blurred by ``scipy.ndimage.gaussian_filter``
    (float64; not across frames or observations)."""
    obs = np.asarray(obs, dtype=np.float64)
    return gaussian_filter(obs, sigma=(0,) * (obs.ndim - 3) + (sigma, sigma, 0))


@lru_cache(maxsize=2)
def _buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Scratch space for the perturbed inputs, kept between calls (a fresh 33 MB tensor per frame costs page
    faults comparable to the arithmetic)."""
    return torch.empty(shape, dtype=dtype, device=device)


@torch.no_grad()
def occlusion_saliency(model: RewardModel, obs: np.ndarray | torch.Tensor, stride: int = STRIDE,
                       sigma: float = MASK_SIGMA, blur_sigma: float = BLUR_SIGMA,
                       chunk_size: int | None = None) -> np.ndarray:
    """Greydanus occlusion scores ``0.5 * (R(I) - R(I'))^2`` on the mask grid, batched: ``(N, 17, 17)``
    (``(17, 17)`` for one observation), float64.

    Per observation the blur is computed once and the perturbed inputs ``I + M * (A - I)`` of all masks are
    formed by broadcasting (cached masks) and run through the model ``chunk_size`` at a time (default: all
    289 in one pass). They are built channels-first (broadcasting over the last axis is ~3x slower) and
    handed to the model's ``predict`` as a channels-last view, so a model that permutes back to channels-first
    (as ``AtariRewardCNN`` does) gets contiguous memory.
    """
    obs, single = _check_obs(obs, model)
    dtype, device = _param(model)
    size = obs.shape[1]
    masks = occlusion_masks(size, stride, sigma, device, dtype)
    k = masks.shape[0]
    masks = masks.reshape(k * k, 1, size, size)
    chunk = chunk_size or k * k
    # contiguous channels-first copies: broadcasting over strided views is ~4x slower
    images = torch.as_tensor(obs, dtype=dtype, device=device).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    blurred = torch.as_tensor(blur_frames(obs, blur_sigma), dtype=dtype, device=device).permute(0, 3, 1, 2)
    diffs = (blurred - images).contiguous()
    scores = np.empty((len(obs), k * k))
    buffer = _buffer((min(chunk, k * k), *images.shape[1:]), dtype, device)
    for n, (image, diff) in enumerate(zip(images, diffs)):
        r0 = model.predict(image[None].permute(0, 2, 3, 1)).astype(np.float64)
        for start in range(0, k * k, chunk):
            m = masks[start:start + chunk]
            perturbed = torch.addcmul(image, m, diff, out=buffer[: len(m)])  # I + M (A - I): (chunk, C, H, W)
            r = model.predict(perturbed.permute(0, 2, 3, 1), batch_size=len(m)).astype(np.float64)
            scores[n, start:start + chunk] = 0.5 * (r0 - r) ** 2
    return _squeeze(scores.reshape(len(obs), k, k), single)


@torch.no_grad()
def occlusion_saliency_loop(model: RewardModel, obs: np.ndarray | torch.Tensor, stride: int = STRIDE,
                            sigma: float = MASK_SIGMA, blur_sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Reference for :func:`occlusion_saliency`, written as Greydanus et al.'s code: for every centre, build
    the mask, ``I' = I * (1 - M) + A(I) * M`` (blur recomputed, in float64 numpy) and run one single-sample
    forward pass. Same output; slow (289 forward passes per observation)."""
    obs, single = _check_obs(obs, model)
    dtype, device = _param(model)

    def reward(x: np.ndarray) -> float:
        return float(model.predict(torch.as_tensor(x[None], dtype=dtype, device=device))[0])

    centres = mask_centres(obs.shape[1], stride)
    scores = np.empty((len(obs), len(centres), len(centres)))
    for n, image in enumerate(obs.astype(np.float64)):
        r0 = reward(image)
        for a, ci in enumerate(centres):
            for b, cj in enumerate(centres):
                mask = gaussian_mask(image.shape[0], (ci, cj), sigma)[..., None]
                perturbed = image * (1 - mask) + blur_frames(image, blur_sigma) * mask
                scores[n, a, b] = 0.5 * (r0 - reward(perturbed)) ** 2
    return _squeeze(scores, single)


def _interp_matrix(n_out: int, n_grid: int, stride: int, size: int) -> np.ndarray:
    """``(n_out, n_grid)`` linear-interpolation weights from grid values at pixels ``0, stride, ...`` of a
    ``size``-pixel axis to ``n_out`` pixels covering the same extent (pixel centres aligned)."""
    pos = (np.arange(n_out) + 0.5) * size / n_out - 0.5  # output pixel centres in input pixel units
    g = np.clip(pos / stride, 0, n_grid - 1)
    lo = np.minimum(np.floor(g).astype(int), max(n_grid - 2, 0))
    w = g - lo
    out = np.zeros((n_out, n_grid))
    np.add.at(out, (np.arange(n_out), lo), 1 - w)
    np.add.at(out, (np.arange(n_out), np.minimum(lo + 1, n_grid - 1)), w)
    return out


def upsample_saliency(scores: np.ndarray, shape: tuple[int, int] = (84, 84), stride: int = STRIDE,
                      size: int = 84) -> np.ndarray:
    """Upsample occlusion maps ``(..., K, K)`` to ``(..., *shape)`` by bilinear interpolation.

    Each grid value sits at its mask centre: for ``shape=(84, 84)`` the output equals the score exactly at
    the centres ``(5a, 5b)``, is linear in between and constant beyond the last centre (rows/cols 81..83).
    Any other ``shape`` covers the same frame with pixel centres aligned, e.g. ``shape=SCREEN_SHAPE``
    (210, 160) for overlays on the raw screen, which ``WarpFrame`` squeezes onto the whole 84 x 84 frame.
    """
    scores = np.asarray(scores, dtype=np.float64)
    wy = _interp_matrix(shape[0], scores.shape[-2], stride, size)
    wx = _interp_matrix(shape[1], scores.shape[-1], stride, size)
    return np.einsum("yk,...kl,xl->...yx", wy, scores, wx)


# ---------------------------------------------------------------------------------------- gradient based
def gradient_attribution(model: nn.Module, obs: np.ndarray | torch.Tensor) -> np.ndarray:
    """``|dR/dI|`` (captum ``Saliency``) per pixel and frame: ``(N, 84, 84, 4)``, in reward per pixel unit."""
    obs, single = _check_obs(obs, model)
    dtype, device = _param(model)
    (grad,) = gradient_saliency(model, torch.as_tensor(obs, dtype=dtype, device=device))
    return _squeeze(grad.cpu().double().numpy(), single)


def integrated_gradients_attribution(model: nn.Module, obs: np.ndarray | torch.Tensor, n_steps: int = 50,
                                     internal_batch_size: int | None = None) -> np.ndarray:
    """captum ``IntegratedGradients`` from an all-zero baseline: ``(N, 84, 84, 4)``, signed; summed over all
    pixels and frames it approximates ``R(I) - R(0)``. The model is put in eval mode."""
    obs, single = _check_obs(obs, model)
    model.eval()
    dtype, device = _param(model)
    x = torch.as_tensor(obs, dtype=dtype, device=device)
    attr = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), n_steps=n_steps,
                                                internal_batch_size=internal_batch_size)
    return _squeeze(attr.detach().cpu().double().numpy(), single)


# ------------------------------------------------------------------------------------------- entry point
def attribute(model: nn.Module, obs: np.ndarray | torch.Tensor, method: str = "occlusion",
              **kwargs: Any) -> np.ndarray:
    """Per-pixel saliency map ``(N, 84, 84)`` (``(84, 84)`` for one observation) of ``model`` at ``obs``.

    ``method``: ``"occlusion"`` / ``"occlusion_loop"`` (17 x 17 scores upsampled by :func:`upsample_saliency`;
    the raw grid comes from :func:`occlusion_saliency`), ``"gradient"`` (``|dR/dI|`` summed over the frame
    stack) or ``"integrated_gradients"`` (signed attributions summed over the frame stack). ``kwargs`` go to
    the method's function (e.g. ``chunk_size``, ``n_steps``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; valid methods: {', '.join(METHODS)}")
    obs, single = _check_obs(obs, model)
    size = obs.shape[1]
    if method in ("occlusion", "occlusion_loop"):
        fn = occlusion_saliency if method == "occlusion" else occlusion_saliency_loop
        out = upsample_saliency(fn(model, obs, **kwargs), (size, size), kwargs.get("stride", STRIDE), size)
    elif method == "gradient":
        out = gradient_attribution(model, obs, **kwargs).sum(-1)
    else:
        out = integrated_gradients_attribution(model, obs, **kwargs).sum(-1)
    return _squeeze(out, single)


# ---------------------------------------------------------------------------------------------- registry
def _unknown(domain: str, name: str) -> ValueError:
    return ValueError(f"unknown {domain} attribution method {name!r}; valid methods: {', '.join(DOMAINS[domain])}")


def _sobel(x: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude over the last two axes of ``x`` (each 2-D slice on its own; ``reflect`` border)."""
    x = np.asarray(x, dtype=np.float64)
    dy = correlate1d(correlate1d(x, [-1, 0, 1], axis=-2), [1, 2, 1], axis=-1)
    dx = correlate1d(correlate1d(x, [-1, 0, 1], axis=-1), [1, 2, 1], axis=-2)
    return np.hypot(dx, dy)


def _maze_inputs(model: nn.Module, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(model, RewardModel) or model.inputs != ("s", "s_next") or model.input_shapes is None:
        raise ValueError(f"maze attributions need a RewardModel reading (s, s_next) of known shapes, got "
                         f"{type(model).__name__}")
    shape = tuple(model.input_shapes[0])
    if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
        raise ValueError("maze inputs must be a tuple (s, s_next) of two arrays")
    s, s_next = (np.asarray(x) for x in inputs)
    if s.ndim != 3 or s.shape[1:] != shape or s.shape != s_next.shape:
        raise ValueError(f"expected s and s_next of shape (n, {shape[0]}, {shape[1]}), got {s.shape} and "
                         f"{s_next.shape}")
    return s, s_next


def _maze_maps(name: str, model: nn.Module, inputs: Any) -> np.ndarray:
    """``(n, 2, H, W)`` maps of an ``R(s, s')`` maze model at ``inputs = (s, s_next)``."""
    s, s_next = _maze_inputs(model, inputs)
    if name == "edge":
        return np.stack([_sobel(s), _sobel(s_next)], axis=1)
    dtype, device = _param(model)
    xs = tuple(torch.as_tensor(x, dtype=dtype, device=device) for x in (s, s_next))
    if name == "gradient":
        maps = gradient_saliency(model, *xs)
    else:
        model.eval()
        maps = IntegratedGradients(model).attribute(xs, baselines=tuple(torch.zeros_like(x) for x in xs))
    return np.stack([m.detach().abs().cpu().double().numpy() for m in maps], axis=1)


def _atari_maps(name: str, model: nn.Module, inputs: Any, **kwargs: Any) -> np.ndarray:
    """``(n, 84, 84)`` maps of an ``R(s')`` Atari model at an ``(n, 84, 84, 4)`` stack (or a 1-tuple holding one)."""
    obs = inputs[0] if isinstance(inputs, (tuple, list)) and len(inputs) == 1 else inputs
    obs, _ = _check_obs(obs, model)
    if name == "edge":
        return _sobel(obs[..., -1])
    return np.asarray(attribute(model, obs, name, **kwargs))


def attribution_method(domain: str, name: str, **kwargs: Any) -> AttributeFn:
    """The attribution method ``name`` of ``domain`` as ``attribute_fn(model, inputs) -> maps``, one map per
    input along the first axis (the form :mod:`rewinterp_utils.sanity` takes).

    ``domain="maze"`` (:data:`MAZE_METHODS`), for ``R(s, s')`` maze models, ``inputs = (s, s_next)`` of shape
    ``(n, 11, 11)`` each; maps ``(n, 2, 11, 11)`` (``[:, 0]`` for ``s``, ``[:, 1]`` for ``s'``), no options:

    * ``"gradient"``: ``|dR/ds|`` and ``|dR/ds'|`` (:func:`gradient_saliency`);
    * ``"integrated_gradients"``: absolute captum ``IntegratedGradients`` from all-zero grids (50 steps); FREE
      cells equal the baseline and get exactly zero, so these maps largely follow the input grid (expect a high
      rank correlation even after randomisation, as Adebayo et al. 2018 found for gradient x input);
    * ``"edge"``: Sobel gradient magnitude of the grids themselves, model ignored (the control that fails).

    ``domain="atari"`` (:data:`ATARI_METHODS`), for ``R(s')`` Atari models, ``inputs`` an ``(n, 84, 84, 4)``
    stack or a 1-tuple holding one; maps ``(n, 84, 84)``: ``"occlusion"``, ``"gradient"``,
    ``"integrated_gradients"`` are :func:`attribute` with ``kwargs`` (e.g. ``chunk_size``, ``n_steps``);
    ``"edge"`` is the Sobel gradient magnitude of the last frame, model ignored.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown attribution domain {domain!r}; valid domains: {', '.join(DOMAINS)}")
    if name not in DOMAINS[domain]:
        raise _unknown(domain, name)
    if domain == "maze":
        if kwargs:
            raise ValueError(f"maze attribution methods take no options, got {', '.join(sorted(kwargs))}")
        return partial(_maze_maps, name)
    if name == "edge" and kwargs:
        raise ValueError(f"the edge method takes no options, got {', '.join(sorted(kwargs))}")
    return partial(_atari_maps, name, **kwargs)


__all__ = [
    "ATARI_METHODS", "AttributeFn", "BLUR_SIGMA", "DOMAINS", "MASK_SIGMA", "MAZE_METHODS", "METHODS", "OBS_SHAPE",
    "STRIDE", "attribute", "attribution_method", "blur_frames", "gaussian_mask",
    "gradient_attribution", "integrated_gradients_attribution", "mask_centres", "occlusion_masks",
    "occlusion_saliency", "occlusion_saliency_loop", "upsample_saliency",
]

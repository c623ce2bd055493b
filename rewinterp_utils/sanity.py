"""Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

A saliency method that explains a *model* must change when the model's learned weights are destroyed.

* **Model randomisation** (:func:`cascading_randomisation`, :func:`randomisation_curve`): re-initialise the
  parametric layers one at a time, from the output back to the input (cumulatively), recompute the maps after
  every step and compare them with the trained model's maps by :func:`rank_correlation` (Spearman of the
  absolute maps) and :func:`ssim` (structural similarity). A method passes (:func:`sanity_verdict`) when the
  maps of the fully randomised model no longer resemble the trained model's maps.
* **Data randomisation** (:func:`data_randomisation_compare`): compare the maps of a model trained on the
  real labels with those of a model trained on shuffled labels (training is up to the caller).

Attribution functions (``attribute_fn(model, inputs) -> maps``, one map per input along the first axis):

* :func:`maze_attribution` for ``R(s, s')`` maze models, ``inputs = (s, s_next)`` of shape ``(n, 11, 11)``
  each; maps ``(n, 2, 11, 11)`` (``[:, 0]`` for ``s``, ``[:, 1]`` for ``s'``);
* :func:`atari_attribution` for ``R(s')`` Atari models, ``inputs`` an ``(n, 84, 84, 4)`` stack (or a 1-tuple
  holding it); maps ``(n, 84, 84)``.

Both offer ``"edge"``, a Sobel edge detector on the *input* that ignores the model: it is the control that
must FAIL the model-randomisation check. :func:`bootstrap_share` gives a percentile bootstrap interval for a
per-frame statistic such as the score-box saliency share.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients
from scipy.ndimage import correlate1d, gaussian_filter
from scipy.stats import rankdata
from torch import nn

from rewinterp_utils import attribution
from rewinterp_utils.claims import fmt_spread
from rewinterp_utils.reward_models import RewardModel

AttributeFn = Callable[[nn.Module, Any], np.ndarray]
"""``attribute_fn(model, inputs) -> maps``: an array with one map per input along its first axis."""
MAZE_METHODS: tuple[str, ...] = ("gradient", "integrated_gradients", "edge")
"""The methods :func:`maze_attribution` accepts."""
ATARI_METHODS: tuple[str, ...] = ("occlusion", "gradient", "integrated_gradients", "edge")
"""The methods :func:`atari_attribution` accepts."""
SSIM_SIGMA = 1.5
"""Gaussian window of :func:`ssim` (pixels), as in Wang et al. 2004."""
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
"""SSIM stabilising constants for data range 1 (maps are normalised to [0, 1])."""


# ------------------------------------------------------------------------------------- model randomisation
def parametric_layers(model: nn.Module) -> list[str]:
    """Names of the modules that own parameters (``Linear``, ``Conv2d``, ...), from the OUTPUT back to the INPUT.

    The order is the reverse of registration order, which is the forward order for sequential models such as
    ``MazeRewardMLP`` (``["net.5", "net.3", "net.1"]``) and ``AtariRewardCNN`` (``["head",
    "features.linear.0", "features.cnn.4", "features.cnn.2", "features.cnn.0"]``).
    """
    names = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def _reinit(module: nn.Module) -> None:
    """Fresh default initialisation: ``reset_parameters()`` when the module has it, else PyTorch's
    ``Linear`` default (Kaiming-uniform weights, uniform biases) for every parameter it owns."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            if p.ndim >= 2:
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
            else:
                bound = 1 / math.sqrt(max(p.numel(), 1))
                nn.init.uniform_(p, -bound, bound)


def randomise(model: nn.Module, layers: Sequence[str], seed: int) -> nn.Module:
    """A deep copy of ``model`` whose ``layers`` (module names, see :func:`parametric_layers`) are re-initialised.

    The re-initialisation runs under ``torch.manual_seed(seed)`` in a forked RNG (the global torch RNG is left
    alone), layers in the order given, so the same ``(layers, seed)`` gives the same weights. ``model`` is not
    modified; the copy keeps its train/eval mode.
    """
    if isinstance(layers, str):
        layers = [layers]
    valid = parametric_layers(model)
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(map(repr, unknown))}; valid layers (output to input): "
                         f"{', '.join(valid)}")
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in layers:
            _reinit(modules[name])
    return out


def cascading_randomisation(model: nn.Module, attribute_fn: AttributeFn, inputs: Any,
                            seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Maps after cascading randomisation: ``[("trained", maps_0), (layer_1, maps_1), ...]``.

    Step ``k`` re-initialises the first ``k`` layers of :func:`parametric_layers` (output first), with
    :func:`randomise` and the same ``seed`` at every step (a layer keeps its random weights once randomised);
    its name is the layer randomised last. ``maps_k = attribute_fn(model_k, inputs)``.
    """
    layers = parametric_layers(model)
    steps = [("trained", np.asarray(attribute_fn(model, inputs)))]
    for k in range(1, len(layers) + 1):
        steps.append((layers[k - 1], np.asarray(attribute_fn(randomise(model, layers[:k], seed), inputs))))
    return steps


# ---------------------------------------------------------------------------------------------- similarity
def _pair(a: np.ndarray, b: np.ndarray, min_ndim: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.abs(np.asarray(a, dtype=np.float64))
    b = np.abs(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim < min_ndim or len(a) == 0:
        raise ValueError(f"expected a batch of maps with at least {min_ndim} axes (inputs first), got {a.shape}")
    return a, b


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(x), rankdata(y)
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:  # a constant map has no ranking: it matches only another constant map
        return 1.0 if sx == sy else 0.0
    return float(np.mean((rx - rx.mean()) * (ry - ry.mean())) / (sx * sy))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over inputs (first axis) of the Spearman rank correlation of the flattened absolute maps.

    Ties get average ranks. A constant map has no ranking: its correlation is 1 with another constant map and
    0 otherwise.
    """
    a, b = _pair(a, b, 2)
    return float(np.mean([_spearman(x.ravel(), y.ravel()) for x, y in zip(a, b)]))


def _ssim2d(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two 2-D maps in [0, 1]: Gaussian window (sigma 1.5, ``reflect`` border, truncated at 4
    sigma), population (co)variances, averaged over every pixel (no border crop: maze maps are 11 x 11)."""
    g = lambda z: gaussian_filter(z, SSIM_SIGMA)  # noqa: E731
    mx, my = g(x), g(y)
    vx, vy, cxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    num = (2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)
    den = (mx * mx + my * my + SSIM_C1) * (vx + vy + SSIM_C2)
    return float(np.mean(num / den))


def _slices(m: np.ndarray) -> np.ndarray:
    """The 2-D spatial slices of one map, ``(k, H, W)``.

    2-D maps are one slice. A 3-D map whose last axis is shorter than both others is a channels-last frame
    stack (e.g. ``(84, 84, 4)``): its slices are the frames. Otherwise the last two axes are spatial and the
    leading axes index the slices (e.g. the ``s`` and ``s'`` maps of a ``(2, 11, 11)`` maze pair).
    """
    if m.ndim == 2:
        return m[None]
    if m.ndim == 3 and m.shape[-1] < min(m.shape[0], m.shape[1]):
        return np.moveaxis(m, -1, 0)
    return m.reshape(-1, *m.shape[-2:])


def _normalise(m: np.ndarray) -> np.ndarray:
    top = m.max()
    return m / top if top > 0 else m


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over inputs (first axis) of the structural similarity of the absolute maps.

    Each input's absolute map is divided by its maximum (range [0, 1]; an all-zero map stays zero), then SSIM
    (sigma 1.5, C1 = 0.01^2, C2 = 0.03^2) is computed per 2-D spatial slice and averaged: one slice for a 2-D
    map, one per frame for a channels-last ``(H, W, C)`` stack with ``C < H, W``, else one per index of the
    leading axes with the last two axes spatial (``(2, 11, 11)`` maze pairs: the ``s`` and ``s'`` maps).
    """
    a, b = _pair(a, b, 3)
    scores = []
    for x, y in zip(a, b):
        xs, ys = _slices(_normalise(x)), _slices(_normalise(y))
        scores.append(np.mean([_ssim2d(u, v) for u, v in zip(xs, ys)]))
    return float(np.mean(scores))


def randomisation_curve(model: nn.Module, attribute_fn: AttributeFn, inputs: Any, seed: int = 0) -> pd.DataFrame:
    """Similarity to the trained model's maps after each step of :func:`cascading_randomisation`.

    Columns ``step`` (0 = trained), ``layer`` (``"trained"``, then the layer randomised at that step),
    ``rank_corr`` (:func:`rank_correlation`) and ``ssim`` (:func:`ssim`); step 0 compares the trained maps with
    themselves (1, 1).
    """
    steps = cascading_randomisation(model, attribute_fn, inputs, seed)
    base = steps[0][1]
    rows = [{"step": k, "layer": name, "rank_corr": rank_correlation(base, maps), "ssim": ssim(base, maps)}
            for k, (name, maps) in enumerate(steps)]
    return pd.DataFrame(rows, columns=["step", "layer", "rank_corr", "ssim"])


def data_randomisation_compare(maps_trained: np.ndarray, maps_shuffled: np.ndarray) -> dict[str, float]:
    """Similarity of the maps of a model trained on real labels and one trained on shuffled labels (same
    inputs): ``{"rank_corr": ..., "ssim": ...}``. High similarity means the method does not reflect what the
    model learned from the labels."""
    return {"rank_corr": rank_correlation(maps_trained, maps_shuffled), "ssim": ssim(maps_trained, maps_shuffled)}


def sanity_verdict(curve: pd.DataFrame, threshold: float = 0.5) -> tuple[str, str]:
    """``("passes", criterion)`` when the rank correlation after full randomisation (the curve's last row) is
    below ``threshold``, else ``("fails", criterion)``; ``criterion`` states the test in words."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    if len(curve) < 2 or "rank_corr" not in curve:
        raise ValueError("expected a randomisation_curve with a rank_corr column and at least one randomised step")
    r = float(curve["rank_corr"].iloc[-1])
    passed = r < threshold
    criterion = (f"passes if the Spearman rank correlation between the trained model's absolute maps and those of "
                 f"the fully randomised model is below {threshold:g} (measured {r:.3f}): the maps must depend on "
                 f"the learned weights")
    return ("passes" if passed else "fails"), criterion


def randomisation_curves(models: Mapping[str, nn.Module], methods: Mapping[str, AttributeFn],
                         inputs: Any | Callable[[str], Any], threshold: float = 0.5,
                         seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`randomisation_curve` and :func:`sanity_verdict` for every (model, method).

    ``inputs`` is the batch every map is computed on, or a function of the model's name giving its batch (e.g.
    the observations of its score setting). Returns the curves (columns of :func:`randomisation_curve` plus
    ``model``, ``method``, ``verdict``) and the metrics ``<model>.<method>.rank_corr_final``, ``.ssim_final``
    and ``.verdict``.
    """
    if not models or not methods:
        raise ValueError("randomisation_curves needs at least one model and one method")
    curves, metrics = [], {}
    for name, model in models.items():
        batch = inputs(name) if callable(inputs) else inputs
        for method, fn in methods.items():
            curve = randomisation_curve(model, fn, batch, seed=seed)
            verdict, _ = sanity_verdict(curve, threshold)
            curves.append(curve.assign(model=name, method=method, verdict=verdict))
            metrics |= {f"{name}.{method}.rank_corr_final": float(curve["rank_corr"].iloc[-1]),
                        f"{name}.{method}.ssim_final": float(curve["ssim"].iloc[-1]),
                        f"{name}.{method}.verdict": verdict}
    return pd.concat(curves, ignore_index=True), metrics


def data_randomisation(trained: nn.Module, shuffled: nn.Module, methods: Mapping[str, AttributeFn], inputs: Any,
                       threshold: float = 0.5) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`data_randomisation_compare` per method, with a verdict (*passes* when the rank correlation is below
    ``threshold``). Returns a table indexed by method (rank_corr, ssim, verdict) and the metrics
    ``<method>.rank_corr``, ``.ssim``, ``.verdict``."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    rows, metrics = [], {}
    for method, fn in methods.items():
        cmp = data_randomisation_compare(fn(trained, inputs), fn(shuffled, inputs))
        verdict = "passes" if cmp["rank_corr"] < threshold else "fails"
        rows.append({"method": method, **cmp, "verdict": verdict})
        metrics |= {f"{method}.rank_corr": cmp["rank_corr"], f"{method}.ssim": cmp["ssim"],
                    f"{method}.verdict": verdict}
    return pd.DataFrame(rows).set_index("method"), metrics


def sanity_summary(curves: pd.DataFrame, by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Per group of :func:`randomisation_curves` rows (``by``: columns such as ``method``): the rank correlation
    after full randomisation over the group's models (mean ± sd) and how many models pass."""
    final = curves.groupby(["model", "method"], sort=False).last().reset_index()
    groups = final.groupby(list(by), sort=False)
    return pd.DataFrame({
        "rank corr. after full randomisation": groups["rank_corr"].apply(
            lambda v: fmt_spread(v.to_numpy(), 2, unit="model")),
        "models passing": groups["verdict"].apply(lambda v: f"{(v == 'passes').sum()} of {len(v)}"),
    })


def balanced_indices(rewarded: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n // 2`` rewarded and as many unrewarded samples (fewer when a class is smaller),
    drawn without replacement with ``numpy.random.default_rng(seed)``: the inputs of the sanity checks."""
    rewarded = np.asarray(rewarded, dtype=bool)
    if n < 2:
        raise ValueError(f"n must be at least 2 (one sample of each class), got {n}")
    yes, no = np.flatnonzero(rewarded), np.flatnonzero(~rewarded)
    half = min(n // 2, len(yes), len(no))
    rng = np.random.default_rng(seed)
    return np.sort(np.r_[rng.choice(yes, half, replace=False), rng.choice(no, half, replace=False)])


# ------------------------------------------------------------------------------------------- attributions
def _unknown(method: str, valid: Sequence[str]) -> ValueError:
    return ValueError(f"unknown attribution method {method!r}; valid methods: {', '.join(valid)}")


def _sobel(x: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude over the last two axes of ``x`` (each 2-D slice on its own; ``reflect`` border)."""
    x = np.asarray(x, dtype=np.float64)
    dy = correlate1d(correlate1d(x, [-1, 0, 1], axis=-2), [1, 2, 1], axis=-1)
    dx = correlate1d(correlate1d(x, [-1, 0, 1], axis=-1), [1, 2, 1], axis=-2)
    return np.hypot(dx, dy)


def _maze_inputs(model: RewardModel, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
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


def maze_attribution(method: str) -> AttributeFn:
    """``attribute_fn(model, (s, s_next)) -> (n, 2, H, W)`` maps of an ``R(s, s')`` maze model.

    ``"gradient"``: ``|dR/ds|`` and ``|dR/ds'|`` (:func:`~rewinterp_utils.attribution.gradient_saliency`);
    ``"integrated_gradients"``: absolute captum ``IntegratedGradients`` from all-zero grids (50 steps); FREE
    cells equal the baseline and get exactly zero, so these maps largely follow the input grid (expect a high
    rank correlation even after randomisation, as Adebayo et al. found for gradient x input);
    ``"edge"``: Sobel gradient magnitude of the grids themselves, model ignored (the control that fails).
    """
    if method not in MAZE_METHODS:
        raise _unknown(method, MAZE_METHODS)

    def attribute_fn(model: nn.Module, inputs: Any) -> np.ndarray:
        s, s_next = _maze_inputs(model, inputs)
        if method == "edge":
            return np.stack([_sobel(s), _sobel(s_next)], axis=1)
        dtype, device = attribution._param(model)
        xs = tuple(torch.as_tensor(x, dtype=dtype, device=device) for x in (s, s_next))
        if method == "gradient":
            maps = attribution.gradient_saliency(model, *xs)
        else:
            model.eval()
            maps = IntegratedGradients(model).attribute(xs, baselines=tuple(torch.zeros_like(x) for x in xs))
        return np.stack([m.detach().abs().cpu().double().numpy() for m in maps], axis=1)

    return attribute_fn


def atari_attribution(method: str, **kwargs: Any) -> AttributeFn:
    """``attribute_fn(model, obs) -> (n, 84, 84)`` maps of an ``R(s')`` Atari model, ``obs`` an ``(n, 84, 84, 4)``
    stack or a 1-tuple holding one.

    ``"occlusion"``, ``"gradient"``, ``"integrated_gradients"``: :func:`~rewinterp_utils.attribution.attribute`
    with ``kwargs`` (e.g. ``chunk_size``, ``n_steps``); ``"edge"``: Sobel gradient magnitude of the last frame,
    model ignored (the control that fails).
    """
    if method not in ATARI_METHODS:
        raise _unknown(method, ATARI_METHODS)

    def attribute_fn(model: nn.Module, inputs: Any) -> np.ndarray:
        obs = inputs[0] if isinstance(inputs, (tuple, list)) and len(inputs) == 1 else inputs
        obs, _ = attribution._check_obs(obs, model)
        if method == "edge":
            return _sobel(obs[..., -1])
        return np.asarray(attribution.attribute(model, obs, method, **kwargs))

    return attribute_fn


# -------------------------------------------------------------------------------------------------- stats
def bootstrap_share(shares: np.ndarray, n_boot: int = 1000, seed: int = 0,
                    ci: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of per-frame ``shares`` and its percentile-bootstrap ``ci`` interval
    (``n_boot`` resamples of the frames with replacement). NaN shares (all-zero maps) are dropped."""
    x = np.asarray(shares, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if len(x) == 0:
        raise ValueError("no finite shares to bootstrap")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return float(x.mean()), float(lo), float(hi)


__all__ = [
    "ATARI_METHODS", "MAZE_METHODS", "SSIM_C1", "SSIM_C2", "SSIM_SIGMA", "atari_attribution", "bootstrap_share",
    "cascading_randomisation", "data_randomisation_compare", "maze_attribution", "parametric_layers",
    "randomisation_curve", "randomise", "rank_correlation", "sanity_verdict", "ssim",
]

"""Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

A saliency method that explains a *model* must change when the model's learned weights are destroyed.

* **Model randomisation** (:func:`cascading_randomisation`, :func:`randomisation_curve`): re-initialise the
  parametric layers one at a time, from the output back to the input (cumulatively), recompute the maps after
  every step and compare them with the trained model's maps by :func:`~rewinterp_utils.stats.rank_correlation`
  (Spearman of the absolute maps) and :func:`~rewinterp_utils.stats.ssim` (structural similarity). A method
  passes (:func:`sanity_verdict`) when the maps of the fully randomised model no longer resemble the trained
  model's maps.
* **Data randomisation** (:func:`data_randomisation_compare`): compare the maps of a model trained on the
  real labels with those of a model trained on shuffled labels (training is up to the caller).

Attribution functions (``attribute_fn(model, inputs) -> maps``) come from
:func:`~rewinterp_utils.attribution.attribution_method`; its ``"edge"`` method, a Sobel edge detector on the
*input* that ignores the model, is the control that must FAIL the model-randomisation check.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from rewinterp_utils.attribution import AttributeFn
from rewinterp_utils.claims import fmt_spread
from rewinterp_utils.stats import rank_correlation, ssim


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


# ----------------------------------------------------------------------------------------------- curves
def randomisation_curve(model: nn.Module, attribute_fn: AttributeFn, inputs: Any, seed: int = 0) -> pd.DataFrame:
    """Similarity to the trained model's maps after each step of :func:`cascading_randomisation`.

    Columns ``step`` (0 = trained), ``layer`` (``"trained"``, then the layer randomised at that step),
    ``rank_corr`` (:func:`~rewinterp_utils.stats.rank_correlation`) and ``ssim``
    (:func:`~rewinterp_utils.stats.ssim`); step 0 compares the trained maps with themselves (1, 1).
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


__all__ = [
    "balanced_indices", "cascading_randomisation", "data_randomisation", "data_randomisation_compare",
    "parametric_layers", "randomisation_curve", "randomisation_curves", "randomise", "sanity_summary",
    "sanity_verdict",
]

"""Gradient saliency of reward models, through captum."""

from __future__ import annotations

import torch
from captum.attr import Saliency


def gradient_saliency(model: torch.nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """|dR/dx| for every input of ``model`` (e.g. ``(s, s')`` of the maze model), one tensor per input.

    Inputs are cast to float; the model is put in eval mode.
    """
    model.eval()
    xs = tuple(x.detach().to(torch.get_default_dtype() if not x.is_floating_point() else x.dtype)
               .requires_grad_(True) for x in inputs)
    attr = Saliency(model).attribute(xs if len(xs) > 1 else xs[0], abs=True)
    return tuple(a.detach() for a in attr) if isinstance(attr, tuple) else (attr.detach(),)

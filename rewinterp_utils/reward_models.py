"""Reward models learned by regression (PAPER.md section 1 step 3; section 2 for Atari)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class MazeRewardMLP(nn.Module):
    """R(s, s'): the stacked pair of grids (2 x H x W) -> 64 tanh -> 64 tanh -> 1, no output bias.

    ``uses_state`` tells the learned-reward wrapper that this model reads s as well as s'.
    """

    uses_state = True

    def __init__(self, grid_shape: tuple[int, int] = (11, 11), hidden: int = 64) -> None:
        super().__init__()
        self.grid_shape = tuple(grid_shape)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * grid_shape[0] * grid_shape[1], hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1, bias=False),
        )

    def forward(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        """Predicted reward, shape ``(batch,)``, for grids of shape ``(batch, H, W)``."""
        x = torch.stack([s, s_next], dim=1).to(self.net[1].weight.dtype)
        return self.net(x).squeeze(-1)


def save_model(model: nn.Module, path: Path) -> None:
    """Save the model's weights (a plain state dict)."""
    torch.save(model.state_dict(), path)


def load_model(model: nn.Module, path: Path) -> nn.Module:
    """Load weights saved by :func:`save_model` into ``model`` safely (``weights_only=True``); eval mode."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()

"""Reward models learned by regression: the maze MLP R(s, s') and the Atari CNN R(s') of the paper."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
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


class AtariRewardCNN(nn.Module):
    """R(s'): SB3's Nature-CNN feature extractor (512 features) + Linear(512, 1) (as in the paper).

    Input: stacked frames ``(batch, 84, 84, 4)`` channels-last uint8 as SB3's Atari wrappers give them
    (or channels-first ``(batch, 4, 84, 84)``); pixels are scaled to [0, 1] inside.
    ``uses_state = False``: the learned-reward wrapper passes only s'.
    """

    uses_state = False

    def __init__(self, n_stack: int = 4, size: int = 84) -> None:
        super().__init__()
        from gymnasium import spaces
        from stable_baselines3.common.torch_layers import NatureCNN

        space = spaces.Box(0, 255, shape=(n_stack, size, size), dtype=np.uint8)
        self.features = NatureCNN(space, features_dim=512, normalized_image=False)
        self.head = nn.Linear(512, 1)
        self.obs_shape = (size, size, n_stack)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Predicted reward, shape ``(batch,)``."""
        x = obs.to(self.head.weight.dtype)
        if x.shape[-1] == self.obs_shape[-1] and x.shape[1] != self.obs_shape[-1]:
            x = x.permute(0, 3, 1, 2)
        return self.head(self.features(x / 255.0)).squeeze(-1)


def save_model(model: nn.Module, path: Path) -> None:
    """Save the model's weights (a plain state dict)."""
    torch.save(model.state_dict(), path)


def load_model(model: nn.Module, path: Path) -> nn.Module:
    """Load weights saved by :func:`save_model` into ``model`` safely (``weights_only=True``); eval mode."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def fit_regression(model: nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor, epochs: int,
                   batch_size: int, learning_rate: float, seed: int,
                   evaluate: Callable[[nn.Module], dict[str, float]] | None = None, desc: str = "epoch") -> list[dict]:
    """Fit ``model(*inputs) ~ targets`` by MSE with Adam, the paper's regression: each epoch visits the samples in
    a random order drawn from a generator seeded by ``seed`` (the model's own initialisation is the caller's,
    e.g. ``torch.manual_seed(seed)`` before building it). Returns one dict per epoch: ``epoch``, ``train MSE``
    (mean minibatch loss) and whatever ``evaluate(model)`` adds."""
    from tqdm.auto import tqdm

    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and learning_rate > 0, got {epochs}, {batch_size}, "
                         f"{learning_rate}")
    if any(len(x) != len(targets) for x in inputs):
        raise ValueError(f"inputs and targets must have the same length, got {[len(x) for x in inputs]} and "
                         f"{len(targets)}")
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(targets), generator=generator)
        losses = []
        for idx in tqdm(order.split(batch_size), desc=f"{desc} {epoch + 1}/{epochs}"):
            loss = torch.nn.functional.mse_loss(model(*(x[idx] for x in inputs)), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append({"epoch": epoch + 1, "train MSE": float(np.mean(losses)), **(evaluate(model) if evaluate else {})})
    return history


MODEL_FILE = "reward_model.pt"
"""The file a reward-model stage saves its weights to (with :func:`save_model`)."""


def load_reward_model(folder: Path) -> nn.Module:
    """The reward model a reward-model stage saved in ``folder`` (``folder / MODEL_FILE``), in eval mode.

    The maze MLP, the Atari CNN and a normalised preference-learned MLP
    (:class:`~rewinterp_utils.preferences.Normalised`) are told apart by their weights' names; the MLP's width
    is read from them.
    """
    path = Path(folder) / MODEL_FILE
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "shift" in state and "scale" in state:  # a preference-learned model with its shift and scale fixed
        from rewinterp_utils.preferences import Normalised

        hidden, n_in = state["model.net.1.weight"].shape
        side = int(round((n_in // 2) ** 0.5))
        model: nn.Module = Normalised(MazeRewardMLP((side, side), hidden=hidden), 0.0, 1.0)
    elif any(k.startswith("features.") for k in state):
        model = AtariRewardCNN()
    elif "net.1.weight" in state:
        hidden, n_in = state["net.1.weight"].shape
        side = int(round((n_in // 2) ** 0.5))
        model = MazeRewardMLP((side, side), hidden=hidden)
    else:
        raise ValueError(f"{path} holds neither a MazeRewardMLP nor an AtariRewardCNN (keys: {', '.join(state)})")
    model.load_state_dict(state)
    return model.eval()


def predict(model: nn.Module, *inputs: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """The model's rewards for a batch of inputs (``model(*inputs)``), in chunks, without gradients, as numpy.

    ``predict(maze_model, s, s_next)`` or ``predict(atari_model, obs)``; the model is put in eval mode.
    """
    model.eval()
    tensors = [torch.as_tensor(x) for x in inputs]
    n = len(tensors[0])
    with torch.no_grad():
        out = [model(*(t[i:i + batch_size] for t in tensors)) for i in range(0, n, batch_size)]
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, np.float32)

"""Figures: maze grids in colour, saliency rows, learning curves, saliency over Atari screens."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from rewinterp_utils.envs.maze import grid_to_rgb


def show_grid(ax: plt.Axes, grid: np.ndarray, title: str | None = None) -> None:
    """Draw a maze grid on ``ax`` with no ticks."""
    ax.imshow(grid_to_rgb(grid, 1), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def show_map(ax: plt.Axes, values: np.ndarray, title: str | None = None, vmax: float | None = None) -> None:
    """Draw a non-negative map (e.g. |dR/ds|) on ``ax`` with a colour bar."""
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title, fontsize=9)


def saliency_figure(s_next: Sequence[np.ndarray], sal_s: Sequence[np.ndarray], sal_next: Sequence[np.ndarray],
                    titles: Sequence[str]) -> plt.Figure:
    """Figure 1 layout: one column per transition; rows s', |dR/ds|, |dR/ds'|."""
    n = len(s_next)
    fig, axes = plt.subplots(3, n, figsize=(2.3 * n, 6.6), squeeze=False)
    for j in range(n):
        show_grid(axes[0, j], s_next[j], titles[j])
        show_map(axes[1, j], sal_s[j])
        show_map(axes[2, j], sal_next[j])
    for i, label in enumerate(["s'", "|dR/ds|", "|dR/ds'|"]):
        axes[i, 0].set_ylabel(label)
    fig.tight_layout()
    return fig


def curves_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, ylabel: str,
                  ax: plt.Axes | None = None, runs: str = "seeds", show_runs: bool = True) -> plt.Figure:
    """Learning curves ``{label: (timesteps, y[run, t])}``: the mean over runs in bold, a band of one standard
    deviation and (``show_runs``) every run as a thin line; the legend gives the number of ``runs``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for c, (label, (t, y)) in enumerate(curves.items()):
        y = np.atleast_2d(np.asarray(y, dtype=float))
        mean = np.nanmean(y, 0)
        if show_runs and len(y) > 1:
            ax.plot(t, y.T, color=f"C{c}", lw=0.6, alpha=0.45)
        ax.plot(t, mean, color=f"C{c}", lw=2, label=f"{label} ({len(y)} {runs if len(y) > 1 else runs.rstrip('s')})")
        if len(y) > 1:
            std = np.nanstd(y, 0)
            ax.fill_between(t, mean - std, mean + std, color=f"C{c}", alpha=0.2)
    ax.set_xlabel("timesteps")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return ax.figure


def overlay_saliency(screen: np.ndarray, scores: np.ndarray, game: str, score: str = "shown",
                     colour: tuple[int, int, int] = (255, 0, 255), strength: float = 0.85) -> np.ndarray:
    """The raw (210, 160, 3) ``screen`` as the model's env shows it (``score`` mode) with a 17x17 occlusion map
    upsampled onto it and blended in ``colour`` (magenta: it stands out on both games' palettes), opacity
    proportional to the saliency scaled to its maximum."""
    from rewinterp_utils.attribution import upsample_saliency
    from rewinterp_utils.envs.atari import mask_frame

    sal = upsample_saliency(np.asarray(scores, dtype=np.float64), shape=screen.shape[:2])
    alpha = strength * np.clip(sal / max(sal.max(), 1e-12), 0, 1)[..., None]
    img = (1 - alpha) * mask_frame(screen, game, score).astype(np.float64) + alpha * np.asarray(colour, np.float64)
    return np.clip(img, 0, 255).astype(np.uint8)

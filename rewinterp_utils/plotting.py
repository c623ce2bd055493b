"""Figures: maze grids in colour, saliency rows, learning curves, saliency over Atari screens, randomisation curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import numpy as np

from rewinterp_utils.envs.maze import grid_to_rgb

if TYPE_CHECKING:
    import pandas as pd

BOOK_WIDTH = 7.6
"""Inches: the widest figure the book shows without shrinking it (its content column is about 780 px wide and
figures are saved at 100 dpi), so a font of 10 pt in the figure is 10 pt on the page."""
MIN_FONT = 9
"""The smallest font size (pt) any figure of the book may use."""
BOOK_STYLE = {"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
              "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 11}
"""matplotlib settings of every stage notebook (applied by :func:`book_style`)."""


def book_style() -> None:
    """Apply :data:`BOOK_STYLE` (``open_stage`` does it for every stage notebook)."""
    plt.rcParams.update(BOOK_STYLE)


def show_grid(ax: plt.Axes, grid: np.ndarray, title: str | None = None) -> None:
    """Draw a maze grid on ``ax`` with no ticks."""
    ax.imshow(grid_to_rgb(grid, 1), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)


def show_map(ax: plt.Axes, values: np.ndarray, title: str | None = None, vmax: float | None = None) -> None:
    """Draw a non-negative map (e.g. |dR/ds|) on ``ax`` with a colour bar."""
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)


def saliency_figure(s_next: Sequence[np.ndarray], sal_s: Sequence[np.ndarray], sal_next: Sequence[np.ndarray],
                    titles: Sequence[str]) -> plt.Figure:
    """Figure 1 layout: one column per transition; rows s', |dR/ds|, |dR/ds'|, each map row on one colour scale
    (one colour bar per row), sized to the book's width."""
    n = len(s_next)
    # a fixed layout (not "constrained"): glued figures must render to the same bytes every time they are drawn
    fig, axes = plt.subplots(3, n, figsize=(BOOK_WIDTH, 0.6 + 3 * BOOK_WIDTH / (n + 0.8)), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.88, top=0.9, bottom=0.02, wspace=0.08, hspace=0.25)
    for j in range(n):
        show_grid(axes[0, j], s_next[j], titles[j])
    for row, maps in ((1, sal_s), (2, sal_next)):
        vmax = max(float(np.max(m)) for m in maps)
        for j in range(n):
            im = axes[row, j].imshow(maps[j], cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
            axes[row, j].set_xticks([]), axes[row, j].set_yticks([])
        box = axes[row, -1].get_position()
        fig.colorbar(im, cax=fig.add_axes((0.9, box.y0, 0.015, box.height)))
    for i, label in enumerate(["s'", "|dR/ds|", "|dR/ds'|"]):
        axes[i, 0].set_ylabel(label)
    return fig


def curves_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, ylabel: str,
                  ax: plt.Axes | None = None, runs: str = "seeds", show_runs: bool = True) -> plt.Figure:
    """Learning curves ``{label: (timesteps, y[run, t])}``: the mean over runs in bold, a band of one standard
    deviation and (``show_runs``) every run as a thin line; the legend gives the number of ``runs``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(BOOK_WIDTH * 0.7, 3.5))
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
    ax.set_title(title)
    ax.legend()
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


def sanity_curves_figure(curves: pd.DataFrame, groups: dict[str, Sequence[str]], threshold: float,
                         height_per_row: float = 2.6) -> plt.Figure:
    """Model-parameter randomisation curves: a row per group of models (e.g. a score setting), columns rank
    correlation and SSIM; a colour per method, the group's first model drawn bold with markers and the other
    seeds thin. ``curves`` as returned by :func:`rewinterp_utils.sanity.randomisation_curves`."""
    methods = list(dict.fromkeys(curves["method"]))
    fig, axes = plt.subplots(len(groups), 2, figsize=(BOOK_WIDTH, 0.6 + height_per_row * len(groups)),
                             sharex=True, sharey=True, squeeze=False)
    for row, (group, names) in enumerate(groups.items()):
        for col, stat in enumerate(("rank_corr", "ssim")):
            ax = axes[row, col]
            for c, method in enumerate(methods):
                for k, name in enumerate(names):
                    sel = curves[(curves["method"] == method) & (curves["model"] == name)]
                    ax.plot(sel["step"], sel[stat], color=f"C{c}", marker="o" if k == 0 else None, ms=3,
                            lw=1.5 if k == 0 else 0.8, alpha=1 if k == 0 else 0.6,
                            label=method if row == col == 0 and k == 0 else None)
            ax.axhline(threshold, color="grey", ls=":", lw=1)
            ax.set_title(f"{group}: {stat.replace('_', ' ')}" if group else stat.replace("_", " "))
    for ax in axes[-1]:
        ax.set_xlabel("layers randomised (output first)")
    for ax in axes[:, 0]:
        ax.set_ylabel("similarity to trained")
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=len(methods), frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    return fig


def seed_strip(ax: plt.Axes, x: float, values: Sequence[float], paper: float | None = None,
               label: bool = False) -> None:
    """One quantity over model seeds at position ``x``: a dot per seed, their mean ± sd beside them and, when
    given, the paper's value as a red star. ``label`` names the marks for a legend (set it on one call)."""
    v = np.asarray(values, dtype=float)
    ax.scatter(x + np.linspace(-0.12, 0.12, len(v)), v, s=18, color="tab:blue", alpha=0.8,
               label="one model seed" if label else None)
    ax.errorbar(x + 0.25, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, fmt="o", color="k", capsize=3,
                label="mean ± sd" if label else None)
    if paper is not None:
        ax.scatter([x], [paper], marker="*", s=120, color="tab:red", zorder=3, label="paper" if label else None)

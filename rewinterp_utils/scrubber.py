"""Watch Atari reward models along an episode: a slider over steps (ipywidgets) and the same as an animation.

For each step of a stretch of expert play the scrubber shows the screen (with the score shown or hidden), the
occlusion map of each reward model on that screen, and the reward traces (true reward, the score-shown model,
the score-hidden model) with the current step marked. In a live notebook :attr:`AtariScrubber.widget` is the
slider; in the static book :meth:`AtariScrubber.animation` gives the same pictures as an HTML animation with
play and step controls (matplotlib's ``HTMLWriter``, frames embedded), so a reader sees a model fire when the
score digits change.

Example (in a notebook)::

    scrubber = AtariScrubber("Seaquest", steps, screens, obs, models, reward)
    scrubber.interactive()               # the live slider where someone can use it, else a still
    scrubber.show(40, view="hidden")     # one step, as a figure
    HTML(scrubber.animation(stride=4))   # the static animation
"""

from __future__ import annotations

from typing import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from rewinterp_utils.attribution import occlusion_saliency
from rewinterp_utils.envs.atari import SCORES
from rewinterp_utils.frontend import widget_or_static
from rewinterp_utils.plotting import BOOK_WIDTH, overlay_saliency
from rewinterp_utils.reward_models import RewardModel

MODEL_COLOURS = {"shown": "C0", "hidden": "C3"}


class AtariScrubber:
    """Step through an episode with both reward models of a game.

    Args:
        game: ``Breakout`` or ``Seaquest`` (for the score box).
        steps: the environment step of each recorded frame, shape ``(T,)``.
        screens: per score setting, the raw RGB screens ``(T, 210, 160, 3)`` behind the observations.
        obs: per score setting, the stacked observations ``(T, 84, 84, 4)`` the models read.
        models: per score setting, the reward model trained with the score ``shown`` / ``hidden``.
        reward: the true (clipped) reward of each step, ``(T,)``.
    """

    def __init__(self, game: str, steps: np.ndarray, screens: Mapping[str, np.ndarray], obs: Mapping[str, np.ndarray],
                 models: Mapping[str, RewardModel], reward: np.ndarray) -> None:
        self.game, self.steps, self.reward = game, np.asarray(steps), np.asarray(reward, dtype=float)
        n = len(self.steps)
        for name, arrays in (("screens", screens), ("obs", obs), ("models", models)):
            if set(arrays) != set(SCORES):
                raise ValueError(f"{name} must have one entry per score setting {SCORES}, got {sorted(arrays)}")
        for score in SCORES:
            if len(screens[score]) != n or len(obs[score]) != n:
                raise ValueError(f"screens and obs must have {n} steps, got {len(screens[score])} and "
                                 f"{len(obs[score])} for score {score}")
        if self.reward.shape != (n,):
            raise ValueError(f"reward must have shape ({n},), got {self.reward.shape}")
        self.screens, self.obs, self.models = dict(screens), dict(obs), dict(models)
        self.pred = {(m, s): models[m].predict(obs[s]) for m in SCORES for s in SCORES}
        self._maps: dict[tuple[str, str, int], np.ndarray] = {}
        self.figure: Figure | None = None
        self._widget: widgets.VBox | None = None

    def occlusion(self, model: str, view: str, t: int) -> np.ndarray:
        """The occlusion map (17x17) of ``model`` on the observation of step index ``t`` in setting ``view``."""
        key = (model, view, t)
        if key not in self._maps:
            self._maps[key] = occlusion_saliency(self.models[model], self.obs[view][t:t + 1])[0]
        return self._maps[key]

    def precompute(self, view: str, indices: np.ndarray) -> None:
        """Occlusion maps of both models for the steps ``indices`` of ``view`` in one batch each."""
        todo = np.array([t for t in indices if ("shown", view, int(t)) not in self._maps], dtype=int)
        if len(todo):
            for model in SCORES:
                for t, m in zip(todo, occlusion_saliency(self.models[model], self.obs[view][todo])):
                    self._maps[(model, view, int(t))] = m

    def _draw(self, fig: Figure, t: int, view: str) -> None:
        fig.clear()
        grid = fig.add_gridspec(2, 2, height_ratios=[3, 2])
        for col, model in enumerate(SCORES):
            ax = fig.add_subplot(grid[0, col])
            ax.imshow(overlay_saliency(self.screens[view][t], self.occlusion(model, view, t), self.game, view))
            ax.set_title(f"model trained with score {model}: R = {self.pred[(model, view)][t]:.2f}", fontsize=9)
            ax.axis("off")
        ax = fig.add_subplot(grid[1, :])
        ax.plot(self.steps, self.reward, color="k", lw=1, label="true reward")
        for model in SCORES:
            ax.plot(self.steps, self.pred[(model, view)], color=MODEL_COLOURS[model], lw=1,
                    label=f"model trained with score {model}")
        ax.axvline(self.steps[t], color="grey", lw=1.5)
        ax.set(xlabel="step", ylabel="reward", title=f"play with the score {view}, step {self.steps[t]}")
        ax.legend(loc="upper left", fontsize=9)
        fig.tight_layout()

    def show(self, t: int, view: str = "hidden") -> Figure:
        """The picture of step index ``t`` with the score ``view`` (``shown`` or ``hidden``)."""
        if view not in SCORES:
            raise ValueError(f"view must be one of {SCORES}, got {view!r}")
        if not 0 <= t < len(self.steps):
            raise ValueError(f"t must be in [0, {len(self.steps) - 1}], got {t}")
        fig = plt.figure(figsize=(BOOK_WIDTH, 6.2))
        self._draw(fig, t, view)
        self.figure = fig
        return fig

    def _update(self, _change: object = None) -> None:
        from IPython.display import display

        fig = self.show(self.slider.value, self.view.value)
        self.output.clear_output(wait=True)
        with self.output:
            display(fig)
        plt.close(fig)

    @property
    def widget(self) -> widgets.VBox:
        """The live scrubber: score toggle, step slider and the picture (made on first use)."""
        if self._widget is None:
            self.slider = widgets.IntSlider(value=0, min=0, max=len(self.steps) - 1, description="step",
                                            continuous_update=False)
            self.view = widgets.ToggleButtons(options=list(SCORES), value="hidden", description="score")
            self.output = widgets.Output()
            self.slider.observe(self._update, names="value")
            self.view.observe(self._update, names="value")
            self._widget = widgets.VBox([self.view, self.slider, self.output])
        self._update()
        return self._widget

    def interactive(self, view: str = "shown") -> widgets.VBox | Figure:
        """The live :attr:`widget` where a person can use it, else the still of the first rewarded step of
        ``view`` (see :func:`~rewinterp_utils.frontend.live_widgets`)."""
        rewarded = np.flatnonzero(self.reward != 0)
        return widget_or_static(lambda: self.widget, lambda: self.show(int(rewarded[0]) if len(rewarded) else 0,
                                                                       view))

    def animation(self, view: str = "hidden", stride: int = 4, dpi: int = 90, fps: int = 4) -> str:
        """Every ``stride``-th step of ``view`` as a self-contained HTML animation (play, pause, step and a slider
        over the frames; JPEG frames embedded, matplotlib's ``HTMLWriter``)."""
        import tempfile
        from pathlib import Path

        from matplotlib.animation import FuncAnimation, HTMLWriter

        indices = np.arange(0, len(self.steps), stride)
        self.precompute(view, indices)
        fig = plt.figure(figsize=(BOOK_WIDTH, 6.2), dpi=dpi)
        anim = FuncAnimation(fig, lambda i: self._draw(fig, int(indices[i]), view), frames=len(indices),
                             interval=1000 / fps)
        writer = HTMLWriter(fps=fps, embed_frames=True, default_mode="once")
        writer.frame_format = "jpeg"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "animation.html"
            anim.save(str(path), writer=writer, dpi=dpi)
            html = path.read_text()
        plt.close(fig)
        return html

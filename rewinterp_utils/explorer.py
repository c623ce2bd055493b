"""An interactive explorer of a maze reward model R(s, s') built from ipywidgets.

Two clickable grids of buttons, one for s and one for s', cover the interior cells of the maze (the border
walls are fixed). A "place" selector chooses what a click does: ``agent`` moves that grid's agent there,
``goal`` toggles a goal on the cell, ``erase`` removes a goal. After every change an Output widget shows
s, s', |dR/ds| and |dR/ds'| with R(s, s') in the title. In a rendered (static) book, where widgets are not
live, :meth:`RewardExplorer.figure` gives the same picture as a plain matplotlib figure.

Example (in a notebook)::

    explorer = RewardExplorer(model)
    explorer.interactive()               # the live explorer where someone can use it, else its figure
    explorer.place("s_next", (1, 1), "goal")
    explorer.figure()                    # static picture of the current state
"""

from __future__ import annotations

import base64
import io
from typing import Iterable, Literal, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from rewinterp_utils.envs.maze import COLOURS, FREE, Square, draw, empty_layout
from rewinterp_utils.plotting import BOOK_WIDTH, show_grid, show_map
from rewinterp_utils.attribution import gradient_saliency
from rewinterp_utils.frontend import widget_or_static
from rewinterp_utils.reward_models import RewardModel

GridName = Literal["s", "s_next"]
Mode = Literal["agent", "goal", "erase"]
GRIDS: tuple[str, ...] = ("s", "s_next")
MODES: tuple[str, ...] = ("agent", "goal", "erase")
CELL_PX = 24
"""Side of one cell button, in pixels."""


def _hex(value: int) -> str:
    """The plotting colour of a cell value as ``#rrggbb``."""
    return "#{:02x}{:02x}{:02x}".format(*COLOURS[value])


class RewardExplorer:
    """Edit a transition (s, s') of the maze by clicking and watch R(s, s') and its gradient saliency.

    Args:
        model: a reward model of ``(s, s')`` on ``(batch, H, W)`` grids, e.g.
            :class:`~rewinterp_utils.reward_models.MazeRewardMLP`. It is put in eval mode.
        layout: the maze layout (FREE/WALL cells); the empty 11x11 maze by default.
        agent_s, agent_next: the agent's cell in s and in s'.
        goals_s, goals_next: the goal cells in s and in s' (any number, including none).

    The default state is a CoinFlip-like step onto the goal at (9, 9): the agent moves from (9, 8) in s
    to (9, 9) in s', where it hides the goal (the agent is drawn over goals).
    """

    def __init__(
        self,
        model: RewardModel,
        layout: np.ndarray | None = None,
        agent_s: Square = (9, 8),
        agent_next: Square = (9, 9),
        goals_s: Sequence[Square] = ((9, 9),),
        goals_next: Sequence[Square] = ((9, 9),),
    ) -> None:
        if not isinstance(model, RewardModel) or model.inputs != ("s", "s_next"):
            raise ValueError(f"model must be a RewardModel reading (s, s_next), got {type(model).__name__}")
        self.model = model.eval()
        self.layout = (empty_layout() if layout is None else np.asarray(layout, dtype=np.uint8)).copy()
        height, width = self.layout.shape
        self._rows = range(1, height - 1)
        self._cols = range(1, width - 1)
        self._default = {
            "agent": {"s": self._check_cell(agent_s), "s_next": self._check_cell(agent_next)},
            "goals": {"s": self._unique(goals_s), "s_next": self._unique(goals_next)},
        }
        self._agent: dict[str, Square] = {}
        self._goals: dict[str, list[Square]] = {}
        self._set_default_state()
        self._widget: widgets.VBox | None = None

    # -- state -------------------------------------------------------------------------------------
    @property
    def s(self) -> np.ndarray:
        """The current grid s (``uint8``, the layout's shape)."""
        return draw(self.layout, self._agent["s"], self._goals["s"])

    @property
    def s_next(self) -> np.ndarray:
        """The current grid s' (``uint8``, the layout's shape)."""
        return draw(self.layout, self._agent["s_next"], self._goals["s_next"])

    def grid(self, name: GridName) -> np.ndarray:
        """The current grid called ``name`` (``"s"`` or ``"s_next"``)."""
        return self.s if self._check_grid(name) == "s" else self.s_next

    def reward(self) -> float:
        """R(s, s') of the current state, computed in eval mode without gradients."""
        return float(self.model.predict(self.s[None], self.s_next[None])[0])

    def saliency(self) -> tuple[np.ndarray, np.ndarray]:
        """(|dR/ds|, |dR/ds'|) of the current state, each of the layout's shape."""
        sal_s, sal_next = gradient_saliency(self.model, *self._tensors())
        return sal_s[0].cpu().numpy(), sal_next[0].cpu().numpy()

    def place(self, grid: GridName, cell: Square, mode: Mode) -> None:
        """Apply one edit, exactly as a click on a cell button does, and refresh the display.

        ``"agent"`` moves the agent of ``grid`` to ``cell``; ``"goal"`` toggles a goal on ``cell``;
        ``"erase"`` removes a goal from ``cell`` (nothing happens if there is none).

        Raises:
            ValueError: unknown ``grid`` or ``mode``, or ``cell`` is not a free interior cell.
        """
        grid = self._check_grid(grid)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        cell = self._check_cell(cell)
        goals = self._goals[grid]
        if mode == "agent":
            self._agent[grid] = cell
        elif mode == "goal":
            if cell in goals:
                goals.remove(cell)
            else:
                goals.append(cell)
        elif cell in goals:
            goals.remove(cell)
        self._refresh()

    def copy_goals(self) -> None:
        """Make the goals of s' the same as those of s."""
        self._goals["s_next"] = list(self._goals["s"])
        self._refresh()

    def reset(self) -> None:
        """Go back to the state the explorer was created with."""
        self._set_default_state()
        self._refresh()

    # -- pictures ----------------------------------------------------------------------------------
    def figure(self) -> Figure:
        """A static figure of s, s', |dR/ds| and |dR/ds'| with R(s, s') in the title.

        The figure is not registered with pyplot: it displays once as a cell's value and needs no closing.
        Both saliency maps share one colour scale so they can be compared.
        """
        s, s_next = self.s, self.s_next
        sal_s, sal_next = self.saliency()
        vmax = float(max(sal_s.max(), sal_next.max())) or None
        fig = Figure(figsize=(BOOK_WIDTH, 2.4), layout="constrained")
        axes = fig.subplots(1, 4)
        show_grid(axes[0], s, "s")
        show_grid(axes[1], s_next, "s'")
        show_map(axes[2], sal_s, "|dR/ds|", vmax=vmax)
        show_map(axes[3], sal_next, "|dR/ds'|", vmax=vmax)
        fig.suptitle(f"R(s, s') = {self.reward():.3f}", fontsize=11)
        return fig

    # -- widgets -----------------------------------------------------------------------------------
    @property
    def widget(self) -> widgets.VBox:
        """The live explorer: mode buttons, one clickable grid for s and one for s', R and the figure (made on
        first use, so that no widget exists where nobody can use one)."""
        if self._widget is None:
            self._widget = self._build_widgets()
            self._refresh()
        return self._widget

    def interactive(self) -> widgets.VBox | Figure:
        """The live :attr:`widget` where a person can use it, else :meth:`figure` (see
        :func:`~rewinterp_utils.frontend.live_widgets`)."""
        return widget_or_static(lambda: self.widget, self.figure)

    def _build_widgets(self) -> widgets.VBox:
        self.mode_selector = widgets.ToggleButtons(
            options=list(MODES), value="agent", description="place",
            style={"button_width": "64px"}, tooltips=["move the agent", "toggle a goal", "remove a goal"],
        )
        self.copy_button = widgets.Button(description="copy goals s -> s'", layout=widgets.Layout(width="150px"))
        self.reset_button = widgets.Button(description="reset", layout=widgets.Layout(width="70px"))
        self.copy_button.on_click(lambda _: self.copy_goals())
        self.reset_button.on_click(lambda _: self.reset())
        self.buttons: dict[str, dict[Square, widgets.Button]] = {}
        boxes = []
        for name, label in (("s", "s"), ("s_next", "s'")):
            self.buttons[name] = {}
            for r in self._rows:
                for c in self._cols:
                    button = widgets.Button(
                        description="", tooltip=f"{label} ({r}, {c})",
                        disabled=bool(self.layout[r, c] != FREE),
                        layout=widgets.Layout(width=f"{CELL_PX}px", height=f"{CELL_PX}px", padding="0",
                                              margin="0", border="1px solid #bbbbbb"),
                    )
                    button.on_click(self._click_handler(name, (r, c)))
                    self.buttons[name][(r, c)] = button
            grid_box = widgets.GridBox(
                list(self.buttons[name].values()),
                layout=widgets.Layout(grid_template_columns=f"repeat({len(self._cols)}, {CELL_PX}px)",
                                      grid_gap="0px"),
            )
            boxes.append(widgets.VBox([widgets.HTML(f"<b>{label}</b>"), grid_box],
                                      layout=widgets.Layout(margin="0 24px 0 0")))
        self.reward_label = widgets.HTML()
        self.output = widgets.Output()
        return widgets.VBox([
            widgets.HBox([self.mode_selector, self.copy_button, self.reset_button]),
            widgets.HBox(boxes),
            self.reward_label,
            self.output,
        ])

    def _click_handler(self, grid: str, cell: Square):
        def handler(_: widgets.Button) -> None:
            self.place(grid, cell, self.mode_selector.value)
        return handler

    def _refresh(self) -> None:
        """Recolour the cell buttons and re-render the figure into the Output widget (once they exist)."""
        if self._widget is None:
            return
        for name in GRIDS:
            grid = self.grid(name)
            for (r, c), button in self.buttons[name].items():
                button.style.button_color = _hex(int(grid[r, c]))
        self.reward_label.value = f"R(s, s') = <b>{self.reward():.3f}</b>"
        fig = self.figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        plt.close(fig)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        self.output.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": png, "text/plain": f"<RewardExplorer figure, R = {self.reward():.3f}>"},
            "metadata": {},
        },)

    # -- helpers -----------------------------------------------------------------------------------
    def _set_default_state(self) -> None:
        self._agent = dict(self._default["agent"])
        self._goals = {name: list(goals) for name, goals in self._default["goals"].items()}

    def _tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        dtype, device = torch.get_default_dtype(), self.model.device
        return tuple(torch.as_tensor(g[None], dtype=dtype, device=device) for g in (self.s, self.s_next))

    @staticmethod
    def _check_grid(grid: str) -> str:
        if grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
        return grid

    def _check_cell(self, cell: Square) -> Square:
        try:
            r, c = (int(v) for v in cell)
        except (TypeError, ValueError):
            raise ValueError(f"cell must be a (row, col) pair, got {cell!r}") from None
        if r not in self._rows or c not in self._cols or self.layout[r, c] != FREE:
            raise ValueError(f"cell {(r, c)} is not a free interior cell of the maze")
        return (r, c)

    def _unique(self, cells: Iterable[Square]) -> list[Square]:
        out: list[Square] = []
        for cell in cells:
            cell = self._check_cell(cell)
            if cell not in out:
                out.append(cell)
        return out


__all__ = ["RewardExplorer", "GRIDS", "MODES"]

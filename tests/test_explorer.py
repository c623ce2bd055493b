"""RewardExplorer: state edits by place() and by button clicks, reward, figure, errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rewinterp_utils.envs.maze import AGENT, FREE, GOAL, draw, empty_layout, walled_layout  # noqa: E402
from rewinterp_utils.explorer import RewardExplorer  # noqa: E402
from rewinterp_utils.envs.maze import COLOURS  # noqa: E402
from rewinterp_utils.reward_models import MazeRewardMLP  # noqa: E402


@pytest.fixture
def model() -> MazeRewardMLP:
    torch.manual_seed(0)
    return MazeRewardMLP(hidden=8)


@pytest.fixture
def explorer(model) -> RewardExplorer:
    made = RewardExplorer(model)
    made.widget  # the live widgets are made on first use
    return made


def hex_of(value: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*COLOURS[value])


def direct_reward(model, s, s_next) -> float:
    with torch.no_grad():
        return float(model(torch.as_tensor(s[None]).float(), torch.as_tensor(s_next[None]).float())[0])


def test_default_state_and_reward(model, explorer):
    layout = empty_layout()
    assert np.array_equal(explorer.s, draw(layout, (9, 8), [(9, 9)]))
    assert np.array_equal(explorer.s_next, draw(layout, (9, 9), [(9, 9)]))
    assert explorer.s.dtype == np.uint8 and explorer.s.shape == (11, 11)
    assert explorer.s[9, 9] == GOAL and explorer.s_next[9, 9] == AGENT  # goal hidden under the agent
    assert explorer.reward() == pytest.approx(direct_reward(model, explorer.s, explorer.s_next), abs=1e-6)
    assert not model.training


def test_place_updates_grids(model, explorer):
    explorer.place("s", (3, 4), "agent")
    assert explorer.s[3, 4] == AGENT and explorer.s[9, 8] == FREE and (explorer.s == AGENT).sum() == 1
    explorer.place("s_next", (1, 1), "goal")  # toggle on
    assert explorer.s_next[1, 1] == GOAL and explorer.s[1, 1] == FREE
    explorer.place("s_next", (1, 1), "goal")  # toggle off
    assert explorer.s_next[1, 1] == FREE
    explorer.place("s_next", (5, 5), "goal")
    explorer.place("s_next", (5, 5), "erase")
    assert explorer.s_next[5, 5] == FREE
    explorer.place("s_next", (5, 5), "erase")  # erasing nothing is a no-op
    assert explorer.s_next[5, 5] == FREE
    explorer.place("s", (9, 9), "erase")  # zero goals is allowed
    assert (explorer.s == GOAL).sum() == 0
    # the agent is drawn over a goal; moving it away reveals the goal
    explorer.place("s", (2, 2), "goal")
    explorer.place("s", (2, 2), "agent")
    assert explorer.s[2, 2] == AGENT
    explorer.place("s", (2, 3), "agent")
    assert explorer.s[2, 2] == GOAL and explorer.s[2, 3] == AGENT
    assert explorer.reward() == pytest.approx(direct_reward(model, explorer.s, explorer.s_next), abs=1e-6)


def test_button_clicks_match_place(model):
    clicked, placed = RewardExplorer(model), RewardExplorer(model)
    clicked.widget
    for grid, cell, mode in [("s", (4, 4), "agent"), ("s_next", (1, 1), "goal"), ("s_next", (9, 9), "erase"),
                             ("s_next", (1, 1), "agent"), ("s", (6, 2), "goal"), ("s", (6, 2), "goal")]:
        clicked.mode_selector.value = mode
        clicked.buttons[grid][cell].click()
        placed.place(grid, cell, mode)
        assert np.array_equal(clicked.s, placed.s) and np.array_equal(clicked.s_next, placed.s_next)
    # button colours show the drawn cells (agent over goal shows as agent)
    for name, grid in (("s", clicked.s), ("s_next", clicked.s_next)):
        assert len(clicked.buttons[name]) == 81
        for (r, c), button in clicked.buttons[name].items():
            assert button.style.button_color == hex_of(int(grid[r, c]))
    assert clicked.buttons["s_next"][(1, 1)].style.button_color == hex_of(AGENT)


def test_copy_and_reset_buttons(explorer):
    default_s, default_next = explorer.s, explorer.s_next
    explorer.place("s", (1, 1), "goal")
    explorer.copy_button.click()
    assert set(map(tuple, np.argwhere(explorer.s_next == GOAL))) == {(1, 1)}  # (9, 9) is under the agent
    explorer.place("s_next", (5, 5), "agent")
    assert explorer.s_next[9, 9] == GOAL
    explorer.reset_button.click()
    assert np.array_equal(explorer.s, default_s) and np.array_equal(explorer.s_next, default_next)


def test_output_rerenders_without_leaking_figures(explorer):
    before = plt.get_fignums()
    first = explorer.output.outputs
    assert len(first) == 1 and "image/png" in first[0]["data"]
    explorer.mode_selector.value = "goal"
    explorer.buttons["s"][(3, 3)].click()
    assert explorer.output.outputs != first
    assert plt.get_fignums() == before
    assert f"{explorer.reward():.3f}" in explorer.reward_label.value


def test_figure(explorer):
    fig = explorer.figure()
    assert isinstance(fig, Figure)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4
    assert [ax.get_title() for ax in image_axes] == ["s", "s'", "|dR/ds|", "|dR/ds'|"]
    assert f"{explorer.reward():.3f}" in fig._suptitle.get_text()
    assert np.array_equal(image_axes[2].images[0].get_array(), explorer.saliency()[0])


@pytest.mark.parametrize("grid, cell, mode", [
    ("s", (0, 0), "agent"),       # border wall
    ("s", (11, 3), "goal"),       # outside the grid
    ("s", (5, 5), "teleport"),    # unknown mode
    ("s'", (5, 5), "agent"),      # unknown grid
])
def test_invalid_place_raises(explorer, grid, cell, mode):
    s, s_next = explorer.s, explorer.s_next
    with pytest.raises(ValueError):
        explorer.place(grid, cell, mode)
    assert np.array_equal(explorer.s, s) and np.array_equal(explorer.s_next, s_next)


def test_walled_layout(model):
    layout = walled_layout()
    explorer = RewardExplorer(model, layout=layout, agent_s=(1, 1), agent_next=(1, 2), goals_s=(), goals_next=())
    explorer.widget
    assert explorer.buttons["s"][(2, 2)].disabled and not explorer.buttons["s"][(1, 1)].disabled
    with pytest.raises(ValueError):
        explorer.place("s", (2, 2), "goal")  # interior wall
    with pytest.raises(ValueError):
        RewardExplorer(model, layout=layout, agent_s=(2, 2))

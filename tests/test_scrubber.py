"""The Atari scrubber: the slider and the score toggle drive what is drawn; the static animation is embedded HTML."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewinterp_utils.reward_models import AtariRewardCNN
from rewinterp_utils.scrubber import AtariScrubber

T = 6


@pytest.fixture(scope="module")
def scrubber():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    models = {s: AtariRewardCNN().eval() for s in ("shown", "hidden")}
    obs = {s: rng.integers(0, 255, (T, 84, 84, 4), dtype=np.uint8) for s in ("shown", "hidden")}
    screens = {s: rng.integers(0, 255, (T, 210, 160, 3), dtype=np.uint8) for s in ("shown", "hidden")}
    reward = np.array([0, 0, 1, 0, 0, 1], dtype=float)
    return AtariScrubber("Seaquest", np.arange(100, 100 + T), screens, obs, models, reward)


def _marker(fig):
    """The x of the vertical step marker and the traces' title in the drawn figure."""
    ax = fig.axes[-1]
    return ax.lines[-1].get_xdata()[0], ax.get_title()


def test_slider_and_toggle_change_the_picture(scrubber):
    scrubber.widget  # builds the first picture
    seen = []
    for t in range(T):
        scrubber.slider.value = t
        x, title = _marker(scrubber.figure)
        assert x == 100 + t and title.endswith(f"step {100 + t}")
        seen.append(np.asarray(scrubber.figure.axes[0].images[0].get_array()).copy())
    assert not np.array_equal(seen[0], seen[1]), "the screen follows the slider"
    scrubber.view.value = "shown"
    assert "score shown" in _marker(scrubber.figure)[1]
    r_title = scrubber.figure.axes[0].get_title()
    assert f"R = {scrubber.pred[('shown', 'shown')][T - 1]:.2f}" in r_title


def test_bad_step_or_view_is_a_valueerror(scrubber):
    with pytest.raises(ValueError, match="view"):
        scrubber.show(0, "blurred")
    with pytest.raises(ValueError, match="t must be"):
        scrubber.show(T, "shown")


def test_animation_is_self_contained_html(scrubber):
    html = scrubber.animation(stride=2)
    assert "<script" in html and html.count("data:image/jpeg;base64") >= T // 2
    assert len(html) < 5_000_000

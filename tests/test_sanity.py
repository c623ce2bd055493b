"""Saliency sanity checks (rewinterp_utils.sanity, after Adebayo et al. 2018): layer randomisation, the
attribution registry they run, and the model-randomisation verdict on a trained maze model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import random_stacks as stacks
from scipy.ndimage import sobel
from torch import nn

from rewinterp_utils.attribution import ATARI_METHODS, MAZE_METHODS, attribution_method
from rewinterp_utils.envs.maze import ACTIONS, FREE, WALL, draw, empty_layout
from rewinterp_utils.reward_models import AtariRewardCNN, MazeRewardMLP
from rewinterp_utils.sanity import (
    cascading_randomisation,
    data_randomisation_compare,
    parametric_layers,
    randomisation_curve,
    randomise,
    sanity_verdict,
)

MAZE_LAYERS = ["net.5", "net.3", "net.1"]
ATARI_LAYERS = ["head", "features.linear.0", "features.cnn.4", "features.cnn.2", "features.cnn.0"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def transitions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-goal transitions on the empty maze, built with numpy; reward 1 iff the agent entered the goal.
    About 40% start next to the goal, so about 10% are rewarded."""
    layout = empty_layout()
    cells = [tuple(map(int, c)) for c in np.argwhere(layout == FREE)]
    moves = list(ACTIONS.values())
    s, s_next = np.empty((2, n, 11, 11), dtype=np.uint8)
    r = np.zeros(n, dtype=np.float32)
    for i in range(n):
        goal = cells[rng.integers(len(cells))]
        d = moves[rng.integers(4)]
        agent = (goal[0] - d[0], goal[1] - d[1])
        if rng.random() >= 0.4 or layout[agent] == WALL:
            agent = goal
            while agent == goal:
                agent = cells[rng.integers(len(cells))]
        d = moves[rng.integers(4)]
        nxt = (agent[0] + d[0], agent[1] + d[1])
        nxt = agent if layout[nxt] == WALL else nxt
        s[i], s_next[i], r[i] = draw(layout, agent, [goal]), draw(layout, nxt, [goal]), float(nxt == goal)
    return s, s_next, r


@pytest.fixture(scope="module")
def trained_maze():
    """A MazeRewardMLP regressed on 4000 synthetic transitions (a few seconds), and 32 held-out inputs."""
    s, s_next, r = transitions(4000, np.random.default_rng(0))
    torch.manual_seed(0)
    model = MazeRewardMLP()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    S, N, R = (torch.as_tensor(x, dtype=torch.float32) for x in (s, s_next, r))
    for _ in range(40):
        perm = torch.randperm(len(S))
        for i in range(0, len(S), 128):
            b = perm[i:i + 128]
            loss = ((model(S[b], N[b]) - R[b]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    ts, tn, tr = transitions(300, np.random.default_rng(1))
    with torch.no_grad():
        pred = model(torch.as_tensor(ts).float(), torch.as_tensor(tn).float()).numpy()
    assert ((pred > 0.5) == (tr > 0.5)).mean() > 0.98  # it learned the reward
    return model.eval(), (ts[:32], tn[:32])


class TinyAtari(nn.Module):
    """A small CNN on channels-last (N, 84, 84, 4) stacks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 8, stride=8)
        self.head = nn.Linear(4 * 10 * 10, 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float().permute(0, 3, 1, 2) / 255.0
        return self.head(torch.tanh(self.conv(x)).flatten(1)).squeeze(-1)


# ------------------------------------------------------------------------------------------ randomisation
def test_parametric_layers_order_output_to_input():
    assert parametric_layers(MazeRewardMLP()) == MAZE_LAYERS
    assert parametric_layers(AtariRewardCNN()) == ATARI_LAYERS
    assert parametric_layers(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))) == ["2", "0"]


def _params(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: v.detach().clone() for k, v in m.named_parameters(recurse=False)}
            for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))}


def _changed(a: nn.Module, b: nn.Module) -> set[str]:
    pa, pb = _params(a), _params(b)
    return {name for name in pa if any(not torch.equal(pa[name][k], pb[name][k]) for k in pa[name])}


@pytest.mark.parametrize("layers", [["net.3"], ["net.5", "net.1"], MAZE_LAYERS])
def test_randomise_changes_exactly_the_named_layers(layers):
    torch.manual_seed(0)
    model = MazeRewardMLP()
    before = _params(model)
    rng_state = torch.random.get_rng_state()
    out = randomise(model, layers, seed=3)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the global RNG is left alone
    assert _changed(model, out) == set(layers)
    assert all(torch.equal(v, before[n][k]) for n, p in _params(model).items() for k, v in p.items())  # original kept
    every_param_changed = [not torch.equal(p, q) for n in layers for p, q in
                           zip(dict(model.named_modules())[n].parameters(), dict(out.named_modules())[n].parameters())]
    assert all(every_param_changed)  # weights and biases
    s = torch.randint(0, 4, (5, 11, 11)).float()
    with torch.no_grad():
        assert not torch.allclose(model(s, s), out(s, s))
    again = randomise(model, layers, seed=3)
    assert _changed(out, again) == set()  # same seed, same weights
    assert _changed(out, randomise(model, layers, seed=4)) == set(layers)


def test_randomise_atari_layers():
    model = AtariRewardCNN().eval()
    out = randomise(model, ["head", "features.cnn.2"], seed=0)
    assert _changed(model, out) == {"head", "features.cnn.2"}
    assert not out.training
    obs = torch.as_tensor(stacks(2))
    with torch.no_grad():
        assert not torch.allclose(model(obs), out(obs))


def test_randomise_unknown_layer():
    with pytest.raises(ValueError, match="valid layers.*net.5, net.3, net.1"):
        randomise(MazeRewardMLP(), ["net.2"], seed=0)
    with pytest.raises(ValueError, match="unknown layer"):
        randomise(MazeRewardMLP(), ["net.1", "head"], seed=0)


def test_cascading_randomisation_is_cumulative_from_the_output():
    model = MazeRewardMLP()
    seen = []

    def record(m, inputs):
        seen.append(m)
        return np.zeros((len(inputs[0]), 2, 11, 11))

    s = np.zeros((3, 11, 11))
    steps = cascading_randomisation(model, record, (s, s), seed=1)
    assert [name for name, _ in steps] == ["trained", *MAZE_LAYERS]
    assert seen[0] is model
    for k, m in enumerate(seen):
        assert _changed(model, m) == set(MAZE_LAYERS[:k])
    # a layer keeps the same random weights once randomised
    assert not _changed(seen[1], seen[3]) & {"net.5"}
    assert all(maps.shape == (3, 2, 11, 11) for _, maps in steps)


# ------------------------------------------------------------------------------------ data randomisation
def test_data_randomisation_compare():
    rng = np.random.default_rng(0)
    a = rng.random((2, 84, 84))
    assert data_randomisation_compare(a, a) == pytest.approx({"rank_corr": 1.0, "ssim": 1.0})
    out = data_randomisation_compare(a, rng.random((2, 84, 84)))
    assert set(out) == {"rank_corr", "ssim"} and out["rank_corr"] < 0.1


def test_data_randomisation_verdict_per_method_by_hand():
    """Three stand-in methods on one 1 x 7 map per model. "blind" ignores the model (identical maps: rank corr.
    1, fails); "ranks" gives the trained model [1 .. 7] and the shuffled one |[-4 3 -2 1 -7 6 5]|: rank
    differences (-3, -1, 1, 3, -2, 0, 2), Spearman 1 - 6 * 28 / (7 * 48) = 0.5 exactly (the rank sd is 2);
    "flipped" reverses the ranks (Spearman -1, passes)."""
    from rewinterp_utils.sanity import data_randomisation

    trained, shuffled = nn.Linear(1, 1), nn.Linear(1, 1)
    maps = {"ranks": {trained: [1, 2, 3, 4, 5, 6, 7], shuffled: [-4, 3, -2, 1, -7, 6, 5]},
            "flipped": {trained: [1, 2, 3, 4, 5, 6, 7], shuffled: [7, 6, 5, 4, 3, 2, 1]}}
    calls = []

    def method(name):
        def fn(model, inputs):
            calls.append((name, model, inputs))
            if name == "blind":
                return np.array([[[0.5, 1.0, 0.0, 2.0, 0.25, 3.0, 0.75]]])
            return np.array([[maps[name][model]]], dtype=float)
        return fn

    methods = {k: method(k) for k in ("blind", "ranks", "flipped")}
    table, metrics = data_randomisation(trained, shuffled, methods, "batch", threshold=0.6)
    assert list(table.index) == ["blind", "ranks", "flipped"]
    assert {(name, model is trained) for name, model, _ in calls} == {(k, t) for k in methods for t in (True, False)}
    assert {inputs for *_, inputs in calls} == {"batch"}
    assert table.loc["blind", "rank_corr"] == pytest.approx(1.0) and table.loc["blind", "ssim"] == pytest.approx(1.0)
    assert table.loc["ranks", "rank_corr"] == 0.5
    assert table.loc["flipped", "rank_corr"] == pytest.approx(-1.0)
    assert list(table["verdict"]) == ["fails", "passes", "passes"]  # below 0.6 passes
    at_half = data_randomisation(trained, shuffled, methods, "batch", threshold=0.5)[0]
    assert at_half["verdict"].tolist() == ["fails", "fails", "passes"]  # 0.5 is not below 0.5
    assert set(metrics) == {f"{k}.{m}" for k in methods for m in ("rank_corr", "ssim", "verdict")}
    for k in methods:
        assert metrics[f"{k}.rank_corr"] == table.loc[k, "rank_corr"]
        assert metrics[f"{k}.ssim"] == table.loc[k, "ssim"]
        assert metrics[f"{k}.verdict"] == table.loc[k, "verdict"]
    for bad in (0, 1):
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            data_randomisation(trained, shuffled, methods, "batch", threshold=bad)


# ------------------------------------------------------------------------------------------------ verdict
def test_gradient_passes_and_edge_fails_on_trained_maze_model(trained_maze):
    model, inputs = trained_maze
    grad = randomisation_curve(model, attribution_method("maze", "gradient"), inputs, seed=0)
    assert list(grad.columns) == ["step", "layer", "rank_corr", "ssim"]
    assert list(grad["layer"]) == ["trained", *MAZE_LAYERS] and list(grad["step"]) == [0, 1, 2, 3]
    assert grad.loc[0, "rank_corr"] == pytest.approx(1.0) and grad.loc[0, "ssim"] == pytest.approx(1.0)
    verdict, criterion = sanity_verdict(grad)
    assert verdict == "passes", grad
    assert "below 0.5" in criterion and "randomised" in criterion
    assert grad["rank_corr"].iloc[-1] < 0.3 and grad["ssim"].iloc[-1] < 0.3

    edge = randomisation_curve(model, attribution_method("maze", "edge"), inputs, seed=0)
    assert np.allclose(edge[["rank_corr", "ssim"]], 1.0)  # the edge maps ignore the model
    assert sanity_verdict(edge)[0] == "fails"


def test_maze_attribution_maps(trained_maze):
    model, (s, s_next) = trained_maze
    grad = attribution_method("maze", "gradient")(model, (s[:4], s_next[:4]))
    assert grad.shape == (4, 2, 11, 11) and (grad >= 0).all()
    ig = attribution_method("maze", "integrated_gradients")(model, (s[:4], s_next[:4]))
    assert ig.shape == (4, 2, 11, 11) and (ig >= 0).all()
    assert (ig[np.stack([s[:4], s_next[:4]], axis=1) == 0] == 0).all()  # zero baseline: free cells get nothing
    edge = attribution_method("maze", "edge")(model, (s[:4], s_next[:4]))
    expected = np.hypot(sobel(s[0].astype(float), 0), sobel(s[0].astype(float), 1))
    np.testing.assert_allclose(edge[0, 0], expected)
    np.testing.assert_array_equal(edge, attribution_method("maze", "edge")(MazeRewardMLP(), (s[:4], s_next[:4])))


def test_atari_attribution_maps():
    obs = stacks(2)
    model = TinyAtari()
    grad = attribution_method("atari", "gradient")(model, obs)
    assert grad.shape == (2, 84, 84) and (grad >= 0).all()
    assert attribution_method("atari", "integrated_gradients", n_steps=8)(model, (obs,)).shape == (2, 84, 84)
    edge = attribution_method("atari", "edge")(model, obs)
    np.testing.assert_allclose(edge[1], np.hypot(sobel(obs[1, ..., -1].astype(float), 0),
                                                 sobel(obs[1, ..., -1].astype(float), 1)))
    curve = randomisation_curve(model, attribution_method("atari", "edge"), obs)
    assert list(curve["layer"]) == ["trained", "head", "conv"] and sanity_verdict(curve)[0] == "fails"


def test_value_errors():
    with pytest.raises(ValueError, match="valid methods: " + ", ".join(MAZE_METHODS)):
        attribution_method("maze", "occlusion")
    with pytest.raises(ValueError, match="valid methods: " + ", ".join(ATARI_METHODS)):
        attribution_method("atari", "saliency")
    curve = pd.DataFrame({"step": [0, 1], "layer": ["trained", "x"], "rank_corr": [1.0, 0.2], "ssim": [1.0, 0.1]})
    assert sanity_verdict(curve)[0] == "passes" and sanity_verdict(curve, threshold=0.1)[0] == "fails"
    for bad in (0, 1, 1.5, -0.2):
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            sanity_verdict(curve, threshold=bad)
    s = np.zeros((2, 11, 11))
    with pytest.raises(ValueError, match=r"\(n, 11, 11\)"):
        attribution_method("maze", "gradient")(MazeRewardMLP(), (s[:, :10], s[:, :10]))
    with pytest.raises(ValueError, match="tuple"):
        attribution_method("maze", "edge")(MazeRewardMLP(), s)
    with pytest.raises(ValueError, match="84, 84, 4"):
        attribution_method("atari", "edge")(TinyAtari(), np.zeros((2, 84, 84)))


def test_balanced_indices_draws_half_of_each_class_without_replacement():
    from rewinterp_utils.sanity import balanced_indices

    rewarded = np.zeros(100, bool)
    rewarded[[3, 50, 51, 52, 90]] = True
    pick = balanced_indices(rewarded, 8, seed=1)
    assert list(pick) == sorted(set(pick.tolist()))  # sorted, no repeats
    assert rewarded[pick].sum() == 4 and (~rewarded[pick]).sum() == 4
    assert rewarded[balanced_indices(rewarded, 20, seed=1)].sum() == 5  # capped by the smaller class
    assert list(balanced_indices(rewarded, 8, seed=1)) == list(pick)
    with pytest.raises(ValueError, match="at least 2"):
        balanced_indices(rewarded, 1)


def test_randomisation_curves_and_summary_over_models():
    """Two models, the gradient and the edge control: one curve per (model, method), the edge control fails
    for both models and the summary counts passes per method by hand."""
    from rewinterp_utils.sanity import randomisation_curves, sanity_summary

    models = {}
    for k in range(2):
        torch.manual_seed(k)
        models[f"model{k}"] = MazeRewardMLP()
    rng = np.random.default_rng(0)
    grids = rng.integers(0, 4, size=(6, 11, 11)).astype(np.float32)
    methods = {"gradient": attribution_method("maze", "gradient"), "edge": attribution_method("maze", "edge")}
    curves, metrics = randomisation_curves(models, methods, (grids, grids[::-1].copy()), 0.5, seed=0)
    assert set(zip(curves.model, curves.method)) == {(m, k) for m in models for k in methods}
    assert all(metrics[f"{m}.edge.verdict"] == "fails" for m in models)
    summary = sanity_summary(curves)
    passing = {k: sum(metrics[f"{m}.{k}.verdict"] == "passes" for m in models) for k in methods}
    assert summary.loc["edge", "models passing"] == "0 of 2"
    assert summary.loc["gradient", "models passing"] == f"{passing['gradient']} of 2"
    with pytest.raises(ValueError):
        randomisation_curves({}, methods, (grids, grids))


# ------------------------------------------------------------ summary values, recomputed from the curves by hand
BASE = [1, 2, 3, 4, 5, 6, 7]
SPEARMAN = {  # absolute maps against BASE, Spearman by hand: 1 - 6 sum(d^2) / (7 (49 - 1))
    1.0: BASE,
    0.5: [-4, 3, -2, 1, -7, 6, 5],  # d = (-3, -1, 1, 3, -2, 0, 2), sum d^2 = 28
    0.25: [7, 1, 2, 3, 4, 5, 6],  # d = (6, -1, -1, -1, -1, -1, -1), sum d^2 = 42
    -1.0: [7, 6, 5, 4, 3, 2, 1],
}
# per (model, method): the rank correlation with the trained maps after each randomisation step (2 layers): the
# final values hold one exactly at the threshold 0.5 (fails: not below), and the steps before differ from them
PLAN = {("m0", "a"): [-1.0, 0.25], ("m1", "a"): [0.25, 0.5], ("m2", "a"): [0.5, -1.0], ("m3", "a"): [1.0, 0.25],
        ("m0", "b"): [0.25, 1.0], ("m1", "b"): [-1.0, 1.0], ("m2", "b"): [0.5, 0.5], ("m3", "b"): [0.25, -1.0]}


def _planned_method(method: str, trained: dict[str, nn.Module]):
    """A stand-in attribution method: the model's name is its ``tag`` attribute (deep copies keep it), the
    randomisation step is how many of its layers differ from the trained model's, and the map is the one whose
    rank correlation with the trained map PLAN gives for that step."""
    def fn(model: nn.Module, inputs: str) -> np.ndarray:
        assert inputs == f"inputs of {model.tag}"
        k = len([n for n, (p, q) in enumerate(zip(model.parameters(), trained[model.tag].parameters()))
                 if not torch.equal(p, q)]) // 2  # weight and bias per layer
        target = 1.0 if k == 0 else PLAN[model.tag, method][k - 1]
        return np.array([[SPEARMAN[target]]], float)
    return fn


def test_summary_values_are_those_of_the_curves_final_rows():
    """Oracle: a plain loop over the curves' rows: per (model, method) the row of the last step gives
    ``rank_corr_final``, ``ssim_final`` and the verdict (rank corr. below the threshold); per group the mean and
    sample sd of the final rank correlations over models and the count of models passing. The curves themselves
    hold the planned correlations, step by step."""
    from rewinterp_utils.sanity import randomisation_curves, sanity_summary

    models = {}
    for k, name in enumerate(("m0", "m1", "m2", "m3")):
        torch.manual_seed(k)
        models[name] = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        models[name].tag = name
    methods = {m: _planned_method(m, models) for m in ("a", "b")}
    curves, metrics = randomisation_curves(models, methods, lambda name: f"inputs of {name}", 0.5, seed=3)

    final: dict[tuple[str, str], dict] = {}
    for row in curves.to_dict("records"):
        key = (row["model"], row["method"])
        assert row["rank_corr"] == pytest.approx(([1.0] + PLAN[key])[row["step"]], abs=1e-12), key
        if key not in final or row["step"] > final[key]["step"]:
            final[key] = row
    assert set(final) == set(PLAN) and all(r["step"] == 2 for r in final.values())
    expected_metrics = {}
    for (model, method), row in final.items():
        expected_metrics |= {f"{model}.{method}.rank_corr_final": row["rank_corr"],
                             f"{model}.{method}.ssim_final": row["ssim"],
                             f"{model}.{method}.verdict": "passes" if row["rank_corr"] < 0.5 else "fails"}
    assert metrics == expected_metrics
    assert [metrics[f"m{k}.a.verdict"] for k in range(4)] == ["passes", "fails", "passes", "passes"]

    curves["group"] = np.where(curves["model"].isin(["m0", "m1"]), "first", "second")
    for by, groups in ((("method",), {("a",): ["m0", "m1", "m2", "m3"], ("b",): ["m0", "m1", "m2", "m3"]}),
                       (("group", "method"), {(g, m): ms for m in "ab"
                                              for g, ms in (("first", ["m0", "m1"]), ("second", ["m2", "m3"]))})):
        summary = sanity_summary(curves, by=by)
        assert len(summary) == len(groups)
        for key, names in groups.items():
            method = key[-1]
            values = [final[name, method]["rank_corr"] for name in names]
            mean = sum(values) / len(values)
            sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
            passing = sum(v < 0.5 for v in values)
            row = summary.loc[key if len(key) > 1 else key[0]]
            assert row["rank corr. after full randomisation"] == f"{mean:.2f} ± {sd:.2f} ({len(values)} models)"
            assert row["models passing"] == f"{passing} of {len(values)}"

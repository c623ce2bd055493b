"""Reward models and the one way to run them: the maze MLP R(s, s') and the Atari CNN R(s') of the paper.

Every reward model is a :class:`RewardModel`: it says what it reads (``inputs``, ``("s", "s_next")`` or
``("s_next",)``) and has one batched, gradient-free :meth:`RewardModel.predict` on arrays. Plain callables (the
true reward, hand-written rules) become reward models through :func:`as_reward_model`. :func:`save_model`
writes a header (the model's kind and constructor arguments) with the weights; :func:`load_model` rebuilds the
model from it::

    model.predict(s, s_next)                  # (n,) rewards, numpy
    model.predict(s=obs, s_next=next_obs)     # by name: the model takes what it reads
    as_reward_model(true_reward).predict(s, s_next)
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from rewinterp_utils.device import torch_device

INPUTS: tuple[tuple[str, ...], ...] = (("s", "s_next"), ("s_next",))
"""What a reward model may read: the transition ``(s, s')``, or the next state ``s'`` only."""
FORMAT = "rewinterp.reward_model/1"
"""The header a saved reward model carries (:func:`save_model`)."""


class RewardModel(nn.Module):
    """A reward model: ``forward(*tensors) -> (batch,)`` on the arrays named by ``inputs``.

    Subclasses set ``inputs`` and, to have their inputs checked, ``input_shapes`` (the shape of one sample of
    each input). Arrays given to :meth:`predict` go to the model's :attr:`device`, ``batch_size`` samples per
    forward pass (``None``: the whole batch in one).
    """

    inputs: tuple[str, ...] = ("s", "s_next")
    input_shapes: tuple[tuple[int, ...], ...] | None = None
    batch_size: int | None = 1024

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (torch's default device for a model without any)."""
        t = next(itertools.chain(self.parameters(), self.buffers()), None)
        return t.device if t is not None else torch.get_default_device()

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this model (what :func:`save_model` writes in the header)."""
        raise ValueError(f"a {type(self).__name__} cannot be saved; only {', '.join(KINDS)} can")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RewardModel:
        """The model :meth:`config` describes (weights freshly initialised)."""
        return cls(**config)

    def predict(self, *arrays: np.ndarray | torch.Tensor, batch_size: int | None = None,
                **named: np.ndarray | torch.Tensor) -> np.ndarray:
        """The rewards ``(n,)`` of a batch, as numpy: ``predict(s, s_next)`` in the order of ``inputs``, or by
        name, ``predict(s=..., s_next=...)``, of which the model takes what it reads.

        Runs ``batch_size`` samples (default: the model's ``batch_size``) per forward pass on the model's
        device, without gradients, in eval mode; the model's train/eval mode is restored after. ``ValueError``
        naming the expected and received shapes when the arrays do not fit ``inputs`` and ``input_shapes``, or
        when the model does not return one reward per sample.
        """
        name = type(self).__name__
        if arrays and named:
            raise ValueError(f"{name}.predict takes its arrays either in order or by name, not both")
        if named:
            unknown = sorted(set(named) - {"s", "s_next"})
            missing = [k for k in self.inputs if k not in named]
            if unknown or missing:
                raise ValueError(f"{name} reads {', '.join(self.inputs)}; got arrays named "
                                 f"{', '.join(sorted(named))}")
            arrays = tuple(named[k] for k in self.inputs)
        if len(arrays) != len(self.inputs):
            raise ValueError(f"{name} reads {len(self.inputs)} array(s) ({', '.join(self.inputs)}), "
                             f"got {len(arrays)}")
        batch_size = self.batch_size if batch_size is None else batch_size
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        xs = [x if isinstance(x, torch.Tensor) else np.ascontiguousarray(x) for x in arrays]
        for k, (key, x) in enumerate(zip(self.inputs, xs)):
            want = None if self.input_shapes is None else tuple(self.input_shapes[k])
            if x.ndim < 1 or (want is not None and tuple(x.shape[1:]) != want):
                expected = f"(n, {', '.join(map(str, want))})" if want is not None else "(n, ...)"
                raise ValueError(f"{name}: {key} must have shape {expected}, got {tuple(x.shape)}")
        n = len(xs[0])
        if any(len(x) != n for x in xs):
            raise ValueError(f"{name}: the arrays differ in length "
                             f"({', '.join(f'{k} {len(x)}' for k, x in zip(self.inputs, xs))})")
        batch_size = batch_size or max(n, 1)
        device = self.device
        ts = [torch.as_tensor(x).to(device) for x in xs]
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = []
                for i in range(0, n, batch_size):
                    r = self(*(t[i:i + batch_size] for t in ts))
                    k = min(batch_size, n - i)
                    if not isinstance(r, torch.Tensor) or tuple(r.shape) != (k,):
                        raise ValueError(f"{name} must return one reward per sample, shape ({k},), got "
                                         f"{tuple(getattr(r, 'shape', ()))}")
                    out.append(r)
        finally:
            self.train(was_training)
        return torch.cat(out).cpu().numpy() if out else np.zeros(0, np.float32)


class MazeRewardMLP(RewardModel):
    """R(s, s'): the stacked pair of grids (2 x H x W) -> 64 tanh -> 64 tanh -> 1, no output bias."""

    inputs = ("s", "s_next")

    def __init__(self, grid_shape: tuple[int, int] = (11, 11), hidden: int = 64) -> None:
        super().__init__()
        self.grid_shape = tuple(int(v) for v in grid_shape)
        self.hidden = int(hidden)
        self.input_shapes = (self.grid_shape, self.grid_shape)
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

    def config(self) -> dict[str, Any]:
        """``grid_shape`` and ``hidden``."""
        return {"grid_shape": list(self.grid_shape), "hidden": self.hidden}


class AtariRewardCNN(RewardModel):
    """R(s'): SB3's Nature-CNN feature extractor (512 features) + Linear(512, 1) (as in the paper).

    Input: stacked frames ``(batch, 84, 84, 4)`` channels-last uint8 as SB3's Atari wrappers give them
    (or channels-first ``(batch, 4, 84, 84)`` to ``forward``; :meth:`predict` takes channels-last); pixels are
    scaled to [0, 1] inside.

    ``train_precision="bf16"``: in training mode the convolutions compute in bfloat16 (autocast on the weights'
    device), the features are cast back and the head, the loss and the optimiser stay float32; in eval mode
    (predictions, attributions, audits) the model computes in float32 whatever it was trained in.
    """

    inputs = ("s_next",)

    def __init__(self, n_stack: int = 4, size: int = 84, train_precision: str = "fp32") -> None:
        super().__init__()
        if train_precision not in ("fp32", "bf16"):
            raise ValueError(f"train_precision must be fp32 or bf16, got {train_precision!r}")
        self.train_precision = train_precision
        from gymnasium import spaces
        from stable_baselines3.common.torch_layers import NatureCNN

        space = spaces.Box(0, 255, shape=(n_stack, size, size), dtype=np.uint8)
        self.features = NatureCNN(space, features_dim=512, normalized_image=False)
        self.head = nn.Linear(512, 1)
        self.obs_shape = (size, size, n_stack)
        self.input_shapes = (self.obs_shape,)
        self.n_stack, self.size = int(n_stack), int(size)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Predicted reward, shape ``(batch,)``."""
        x = obs.to(self.head.weight.dtype)
        if x.shape[-1] == self.obs_shape[-1] and x.shape[1] != self.obs_shape[-1]:
            x = x.permute(0, 3, 1, 2)
        if self.training and self.train_precision == "bf16":
            with torch.autocast(self.head.weight.device.type, dtype=torch.bfloat16):
                features = self.features(x / 255.0)
            return self.head(features.float()).squeeze(-1)
        return self.head(self.features(x / 255.0)).squeeze(-1)

    def feature_activations(self, obs: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The 512 Nature-CNN features of each ``(N, 84, 84, n_stack)`` uint8 stack, ``(N, 512)`` float32 on the CPU:
        computed on the model's device, ``batch_size`` stacks at a time, without gradients."""
        device = self.head.weight.device
        with torch.no_grad():
            return np.concatenate([
                self.features(torch.as_tensor(np.asarray(obs[i:i + batch_size]), device=device)
                              .permute(0, 3, 1, 2).to(self.head.weight.dtype) / 255.0).float().cpu().numpy()
                for i in range(0, len(obs), batch_size)]) if len(obs) else np.zeros((0, 512), np.float32)

    def config(self) -> dict[str, Any]:
        """``n_stack``, ``size`` and ``train_precision``."""
        return {"n_stack": self.n_stack, "size": self.size, "train_precision": self.train_precision}


class Normalised(RewardModel):
    """``(model(...) + shift) * scale``: a reward model with its shift and scale fixed; reads what ``model``
    reads."""

    def __init__(self, model: RewardModel, shift: float, scale: float) -> None:
        super().__init__()
        if not isinstance(model, RewardModel):
            raise ValueError(f"Normalised wraps a RewardModel, got {type(model).__name__}")
        self.model = model
        self.inputs = model.inputs
        self.input_shapes = model.input_shapes
        self.register_buffer("shift", torch.tensor(float(shift)))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Normalised reward, shape ``(batch,)``."""
        return (self.model(*xs) + self.shift) * self.scale

    def config(self) -> dict[str, Any]:
        """The wrapped model's kind and config, ``shift`` and ``scale``."""
        return {"model": {"kind": type(self.model).__name__, "config": self.model.config()},
                "shift": float(self.shift), "scale": float(self.scale)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Normalised:
        """The wrapped model rebuilt from its kind and config, with ``shift`` and ``scale``."""
        inner = config["model"]
        return cls(build_model(inner["kind"], inner["config"]), config["shift"], config["scale"])


class FunctionReward(RewardModel):
    """A plain function on numpy arrays as a reward model (made by :func:`as_reward_model`); not saveable.
    ``fn`` gets the whole batch at once."""

    batch_size = None

    def __init__(self, fn: Callable[..., Any], inputs: tuple[str, ...],
                 input_shapes: tuple[tuple[int, ...], ...] | None = None) -> None:
        super().__init__()
        self.fn, self.inputs, self.input_shapes = fn, inputs, input_shapes

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """``fn`` on the inputs as numpy arrays (their dtype kept); its numpy or torch output as a tensor."""
        out = self.fn(*(x.cpu().numpy() for x in xs))
        out = out.detach() if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
        return out if out.is_floating_point() else out.to(torch.float64)


KINDS: dict[str, type[RewardModel]] = {c.__name__: c for c in (MazeRewardMLP, AtariRewardCNN, Normalised)}
"""The reward-model kinds :func:`save_model` writes and :func:`load_model` rebuilds, by class name."""


def build_model(kind: str, config: dict[str, Any]) -> RewardModel:
    """A fresh reward model of ``kind`` (a key of :data:`KINDS`) from its constructor arguments."""
    if kind not in KINDS:
        raise ValueError(f"unknown reward-model kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return KINDS[kind].from_config(config)


def as_reward_model(reward: RewardModel | Callable[..., Any], inputs: tuple[str, ...] | None = None,
                    input_shapes: tuple[tuple[int, ...], ...] | None = None) -> RewardModel:
    """``reward`` as a :class:`RewardModel`: a reward model as it is; a plain function ``fn(*arrays) -> (n,)``
    on numpy arrays wrapped, reading ``inputs`` (default ``("s", "s_next")``) with optional per-sample
    ``input_shapes``. ``ValueError`` for a torch module that is not a RewardModel (it does not say what it
    reads), for ``inputs`` other than those of :data:`INPUTS`, or ``inputs`` that contradict the model's."""
    if inputs is not None and tuple(inputs) not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
    if isinstance(reward, RewardModel):
        if inputs is not None and tuple(inputs) != reward.inputs:
            raise ValueError(f"{type(reward).__name__} reads {reward.inputs}, not {tuple(inputs)}")
        return reward
    if isinstance(reward, nn.Module):
        raise ValueError(f"{type(reward).__name__} is a torch module but not a RewardModel: subclass "
                         "RewardModel and set its inputs")
    if not callable(reward):
        raise ValueError(f"expected a RewardModel or a function of numpy arrays, got {type(reward).__name__}")
    return FunctionReward(reward, tuple(inputs or INPUTS[0]), input_shapes)


def save_model(model: RewardModel, path: Path) -> None:
    """Save the model with a header: ``{"format": FORMAT, "kind", "config", "state_dict"}``."""
    if type(model) not in KINDS.values():
        raise ValueError(f"a {type(model).__name__} cannot be saved; only {', '.join(KINDS)} can")
    torch.save({"format": FORMAT, "kind": type(model).__name__, "config": model.config(),
                "state_dict": model.state_dict()}, path)


def load_model(path: Path, device: torch.device | str | None = None) -> RewardModel:
    """The reward model :func:`save_model` wrote to ``path``, rebuilt from its header, in eval mode, on
    ``device`` (default: ``REWINTERP_DEVICE``, :mod:`~rewinterp_utils.device`); read safely (``weights_only=True``).

    ``ValueError`` naming the file for a file without the header, of an unknown kind, whose config does not
    build its kind, or whose weights do not fit the model the header describes.
    """
    path = Path(path)
    device = torch.device(device) if device is not None else torch_device()
    payload = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = f"keys {', '.join(map(str, payload))}" if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} has no reward-model header (expected a dict with format {FORMAT!r}, kind, "
                         f"config and state_dict, found {found}); a model saved before headers: delete its "
                         "stage folder and rerun the stage, or re-save it with save_model")
    kind, config = payload.get("kind"), payload.get("config")
    if kind not in KINDS:
        raise ValueError(f"{path}: unknown reward-model kind {kind!r}; known kinds: {', '.join(KINDS)}")
    try:
        model = build_model(kind, config)
    except (TypeError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: the header's config {config!r} does not build a {kind}: {e}") from None
    try:
        model.load_state_dict(payload.get("state_dict"))
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: the weights do not fit the header's {kind} {config}: "
                         f"{str(e).strip().splitlines()[-1].strip()}") from None
    return model.to(device).eval()


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
    device = torch_device()  # REWINTERP_DEVICE; the sample order is drawn on the CPU, the same everywhere
    model.to(device)
    inputs, targets = tuple(x.to(device) for x in inputs), targets.to(device)
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
"""The file a reward-model stage saves its model to (with :func:`save_model`)."""


def fit_shuffled_atari(obs: np.ndarray, rewards: np.ndarray, epochs: int, batch_size: int, learning_rate: float,
                       seed: int, desc: str = "shuffled") -> AtariRewardCNN:
    """The data-randomisation control: an :class:`AtariRewardCNN` (initialised after ``torch.manual_seed(0)``)
    fitted by :func:`fit_regression` (sample order ``seed``) on ``obs`` with the ``rewards`` permuted by
    ``numpy.random.default_rng(seed)``; returned in eval mode."""
    torch.manual_seed(0)
    model = AtariRewardCNN()
    y = torch.as_tensor(np.random.default_rng(seed).permutation(np.asarray(rewards)), dtype=torch.float32)
    fit_regression(model, (torch.as_tensor(obs),), y, epochs, batch_size, learning_rate, seed=seed, desc=desc)
    return model.eval()


def load_reward_model(folder: Path, device: torch.device | str | None = None) -> RewardModel:
    """The reward model a reward-model stage saved in ``folder`` (``folder / MODEL_FILE``): :func:`load_model`."""
    return load_model(Path(folder) / MODEL_FILE, device)

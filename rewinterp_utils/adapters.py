"""The user's reward, as it is: one function of transition batches, ``R(s, a, s_next, done) -> (n,)`` numpy.

:func:`transition_reward` turns each kind of reward a researcher has into that one call:

* a :class:`~rewinterp_utils.reward_models.RewardModel` of this package (run on what it reads);
* an ``imitation``-style reward net, duck-typed (``imitation`` pins an older Gymnasium and SB3, so it is never
  imported): an object with ``preprocess(state, action, next_state, done)`` and ``forward`` on tensors, as
  ``imitation.rewards.reward_nets.RewardNet`` has; its own ``predict`` (numpy in, numpy out) when it has one;
* a ``torch.nn.Module`` whose ``forward`` takes ``(s, a, s_next, done)`` tensors (or the first 2 or 3 of them);
* a plain function of numpy batches with 2 ``(s, s_next)``, 3 ``(s, a, s_next)`` or 4 ``(s, a, s_next, done)``
  parameters;
* a saved ``state_dict`` with the factory that builds its module (:func:`from_state_dict`).

Whatever it wraps, the call checks what comes back: one finite float per transition (``ValueError`` naming the
reward otherwise).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rewinterp_utils.reward_models import RewardModel

TransitionReward = Callable[..., np.ndarray]
"""``R(s, a, s_next, done=None) -> (n,)`` float64 numpy."""


def _arity(fn: Callable[..., Any]) -> int:
    """How many positional parameters ``fn`` takes (without defaults), or 4 when it takes ``*args``."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 4
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def _args(n: int, s, a, s_next, done) -> tuple:
    if n == 2:
        return s, s_next
    if n == 3:
        return s, a, s_next
    if n == 4:
        return s, a, s_next, done
    raise ValueError(f"a reward function takes (s, s_next), (s, a, s_next) or (s, a, s_next, done), not {n} "
                     "arguments")


def _is_imitation_net(obj: Any) -> bool:
    return isinstance(obj, nn.Module) and callable(getattr(obj, "preprocess", None))


def _checked(raw: Callable[..., Any], name: str) -> TransitionReward:
    def call(s, a, s_next, done=None):
        n = len(s)
        done = np.zeros(n, bool) if done is None else np.asarray(done)
        try:
            out = raw(np.asarray(s), np.asarray(a), np.asarray(s_next), done)
        except ValueError:
            raise
        except Exception as e:  # the user's code: say whose it is
            raise ValueError(f"{name} failed on {n} transitions: {type(e).__name__}: {e}") from None
        if torch.is_tensor(out):
            out = out.detach().cpu().numpy()
        out = np.asarray(out, dtype=np.float64)
        if out.ndim == 2 and out.shape[1] == 1:  # a (n, 1) column, as many nets return
            out = out[:, 0]
        if out.shape != (n,):
            raise ValueError(f"{name} must give one reward per transition, shape ({n},), got {out.shape}")
        if not np.isfinite(out).all():
            raise ValueError(f"{name} gave a NaN or infinite reward")
        return out
    call.__name__ = name
    return call


def transition_reward(reward: Any, name: str = "reward") -> TransitionReward:
    """``reward`` (any kind in the module docstring) as ``R(s, a, s_next, done=None)`` on numpy batches.
    ``ValueError`` for an object that is none of them."""
    if isinstance(reward, RewardModel):
        def raw(s, a, s_next, done):
            return reward.predict(**{k: v for k, v in (("s", s), ("s_next", s_next)) if k in reward.inputs})
    elif _is_imitation_net(reward):
        def raw(s, a, s_next, done):
            if callable(getattr(reward, "predict", None)):
                return reward.predict(s, a, s_next, done)
            with torch.no_grad():
                return reward(*reward.preprocess(s, a, s_next, done))
    elif isinstance(reward, nn.Module):
        n = _arity(reward.forward)
        device = next(iter(reward.parameters()), torch.empty(0)).device

        def raw(s, a, s_next, done):
            tensors = (torch.as_tensor(x, device=device, dtype=torch.float32) for x in _args(n, s, a, s_next, done))
            was = reward.training
            reward.eval()
            try:
                with torch.no_grad():
                    return reward(*tensors)
            finally:
                reward.train(was)
    elif callable(reward):
        n = _arity(reward)
        _args(n, None, None, None, None)  # ValueError now for a function of another arity

        def raw(s, a, s_next, done):
            return reward(*_args(n, s, a, s_next, done))
    else:
        raise ValueError(f"{name} must be a RewardModel, an imitation-style reward net, a torch module or a function "
                         f"of (s, a, s_next[, done]) batches, got {type(reward).__name__}")
    return _checked(raw, name)


def from_state_dict(path: str | Path, factory: Callable[[], nn.Module], name: str = "reward") -> TransitionReward:
    """The module ``factory()`` with the weights saved at ``path`` (``torch.save(module.state_dict(), path)``),
    loaded safely (``weights_only=True``), as :func:`transition_reward`. ``ValueError`` when the file does not
    fit the module."""
    module = factory()
    try:
        module.load_state_dict(torch.load(Path(path), map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, ValueError) as e:
        raise ValueError(f"{path} does not load into {type(module).__name__}: {str(e).splitlines()[0]}") from None
    return transition_reward(module.eval(), name)


__all__ = ["TransitionReward", "from_state_dict", "transition_reward"]

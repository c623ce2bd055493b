"""One precision choice, ``REWINTERP_PRECISION``: resolved against the hardware, validated before anything is
written, recorded in every manifest; under bf16 only the Nature CNN computes in bfloat16, and fp32 is stock SB3
bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_bad_setting_writes_nothing
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticCnnPolicy

from rewinterp_utils import device
from rewinterp_utils.agents import atari_ppo
from rewinterp_utils.device import precision
from rewinterp_utils.envs.atari import make_atari_venv
from rewinterp_utils.features import AutocastNatureCNN, RawImageCnnPolicy, cnn_policy_kwargs
from rewinterp_utils.pipeline.session import open_stage
from rewinterp_utils.pipeline.profiles import AtariExpert

BREAKOUT = "BreakoutNoFrameskip-v4"


@pytest.fixture
def cpu(monkeypatch):
    """REWINTERP_DEVICE=cpu and a settable CPU bf16 probe: ``cpu(True)`` is a CPU with AVX-512 BF16."""
    monkeypatch.setenv("REWINTERP_DEVICE", "cpu")

    def set_probe(has: bool) -> None:
        monkeypatch.setattr(device, "cpu_has_bf16", lambda: has)

    return set_probe


@pytest.mark.parametrize(("value", "has_bf16", "expected"), [
    (None, True, "bf16"), (None, False, "fp32"), ("auto", True, "bf16"), ("auto", False, "fp32"),
    ("", False, "fp32"), ("fp32", True, "fp32"), ("fp32", False, "fp32"), ("bf16", True, "bf16"), (" BF16 ", True, "bf16"),
])
def test_the_choice_follows_the_variable_and_the_hardware(monkeypatch, cpu, value, has_bf16, expected):
    cpu(has_bf16)
    if value is None:
        monkeypatch.delenv("REWINTERP_PRECISION", raising=False)
    else:
        monkeypatch.setenv("REWINTERP_PRECISION", value)
    assert precision() == expected


@pytest.mark.parametrize("name", ["fp16", "bfloat16", "half", "float32", "tf32"])
def test_an_unknown_precision_is_a_valueerror_naming_the_choices(monkeypatch, cpu, name):
    cpu(True)
    monkeypatch.setenv("REWINTERP_PRECISION", name)
    with pytest.raises(ValueError, match="REWINTERP_PRECISION must be one of auto, fp32, bf16"):
        precision()


def test_bf16_forced_without_hardware_support_says_what_the_machine_has(monkeypatch, cpu):
    cpu(False)
    monkeypatch.setenv("REWINTERP_PRECISION", "bf16")
    with pytest.raises(ValueError, match=r"no native bfloat16 \(CPU bf16: no, GPU bf16: (no|yes)\); "
                                         r"choices here: auto, fp32"):
        precision()


def test_a_bad_precision_writes_nothing(tmp_path, monkeypatch):
    assert_bad_setting_writes_nothing(tmp_path, monkeypatch, "REWINTERP_PRECISION", "fp16")


@pytest.mark.parametrize("choice", ["fp32", "bf16"])
def test_the_manifest_records_the_precision(tmp_path, monkeypatch, cpu, choice):
    cpu(True)
    monkeypatch.setenv("REWINTERP_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("REWINTERP_PRECISION", choice)
    folder = open_stage("maze_expert", {"profile": "smoke"}).finish({"x": 1})
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["device"], manifest["precision"]) == ("cpu", choice)
    assert manifest["torch_threads"] == torch.get_num_threads()


def test_the_extractor_takes_only_resolved_precisions():
    space = make_atari_venv(BREAKOUT, n_envs=1).observation_space
    for bad in ("auto", "fp16"):
        with pytest.raises(ValueError, match="fp32 or bf16"):
            AutocastNatureCNN(space, precision=bad)


def _cnn_policy(precision_name: str, seed: int = 0) -> ActorCriticCnnPolicy:
    from stable_baselines3.common.vec_env import VecTransposeImage

    space = VecTransposeImage.transpose_space(make_atari_venv(BREAKOUT, n_envs=1).observation_space)
    torch.manual_seed(seed)
    return ActorCriticCnnPolicy(space, make_atari_venv(BREAKOUT, n_envs=1).action_space, lambda _: 1e-4,
                                **cnn_policy_kwargs(precision_name))


def test_bf16_runs_the_convolutions_in_bf16_and_returns_fp32_everywhere_else():
    policy = _cnn_policy("bf16")
    conv_dtypes, linear_in = [], []
    for m in policy.features_extractor.cnn:
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, inp, out: conv_dtypes.append(out.dtype))
    for head in (policy.action_net, policy.value_net):
        head.register_forward_hook(lambda mod, inp, out: linear_in.append((inp[0].dtype, out.dtype)))
    obs = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8)
    actions = torch.randint(0, 4, (16,))
    features = policy.extract_features(obs)
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    ratio = torch.exp(log_prob - log_prob.detach() + 1e-3)  # PPO's ratio, as PPO.train forms it
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
    assert set(linear_in) == {(torch.float32, torch.float32)}
    assert {t.dtype for t in (features, values, log_prob, entropy, ratio)} == {torch.float32}
    assert all(p.dtype == torch.float32 for p in policy.parameters())
    # the same weights in fp32: close, but not equal (autocast was really on)
    reference = _cnn_policy("fp32")
    reference.load_state_dict(policy.state_dict())
    expected = reference.extract_features(obs)
    assert not torch.equal(features, expected)
    torch.testing.assert_close(features, expected, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("precision_name", ["fp32", "bf16"])
def test_scaling_inside_the_extractor_gives_sb3s_features_to_the_bit(precision_name):
    """RawImageCnnPolicy hands uint8 observations to the extractor, which scales them in its precision; the
    oracle is SB3's stock policy, whose ``preprocess_obs`` scales them to float32 first. Every byte value occurs."""
    ours = _cnn_policy(precision_name)
    ours.__class__ = RawImageCnnPolicy  # same modules and weights, our feature path
    stock = _cnn_policy(precision_name)
    stock.load_state_dict(ours.state_dict())
    gen = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8, generator=gen)
    obs.view(-1)[:256] = torch.arange(256, dtype=torch.uint8)
    actions = torch.randint(0, 4, (8,), generator=gen)
    assert torch.equal(ours.extract_features(obs), stock.extract_features(obs))
    for a, b in zip(ours.evaluate_actions(obs, actions), stock.evaluate_actions(obs, actions)):
        assert torch.equal(a, b)
    scaled = obs.float() / 255.0  # already-scaled input (a caller that preprocessed) passes through unchanged
    assert torch.equal(ours.features_extractor(scaled), stock.features_extractor(scaled))


def test_bf16_weights_load_into_a_stock_policy():
    policy = _cnn_policy("bf16")
    stock = ActorCriticCnnPolicy(policy.observation_space, policy.action_space, lambda _: 1e-4)
    stock.load_state_dict(policy.state_dict())  # strict: the same parameter names and shapes


def test_fp32_is_stock_sb3_bit_for_bit(monkeypatch, cpu):
    """A few PPO updates of ``atari_ppo`` at fp32 and of SB3's own ``PPO("CnnPolicy")`` with the same recipe
    and seed: the same weights to the last bit."""
    cpu(True)
    monkeypatch.setenv("REWINTERP_PRECISION", "fp32")
    cfg = AtariExpert(total_timesteps=64, eval_freq=64, n_eval_episodes=1, n_envs=2, n_steps=16, n_epochs=2,
                      batch_size=16)
    weights = {}
    for name in ("ours", "stock"):
        venv = make_atari_venv(BREAKOUT, n_envs=cfg.n_envs, seed=3)
        if name == "ours":
            model = atari_ppo(venv, cfg, seed=3)
            assert isinstance(model.policy.features_extractor, AutocastNatureCNN)
        else:
            lr, clip = cfg.learning_rate, cfg.clip_range
            model = PPO("CnnPolicy", venv, n_steps=cfg.n_steps, n_epochs=cfg.n_epochs, batch_size=cfg.batch_size,
                        learning_rate=lambda r: r * lr, clip_range=lambda r: r * clip, ent_coef=cfg.ent_coef,
                        vf_coef=cfg.vf_coef, seed=3, device="cpu", verbose=0)
        model.learn(cfg.total_timesteps)
        weights[name] = {k: v.numpy().copy() for k, v in model.policy.state_dict().items()}
        venv.close()
    assert weights["ours"].keys() == weights["stock"].keys()
    changed = False
    for k, v in weights["stock"].items():
        np.testing.assert_array_equal(weights["ours"][k], v, err_msg=k)
    for k, v in weights["stock"].items():
        changed |= not np.array_equal(v, _cnn_policy("fp32").state_dict()[k].numpy()) if "cnn" in k else False
    assert changed  # training did move the CNN

"""StyleGAN2's strategy in training: exact resume through the lazy intervals, the schedule of its phases, Adam's
lazy ratio, the EMA in images, the fast-path options, and its config's hostile values."""
from __future__ import annotations

import pytest
import torch
from conftest import STYLEGAN2, straight_and_resumed, tiny_cfg

from condgan.config import ConfigError
from condgan.train.build import adam_settings
from condgan.train.ema import EMA
from condgan.train.trainer import Trainer

# every lazy and stateful part on: R1 as its own step every 2nd D step, path length every 2nd G step, style
# mixing, ADA's adaptive p, the EMA in images with its ramp
LAZY = [*STYLEGAN2, "reg.r1=0.1", "reg.r1_interval=2", "reg.r1_own_step=true", "reg.pl_weight=1", "reg.pl_interval=2",
        "reg.style_mixing=0.5", "aug.ada=bgc", "aug.ada_p=0.2", "aug.ada_interval=1", "aug.ada_kimg=1",
        "train.ema_kimg=0.1", "train.ema_rampup=0.05", "train.ema_start=0", "train.n_dis=2"]


def _states(t: Trainer) -> dict[str, torch.Tensor]:
    """Everything a resumed run must continue exactly: nets, G_ema, optimisers' moments, the strategy's state."""
    r = t.run
    out = {f"G.{k}": v for k, v in r.models.G.state_dict().items()}
    out |= {f"D.{k}": v for k, v in r.models.D.state_dict().items()}
    out |= {f"G_ema.{k}": v for k, v in r.ema.shadow.state_dict().items()}
    for name, opt in (("opt_g", r.models.opt_g), ("opt_d", r.models.opt_d)):
        for i, s in opt.state_dict()["state"].items():
            out |= {f"{name}.{i}.{k}": v for k, v in s.items()}
    strategy = r.strategy.state_dict()
    out |= {"pl_mean": strategy["pl_mean"], "noise": strategy["noise"], "ada_p": strategy["augmentation"]["p"]}
    return out


def test_resume_is_bitwise_exact_through_the_lazy_intervals(tmp_path):
    """3 + 3 steps resumed equal 6 straight, with the intervals (2) out of phase with the checkpoint (3)."""
    straight, resumed = straight_and_resumed(tiny_cfg(*LAZY, "train.steps=6", "train.ckpt_every=3"), tmp_path, 3)
    a, b = _states(straight), _states(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert float(a["pl_mean"]) > 0 and float(a["ada_p"]) != 0.2  # the path-length mean and p moved
    w_avg = a["G.mapping.w_avg"]
    assert w_avg.abs().sum() > 0 and torch.equal(w_avg, a["G_ema.mapping.w_avg"])  # tracked, and copied to G_ema


def test_phases_run_on_their_intervals():
    """R1 on every 2nd D step (its own step), path length on every 2nd G step; the logged keys say when."""
    cfg = tiny_cfg(*LAZY)
    from condgan.train.build import build_run

    run = build_run(cfg, torch.device("cpu"))
    logged = [set(run.strategy.step(torch.device("cpu"), step)) for step in range(4)]
    assert ["g_pl" in keys for keys in logged] == [True, False, True, False]
    assert all("d_r1" in keys for keys in logged)  # n_dis 2: D steps 0, 2, 4, 6 (each iteration's first) carry R1
    assert all({"g_pl_mean", "aug_p", "d_loss", "g_loss"} <= keys for keys in logged)


def test_adam_gets_the_lazy_ratio():
    cfg = tiny_cfg(*STYLEGAN2, "optim.g_lr=0.0025", "optim.d_lr=0.0025", "optim.beta1=0", "optim.beta2=0.99",
                   "reg.pl_interval=4", "reg.r1_interval=16")
    g, d = adam_settings(cfg, "g"), adam_settings(cfg, "d")
    assert g["lr"] == pytest.approx(0.002) and g["betas"][1] == pytest.approx(0.99 ** 0.8)  # 0.991992
    assert d["lr"] == pytest.approx(0.0025 * 16 / 17) and d["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    assert g["betas"][0] == 0 and d["eps"] == 1e-8
    eager = tiny_cfg(*STYLEGAN2, "reg.r1_interval=1")
    assert adam_settings(eager, "d")["lr"] == eager.optim.d_lr  # interval 1 (not lazy): ratio 1, as StudioGAN
    plain = tiny_cfg()
    assert adam_settings(plain, "d") == {"lr": plain.optim.d_lr, "betas": (plain.optim.beta1, plain.optim.beta2),
                                         "eps": plain.optim.eps}


def test_ema_half_life_in_images_with_rampup():
    """NVIDIA's rule: beta = 0.5^(B / min(kimg * 1000, images seen * rampup)), a plain copy at the first step."""
    ema = EMA(torch.nn.Linear(1, 1), decay=0.9, kimg=10, rampup=0.05, batch=64)
    assert ema.decay_at(1) == 0.0  # no image seen yet: G_ema = G
    assert ema.decay_at(101) == pytest.approx(0.5 ** (64 / (100 * 64 * 0.05)))
    assert ema.decay_at(10 ** 6) == pytest.approx(0.5 ** (64 / 10_000))  # the ramp is over: the half-life
    assert EMA(torch.nn.Linear(1, 1), decay=0.9, kimg=10, batch=64).decay_at(1) == pytest.approx(0.5 ** 0.0064)


@pytest.mark.parametrize("speed", [["speed.precision=bf16"], ["speed.channels_last=true"],
                                   ["speed.precision=fp16", "model.conv_clamp=256"]], ids=["bf16", "nhwc", "fp16"])
def test_fast_path_options_train(tmp_path, speed):
    cfg = tiny_cfg(*LAZY, "train.steps=2", "train.ckpt_every=2", *speed)
    t = Trainer(cfg, tmp_path, progress=False)
    t.train()
    state = t.run.models.G.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values())


@pytest.mark.parametrize("sets,culprit", [
    (["model.arch=stylegan2"], "train.strategy"),
    (["train.strategy=stylegan2"], "model.arch"),
    ([*STYLEGAN2, "model.d_sn=true"], "model.d_sn"),
    ([*STYLEGAN2, "model.init=orthogonal"], "model.init"),
    (["model.mbstd_group=8"], "model.mbstd_group"),
    (["loss.cond=spd"], "loss.cond"),
    (["reg.pl_weight=1"], "reg.pl_weight"),
    (["reg.style_mixing=0.5"], "reg.style_mixing"),
    ([*STYLEGAN2, "reg.style_mixing=1.5"], "reg.style_mixing"),
    ([*STYLEGAN2, "reg.r1_own_step=true"], "reg.r1_own_step"),
    ([*STYLEGAN2, "reg.r1_interval=0"], "reg.r1_interval"),
    ([*STYLEGAN2, "reg.pl_batch_shrink=32"], "reg.pl_batch_shrink"),
    ([*STYLEGAN2, "model.mbstd_group=5"], "model.mbstd_group"),
    ([*STYLEGAN2, "model.channel_base=16"], "model.channel_base"),
    ([*STYLEGAN2, "model.w_avg_beta=1"], "model.w_avg_beta"),
    ([*STYLEGAN2, "model.conv_clamp=-1"], "model.conv_clamp"),
    ([*STYLEGAN2, "train.ema_rampup=0.05"], "train.ema_rampup"),
    ([*STYLEGAN2, "train.ema_kimg=0"], "train.ema_kimg"),
    ([*STYLEGAN2, "train.ema_kimg=10", "train.ema_start=100"], "train.ema_start"),
    ([*STYLEGAN2, "loss.cond=ac", "loss.feature_clip=1"], "loss.feature_clip"),
    ([*STYLEGAN2, "data.resolution=16"], "data.resolution"),
])
def test_hostile_stylegan2_settings_are_one_line_errors(sets, culprit):
    with pytest.raises(ConfigError) as e:
        tiny_cfg(*sets)
    assert culprit in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_compiled_nets_give_the_eager_losses():
    """speed.compile (about 2 minutes of compiling here): the penalties on input gradients (R1, path length) run
    on the eager nets (compiled graphs have no double backward); every logged value tracks the eager run's."""
    from condgan.train.build import advance, build_run

    records = []
    for speed in ([], ["speed.compile=true"]):
        run = build_run(tiny_cfg(*LAZY, "aug.ada=", *speed), torch.device("cpu"))
        records.append([{k: v.item() for k, v in advance(run, step).items()} for step in range(3)])
    for eager, compiled in zip(*records):
        assert eager.keys() == compiled.keys() and {"d_r1", "g_pl_mean"} <= eager.keys()
        for key in eager:
            assert abs(eager[key] - compiled[key]) <= 1e-4 * max(1.0, abs(eager[key])), key

"""FastGAN: the KL-to-uniform loss, the free adversarial and PGD strategies, the exp lr decay, the nets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_softmax
from conftest import TINY
from test_losses import central_diff, t64
from test_train import assert_bitwise_equal, ema_state

from condgan.config import ConfigError, build_config
from condgan.losses import ac_ce, fastgan_d_fake, fastgan_d_real, fastgan_g, kl_to_uniform
from condgan.nets import build_nets, count_parameters
from condgan.nets.heads import DOutput
from condgan.presets import load_preset
from condgan.train import checkpoint as ckpt
from condgan.train.objective import Objective, total
from condgan.train.trainer import Trainer

CPU = torch.device("cpu")


def fast_cfg(*overrides: str, preset: str = "mnist5k-fastgan"):
    return build_config(load_preset(preset), TINY + ["train.batch_size=8"] + list(overrides))


# ------------------------------------------------------------------------------------------ the loss
def ref_kl_uniform(logits: np.ndarray) -> float:
    """Batch mean of sum_k u_k log(u_k / p_k), u = 1/C, p = softmax(logits), in float64."""
    c = logits.shape[1]
    log_p = log_softmax(logits, axis=1)
    return float(np.mean(np.sum((1.0 / c) * (np.log(1.0 / c) - log_p), axis=1)))


@pytest.mark.parametrize("n,c,scale", [(1, 2, 1.0), (5, 10, 3.0), (7, 143, 0.5), (3, 4, 30.0)])
def test_kl_to_uniform_matches_float64_reference(n, c, scale):
    logits = np.random.default_rng(n * c).normal(scale=scale, size=(n, c))
    x = t64(logits, grad=True)
    value = kl_to_uniform(x)
    assert value.item() == pytest.approx(ref_kl_uniform(logits), abs=1e-10)
    value.backward()
    np.testing.assert_allclose(x.grad.numpy(), central_diff(ref_kl_uniform, logits), atol=1e-6)
    # the reference code's form: torch's KL with 'batchmean' against a uniform target
    uniform = torch.full((n, c), 1.0 / c, dtype=torch.float64)
    official = F.kl_div(F.log_softmax(x.detach(), 1), uniform, reduction="batchmean")
    assert value.item() == pytest.approx(official.item(), abs=1e-10)


def test_kl_to_uniform_properties():
    rows = torch.tensor([[2.0, 2.0, 2.0], [-5.0, -5.0, -5.0]], dtype=torch.float64)
    assert kl_to_uniform(rows).item() == pytest.approx(0.0, abs=1e-12)  # uniform rows: zero
    peaked = torch.tensor([[50.0, 0.0, 0.0]], dtype=torch.float64)
    assert kl_to_uniform(peaked).item() > 10  # confident rows: large (grows without bound)
    assert kl_to_uniform(torch.randn(6, 5)).item() > 0


def random_output(n: int, c: int, seed: int) -> tuple[DOutput, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = DOutput(adv=torch.randn(n, generator=g, dtype=torch.float64) * 2,
                  features=torch.randn(n, 4, generator=g, dtype=torch.float64),
                  cls_logits=torch.randn(n, c, generator=g, dtype=torch.float64) * 2)
    return out, torch.randint(0, c, (n,), generator=g)


def test_fastgan_functions_are_the_objective_of_the_presets():
    for preset, alpha_g in (("cifar10-fastgan", 1.0), ("cifar100-fastgan", 0.2)):
        loss = build_config(load_preset(preset)).loss
        objective = Objective(loss, 10)
        real, y_real = random_output(6, 10, 0)
        fake, y_fake = random_output(6, 10, 1)
        d = total("d", objective.d_terms(real, fake, y_real, y_fake))["d_loss"]
        expected = fastgan_d_real(real.adv, real.cls_logits, y_real) + fastgan_d_fake(fake.adv, fake.cls_logits)
        assert d.item() == pytest.approx(expected.item(), abs=1e-12)
        g = total("g", objective.g_terms(fake, y_fake))["g_loss"]
        assert g.item() == pytest.approx(fastgan_g(fake.adv, fake.cls_logits, y_fake, alpha_g).item(), abs=1e-12)
    # and those functions against their formulas (hinge, CE and KL are checked on their own elsewhere)
    real, y = random_output(5, 4, 2)
    hinge_real = np.maximum(0, 1 - real.adv.numpy()).mean()
    ce = -log_softmax(real.cls_logits.numpy(), axis=1)[np.arange(5), y.numpy()].mean()
    assert fastgan_d_real(real.adv, real.cls_logits, y, 0.3).item() == pytest.approx(hinge_real + 0.3 * ce)
    hinge_fake = np.maximum(0, 1 + real.adv.numpy()).mean()
    kl = ref_kl_uniform(real.cls_logits.numpy())
    assert fastgan_d_fake(real.adv, real.cls_logits, 0.7).item() == pytest.approx(hinge_fake + 0.7 * kl)
    assert fastgan_g(real.adv, real.cls_logits, y, 0.2).item() == pytest.approx(
        -real.adv.mean().item() + 0.2 * ac_ce(real.cls_logits, y).item())


def test_robgan_fake_side_is_weighted():
    loss = build_config(load_preset("cifar10-robgan")).loss
    real, y_real = random_output(6, 10, 3)
    fake, y_fake = random_output(6, 10, 4)
    terms = Objective(loss, 10).d_terms(real, fake, y_real, y_fake)
    softplus = lambda v: np.logaddexp(0, v)  # noqa: E731
    adv = softplus(-real.adv.numpy()).mean() + 2.0 * softplus(fake.adv.numpy()).mean()
    assert terms["d_adv"][0].item() == pytest.approx(adv)
    ce = -log_softmax(real.cls_logits.numpy(), axis=1)[np.arange(6), y_real.numpy()].mean()
    assert terms["d_cond"][0].item() == pytest.approx(ce) and "d_kl" not in terms  # no class loss on fakes


# ---------------------------------------------------------------------------- free adversarial semantics
class Counter:
    """Counts G forwards, D forwards, backward passes reaching D's input, and D optimiser steps."""

    def __init__(self, trainer: Trainer) -> None:
        m = trainer.run.models
        self.g_forwards = self.d_backwards = self.d_steps = 0
        self.d_inputs: list[torch.Tensor] = []
        m.G.register_forward_hook(lambda *_: self._add("g_forwards"))
        m.D.register_forward_hook(self._d_forward)
        step = m.opt_d.step

        def counted_step(*args, **kwargs):
            self._add("d_steps")
            return step(*args, **kwargs)
        m.opt_d.step = counted_step

    def _add(self, name: str) -> None:
        setattr(self, name, getattr(self, name) + 1)

    def _d_forward(self, module, inputs, output) -> None:
        self.d_inputs.append(inputs[0].detach().clone())
        if inputs[0].requires_grad:
            inputs[0].register_hook(lambda grad: self._add("d_backwards"))


@pytest.mark.parametrize("replays,n_dis", [(2, 1), (3, 2)])
def test_free_step_counts(tmp_path, replays, n_dis):
    t = Trainer(fast_cfg(f"robust.replays={replays}", f"train.n_dis={n_dis}"), tmp_path, progress=False)
    count = Counter(t)
    t.run.strategy.step(CPU, 0)
    # per D iteration: one G forward for its fakes, m D steps, each with one forward and one backward
    assert count.g_forwards == n_dis + 1  # + the G step's forward
    assert count.d_steps == n_dis * replays
    assert count.d_backwards == n_dis * replays + 1  # + the G step's backward through D
    assert len(count.d_inputs) == n_dis * replays + 1


def test_delta_bounded_persistent_and_used(tmp_path):
    eps = 0.05  # large enough that clamping to [-1, 1] and to the ball both bite on MNIST's flat background
    t = Trainer(fast_cfg(f"robust.epsilon={eps}", "robust.step_size=0.02"), tmp_path, progress=False)
    s = t.run.strategy
    assert s.delta.shape == (8, 1, 32, 32) and s.delta.abs().max() <= eps
    assert (s.delta.abs() == eps).float().mean() > 0.9  # N(0, 1) clamped: almost all entries at +-eps
    batches = []
    real_batch = s.real_batch
    s.real_batch = lambda: batches.append(real_batch()) or batches[-1]
    count = Counter(t)
    deltas = [s.delta.clone()]
    for step in range(4):
        s.step(CPU, step)
        deltas.append(s.delta.clone())
        assert s.delta.abs().max() <= eps + 1e-7
    assert not torch.equal(deltas[0], deltas[-1])
    inputs = count.d_inputs  # per iteration: 2 replays on [x_adv; x_fake], then the G step
    for it in range(4):
        x_real = batches[it][0]
        first = inputs[3 * it][:8]
        # the first replay of iteration it+1 starts from the delta the previous iteration left (never reset)
        assert torch.allclose(first, (x_real + deltas[it]).clamp(-1, 1), atol=1e-6)
        assert first.min() >= -1 and first.max() <= 1
        # replays share the real and the fake batch; only the perturbation moved
        second = inputs[3 * it + 1]
        assert torch.equal(second[8:], inputs[3 * it][8:])
        assert (second[:8] - x_real).abs().max() <= eps + 1e-6
        moved = (deltas[it + 1] - deltas[it]).abs()
        assert moved.max() <= 2 * 0.02 + 1e-6 and moved.max() > 0


def reference_free_iteration(s, eps: float, tau: float, replays: int) -> None:
    """DESIGN.md section 3, step by step: separate real and fake backward passes, delta between them."""
    D, opt, lc = s.m.D, s.m.opt_d, s.cfg.loss
    x_real, y_real = s.real_batch()
    x_fake, y_fake, _ = s.fakes(x_real.shape[0], x_real.device)
    for _ in range(replays):
        opt.zero_grad()
        x_adv = (x_real + s.delta).clamp(-1, 1).requires_grad_(True)
        real = D(x_adv, y_real)
        fastgan_d_real(real.adv, real.cls_logits, y_real, lc.cond_weight).backward()
        s.delta = (s.delta + tau * x_adv.grad.sign()).clamp(-eps, eps)
        fake = D(x_fake, y_fake)
        fastgan_d_fake(fake.adv, fake.cls_logits, lc.fake_kl_weight).backward()
        opt.step()


def test_fused_free_step_equals_the_two_pass_reference(tmp_path):
    cfg = fast_cfg("robust.epsilon=0.03", "robust.step_size=0.01")
    fused = Trainer(cfg, tmp_path / "a", progress=False)
    for step in range(3):
        fused.run.strategy.step(CPU, step)
    ref = Trainer(cfg, tmp_path / "b", progress=False)  # same seed: same init, delta, batches and latents
    s = ref.run.strategy
    for step in range(3):
        reference_free_iteration(s, 0.03, 0.01, 2)
        s.g_step(CPU, step)
    a, b = fused.run.models.D.state_dict(), ref.run.models.D.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    # a sign may flip where a pixel's gradient is ~0 in float32; nearly all entries agree exactly
    agree = (fused.run.strategy.delta == s.delta).float().mean()
    assert agree > 0.999, agree


def test_zero_epsilon_is_clean_training(tmp_path):
    t = Trainer(fast_cfg("robust.epsilon=0", "robust.step_size=0"), tmp_path, progress=False)
    count = Counter(t)
    batches = []
    real_batch = t.run.strategy.real_batch
    t.run.strategy.real_batch = lambda: batches.append(real_batch()) or batches[-1]
    t.run.strategy.step(CPU, 0)
    assert torch.equal(t.run.strategy.delta, torch.zeros_like(t.run.strategy.delta))
    assert torch.equal(count.d_inputs[0][:8], batches[0][0])


def test_delta_zero_init_option(tmp_path):
    t = Trainer(fast_cfg("robust.delta_init=zero"), tmp_path, progress=False)
    assert torch.count_nonzero(t.run.strategy.delta) == 0


# ------------------------------------------------------------------------------------ resume and checkpoint
def test_free_adversarial_resume_is_bitwise_exact(tmp_path):
    n = 3
    cfg = fast_cfg(f"train.steps={2 * n}", f"train.ckpt_every={n}", "data.hflip=true", "data.crop_scale=0.8")
    straight = Trainer(cfg, tmp_path / "straight", progress=False)
    straight.train()
    first = Trainer(cfg, tmp_path / "resumed", progress=False)
    first.train(until=n)
    saved = torch.load(ckpt.list_checkpoints(tmp_path / "resumed" / "checkpoints")[-1], weights_only=True)
    assert torch.equal(saved["strategy"]["delta"], first.run.strategy.delta)  # delta is in the checkpoint
    first.close()  # a run dir has one owner at a time
    second = Trainer(cfg, tmp_path / "resumed", progress=False)
    assert second.step == n and torch.equal(second.run.strategy.delta, saved["strategy"]["delta"])
    second.train()
    assert_bitwise_equal(ema_state(straight), ema_state(second))
    assert_bitwise_equal(straight.run.models.D.state_dict(), second.run.models.D.state_dict())
    assert torch.equal(straight.run.strategy.delta, second.run.strategy.delta)
    assert second.run.sched_g.get_last_lr() == straight.run.sched_g.get_last_lr()


def test_checkpoint_without_or_with_wrong_delta_is_named(tmp_path):
    t = Trainer(fast_cfg(), tmp_path, progress=False)
    state = t.run.strategy.state_dict()
    with pytest.raises(ckpt.CheckpointError, match="strategy.delta.*shape"):
        t.run.strategy.load_state_dict({**state, "delta": torch.zeros(4, 1, 32, 32)})
    with pytest.raises(ckpt.CheckpointError, match="strategy.delta"):
        t.run.strategy.load_state_dict({"regularizers": {}})


# ------------------------------------------------------------------------------------------------- PGD
def test_pgd_attack(tmp_path):
    t = Trainer(fast_cfg("train.strategy=pgd", "robust.epsilon=0.05", "robust.step_size=0.02",
                         "robust.pgd_steps=3"), tmp_path, progress=False)
    s, D = t.run.strategy, t.run.models.D
    modes = []
    D.register_forward_pre_hook(lambda m, inp: modes.append(m.training))
    x, y = s.real_batch()
    for p in D.parameters():
        p.grad = torch.full_like(p, 7.0)
    x_adv = s.attack(x, y)
    assert modes == [False] * 3 and D.training  # D in eval mode for the 3 attack steps only
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in D.parameters())  # D's grads untouched
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6 and x_adv.min() >= -1 and x_adv.max() <= 1
    assert not x_adv.requires_grad

    def real_loss(images):
        with torch.no_grad():
            return total("d", s.objective.d_real_terms(D(images, y), y))["d_loss"].item()
    assert real_loss(x_adv) > real_loss(x)  # the attack ascends D's loss on reals
    count = Counter(t)
    s.step(CPU, 0)
    n_dis = t.cfg.train.n_dis
    assert count.d_steps == n_dis and count.g_forwards == n_dis + 1


def test_robgan_preset_builds_its_nets():
    cfg = build_config(load_preset("cifar10-robgan"))
    assert cfg.train.strategy == "pgd" and cfg.train.n_dis == 5 and not cfg.model.d_sn
    G, D = build_nets(cfg, 10, 3)
    assert count_parameters(D) == 1_088_139  # the FastGAN pair (adv head + classifier with its 10 biases)


# ------------------------------------------------------------------------------------------ lr and nets
def test_exp_and_delayed_linear_lr(tmp_path):
    t = Trainer(fast_cfg("train.steps=6", "optim.lr_half_life=4"), tmp_path / "exp", progress=False)
    t.train()
    assert t.run.sched_g.get_last_lr()[0] == pytest.approx(2e-4 * 0.5 ** (6 / 4), rel=1e-12)
    assert t.run.sched_d.get_last_lr()[0] == pytest.approx(2e-4 * 0.5 ** (6 / 4), rel=1e-12)
    lin = Trainer(fast_cfg("train.steps=6", "optim.lr_decay=linear", "optim.lr_decay_start=2"), tmp_path / "lin",
                  progress=False)
    lrs = []
    for _ in range(6):
        lin.train(until=lin.step + 1)
        lrs.append(lin.run.sched_g.get_last_lr()[0] / 2e-4)
    np.testing.assert_allclose(lrs, [1, 1, 0.75, 0.5, 0.25, 0.0], atol=1e-12)


@pytest.mark.parametrize("resolution,width,g_params,d_params", [(32, 128, 1_218_307, 1_088_139),
                                                                 (64, 64, 13_038_595, 10_288_016)])
def test_fastgan_nets(resolution, width, g_params, d_params):
    cfg = build_config(load_preset("cifar10-fastgan"), [f"data.resolution={resolution}", f"model.g_width={width}",
                                                         f"model.d_width={width}"])
    G, D = build_nets(cfg, 10 if resolution == 32 else 143, 3)
    # counted by hand from the reference layout (see nets/resnet.py)
    assert (count_parameters(G), count_parameters(D)) == (g_params, d_params)
    shapes = []
    D.blocks[-1].register_forward_hook(lambda m, i, o: shapes.append(o.shape))
    y = torch.tensor([0, 1])
    x = G(torch.randn(2, 128), y)
    assert x.shape == (2, 3, resolution, resolution)
    out = D(x, y)
    assert shapes[0][2:] == (2, 2) and out.adv.shape == (2,) and out.cls_logits.shape[0] == 2
    assert not any("u" == name.split(".")[-1] for name, _ in D.named_buffers())  # no spectral norm
    gains = [m.gain.weight for m in G.modules() if hasattr(m, "gain")]
    assert gains and all(torch.count_nonzero(w) == 0 for w in gains)  # per-class BN starts at the identity


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="'reg.gp'.*free_adversarial"):
        fast_cfg("reg.gp=10")
    with pytest.raises(ConfigError, match="'loss.fake_kl_weight'"):
        fast_cfg("loss.cond=d2d_ce")
    with pytest.raises(ConfigError, match="'robust.epsilon'"):
        fast_cfg("robust.epsilon=-0.1")
    with pytest.raises(ConfigError, match="'robust.replays'"):
        fast_cfg("robust.replays=0")
    with pytest.raises(ConfigError, match="'data.resolution' must be one of 32, 64, 128 for model.arch=fastgan"):
        build_config(load_preset("cifar10-fastgan"), ["data.resolution=48"])
    with pytest.raises(ConfigError, match="'train.strategy' must be one of"):
        fast_cfg("train.strategy=free")

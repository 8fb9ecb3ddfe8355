"""The fast path (speed.*): fp32 structural options change nothing but rounding; mixed precision tracks fp32,
keeps its loss scalers in checkpoints and resumes exactly."""
import pytest
import torch

from condgan.config import build_config
from condgan.presets import load_preset
from condgan.train.build import advance, build_run
from condgan.train.precision import Precision
from condgan.train.trainer import Trainer

TINY = ["model.arch=biggan32", "model.g_width=8", "model.d_width=8", "model.z_dim=16", "model.shared_dim=8",
        "model.embed_dim=16", "train.batch_size=8", "train.n_dis=2", "train.ema_decay=0.5", "train.ema_start=0",
        "train.log_every=1", "train.sample_every=100", "train.ckpt_every=100", "data.hflip=true"]


def trained(tmp_path, name: str, *overrides: str, steps: int = 3) -> Trainer:
    cfg = build_config(load_preset("mnist5k-reacgan"), TINY + [f"train.steps={steps}", *overrides])
    trainer = Trainer(cfg, tmp_path / name, progress=False)
    trainer.train()
    return trainer


def iteration_record(*overrides: str) -> tuple[dict, list[list[torch.Tensor]]]:
    """Losses and every optimiser step's gradients over 2 iterations at lr 0 (the weights never move, so
    each pass of both runs starts from the same weights: differences are the passes' own)."""
    cfg = build_config(load_preset("mnist5k-reacgan"), TINY + list(overrides))
    run = build_run(cfg, torch.device("cpu"))
    for sched in (run.sched_g, run.sched_d):  # lr 0 (not a valid config value) set on the built schedules
        sched.base_lrs = [0.0] * len(sched.base_lrs)
        for group in sched.optimizer.param_groups:
            group["lr"] = 0.0
    grads: list[list[torch.Tensor]] = []
    for opt in (run.models.opt_d, run.models.opt_g):
        opt.register_step_pre_hook(lambda o, *_: grads.append([p.grad.clone() for g in o.param_groups
                                                                 for p in g["params"]]))
    losses = [advance(run, step) for step in range(2)]
    return losses, grads


# Rounding can flip a ReLU whose input is ~0. In G that moves every gradient downstream a little (seen: mean
# 2e-5, max 1e-3 of the largest gradient); a layout or indexing bug moves them by O(0.1-1).
GRADIENT_TOLERANCE = (1e-4, 5e-3)


def gradient_gap(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[float, float]:
    """(mean, max) |a - b| over every entry of one optimiser step's gradients, relative to max |a|."""
    scale = max(g.abs().max().item() for g in a)
    gaps = torch.cat([(x - y).abs().flatten() for x, y in zip(a, b)]) / scale
    return gaps.mean().item(), gaps.max().item()


def test_fp32_structural_options_change_only_rounding():
    """channels_last and the fused Adam give the same losses and gradients as the plain path, to rounding.

    (Weights after a few Adam steps are not compared: Adam divides by the gradient's RMS, so an entry whose
    gradient is ~0 turns rounding into a step of +-lr, whatever the layout.)"""
    plain_losses, plain_grads = iteration_record()
    fast_losses, fast_grads = iteration_record("speed.channels_last=true", "speed.fused_adam=true")
    assert len(plain_grads) == len(fast_grads) == 2 * 3  # (2 D steps + 1 G step) x 2 iterations
    for a, b in zip(plain_losses, fast_losses):
        for k in a:
            assert abs(a[k].item() - b[k].item()) <= 1e-5 * max(1.0, abs(a[k].item())), k
    for step_a, step_b in zip(plain_grads, fast_grads):
        assert all(g <= t for g, t in zip(gradient_gap(step_a, step_b), GRADIENT_TOLERANCE))


def test_fused_adam_step_equals_the_loop():
    torch.manual_seed(0)
    params = [torch.randn(5, 3), torch.randn(7)]
    grads = [[torch.randn_like(p) for p in params] for _ in range(3)]
    results = []
    for fused in (None, True):
        ps = [p.clone().requires_grad_() for p in params]
        opt = torch.optim.Adam(ps, lr=2e-4, betas=(0.5, 0.999), eps=1e-6, fused=fused)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        results.append(ps)
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-7, rtol=0)


def test_channels_last_reaches_the_nets_and_images(tmp_path):
    fast = trained(tmp_path, "fast", "speed.channels_last=true", steps=1)
    assert fast.run.models.D.opt_block.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x, _ = fast.run.strategy.real_batch()
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("precision, tolerance", [("bf16", 0.05), ("fp16", 0.01)])
def test_mixed_precision_losses_track_fp32(precision, tolerance):
    plain_losses, _ = iteration_record()
    mixed_losses, mixed_grads = iteration_record(f"speed.precision={precision}")
    assert all(g.dtype == torch.float32 for step in mixed_grads for g in step)  # master weights stay float32
    for a, b in zip(plain_losses, mixed_losses):
        assert abs(a["d_loss"].item() - b["d_loss"].item()) <= tolerance * abs(a["d_loss"].item())
        assert abs(a["g_loss"].item() - b["g_loss"].item()) <= tolerance * max(1.0, abs(a["g_loss"].item()))
        assert b["d_loss"].dtype == torch.float32  # losses are computed from float32 outputs


def test_fp16_scalers_are_checkpointed_and_resume_exactly(tmp_path):
    straight = trained(tmp_path, "straight", "speed.precision=fp16", "train.ckpt_every=2", steps=4)
    cfg = straight.cfg
    first = Trainer(cfg, tmp_path / "resumed", progress=False)
    first.train(until=2)
    first.close()  # a run dir has one owner at a time
    state = torch.load(tmp_path / "resumed/checkpoints/ckpt_00000002.pt", weights_only=True)
    assert set(state["strategy"]["scalers"]) == {"d", "g"}
    assert state["strategy"]["scalers"]["d"]["scale"] > 0
    second = Trainer(cfg, tmp_path / "resumed", progress=False)
    assert second.step == 2
    second.train()
    for a, b in zip(straight.run.ema.shadow.state_dict().values(), second.run.ema.shadow.state_dict().values()):
        assert torch.equal(a, b)


def test_precision_modes():
    assert Precision("fp32", torch.device("cpu")).state_dict() == {}
    with Precision("bf16", torch.device("cpu")).autocast():
        assert torch.nn.functional.linear(torch.ones(1, 2), torch.ones(3, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Precision("fp8", torch.device("cpu"))


@pytest.mark.slow  # 70-80 s of compiling on 2 CPU cores: out of CI's 15 minutes (python -m pytest -m slow)
def test_compiled_nets_give_the_eager_losses_and_gradients():
    """speed.compile (torch.compile of G and D) changes only rounding."""
    plain_losses, plain_grads = iteration_record()
    compiled_losses, compiled_grads = iteration_record("speed.compile=true")
    for a, b in zip(plain_losses, compiled_losses):
        for k in a:
            assert abs(a[k].item() - b[k].item()) <= 1e-5 * max(1.0, abs(a[k].item())), k
    for step_a, step_b in zip(plain_grads, compiled_grads):
        assert all(g <= t for g, t in zip(gradient_gap(step_a, step_b), GRADIENT_TOLERANCE))

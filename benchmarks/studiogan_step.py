"""PyTorch-StudioGAN's ReACGAN CIFAR10 iteration, built from a user's checkout, for step_bench.py.

Nothing of StudioGAN is copied here: its own modules (models/big_resnet.py, utils/ops.py, utils/losses.py,
utils/ema.py) are imported from the checkout given with --studiogan, and this file drives them in the order
its worker runs one iteration of configs/CIFAR10/ReACGAN.yaml (the worker itself needs wandb, datasets and
a launcher): per D step, fresh fakes from G (G's weights frozen, BN without running statistics), D on the
reals and on the fakes separately, hinge + 0.5 D2D-CE on the reals, step; then the G step (hinge + 0.5
D2D-CE on the fakes) and the EMA update. Settings: big_resnet, widths 96, z 80, shared 128, attention at
16x16 in G and D, SN in both, D2D-CE (T 0.5, m_p 0.98) with a 512-d embedding, Adam (0.5, 0.999, eps 1e-6,
lr 2.83e-4), 5 D steps, EMA 0.9999 from step 1000. ``mixed_precision`` is its -mpc (fp16 autocast and
a GradScaler).

Its import chain pulls in torchvision, seaborn and pkg_resources for features this iteration never uses;
where they are missing, inert placeholder modules stand in (they raise if anything calls them).
"""
from __future__ import annotations

import copy
import importlib.util
import sys
import types
from pathlib import Path
from typing import Callable

import torch
from torch import nn

CLASSES, Z_DIM, N_DIS, COND_WEIGHT = 10, 80, 5, 0.5


def _placeholder_modules() -> None:
    """Stand-ins for modules StudioGAN imports at import time only, when they are not installed."""
    def unavailable(*_args, **_kwargs):
        raise RuntimeError("a placeholder for a module missing here was called")

    def stub(name: str, **attrs) -> None:
        try:
            if name in sys.modules or importlib.util.find_spec(name) is not None:
                return
        except (ImportError, ValueError):
            pass
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module

    from packaging.version import parse

    stub("pkg_resources", parse_version=parse)  # called at import time by its conv2d_gradfix
    stub("torchvision")
    for sub in ("transforms", "datasets", "utils"):
        stub(f"torchvision.{sub}", CIFAR10=unavailable, CIFAR100=unavailable, save_image=unavailable)
    stub("seaborn")
    if importlib.util.find_spec("matplotlib") is None:
        stub("matplotlib")
        stub("matplotlib.pyplot")


def _modules(ops, g_sn: bool = True, d_sn: bool = True, cond_bn: bool = True) -> types.SimpleNamespace:
    """The layer set its config.define_modules builds: SN in G / D or not, conditional or plain BN in G, ReLU."""
    relu = nn.ReLU(inplace=True)
    return types.SimpleNamespace(
        g_conv2d=ops.snconv2d if g_sn else ops.conv2d, g_deconv2d=ops.sndeconv2d if g_sn else ops.deconv2d,
        g_linear=ops.snlinear if g_sn else ops.linear, g_embedding=ops.sn_embedding if g_sn else ops.embedding,
        d_conv2d=ops.snconv2d if d_sn else ops.conv2d, d_deconv2d=ops.sndeconv2d if d_sn else ops.deconv2d,
        d_linear=ops.snlinear if d_sn else ops.linear, d_embedding=ops.sn_embedding if d_sn else ops.embedding,
        g_bn=ops.ConditionalBatchNorm2d if cond_bn else ops.batchnorm_2d, d_bn=ops.batchnorm_2d,
        g_act_fn=relu, d_act_fn=relu)


def _set_bn_tracking(net: nn.Module, on: bool) -> None:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = on


def build_iteration(checkout: str | Path, batch: int, device: torch.device,
                    mixed_precision: bool = False) -> tuple[Callable[[int], None], int]:
    """(iteration(step), total parameter count) of StudioGAN's ReACGAN CIFAR10 on random data."""
    src = Path(checkout) / "src"
    if not (src / "models" / "big_resnet.py").is_file():
        raise SystemExit(f"--studiogan {checkout}: not a PyTorch-StudioGAN checkout (no src/models/big_resnet.py)")
    _placeholder_modules()
    if str(src) not in sys.path:  # built once per contender: add the checkout once
        sys.path.insert(0, str(src))
    import models.big_resnet as big_resnet
    import utils.losses as losses
    import utils.ops as ops
    from utils.ema import Ema

    model_info = types.SimpleNamespace(info_type="N/A", g_info_injection="N/A")
    layers = _modules(ops)
    G = big_resnet.Generator(z_dim=Z_DIM, g_shared_dim=128, img_size=32, g_conv_dim=96, apply_attn=True,
                             attn_g_loc=[2], g_cond_mtd="cBN", num_classes=CLASSES, g_init="ortho", g_depth="N/A",
                             mixed_precision=mixed_precision, MODULES=layers, MODEL=model_info).to(device)
    D = big_resnet.Discriminator(img_size=32, d_conv_dim=96, apply_d_sn=True, apply_attn=True, attn_d_loc=[1],
                                 d_cond_mtd="D2DCE", aux_cls_type="W/O", d_embed_dim=512, normalize_d_embed=True,
                                 num_classes=CLASSES, d_init="ortho", d_depth="N/A",
                                 mixed_precision=mixed_precision, MODULES=layers, MODEL=model_info).to(device)
    ema = Ema(source=G, target=copy.deepcopy(G), decay=0.9999, start_iter=1000)
    cond_loss = losses.Data2DataCrossEntropyLoss(num_classes=CLASSES, temperature=0.5, m_p=0.98,
                                                 master_rank=str(device), DDP=False)
    adam = dict(lr=2.8284271e-4, betas=(0.5, 0.999), eps=1e-6)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), **adam), torch.optim.Adam(D.parameters(), **adam)
    scaler = torch.amp.GradScaler(device.type, enabled=mixed_precision)
    reals = torch.rand(batch * N_DIS * 4, 3, 32, 32, device=device) * 2 - 1
    real_labels = torch.randint(0, CLASSES, (reals.shape[0],), device=device)

    def latents() -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(batch, Z_DIM, device=device), torch.randint(0, CLASSES, (batch,), device=device)

    def step_with(loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def iteration(step: int) -> None:
        G.train()
        D.train()
        G.requires_grad_(False)  # its worker's toggle_grad: D steps build no graph through G
        D.requires_grad_(True)
        _set_bn_tracking(G, False)
        for i in range(N_DIS):
            rows = slice((step * N_DIS + i) % 4 * batch, ((step * N_DIS + i) % 4 + 1) * batch)
            opt_d.zero_grad()
            z, y = latents()
            fake = G(z, y, eval=False)
            real_out, fake_out = D(reals[rows], real_labels[rows]), D(fake, y)
            loss = losses.d_hinge(real_out["adv_output"], fake_out["adv_output"], DDP=False)
            step_with(loss + COND_WEIGHT * cond_loss(**real_out), opt_d)
        G.requires_grad_(True)
        D.requires_grad_(False)
        _set_bn_tracking(G, True)
        opt_g.zero_grad()
        z, y = latents()
        fake_out = D(G(z, y, eval=False), y)
        step_with(losses.g_hinge(fake_out["adv_output"], DDP=False) + COND_WEIGHT * cond_loss(**fake_out), opt_g)
        ema.update(step)

    n_params = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    return iteration, n_params

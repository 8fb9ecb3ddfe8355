"""PyTorch-StudioGAN's StyleGAN2 (+ D2D-CE) CIFAR10 iteration, built from a user's checkout, for step_bench.py.

    python benchmarks/studiogan_stylegan2_step.py --studiogan ~/PyTorch-StudioGAN [--batch 8] [--iterations 3]

Nothing of StudioGAN is copied here: its models/stylegan2.py, utils/sample.py, utils/losses.py, utils/ema.py
and utils/misc.py are imported from the checkout, and this file calls them in the order its loader loop runs
one ``step`` of configs/CIFAR10/StyleGAN2-D2DCE.yaml (worker.train_generator, then
worker.train_discriminator, or D first with ``d_first``): the grad toggles of misc.toggle_grad; fakes from
sample.generate_images (update_emas False in the G step, True in the D steps; style mixing with
style_mixing_p); logistic + cond_lambda * D2D-CE (on the fakes for G, the reals for D); the path-length
step every g_reg_interval G steps when pl_weight > 0; the EmaStylegan2 update; d_updates D steps on a
basket of real batches, each followed, when (d_updates * step + index) % d_reg_interval == 0, by the lazy R1
step ("outside_loop") or with R1 added to that D step's loss ("inside_loop", as -Rev configs do).
Networks as models/model.py builds them for backbone stylegan2 (cAdaIN G, orig D with mbstd group 32,
512-d normalised D2D-CE embedding, fp32: num_fp16_res 0, conv_clamp None); Adam as config.define_optimizer
builds it for stylegan2 (lr, betas scaled by the lazy-regularisation ratio interval / (interval + 1)).

Left out: data loading (a fixed pool of uniform [-1, 1] images, batch * d_updates * 4, one basket per step
cycled by step), logging and loss .item() calls, ADA / APA bookkeeping, evaluation, checkpoints, DDP,
gradient accumulation (acml_steps 1). Augmentation is the identity unless ``diffaug`` (StudioGAN's own
utils/diffaug.apply_diffaug, as the -DiffAug configs use). StudioGAN's own worker cannot run this on CPU:
its D2D-CE loss is built with master_rank "cuda"; here it gets the device.

Its import chain pulls in torchvision, seaborn, requests and pkg_resources for features never used here;
where missing, inert placeholders stand in (studiogan_step._placeholder_modules, plus one for requests).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from studiogan_step import _placeholder_modules  # noqa: E402

Z_DIM = W_DIM = 512
LR, BETA1, BETA2, COND_LAMBDA, TEMPERATURE, M_P = 0.0025, 0.0, 0.99, 0.25, 0.25, 0.98


def _import_studiogan(checkout: str | Path) -> types.SimpleNamespace:
    src = Path(checkout) / "src"
    if not (src / "models" / "stylegan2.py").is_file():
        raise SystemExit(f"--studiogan {checkout}: not a PyTorch-StudioGAN checkout (no src/models/stylegan2.py)")
    _placeholder_modules()
    if "requests" not in sys.modules:
        try:
            import requests  # noqa: F401  (its dnnlib.util downloads with it; nothing here does)
        except ImportError:
            sys.modules["requests"] = types.ModuleType("requests")
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    import models.stylegan2 as stylegan2
    import utils.diffaug as diffaug
    import utils.losses as losses
    import utils.misc as misc
    import utils.sample as sample
    from utils.ema import EmaStylegan2
    return types.SimpleNamespace(stylegan2=stylegan2, diffaug=diffaug, losses=losses, misc=misc, sample=sample,
                                 EmaStylegan2=EmaStylegan2)


def _adam(params: list[torch.nn.Parameter], interval: int) -> torch.optim.Adam:
    """config.define_optimizer for stylegan2: lr and betas scaled by the lazy-regularisation ratio."""
    ratio = interval / (interval + 1) if interval != 1 else 1
    return torch.optim.Adam(params=params, lr=LR * ratio, betas=[BETA1 ** ratio, BETA2 ** ratio],
                            weight_decay=0.0, eps=1e-8)


def build_stylegan2_iteration(checkout: str | Path, batch: int, device: torch.device, cond: str = "D2DCE",
                              d_updates: int = 2, r1_place: str = "outside_loop", d_reg_interval: int = 16,
                              g_reg_interval: int = 4, r1_lambda: float = 0.01, style_mixing_p: float = 0.0,
                              pl_weight: float = 0.0, channel_base: int = 32768, channel_max: int = 512,
                              num_classes: int = 10, resolution: int = 32, d_first: bool = False,
                              diffaug: bool = False) -> tuple[Callable[[int], None], int]:
    """(iteration(step), G + D parameter count) of StudioGAN's StyleGAN2 CIFAR10 training on random data.

    cond is the D's d_cond_mtd: "D2DCE" (with its loss), or "SPD", "PD", "W/O" (no classifier loss; "W/O"
    also makes G unconditional, as StyleGAN2-Uncond.yaml). The "Tuning" config StyleGAN2-D2DCE-DiffAug-Rev is
    d_reg_interval=2, r1_lambda=0.08, r1_place="inside_loop", d_first=True, diffaug=True.
    """
    if r1_place not in ("outside_loop", "inside_loop"):
        raise ValueError(f"r1_place {r1_place!r}: outside_loop or inside_loop")
    sg = _import_studiogan(checkout)
    misc, losses = sg.misc, sg.losses
    MODEL = types.SimpleNamespace(info_type="N/A", g_cond_mtd="W/O" if cond == "W/O" else "cAdaIN",
                                  d_cond_mtd=cond, aux_cls_type="W/O")
    LOSS = types.SimpleNamespace(apply_lo=False, lo_steps4train="N/A", radius="N/A")
    RUN = types.SimpleNamespace(truncation_cutoff=None, langevin_sampling=False)
    gen_c_dim = num_classes if MODEL.g_cond_mtd == "cAdaIN" else 0
    dis_c_dim = num_classes if cond in ["PD", "SPD", "2C", "D2DCE"] else 0  # STYLEGAN.cond_type
    G = sg.stylegan2.Generator(z_dim=Z_DIM, c_dim=gen_c_dim, w_dim=W_DIM, img_resolution=resolution,
                               img_channels=3, MODEL=MODEL, mapping_kwargs={"num_layers": 2},
                               synthesis_kwargs={"channel_base": channel_base, "channel_max": channel_max,
                                                 "num_fp16_res": 0, "conv_clamp": None}).to(device)
    D = sg.stylegan2.Discriminator(c_dim=dis_c_dim, img_resolution=resolution, img_channels=3, architecture="orig",
                                   channel_base=channel_base, channel_max=channel_max, num_fp16_res=0,
                                   conv_clamp=None, cmap_dim=None, d_cond_mtd=cond, aux_cls_type="W/O",
                                   d_embed_dim=512, num_classes=num_classes, normalize_d_embed=True,
                                   block_kwargs={}, mapping_kwargs={}, epilogue_kwargs={"mbstd_group_size": 32},
                                   MODEL=MODEL).to(device)
    G_ema = copy.deepcopy(G)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line when it copies G into G_ema
        ema = sg.EmaStylegan2(source=G, target=G_ema, ema_kimg=500, ema_rampup=0.05, effective_batch_size=batch)
    cond_loss = None
    if cond == "D2DCE":  # the worker's master_rank is "cuda"; DDP off
        cond_loss = losses.Data2DataCrossEntropyLoss(num_classes=num_classes, temperature=TEMPERATURE, m_p=M_P,
                                                     master_rank=str(device), DDP=False)
    pl_reg = losses.PathLengthRegularizer(device=device, pl_weight=pl_weight, pl_no_weight_grad=True)
    opt_g, opt_d = _adam(list(G.parameters()), g_reg_interval), _adam(list(D.parameters()), d_reg_interval)
    augment = sg.diffaug.apply_diffaug if diffaug else misc.identity
    reals = torch.rand(batch * d_updates * 4, 3, resolution, resolution, device=device) * 2 - 1
    real_labels = torch.randint(0, num_classes, (reals.shape[0],), device=device)

    def generate(size: int, update_emas: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fake_images, fake_labels, _, _, ws, _, _ = sg.sample.generate_images(
            z_prior="gaussian", truncation_factor=-1.0, batch_size=size, z_dim=Z_DIM, num_classes=num_classes,
            y_sampler="totally_random", radius=LOSS.radius, generator=G, discriminator=D, is_train=True,
            LOSS=LOSS, RUN=RUN, MODEL=MODEL, device=device, generator_mapping=G.mapping,
            generator_synthesis=G.synthesis, is_stylegan=True, style_mixing_p=style_mixing_p,
            stylegan_update_emas=update_emas, cal_trsp_cost=False)
        return fake_images, fake_labels, ws

    def train_generator(step: int) -> None:
        misc.make_GAN_trainable(G, G_ema, D)
        misc.toggle_grad(model=D, grad=False, num_freeze_layers=-1, is_stylegan=True)
        misc.toggle_grad(model=G, grad=True, num_freeze_layers=-1, is_stylegan=True)
        G.apply(misc.track_bn_statistics)
        opt_g.zero_grad()
        fake_images, fake_labels, _ = generate(batch, update_emas=False)
        fake_dict = D(augment(fake_images), fake_labels)
        loss = losses.g_logistic(fake_dict["adv_output"], DDP=False)
        if cond_loss is not None:
            loss += COND_LAMBDA * cond_loss(**fake_dict)
        (loss / 1).backward()  # / acml_steps
        opt_g.step()
        if pl_weight > 0 and step % g_reg_interval == 0:  # g_updates_per_step 1, step_index 0
            opt_g.zero_grad()
            fake_images, _, ws = generate(batch // 2, update_emas=False)
            pl_loss = pl_reg.cal_pl_reg(fake_images=fake_images, ws=ws) + fake_images[:, 0, 0, 0].mean() * 0
            pl_loss *= g_reg_interval / 1
            pl_loss.backward()
            opt_g.step()
        ema.update(step)

    def train_discriminator(step: int) -> None:
        misc.make_GAN_trainable(G, G_ema, D)
        misc.toggle_grad(model=G, grad=False, num_freeze_layers=-1, is_stylegan=True)
        misc.toggle_grad(model=D, grad=True, num_freeze_layers=-1, is_stylegan=True)
        G.apply(misc.untrack_bn_statistics)
        rows = slice(step % 4 * batch * d_updates, (step % 4 + 1) * batch * d_updates)
        image_basket, label_basket = torch.split(reals[rows], batch), torch.split(real_labels[rows], batch)
        for index in range(d_updates):
            opt_d.zero_grad()
            real_images, labels = image_basket[index].to(device), label_basket[index].to(device)
            fake_images, fake_labels, _ = generate(batch, update_emas=True)
            real_dict = D(augment(real_images), labels)
            fake_dict = D(augment(fake_images), fake_labels, adc_fake=False)
            loss = losses.d_logistic(real_dict["adv_output"], fake_dict["adv_output"], DDP=False)
            if cond_loss is not None:
                loss += COND_LAMBDA * cond_loss(**real_dict)
            r1_due = (d_updates * step + index) % d_reg_interval == 0
            if r1_place == "inside_loop" and r1_due:
                real_images.requires_grad_(True)
                real_dict = D(augment(real_images), labels)
                r1 = losses.stylegan_cal_r1_reg(adv_output=real_dict["adv_output"], images=real_images)
                loss += d_reg_interval * r1_lambda * r1
            (loss / 1).backward()  # / acml_steps
            opt_d.step()
            if r1_place == "outside_loop" and r1_due:
                opt_d.zero_grad()
                real_images = image_basket[index].to(device)
                real_images.requires_grad_(True)
                real_dict = D(augment(real_images), labels)
                r1 = losses.stylegan_cal_r1_reg(adv_output=real_dict["adv_output"], images=real_images) + \
                    misc.enable_allreduce(real_dict)
                r1 *= d_reg_interval * r1_lambda / 1
                r1.backward()
                opt_d.step()

    def iteration(step: int) -> None:
        if d_first:
            train_discriminator(step)
            train_generator(step)
        else:
            train_generator(step)
            train_discriminator(step)

    n_params = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
    return iteration, n_params


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--studiogan", required=True, help="path of a PyTorch-StudioGAN checkout")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iterations", type=int, default=3, help="timed iterations, after one warm-up")
    p.add_argument("--channel-base", type=int, default=32768)
    p.add_argument("--channel-max", type=int, default=512)
    p.add_argument("--tuning", action="store_true", help="StyleGAN2-D2DCE-DiffAug-Rev settings")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    extra: dict[str, Any] = dict(d_reg_interval=2, r1_lambda=0.08, r1_place="inside_loop", d_first=True, diffaug=True) \
        if args.tuning else {}
    iteration, n_params = build_stylegan2_iteration(args.studiogan, args.batch, device,
                                                    channel_base=args.channel_base,
                                                    channel_max=args.channel_max, **extra)
    iteration(0)
    times = []
    for step in range(1, args.iterations + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        iteration(step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    print(f"StudioGAN stylegan2 batch {args.batch} channels {args.channel_base}/{args.channel_max} "
          f"({n_params / 1e6:.2f}M params): {statistics.mean(times):.3f} s/iteration (median "
          f"{statistics.median(times):.3f}, min {min(times):.3f}; steps 1..{args.iterations}, R1 steps are "
          f"those with (d_updates * step + i) % d_reg_interval == 0)")


if __name__ == "__main__":
    main()

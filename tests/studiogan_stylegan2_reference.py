"""The StyleGAN2 StudioGAN import's reference cases: condgan configs, seeded StudioGAN-layout weights, inputs, and
StudioGAN checkpoint folders made by condgan's own export.

``tests/data/studiogan_stylegan2_reference.json`` holds, per case, the state-dict keys and shapes of
PyTorch-StudioGAN's own StyleGAN2 G and D built with the same settings (its models/stylegan2.py) and their
float64 eval-mode outputs on :func:`inputs` with the weights of :func:`stylegan2_state`: G's images with the
layers' constant noise (plain and truncated toward ``w_avg``) and D's outputs. It is written by
``python benchmarks/studiogan_stylegan2_layout.py --studiogan CHECKOUT``; no StudioGAN code is in condgan.
"""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import torch
from studiogan_reference import num_classes

from condgan.config import Config, build_config
from condgan.nets import build_nets
from condgan.presets import load_preset
from condgan.studiogan import to_studiogan

REFERENCE = Path(__file__).parent / "data" / "studiogan_stylegan2_reference.json"
WEIGHT_SEED, BATCH, TRUNCATION = 5, 4, 0.7
# widths of 16 channels at most: a G and D of a few thousand parameters
WIDTHS = ("model.channel_base=256", "model.channel_max=16", "model.z_dim=16", "model.w_dim=16", "model.embed_dim=8")

# case -> (preset, overrides): both D architectures, every head StudioGAN builds on StyleGAN2, 32 and 64 px
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "spd-orig": ("cifar10-stylegan2", WIDTHS),
    "d2dce-resnet": ("cifar10-stylegan2-d2dce", (*WIDTHS, "model.d_arch=resnet", "model.mbstd_group=2")),
    "ac-tac-orig": ("cifar10-stylegan2", (*WIDTHS, "loss.cond=ac", "loss.aux=tac")),
    "mh-resnet": ("cifar10-stylegan2", (*WIDTHS, "loss.cond=mh", "loss.adv=mh", "model.d_arch=resnet")),
    "uncond-orig": ("cifar10-stylegan2", (*WIDTHS, "loss.cond=none", "model.conv_clamp=null")),
    "2c-adc-resnet64": ("cifar10-stylegan2", (*WIDTHS, "loss.cond=2c", "loss.aux=adc", "model.d_arch=resnet",
                                             "data.resolution=64", "model.mbstd_group=4")),
}
# each leaf's std at the effective scale (bias, noise_strength and w_avg start constant in a fresh net)
_SCALE = {"weight": 1.0, "const": 1.0, "noise_const": 1.0, "bias": 0.2, "noise_strength": 0.3, "w_avg": 0.5}
# the mapping networks' fully connected layers: lr multiplier 0.01 (the class embedding ``embed``: 1)
_SLOW = re.compile(r"(^|\.)(mapping|embedding|embedding_mi)\.fc\d+\.(weight|bias)$")


def case_config(case: str) -> Config:
    preset, overrides = CASES[case]
    return build_config(load_preset(preset), list(overrides))


def load_reference() -> dict:
    return json.loads(REFERENCE.read_text())


def nvidia_filter() -> torch.Tensor:
    """NVIDIA's setup_filter([1, 3, 3, 1]): the outer product, normalised to sum 1 (float64)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    f = torch.outer(taps, taps)
    return f / f.sum()


def stylegan2_state(manifest: dict[str, list[int]], seed: int = WEIGHT_SEED) -> dict[str, torch.Tensor]:
    """Float64 tensors for every key of a StudioGAN StyleGAN2 ``manifest`` {key: shape}, each from its own seeded
    stream, at the scale a layer applies them (a stored value is divided by its lr multiplier); the affines'
    biases around 1, as they start; ``resample_filter`` NVIDIA's filter."""
    out: dict[str, torch.Tensor] = {}
    for key, shape in manifest.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "resample_filter":
            out[key] = nvidia_filter()
            continue
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        value = _SCALE[leaf] * torch.randn(shape, generator=gen, dtype=torch.float64)
        value += 1.0 if key.endswith("affine.bias") else 0.0
        out[key] = value / 0.01 if _SLOW.search(key) else value
    return out


def inputs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z [BATCH, z_dim], labels [BATCH], images [BATCH, 3, R, R]) in float64, the same for both codes."""
    gen = torch.Generator().manual_seed(13)
    z = torch.randn(BATCH, cfg.model.z_dim, generator=gen, dtype=torch.float64)
    c = num_classes(cfg)
    y = torch.tensor([0, c - 1, c // 2, 1])
    r = cfg.data.resolution
    x = torch.tanh(torch.randn(BATCH, 3, r, r, generator=gen, dtype=torch.float64))
    return z, y, x


@torch.no_grad()
def randomised(cfg: Config, classes: int, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """condgan's (G, D) for ``cfg`` with every tensor (w_avg, noise maps, biases too) drawn from ``seed``."""
    torch.manual_seed(seed)
    G, D = build_nets(cfg, classes, 3)
    for net in (G, D):
        for t in net.state_dict().values():
            t.add_(0.1 * torch.randn_like(t))
    return G.eval(), D.eval()


def studiogan_folder(folder: Path, cfg: Config, step: int = 4321, roles=("G", "G_ema", "D"), classes: int = 10,
                     when: str = "best") -> dict[str, dict[str, torch.Tensor]]:
    """A StudioGAN StyleGAN2 checkpoint folder as its worker.save writes one, from condgan nets of ``cfg``
    exported to StudioGAN's layout (float32; G_ema with its own weights; D's file with the run's bookkeeping,
    ADA's p a tensor). Returns each role's state dict as written."""
    folder.mkdir(parents=True, exist_ok=True)
    G, D = randomised(cfg, classes, seed=1)
    G_ema, _ = randomised(cfg, classes, seed=2)
    states = {"G": to_studiogan(G), "G_ema": to_studiogan(G_ema), "D": to_studiogan(D)}
    for role in roles:
        record: dict = {"state_dict": states[role]}
        if role != "G_ema":
            record["optimizer"] = {"state": {}, "param_groups": []}
        if role == "D":
            record.update(seed=0, run_name="StyleGAN2-D2DCE-train-2022", step=step, epoch=9, topk=64,
                          aa_p=torch.tensor(0.125), best_step=step, best_fid=np.float64(3.34),
                          best_fid_ckpt=str(folder), lecam_emas={"G_loss": 0.0})
        torch.save(record, folder / f"model={role}-{when}-weights-step={step}.pth")
    return {role: states[role] for role in roles}

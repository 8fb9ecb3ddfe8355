"""The StudioGAN import's reference cases: condgan configs, seeded StudioGAN-layout weights, and inputs.

``tests/data/studiogan_reference.json`` holds, per case, the state-dict keys and shapes of PyTorch-StudioGAN's
own G and D built with the same settings (its models/big_resnet.py, resnet.py and deep_conv.py) and their
float64 eval-mode outputs on :func:`inputs` with the weights of :func:`studiogan_state`. It is written by
``python benchmarks/studiogan_layout.py --studiogan CHECKOUT``; no StudioGAN code is in condgan.
"""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch
from torch.nn import functional as F

from condgan.config import Config, build_config
from condgan.data.registry import KNOWN_SHAPES
from condgan.presets import load_preset

REFERENCE = Path(__file__).parent / "data" / "studiogan_reference.json"
WEIGHT_SEED, BATCH = 7, 3

# case -> (preset, overrides): small widths, every backbone, head and stored form the import converts
CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "biggan32-d2dce": ("cifar10-reacgan", ("model.g_width=4", "model.d_width=4", "model.z_dim=20",
                                           "model.shared_dim=8", "model.embed_dim=6")),
    "biggan64-mh": ("tiny-mhgan", ("model.g_width=8", "model.d_width=8", "model.z_dim=25", "model.shared_dim=8")),
    "biggan64-uncond": ("tiny-biggan-uncond", ("model.g_width=8", "model.d_width=8", "model.z_dim=25",
                                               "model.shared_dim=8")),
    "biggan128-ac-tac": ("cub200-acgan", ("loss.aux=tac", "model.g_width=4", "model.d_width=8", "model.z_dim=24",
                                          "model.shared_dim=8")),
    "resnet32-pd": ("cifar10-sngan", ("model.g_width=4", "model.d_width=4", "model.z_dim=16")),
    "sagan64-uncond-gsn": ("tiny-sagan", ("loss.cond=none", "model.g_width=8", "model.d_width=8",
                                          "model.z_dim=16")),
    "deep_cnn-ac-adc": ("cifar10-dcgan-ac", ("loss.aux=adc", "model.z_dim=16")),
    "deep_cnn-uncond": ("cifar10-dcgan-pd", ("loss.cond=none", "model.z_dim=16")),
}


def case_config(case: str) -> Config:
    preset, overrides = CASES[case]
    return build_config(load_preset(preset), list(overrides))


def num_classes(cfg: Config) -> int:
    return KNOWN_SHAPES[cfg.data.name][0]


def load_reference() -> dict:
    return json.loads(REFERENCE.read_text())


def studiogan_state(manifest: dict[str, list[int]], seed: int = WEIGHT_SEED) -> dict[str, torch.Tensor]:
    """Float64 tensors for every key of a StudioGAN ``manifest`` {key: shape}, each from its own seeded stream.

    BN statistics are positive where they must be; each spectral-norm pair is a unit u and a unit v one noisy
    power step from W^T u (so the stored v is not the one condgan would recompute, and u^T W v > 0).
    """
    def draw(key: str, shape: list[int]) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    out: dict[str, torch.Tensor] = {}
    for key, shape in manifest.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[key] = torch.tensor(3)
        elif leaf == "running_var":
            out[key] = 0.5 + draw(key, shape).abs()
        elif leaf == "weight" and len(shape) == 1:  # an affine BN's gain
            out[key] = 1 + 0.2 * draw(key, shape)
        elif len(shape) >= 2:  # a layer's weight, at 1/sqrt(fan-in) so that tanh's output is not saturated
            out[key] = draw(key, shape) / math.prod(shape[1:]) ** 0.5
        elif leaf not in ("weight_u", "weight_v"):
            out[key] = 0.2 * draw(key, shape)
    for key in manifest:
        if key.endswith(".weight_u"):
            prefix = key[: -len(".weight_u")]
            w = out[f"{prefix}.weight_orig"]
            mat = w.reshape(w.shape[0], -1)
            u = F.normalize(draw(key, manifest[key]), dim=0)
            wu = mat.t() @ u
            noise = draw(f"{prefix}.weight_v", manifest[f"{prefix}.weight_v"])
            out[key] = u
            out[f"{prefix}.weight_v"] = F.normalize(wu + 0.3 * wu.norm() * F.normalize(noise, dim=0), dim=0)
    return out


def inputs(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z [BATCH, z_dim], labels [BATCH], images [BATCH, 3, R, R]) in float64, the same for both codes."""
    gen = torch.Generator().manual_seed(11)
    z = torch.randn(BATCH, cfg.model.z_dim, generator=gen, dtype=torch.float64)
    c = num_classes(cfg)
    y = torch.tensor([0, c - 1, c // 2])
    r = cfg.data.resolution
    x = torch.tanh(torch.randn(BATCH, 3, r, r, generator=gen, dtype=torch.float64))
    return z, y, x


def probe(images: torch.Tensor) -> dict[str, object]:
    """What the reference keeps of an output (G's images, a D output): sum, sum of squares, 32 values spread over it."""
    flat = images.detach().double().flatten()
    at = torch.linspace(0, flat.numel() - 1, 32).long()
    return {"sum": flat.sum().item(), "sum_sq": (flat * flat).sum().item(), "values": flat[at].tolist()}

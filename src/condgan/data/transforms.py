"""Pixel scaling and batched, on-device training augmentation (flip and random-resized-crop).

Everything is plain torch on whole batches: random draws come from torch on the images' device, so
augmentation never syncs with the host and is reproducible from a seeded ``torch.Generator``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from condgan.data.base import DataError

if TYPE_CHECKING:  # config reads its dataset choices from condgan.data
    from condgan.config import DataConfig


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float32 [B, C, H, W] in [-1, 1] (x / 127.5 - 1)."""
    if images_uint8.dtype != torch.uint8:
        raise DataError(f"to_float expects uint8 images, got {images_uint8.dtype}")
    return images_uint8.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float [B, C, H, W] in [-1, 1] -> uint8, rounded exactly as an 8-bit PNG would store it."""
    return ((images.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _rand(n: int, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=images.device, dtype=torch.float32)


def _crop_theta(images: torch.Tensor, min_scale: float, max_ratio: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """Per-sample affine maps [B, 2, 3] from output coords to a random box inside the image.

    In normalised coordinates the image spans [-1, 1], so a box covering a fraction w of the width
    has half-width w and its centre may move by at most 1 - w without leaving the image.
    """
    batch = images.shape[0]
    area = min_scale + (1.0 - min_scale) * _rand(batch, images, generator)
    log_ratio = math.log(max_ratio) * (2 * _rand(batch, images, generator) - 1)
    ratio = log_ratio.exp()  # box width / height
    width = (area * ratio).sqrt().clamp(max=1.0)
    height = (area / ratio).sqrt().clamp(max=1.0)
    cx = (2 * _rand(batch, images, generator) - 1) * (1 - width)
    cy = (2 * _rand(batch, images, generator) - 1) * (1 - height)
    zero = torch.zeros_like(width)
    theta = torch.stack([torch.stack([width, zero, cx], 1), torch.stack([zero, height, cy], 1)], 1)
    return theta


def augment(images: torch.Tensor, cfg: DataConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly flip / crop float images [B, C, H, W] in [-1, 1]; returns the same shape.

    hflip: each sample mirrored left-right with p = 0.5. crop_scale < 1: each sample cropped to a box of
    area fraction U[crop_scale, 1] and aspect ratio log-U[1/crop_ratio, crop_ratio] (clipped to the image) at a random
    position, then resampled bilinearly back to H x W. With neither on, ``images`` is returned as is.
    """
    do_crop = cfg.crop_scale < 1.0
    if not cfg.hflip and not do_crop:
        return images
    if not 0.0 < cfg.crop_scale <= 1.0:
        raise DataError(f"data.crop_scale must be in (0, 1], got {cfg.crop_scale}")
    if generator is not None and generator.device.type != images.device.type:
        raise DataError(f"augment generator is on {generator.device} but images are on {images.device}")
    batch = images.shape[0]
    flip = _rand(batch, images, generator) < 0.5 if cfg.hflip else None
    if not do_crop:
        return torch.where(flip[:, None, None, None], images.flip(3), images)
    theta = _crop_theta(images, cfg.crop_scale, cfg.crop_ratio, generator)
    if flip is not None:
        # Mirroring = negating the x scale; folding it into theta keeps one resampling pass.
        theta[:, 0, 0] = torch.where(flip, -theta[:, 0, 0], theta[:, 0, 0])
    theta = theta.to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # The box lies inside the image; "border" only guards the half-pixel rim against zero bleed.
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def translate_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The CR / bCR augmentation: random flip (p = 0.5) and an integer shift of up to 1/8 of the size.

    images [B, C, H, W] -> same shape. Each sample is shifted independently on each axis by a uniform
    integer in [-H/8, H/8] (resp. W/8), with reflection filling the uncovered border.
    """
    b, _, h, w = images.shape
    ph, pw = h // 8, w // 8
    flip = _rand(b, images, generator) < 0.5
    x = torch.where(flip[:, None, None, None], images.flip(3), images)
    dy = (_rand(b, images, generator) * (2 * ph + 1)).long().clamp(max=2 * ph)  # offsets into the padded image
    dx = (_rand(b, images, generator) * (2 * pw + 1)).long().clamp(max=2 * pw)
    padded = F.pad(x, (pw, pw, ph, ph), mode="reflect")
    rows = torch.arange(h, device=images.device)[None, :] + dy[:, None]     # [B, H]
    cols = torch.arange(w, device=images.device)[None, :] + dx[:, None]     # [B, W]
    batch = torch.arange(b, device=images.device)[:, None, None]
    # Advanced indices split by the channel slice put their broadcast dims first: [B, H, W, C].
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()

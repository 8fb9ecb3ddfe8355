"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

Random, differentiable augmentations applied to every image D sees (reals and fakes alike), so G receives
gradients through them. Images are float [N, C, H, W] in [-1, 1]; every sample gets its own draw. A policy is
a comma-separated list of families, applied in order (a family may repeat):

    color        brightness  x + s                        s ~ U[-0.5, 0.5)
                 saturation  (x - mean_C x) f + mean_C x    f ~ U[0, 2)      (mean over channels, per pixel)
                 contrast    (x - mean x) f + mean x        f ~ U[0.5, 1.5)  (mean over C, H, W)
    translation  out[h, w] = x[h + dy, w + dx], zero outside; dy, dx integers with |dy| <= round(H / 8),
                 |dx| <= round(W / 8) (round half up)
    cutout       zero one square of side round(H / 2) x round(W / 2) around a random centre, clipped at the
                 border; the centre row is uniform in [0, H - 1] for an odd side and [0, H] for an even
                 one (likewise for columns), as the reference implementation draws it

Drawing is separate from applying so each op can be run with chosen parameters. Draw order (what a seeded
generator yields, op by op in policy order): brightness, saturation and contrast one uniform [N] each (in
x's dtype); translation dy [N] then dx [N]; cutout the centre row [N] then the centre column [N]. This is the
reference's order, so with the same seed the global RNG gives the reference's augmentations.

Everything is batched on x's device with no host synchronisation (no data-dependent Python control flow).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

Generator = torch.Generator | None


# --- sizes ----------------------------------------------------------------------------------------------------

def translation_range(size: int) -> int:
    """Largest |shift| along an axis of ``size`` pixels: size / 8 rounded half up."""
    return int(size * 0.125 + 0.5)


def cutout_side(size: int) -> int:
    """Side of the cutout square along an axis of ``size`` pixels: size / 2 rounded half up."""
    return int(size * 0.5 + 0.5)


# --- ops with given parameters ---------------------------------------------------------------------------------

def _per_sample(v: Tensor, x: Tensor) -> Tensor:
    """[N] -> [N, 1, 1, 1] in x's dtype, to broadcast one value per sample."""
    return v.to(x.dtype).reshape(-1, 1, 1, 1)


def brightness(x: Tensor, shift: Tensor) -> Tensor:
    """x + shift per sample. x: [N, C, H, W]; shift: [N]. -> [N, C, H, W]."""
    return x + _per_sample(shift, x)


def saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Scale each pixel's deviation from its channel mean by factor [N]. x: [N, C, H, W] -> same."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Scale the deviation from each image's mean (over C, H, W) by factor [N]. x: [N, C, H, W] -> same."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _per_sample(factor, x) + mean


def translate(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """out[n, :, h, w] = x[n, :, h + dy[n], w + dx[n]], zero where that falls outside the image.

    x: [N, C, H, W]; dy, dx: [N] integer (any value; a shift past the border gives zeros). -> [N, C, H, W].
    """
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device) + dy.reshape(-1, 1)  # [N, H] source row of each output row
    cols = torch.arange(w, device=x.device) + dx.reshape(-1, 1)  # [N, W]
    inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])  # [N, H, W]
    # One gather over the flattened plane: the index is [N, H, W] (shared by all channels through expand),
    # clamped so it stays valid; the pixels it wrongly picks are the ones the mask zeroes.
    src = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
    out = x.reshape(n, c, h * w).gather(2, src.reshape(n, 1, h * w).expand(n, c, h * w))
    return out.reshape(n, c, h, w).masked_fill(~inside[:, None], 0)


def cutout(x: Tensor, cy: Tensor, cx: Tensor) -> Tensor:
    """Zero one square per sample: rows [cy - sh // 2, cy - sh // 2 + sh), likewise columns, clipped.

    sh, sw = cutout_side(H), cutout_side(W). x: [N, C, H, W]; cy, cx: [N] integer centres. -> [N, C, H, W].
    """
    _, _, h, w = x.shape
    sh, sw = cutout_side(h), cutout_side(w)
    top = cy.reshape(-1, 1) - sh // 2  # [N, 1]
    left = cx.reshape(-1, 1) - sw // 2
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    # Comparing coordinates with the bounds clips the square at the border for free.
    in_rows = (r >= top) & (r < top + sh)  # [N, H]
    in_cols = (c >= left) & (c < left + sw)  # [N, W]
    return x.masked_fill(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0)


# --- parameter draws ---------------------------------------------------------------------------------------

def _check_generator(x: Tensor, generator: Generator) -> None:
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"DiffAugment generator is on device '{generator.device}' but the images are on "
                         f"'{x.device}'; pass a generator on the images' device type or None")


def _uniform(x: Tensor, generator: Generator) -> Tensor:
    """[N] draws from U[0, 1) in x's dtype on x's device."""
    _check_generator(x, generator)
    return torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device)


def _randint(x: Tensor, low: int, high: int, generator: Generator) -> Tensor:
    """[N] int64 draws from [low, high) on x's device."""
    _check_generator(x, generator)
    return torch.randint(low, high, (x.shape[0],), generator=generator, device=x.device)


def draw_brightness(x: Tensor, generator: Generator = None) -> Tensor:
    """Brightness shifts [N] ~ U[-0.5, 0.5) (one uniform each, x's dtype)."""
    return _uniform(x, generator) - 0.5


def draw_saturation(x: Tensor, generator: Generator = None) -> Tensor:
    """Saturation factors [N] ~ U[0, 2) (one uniform each, x's dtype)."""
    return _uniform(x, generator) * 2


def draw_contrast(x: Tensor, generator: Generator = None) -> Tensor:
    """Contrast factors [N] ~ U[0.5, 1.5) (one uniform each, x's dtype)."""
    return _uniform(x, generator) + 0.5


def draw_translation(x: Tensor, generator: Generator = None) -> tuple[Tensor, Tensor]:
    """(dy, dx), each [N] int64 uniform in [-r, r] with r = translation_range of H, then of W; dy drawn first."""
    _, _, h, w = x.shape
    rh, rw = translation_range(h), translation_range(w)
    dy = _randint(x, -rh, rh + 1, generator)
    dx = _randint(x, -rw, rw + 1, generator)
    return dy, dx


def draw_cutout(x: Tensor, generator: Generator = None) -> tuple[Tensor, Tensor]:
    """(cy, cx), each [N] int64; the row centre first.

    The centre is uniform in [0, S - 1] when the side (cutout_side(S)) is odd and in [0, S] when it is even,
    as in the reference: an even square sits one pixel after its centre, so the extra position lets it
    overhang the last row as far as it can overhang the first.
    """
    _, _, h, w = x.shape
    cy = _randint(x, 0, h + 1 - cutout_side(h) % 2, generator)
    cx = _randint(x, 0, w + 1 - cutout_side(w) % 2, generator)
    return cy, cx


# --- registry and policy -----------------------------------------------------------------------------------

class DiffAugOp(NamedTuple):
    """One augmentation: ``apply(x, *draw(x, generator))`` is a random draw of it."""
    name: str
    draw: Callable[[Tensor, Generator], tuple[Tensor, ...]]
    apply: Callable[..., Tensor]


def _one(draw: Callable[[Tensor, Generator], Tensor]) -> Callable[[Tensor, Generator], tuple[Tensor, ...]]:
    return lambda x, generator: (draw(x, generator),)


DIFFAUG_FAMILIES: dict[str, tuple[DiffAugOp, ...]] = {
    "color": (DiffAugOp("brightness", _one(draw_brightness), brightness),
              DiffAugOp("saturation", _one(draw_saturation), saturation),
              DiffAugOp("contrast", _one(draw_contrast), contrast)),
    "translation": (DiffAugOp("translation", draw_translation, translate),),
    "cutout": (DiffAugOp("cutout", draw_cutout, cutout),),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """Family names of a comma-separated policy, in order (spaces around names ignored, repeats kept).

    An empty (or blank) policy is no augmentation, ``()``. An unknown or empty name is a ValueError.
    """
    if not policy.strip():
        return ()
    names = tuple(p.strip() for p in policy.split(","))
    for name in names:
        if name not in DIFFAUG_FAMILIES:
            raise ValueError(f"unknown DiffAugment family {name!r} in policy {policy!r}; "
                             f"allowed: {', '.join(DIFFAUG_FAMILIES)}")
    return names


def policy_ops(policy: str) -> tuple[DiffAugOp, ...]:
    """The ops of a policy in the order they are drawn and applied."""
    return tuple(op for name in parse_policy(policy) for op in DIFFAUG_FAMILIES[name])


def diff_augment(x: Tensor, policy: str = "color,translation,cutout", generator: Generator = None) -> Tensor:
    """Augment x [N, C, H, W] (float, in [-1, 1]) by ``policy``; same shape and dtype, differentiable in x.

    Each op draws its parameters (see the module docstring for the order) and is applied before the next
    draws. ``generator`` None uses the global RNG of x's device; an empty policy returns x itself.
    """
    ops = policy_ops(policy)
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"DiffAugment expects float images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
    _check_generator(x, generator)
    for op in ops:
        x = op.apply(x, *op.draw(x, generator))
    return x

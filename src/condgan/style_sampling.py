"""Sampling a StyleGAN2 generator in w space: truncation toward the global or a class's mean w, style mixing,
and images from per-layer latents.

``truncated_ws(G, z, y, psi)`` gives the per-layer latents ws [N, num_ws, w_dim] with w <- lerp(center, w, psi)
on the layers below ``cutoff`` (every layer when None): NVIDIA's truncation_psi, psi = 1 the plain sample, psi = 0
the center itself. The center is ``G.mapping.w_avg`` (the running mean of w training tracked; "global") or each
sample's class center ("class"): the mean of ``mapping(z, c)`` over ``center_samples`` seeded latents z, the same
latents for every class (:func:`class_centers`). ``synthesize(G, ws)`` turns ws into images; ``mixed_ws`` takes
one latent's styles for the coarse layers and another's from a layer on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .generator import check_model
from .nets.style_layers import NOISE_MODES
from .nets.stylegan2 import StyleGAN2Generator

CENTERS = ("global", "class")
CENTER_SAMPLES = 10_000  # latents per class center: the mean's standard error is about 1% of w's spread


def is_stylegan2(G: nn.Module) -> bool:
    """Whether ``G`` is a StyleGAN2 generator (truncation, mixing and noise live in its w space)."""
    return isinstance(G, StyleGAN2Generator)


def check_truncation(G: StyleGAN2Generator, psi: float, cutoff: int | None = None) -> None:
    """A one-line ValueError unless psi is a finite number in [0, 1] and cutoff None or in [1, G.num_ws]."""
    if not (math.isfinite(psi) and 0 <= psi <= 1):
        raise ValueError(f"StyleGAN2's truncation psi must be in [0, 1] (1: none, 0: the center); got {psi}")
    if cutoff is not None and not 1 <= cutoff <= G.num_ws:
        raise ValueError(f"the truncation cutoff must be a layer count in [1, {G.num_ws}] (this generator has "
                         f"{G.num_ws} w layers); got {cutoff}")


@torch.no_grad()
def mean_w(G: StyleGAN2Generator, c: torch.Tensor | None, n: int = CENTER_SAMPLES, seed: int = 0,
           batch_size: int = 1000) -> torch.Tensor:
    """The mean w [K, w_dim] of each class input row of ``c`` [K, C] (one-hot or class weights; None: one row,
    an unconditional G) over the latents ``torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))``,
    the same for every row, mapped ``batch_size`` at a time and summed in float64."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"a mean w needs at least 1 latent and a batch of at least 1; got {n} and {batch_size}")
    device = G.mapping.w_avg.device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    rows = [None] if c is None else list(c.to(device))
    sums = torch.zeros(len(rows), G.mapping.w_avg.shape[0], dtype=torch.float64, device=device)
    for chunk in z.split(batch_size):
        chunk = chunk.to(device)
        for k, row in enumerate(rows):
            given = None if row is None else row[None].expand(chunk.shape[0], -1)
            sums[k] += G.mapping(chunk, given).double().sum(dim=0)
    return (sums / n).to(G.mapping.w_avg.dtype)


def class_centers(G: StyleGAN2Generator, classes: Sequence[int] | torch.Tensor, n: int = CENTER_SAMPLES,
                  seed: int = 0, batch_size: int = 1000) -> torch.Tensor:
    """Each class's mean w [len(classes), w_dim]: the mean of mapping(z, one_hot(c)) over ``n`` seeded latents
    (:func:`mean_w`; the same latents for every class, so a class's center does not depend on the others asked)."""
    if not G.conditional:
        raise ValueError("an unconditional generator has no class centers (truncate toward the global mean)")
    classes = torch.as_tensor(classes, dtype=torch.int64)
    outside = classes[(classes < 0) | (classes >= G.num_classes)]
    if outside.numel():
        raise ValueError(f"class {int(outside[0])} is not one of the generator's {G.num_classes} classes")
    return mean_w(G, G.class_input(classes), n, seed, batch_size)


@torch.no_grad()
def truncated_ws(G: StyleGAN2Generator, z: torch.Tensor, y: torch.Tensor, psi: float = 1.0,
                 cutoff: int | None = None, center: str | torch.Tensor = "global", *,
                 center_samples: int = CENTER_SAMPLES, center_seed: int = 0) -> torch.Tensor:
    """ws [N, num_ws, w_dim] of latents z [N, z_dim] and labels y [N] int64 (or class weights [N, C]), with
    w <- lerp(center, w, psi) on layers 0..cutoff-1 (all when None) and the later layers untouched. ``center``:
    "global" (w_avg), "class" (each sample's class center, from ``center_samples`` latents of ``center_seed``)
    or a tensor [w_dim] / [N, w_dim]. psi = 1 gives ``G.ws(z, y)`` itself."""
    if isinstance(center, torch.Tensor):
        check_truncation(G, psi, cutoff)
        return G.ws(z, y, psi, cutoff, center)
    return StyleSampler(G, psi, cutoff, center, center_samples=center_samples, center_seed=center_seed).ws(z, y)


def mixed_ws(ws_a: torch.Tensor, ws_b: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """Style mixing: ws_a [N, num_ws, w_dim] on layers 0..k-1, ws_b from layer k on; k an int or [N]
    (k = num_ws: all of a, k = 0: all of b)."""
    layer = torch.arange(ws_a.shape[1], device=ws_a.device)
    later = layer[None, :] >= torch.as_tensor(k, device=ws_a.device).reshape(-1, 1)  # [N or 1, num_ws]
    return torch.where(later[:, :, None], ws_b, ws_a)


@torch.no_grad()
def synthesize(G: StyleGAN2Generator, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
    """Images [N, img_channels, R, R] in about [-1, 1] from ws [N, num_ws, w_dim]; ``noise_mode`` "const" (each
    layer's fixed noise map: the same ws give the same image, as in NVIDIA's pictures), "random" or "none"."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}")
    return G.render(ws, noise_mode)


class StyleSampler:
    """``sampler(z [N, z_dim], y [N] or [N, C])`` -> images [N, C_img, R, R] of a StyleGAN2 ``G`` truncated at
    ``psi`` (layers below ``cutoff``) toward ``center`` ("global" or "class"), with ``noise_mode``. Class centers
    are computed once per distinct class input (``center_samples`` latents of ``center_seed``) and kept, so a
    long run of batches maps each class's latents once. ``sampler.ws(z, y)``: the truncated ws themselves."""

    def __init__(self, G: StyleGAN2Generator, psi: float = 1.0, cutoff: int | None = None, center: str = "global",
                 noise_mode: str = "random", center_samples: int = CENTER_SAMPLES, center_seed: int = 0) -> None:
        check_truncation(G, psi, cutoff)
        if center not in CENTERS or noise_mode not in NOISE_MODES:
            raise ValueError(f"center must be one of {CENTERS} and noise_mode one of {NOISE_MODES}; got "
                             f"{center!r}, {noise_mode!r}")
        if center_samples < 1:
            raise ValueError(f"a class center needs at least 1 latent; got {center_samples}")
        if center == "class" and not G.conditional:
            raise ValueError("an unconditional generator has no class centers (truncate toward the global mean)")
        check_model({"G": G}, "the StyleGAN2 generator to sample")  # a non-finite w_avg would pass unseen at psi 1
        self.G, self.psi, self.cutoff, self.center, self.noise_mode = G, psi, cutoff, center, noise_mode
        self.center_samples, self.center_seed = center_samples, center_seed
        self._centers: dict[tuple[float, ...], torch.Tensor] = {}

    def centers(self, y: torch.Tensor) -> torch.Tensor | None:
        """Each sample's center [N, w_dim] (class), None for w_avg (global) or when psi = 1 (no truncation)."""
        if self.psi == 1 or self.center == "global":
            return None
        rows, index = torch.unique(self.G.class_input(y), dim=0, return_inverse=True)
        keys = [tuple(row.tolist()) for row in rows]
        missing = [k for k in keys if k not in self._centers]
        if missing:
            for key, w in zip(missing, mean_w(self.G, torch.tensor(missing), self.center_samples,
                                              self.center_seed)):
                self._centers[key] = w
        return torch.stack([self._centers[k] for k in keys])[index.to(self.G.mapping.w_avg.device)]

    @torch.no_grad()
    def ws(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The truncated ws [N, num_ws, w_dim] of (z, y)."""
        return self.G.ws(z, y, self.psi, self.cutoff, self.centers(y))

    @torch.no_grad()
    def __call__(self, z: torch.Tensor, y: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Images of (z, y); ``noise`` (maps [N, 1, r, r] per layer) replaces the random draws when noise_mode is
        random and is ignored otherwise."""
        return self.G(z, y, truncation=self.psi, truncation_cutoff=self.cutoff, center=self.centers(y),
                      noise_mode=self.noise_mode, noise=noise if self.noise_mode == "random" else None)

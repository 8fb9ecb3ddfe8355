"""Drawing evaluation samples from a generator: seeded, class-balanced, PNG-quantised, batched."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..data import to_uint8
from ..nets.stylegan2 import StyleGAN2Generator
from .errors import EvalError

MIN_TRUNCATION = 1e-3  # below it nearly every draw is beyond the threshold: the redraws would hardly ever end
NOISE_STREAM = 0x6E6F697365  # a StyleGAN2 G's noise maps: seed + this ("noise"), a stream apart from the latents'


def balanced_labels(num: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """int64 [num] cycling 0, 1, ..., C-1, 0, ...: class counts differ by at most one."""
    return torch.arange(num, device=device) % num_classes


@torch.no_grad()
def truncated_normal(shape: tuple[int, ...], threshold: float, generator: torch.Generator,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """N(0, 1) samples conditioned on |z| <= threshold (BigGAN's truncation trick): every value beyond the
    threshold is drawn again, from the same ``generator``, until none is; values within it are kept as drawn."""
    if not threshold >= MIN_TRUNCATION:
        raise EvalError(f"the truncation threshold must be positive, at least {MIN_TRUNCATION} (values beyond it "
                        f"are drawn again, so a smaller one is hardly ever met); got {threshold}")
    z = torch.randn(shape, device=device, generator=generator)
    beyond = z.abs() > threshold
    while bool(beyond.any()):
        z[beyond] = torch.randn(int(beyond.sum()), device=device, generator=generator)
        beyond = z.abs() > threshold
    return z


def generated_batches(G: nn.Module, z_dim: int, labels: torch.Tensor, batch_size: int, seed: int = 0,
                      truncation: float | None = None,
                      forward: Callable[..., torch.Tensor] | None = None,
                      ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images [B, C, H, W], labels [B]) for the int64 ``labels`` [N], in eval mode.

    Latents come from a private generator on the labels' device, so neither the caller's RNG nor the
    generator's training state changes; G's train/eval mode is restored afterwards. ``truncation``: latents
    from :func:`truncated_normal` at that threshold. ``forward`` (z, y) -> images replaces ``G(z, y)`` on the
    same latents (a StyleGAN2 sampler truncating in w space). A StyleGAN2 G's random noise maps come from a
    second private generator (seed + :data:`NOISE_STREAM`) and reach it (or ``forward``) as ``noise=``, so its
    images too are a function of the seed and batch size. A batch holding NaN or infinity is an EvalError
    (quantised, it would pass for black pixels).
    """
    device = labels.device
    gen = torch.Generator(device=device).manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed((seed + NOISE_STREAM) % 2**63)
    sizes = G.synthesis.noise_resolutions() if isinstance(G, StyleGAN2Generator) else []
    was_training = G.training
    G.eval()
    try:
        for start in range(0, labels.shape[0], batch_size):
            y = labels[start:start + batch_size]
            z = (torch.randn(y.shape[0], z_dim, device=device, generator=gen) if truncation is None
                 else truncated_normal((y.shape[0], z_dim), truncation, gen, device))
            noise = [torch.randn(y.shape[0], 1, r, r, device=device, generator=noise_gen) for r in sizes]
            kwargs = {"noise": noise} if sizes else {}
            x = (G if forward is None else forward)(z, y, **kwargs)
            if not bool(torch.isfinite(x).all()):
                raise EvalError(f"the generator's samples {start}..{start + y.shape[0] - 1} hold NaN or infinity; "
                                f"a generator with non-finite output is not scored")
            yield to_uint8(x), y
    finally:
        G.train(was_training)

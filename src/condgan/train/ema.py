"""Exponential moving average of the generator's weights (G_ema), used for sampling and evaluation."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow`` = EMA of ``model``'s parameters and BatchNorm running statistics.

    BN statistics are averaged like the weights: statistics copied from G describe G's current weights,
    not their average, and visibly distort G_ema's eval-mode samples. Other buffers (spectral norm's
    singular-vector estimates, counters) are copied: averaging unit vectors would shrink them.

    Before ``start`` updates the shadow is a plain copy of the model (as in BigGAN/StudioGAN), so an EMA
    with a late start does not average in the noisy first iterations.

    With ``kimg`` (StyleGAN2's EMA) the half-life is counted in images: decay = 0.5^(batch / h), h = kimg * 1000
    images, or with ``rampup`` min(h, images seen before this step * rampup). ``batch`` is the global batch
    (NVIDIA's; StudioGAN passes the per-GPU batch, so under DDP its half-life is world size times this).
    """

    def __init__(self, model: nn.Module, decay: float, start: int = 0, kimg: float | None = None,
                 rampup: float | None = None, batch: int = 1) -> None:
        self.decay = decay
        self.start = start
        self.kimg, self.rampup, self.batch = kimg, rampup, batch
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay of the update after ``step`` G steps (0: a plain copy)."""
        if self.kimg is None:
            return self.decay if step >= self.start else 0.0
        half_life = self.kimg * 1000
        if self.rampup is not None:
            half_life = min(half_life, (step - 1) * self.batch * self.rampup)
        return 0.5 ** (self.batch / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Call after G's optimiser step; ``step`` is the number of G steps done so far."""
        weight = 1.0 - self.decay_at(step)
        src = list(model.parameters())
        dst = list(self.shadow.parameters())
        torch._foreach_lerp_(dst, src, weight)
        for (name, b_dst), b_src in zip(self.shadow.named_buffers(), model.buffers()):
            if name.endswith(("running_mean", "running_var")):
                b_dst.lerp_(b_src, weight)
            else:
                b_dst.copy_(b_src)

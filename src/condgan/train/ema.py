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
    """

    def __init__(self, model: nn.Module, decay: float, start: int = 0) -> None:
        self.decay = decay
        self.start = start
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Call after G's optimiser step; ``step`` is the number of G steps done so far."""
        weight = 1.0 - self.decay if step >= self.start else 1.0
        src = list(model.parameters())
        dst = list(self.shadow.parameters())
        torch._foreach_lerp_(dst, src, weight)
        for (name, b_dst), b_src in zip(self.shadow.named_buffers(), model.buffers()):
            if name.endswith(("running_mean", "running_var")):
                b_dst.lerp_(b_src, weight)
            else:
                b_dst.copy_(b_src)

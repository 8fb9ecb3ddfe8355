"""The one door of every discriminator pass in training: augment -> autocast -> D -> float32 outputs.

Strategies and regularisers never call D themselves (as stylegan2-ada's ``run_D``):

    out = d_pass(x, y)                             D(augment(x), y): attacks, regularisers, the G step
    real, fake = d_pass.real_fake(xr, yr, xf, yf)  the pass whose loss updates D

Augmentation (``aug.*``, condgan.augment) is drawn per sample on the device and is differentiable, so
every gradient with respect to an input (R1, GP, DRAGAN, FastGAN's delta, PGD) is taken through it, with
respect to the un-augmented input, as in stylegan2-ada. ``augment=False`` is for the consistency
regularisers' comparison pass (CR, bCR, zCR), which sees its own transform only, as in StudioGAN.

DDP: ``real_fake``'s pass goes through ``d_synced``, the DDP-wrapped D whose backward all-reduces D's
gradients. Every other pass uses ``d_unsynced``, the plain (or compiled) module: DDP forbids a second
forward before backward, and the gradients such a pass gives D's weights (R1, GP, CR...) reach the same
accumulators in the same backward, so they are all-reduced with the synced pass's.

One concatenated pass over reals and fakes halves the kernel launches; it is used only when D declares
``batch_coupled = False`` (its output for one sample does not depend on the rest of the batch: no
batch-statistics BN or minibatch-std in D). Undeclared or coupled nets get two passes.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..augment.training import Augmentation
from ..nets.heads import DOutput
from .precision import Precision


def is_batch_coupled(D: nn.Module) -> bool:
    """Whether D's output for one sample may depend on the other samples of its batch (True if undeclared)."""
    return bool(getattr(D, "batch_coupled", True))


class DiscriminatorPass:
    """Every D forward of a training run; see the module docstring."""

    def __init__(self, d_synced: Callable, d_unsynced: Callable, precision: Precision,
                 augmentation: Augmentation | None = None, batch_coupled: bool = True,
                 eager: tuple[Callable, Callable] | None = None) -> None:
        self.d_synced = d_synced
        self.d_unsynced = d_unsynced
        self.eager = eager or (d_synced, d_unsynced)  # (synced, unsynced) without torch.compile
        self.precision = precision
        self.augmentation = augmentation or Augmentation()
        self.batch_coupled = batch_coupled

    def __call__(self, x: torch.Tensor, y: torch.Tensor, augment: bool = True, synced: bool = False,
                 eager: bool = False) -> DOutput:
        """D's outputs (float32) on x [N, C, H, W] with labels y [N]; no DDP gradient sync of its own unless
        ``synced`` (a pass whose loss alone updates D, such as StyleGAN2's separate R1 step). ``eager``: never
        the compiled D (a penalty on an input gradient needs the double backward compiled graphs lack)."""
        return self._forward(x, y, synced=synced, augment=augment, eager=eager)

    def real_fake(self, x_real: torch.Tensor, y_real: torch.Tensor, x_fake: torch.Tensor,
                  y_fake: torch.Tensor) -> tuple[DOutput, DOutput]:
        """The D-update pass over reals [B, ...] and fakes [B', ...]: (real outputs, fake outputs).

        Its real outputs are what ADA's controller observes. Fakes are cast to the reals' dtype (fakes made
        under autocast are half precision; D's convolutions cast back anyway).
        """
        x_fake = x_fake.to(x_real.dtype)
        if self.batch_coupled:
            real = self._forward(x_real, y_real, synced=True)
            fake = self._forward(x_fake, y_fake, synced=False)
        else:
            n = x_real.shape[0]
            out = self._forward(torch.cat([x_real, x_fake]), torch.cat([y_real, y_fake]), synced=True)
            real, fake = out.rows(slice(0, n)), out.rows(slice(n, None))
        self.augmentation.observe_real(real.adv)
        return real, fake

    def _forward(self, x: torch.Tensor, y: torch.Tensor, synced: bool, augment: bool = True,
                 eager: bool = False) -> DOutput:
        if augment:
            x = self.augmentation(x)
        d_synced, d_unsynced = self.eager if eager else (self.d_synced, self.d_unsynced)
        with self.precision.autocast():
            out = d_synced(x, y) if synced else d_unsynced(x, y)
        return out.float()

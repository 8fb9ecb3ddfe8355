"""Step strategies: the update order of one training iteration (the trainer owns time, not this)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config
from ..data import BatchSampler, augment, to_float
from ..nets.heads import DOutput
from .objective import Objective


@dataclass
class Models:
    """The nets and optimisers a strategy updates."""
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


def _split(out: DOutput, n: int) -> tuple[DOutput, DOutput]:
    """Split a D output over a concatenated [real; fake] batch back into its two halves."""
    def part(sl: slice) -> DOutput:
        return DOutput(**{k: (None if v is None else v[sl]) for k, v in vars(out).items()})
    return part(slice(0, n)), part(slice(n, None))


class StandardStrategy:
    """n_dis D steps (each on its own real batch and fresh fakes), then one G step.

    Real and fake images go through D in one concatenated forward: D has no batch statistics, so this
    equals two forwards in value and halves the kernel launches.
    """

    def __init__(self, cfg: Config, models: Models, sampler: BatchSampler, num_classes: int) -> None:
        self.cfg = cfg
        self.m = models
        self.sampler = sampler
        self.num_classes = num_classes
        self.objective = Objective(cfg.loss)

    def latents(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.model.z_dim, device=device)
        y = torch.randint(0, self.num_classes, (n,), device=device)
        return z, y

    def real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.sampler.next()
        return augment(to_float(images), self.cfg.data), labels

    def d_step(self) -> dict[str, torch.Tensor]:
        G, D = self.m.G, self.m.D
        x_real, y_real = self.real_batch()
        z, y_fake = self.latents(x_real.shape[0], x_real.device)
        with torch.no_grad():
            x_fake = G(z, y_fake)
        out = D(torch.cat([x_real, x_fake]), torch.cat([y_real, y_fake]))
        real, fake = _split(out, x_real.shape[0])
        losses = self.objective.d_loss(real, fake, y_real)
        self.m.opt_d.zero_grad(set_to_none=True)
        losses["d_loss"].backward()
        self.m.opt_d.step()
        return losses

    def g_step(self, device: torch.device) -> dict[str, torch.Tensor]:
        G, D = self.m.G, self.m.D
        z, y = self.latents(self.cfg.train.batch_size, device)
        D.requires_grad_(False)  # G's backward needs no grads for D's weights
        losses = self.objective.g_loss(D(G(z, y), y), y)
        self.m.opt_g.zero_grad(set_to_none=True)
        losses["g_loss"].backward()
        self.m.opt_g.step()
        D.requires_grad_(True)
        return losses

    def step(self, device: torch.device) -> dict[str, torch.Tensor]:
        """One iteration; returns detached losses (no host sync)."""
        for _ in range(self.cfg.train.n_dis):
            d_losses = self.d_step()
        g_losses = self.g_step(device)
        return {k: v.detach() for k, v in {**d_losses, **g_losses}.items()}


STRATEGIES = {"standard": StandardStrategy}

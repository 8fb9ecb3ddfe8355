"""Step strategies: the update order of one training iteration (the trainer owns time, not this)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Config
from ..data import BatchSampler, augment, to_float
from .objective import Objective, total
from .regularize import Regularizers


@dataclass
class Models:
    """The nets and optimisers a strategy updates."""
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


class StandardStrategy:
    """n_dis D steps (each on its own real batch and fresh fakes), then one G step.

    Real and fake images go through D in one concatenated forward: D has no batch statistics, so this
    equals two forwards in value and halves the kernel launches. ``d_feat_norm`` (the mean L2 norm of D's
    pooled features on reals) is logged with the losses: it is the ReACGAN paper's Fig. 2 diagnostic.
    """

    def __init__(self, cfg: Config, models: Models, sampler: BatchSampler, num_classes: int) -> None:
        self.cfg = cfg
        self.m = models
        self.sampler = sampler
        self.num_classes = num_classes
        self.objective = Objective(cfg.loss, num_classes)
        self.regularizers = Regularizers(cfg)

    def latents(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.model.z_dim, device=device)
        y = torch.randint(0, self.num_classes, (n,), device=device)
        return z, y

    def real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.sampler.next()
        return augment(to_float(images), self.cfg.data), labels

    def fakes(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of fakes for D, without G's graph: (x_fake [n, C, H, W], y_fake [n], z [n, z_dim])."""
        z, y_fake = self.latents(n, device)
        with torch.no_grad():
            x_fake = self.m.G(z, y_fake)
        return x_fake, y_fake, z

    def d_update(self, step: int, x_real: torch.Tensor, y_real: torch.Tensor, x_fake: torch.Tensor,
                 y_fake: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D optimiser step on these reals and fakes (one forward, one backward); returns the losses.

        If ``x_real`` requires grad, its ``.grad`` holds d(D loss)/dx_real afterwards: D has no batch
        statistics, so the fake half of the concatenated pass does not depend on it.
        """
        G, D = self.m.G, self.m.D
        n = x_real.shape[0]
        out = D(torch.cat([x_real, x_fake]), torch.cat([y_real, y_fake]))
        real, fake = out.rows(slice(0, n)), out.rows(slice(n, None))
        terms = self.objective.d_terms(real, fake, y_real, y_fake)
        reg = self.regularizers.d_terms(D, G, step, x_real, y_real, x_fake, y_fake, z, real, fake)
        losses = total("d", terms, reg)
        self.m.opt_d.zero_grad(set_to_none=True)
        losses["d_loss"].backward()
        self.m.opt_d.step()
        losses["d_feat_norm"] = real.features.detach().norm(dim=1).mean()
        return losses

    def d_step(self, step: int) -> dict[str, torch.Tensor]:
        """One D iteration: a fresh real batch and fresh fakes, one update."""
        x_real, y_real = self.real_batch()
        x_fake, y_fake, z = self.fakes(x_real.shape[0], x_real.device)
        return self.d_update(step, x_real, y_real, x_fake, y_fake, z)

    def g_step(self, device: torch.device, step: int) -> dict[str, torch.Tensor]:
        G, D = self.m.G, self.m.D
        z, y = self.latents(self.cfg.train.batch_size, device)
        D.requires_grad_(False)  # G's backward needs no grads for D's weights
        x_fake = G(z, y)
        fake = D(x_fake, y)
        real_features = None
        if self.cfg.loss.fm_weight:
            x_real, y_real = self.real_batch()
            with torch.no_grad():
                real_features = D(x_real, y_real).features
        adv_logits = self.regularizers.g_adv_logits(fake.adv, self.sampler.epoch)
        terms = self.objective.g_terms(fake, y, adv_logits, real_features)
        losses = total("g", terms, self.regularizers.g_terms(G, z, y, x_fake))
        self.m.opt_g.zero_grad(set_to_none=True)
        losses["g_loss"].backward()
        self.m.opt_g.step()
        D.requires_grad_(True)
        return losses

    def step(self, device: torch.device, step: int = 0) -> dict[str, torch.Tensor]:
        """One iteration after ``step`` finished G steps; returns detached losses (no host sync)."""
        for _ in range(self.cfg.train.n_dis):
            d_losses = self.d_step(step)
        g_losses = self.g_step(device, step)
        return {k: v.detach() for k, v in {**d_losses, **g_losses}.items()}

    def state_dict(self) -> dict:
        """Run state beyond nets and optimisers (the regularisers' EMAs)."""
        return {"regularizers": self.regularizers.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.regularizers.load_state_dict(state.get("regularizers", {}))



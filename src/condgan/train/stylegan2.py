"""StyleGAN2's training iteration (``train.strategy: stylegan2``), as NVIDIA's ``StyleGAN2Loss`` phases and
PyTorch-StudioGAN's worker run it. After ``step`` finished G steps, G first (``train.order: auto``):

    Gmain  fresh latents (style-mixed with probability reg.style_mixing), fakes, D(augment(fakes)): the
           objective's G terms (loss.adv ns is StyleGAN2's logistic loss softplus(-D(G(z))), plus the
           conditional term of loss.cond), one G step
    Greg   when step % reg.pl_interval == 0 and reg.pl_weight > 0: path length on batch / reg.pl_batch_shrink
           fresh latents, L = E (|J_w^T n| - a)^2, n ~ N(0, 1) / sqrt(H W), a the running mean of the lengths
           (decay reg.pl_decay, its graph kept in the step as NVIDIA does); pl_weight * pl_interval * L, own G step
    Dmain  n_dis times: reals and fresh fakes (no graph; w_avg <- lerp(mean w, w_avg, model.w_avg_beta) on
           them, as StudioGAN tracks it), the objective's D terms, one D step; R1 is a term of it on every
           reg.r1_interval-th D step, times the interval ("Tuning"), unless reg.r1_own_step:
    Dreg   then on those D steps, R1 on the same reals through the augmentation, gamma / 2 * r1_interval * R1,
           its own D step
Adam's lr and betas get NVIDIA's lazy-regularisation ratio r = k / (k + 1): lr * r, beta ** r, k =
reg.pl_interval for G and reg.r1_interval for D (condgan.train.build). G's noise maps and the style-mixing
draws come from the latent stream, drawn for the global batch with this rank's rows kept, so every number of
processes computes what one process does; the path lengths' mean spans the global batch. (NVIDIA and
StudioGAN draw noise per GPU and keep a per-GPU path-length mean.)
"""
from __future__ import annotations

import math

import torch

from ..config import Config, ConfigError
from ..data import BatchSampler
from ..distributed import all_gather_cat, all_reduce_sum
from ..losses import path_lengths
from .precision import Precision
from .strategy import Models, StandardStrategy


class StyleGAN2Strategy(StandardStrategy):
    """See the module docstring; ``pl_mean`` is run state (checkpointed with the latent stream)."""

    def __init__(self, cfg: Config, models: Models, sampler: BatchSampler, num_classes: int,
                 precision: Precision | None = None) -> None:
        super().__init__(cfg, models, sampler, num_classes, precision)
        reg, world = cfg.reg, sampler.world
        self.pl_global = cfg.train.batch_size // reg.pl_batch_shrink
        if reg.pl_weight and self.pl_global % world.size:
            raise ConfigError(f"config key 'reg.pl_batch_shrink': the path-length batch (train.batch_size / "
                              f"{reg.pl_batch_shrink} = {self.pl_global}) must divide among {world.size} processes")
        local = sampler.local_batch
        if local % min(cfg.model.mbstd_group, local):
            raise ConfigError(f"config key 'model.mbstd_group' ({cfg.model.mbstd_group}) must divide each process's "
                              f"batch ({local}): the minibatch standard deviation splits it into equal groups")
        self.noise_sides = models.G.synthesis.noise_resolutions()
        self.num_ws = models.G.num_ws
        self.pl_mean = torch.zeros((), device=sampler.device)

    # -- G's inputs ---------------------------------------------------------------------------------------
    def fake_inputs(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(z, y, {noise, [mix_z, mix_cutoff]}): this rank's rows of draws made for the global batch."""
        z, y = self.latents(n, device)
        extras: dict = {}
        if self.cfg.reg.style_mixing:  # NVIDIA's rule: one cutoff in [1, num_ws) per batch, used with probability p
            cutoff = torch.randint(1, self.num_ws, (), device=device, generator=self.noise)
            mixes = torch.rand((), device=device, generator=self.noise) < self.cfg.reg.style_mixing
            mix_z = self.shared_normal(n, (z.shape[1],), device)
            extras.update(mix_z=mix_z, mix_cutoff=torch.where(mixes, cutoff, torch.full_like(cutoff, self.num_ws)))
        extras["noise"] = [self.shared_normal(n, (1, r, r), device) for r in self.noise_sides]
        return z, y, extras

    def fakes(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fakes for a D step, without G's graph; G's w_avg follows the mean w of the global batch."""
        z, y_fake, extras = self.fake_inputs(n, device)
        with torch.no_grad(), self.precision.autocast():
            x_fake, ws = self.m.g_fwd(z, y_fake, return_ws=True, **extras)
            w_sum = all_reduce_sum(ws[:, 0].float().sum(dim=0))
        self.m.G.mapping.track(w_sum / (n * self.world.size), self.cfg.model.w_avg_beta)
        return x_fake, y_fake, z

    # -- steps -------------------------------------------------------------------------------------------
    def g_step(self, device: torch.device, step: int) -> dict[str, torch.Tensor]:
        """Gmain, then Greg when due."""
        losses = super().g_step(device, step)
        reg = self.cfg.reg
        if reg.pl_weight and step % reg.pl_interval == 0:
            losses["g_pl"] = self.path_length_step(device)
        return losses

    def path_length_step(self, device: torch.device) -> torch.Tensor:
        """NVIDIA's Greg phase: one G step on pl_weight * pl_interval * the path-length penalty; returns it."""
        reg = self.cfg.reg
        n = self.pl_global // self.world.size
        z, y, extras = self.fake_inputs(n, device)
        with self.precision.autocast():  # eager: the penalty differentiates an input gradient
            images, ws = self.m.g_eager(z, y, return_ws=True, **extras)
        pl_noise = self.path_length_noise(images) / math.sqrt(images.shape[2] * images.shape[3])
        lengths = path_lengths(images, ws, pl_noise)  # [n]
        # the new mean keeps its graph in this step, as NVIDIA's does
        mean = self.pl_mean.lerp(all_gather_cat(lengths).mean().to(self.pl_mean.dtype), reg.pl_decay)
        self.pl_mean.copy_(mean.detach())
        penalty = (lengths - mean).square().mean()
        # images[:, 0, 0, 0] * 0: every G parameter joins the graph (DDP wants a gradient for each)
        loss = (images[:, 0, 0, 0].float() * 0).mean() + penalty * (reg.pl_weight * reg.pl_interval)
        self.precision.backward_step(loss, self.m.opt_g, "g")
        return penalty.detach()

    def path_length_noise(self, images: torch.Tensor) -> torch.Tensor:
        """N(0, 1) draws shaped like this rank's images [n, C, H, W], from the global batch's draw."""
        return self.shared_normal(images.shape[0], tuple(images.shape[1:]), images.device).to(images.dtype)

    def d_step(self, step: int) -> dict[str, torch.Tensor]:
        """Dmain on one real batch and fresh fakes, then Dreg on the same reals when due."""
        x_real, y_real = self.real_batch()
        x_fake, y_fake, z = self.fakes(x_real.shape[0], x_real.device)
        losses = self.d_update(step, x_real, y_real, x_fake, y_fake, z)
        reg = self.cfg.reg
        if reg.r1_own_step and self.d_index % reg.r1_interval == 0:
            losses["d_r1"] = self.r1_step(x_real, y_real)
        return losses

    def r1_step(self, x_real: torch.Tensor, y_real: torch.Tensor) -> torch.Tensor:
        """NVIDIA's Dreg phase: one D step on gamma / 2 * r1_interval * R1 at these reals; returns R1."""
        reg = self.cfg.reg
        penalty = self.regularizers.r1(self.d_pass, x_real, y_real, synced=True)
        self.precision.backward_step(penalty * (reg.r1 / 2 * reg.r1_interval), self.m.opt_d, "d")
        return penalty.detach()

    # -- state -------------------------------------------------------------------------------------------
    def log_values(self) -> dict[str, torch.Tensor]:
        return {**super().log_values(), "g_pl_mean": self.pl_mean.clone()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "pl_mean": self.pl_mean.cpu()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "pl_mean" in state:
            self.pl_mean = state["pl_mean"].to(self.pl_mean.device, torch.float32).reshape(())

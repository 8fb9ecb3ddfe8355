"""Step strategies: the update order of one training iteration (the trainer owns time, not this)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import Config
from ..data import BatchSampler, augment, to_float
from ..augment.training import build_augmentation
from ..distributed import all_gather_cat, all_reduce_sum
from .discriminate import DiscriminatorPass, is_batch_coupled
from .objective import Objective, add_terms, total
from .precision import Precision
from .regularize import Regularizers

NOISE_SEED_OFFSET = 2  # the latent stream's seed is train.seed + this (the grid's is train.seed + 1)
DROP_SEED_OFFSET = 3  # loss.neg_drop's mask stream


@dataclass
class Models:
    """The nets and optimisers a strategy updates, and the callables its passes go through.

    ``G`` and ``D`` are the plain modules (state dicts, EMA, evaluation). Training passes use wrappers
    (DDP under torchrun, ``torch.compile`` with speed.compile), each the plain module when not wrapped:
    g_fwd for G; d_synced for the pass whose loss updates D (DDP all-reduces D's gradients in its
    backward); d_unsynced for every other D pass (see condgan.train.discriminate). ``g_eager`` and
    ``d_eager`` are g_fwd and d_synced without torch.compile, for the passes whose penalty differentiates an
    input gradient (R1, gradient penalties, path length): compiled graphs have no double backward. Strategies
    reach D only through their :class:`DiscriminatorPass`.
    """
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g_fwd: Callable | None = None
    d_synced: Callable | None = None
    d_unsynced: Callable | None = None
    g_eager: Callable | None = None
    d_eager: Callable | None = None

    def __post_init__(self) -> None:
        self.g_fwd = self.G if self.g_fwd is None else self.g_fwd
        self.d_synced = self.D if self.d_synced is None else self.d_synced
        self.d_unsynced = self.D if self.d_unsynced is None else self.d_unsynced
        self.g_eager = self.g_fwd if self.g_eager is None else self.g_eager
        self.d_eager = self.d_synced if self.d_eager is None else self.d_eager


class StandardStrategy:
    """n_dis D steps (each on its own real batch and fresh fakes), then one G step.

    Every D pass goes through ``self.d_pass`` (augmentation, autocast, DDP sync, float outputs).
    The ReACGAN paper's Fig. 2 diagnostics are logged with the losses: ``d_feat_norm`` (the mean L2 norm of D's
    pooled features on reals) and, for ac / 2c / d2d_ce, ``d_p_target`` (the classifier's mean probability of
    the target class on reals), ``d_cond_grad_norm`` (the mean norm of the conditional loss's gradient with
    respect to those features) and ``d_head_grad_norm`` (the norm of its gradient with respect to the
    classifier / embedding head's weight).
    """

    def __init__(self, cfg: Config, models: Models, sampler: BatchSampler, num_classes: int,
                 precision: Precision | None = None) -> None:
        self.cfg = cfg
        self.m = models
        self.sampler = sampler
        self.world = sampler.world
        self.num_classes = num_classes
        device = sampler.device
        self.precision = precision or Precision(cfg.speed.precision, device)
        # batch-coupled losses span all ranks (all_gather_cat is the identity in one process)
        self.drop_stream = torch.Generator(device).manual_seed(cfg.train.seed + DROP_SEED_OFFSET)
        self.objective = Objective(cfg.loss, num_classes, all_gather_cat, self.drop_stream)
        self.regularizers = Regularizers(cfg, all_gather_cat)
        self.augmentation = build_augmentation(cfg.aug, device, all_reduce_sum)
        self.d_pass = DiscriminatorPass(models.d_synced, models.d_unsynced, self.precision, self.augmentation,
                                        is_batch_coupled(models.D), eager=(models.d_eager, models.D))
        # Latents come from their own stream, seeded alike on every rank: each rank draws the whole global
        # batch and keeps its share, so any number of processes sees the same z and y as one process.
        self.noise = torch.Generator(device).manual_seed(cfg.train.seed + NOISE_SEED_OFFSET)
        self.d_index = 0  # D steps taken before the current one (set by step)

    def latents(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share (z [n, z_dim], y [n]) of a global batch of n * world size latents."""
        z = self.shared_normal(n, (self.cfg.model.z_dim,), device)
        total_n, rows = n * self.world.size, self.world.shard(n * self.world.size)
        return z, torch.randint(0, self.num_classes, (total_n,), device=device, generator=self.noise)[rows]

    def shared_normal(self, n: int, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """This rank's rows [n, *shape] of N(0, 1) draws [n * world size, *shape] from the latent stream."""
        total_n, rows = n * self.world.size, self.world.shard(n * self.world.size)
        return torch.randn(total_n, *shape, device=device, generator=self.noise)[rows]

    def fake_inputs(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """This rank's share of a global batch of G's inputs: (z [n, z_dim], y [n], G's keyword inputs)."""
        z, y = self.latents(n, device)
        return z, y, {}

    def real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.sampler.next()
        x = augment(to_float(images), self.cfg.data)
        if self.cfg.speed.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels

    def fakes(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of fakes for D, without G's graph: (x_fake [n, C, H, W], y_fake [n], z [n, z_dim])."""
        z, y_fake, extras = self.fake_inputs(n, device)
        with torch.no_grad(), self.precision.autocast():
            x_fake = self.m.g_fwd(z, y_fake, **extras)
        return x_fake, y_fake, z

    def d_losses(self, step: int, x_real: torch.Tensor, y_real: torch.Tensor, x_fake: torch.Tensor,
                 y_fake: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's losses on these reals and fakes (``d_loss`` the one to minimise), with their graph."""
        real, fake = self.d_pass.real_fake(x_real, y_real, x_fake, y_fake)
        with self.precision.autocast():  # zCR's G pass
            reg = self.regularizers.d_terms(self.d_pass, self.m.g_fwd, step, x_real, y_real, x_fake, y_fake, z,
                                            real, fake, self.d_index)
        real_terms = self.objective.d_real_terms(real, y_real)
        losses = total("d", add_terms(real_terms, self.objective.d_fake_terms(fake, y_fake)), reg)
        losses["d_feat_norm"] = real.features.detach().norm(dim=1).mean()
        if "d_cond" in real_terms:
            p_target = self.objective.target_probability(real, y_real)
            losses.update({} if p_target is None else {"d_p_target": p_target})
            losses.update(self.objective.gradient_norms(real, real_terms["d_cond"][0]))
        return losses

    def d_update(self, step: int, x_real: torch.Tensor, y_real: torch.Tensor, x_fake: torch.Tensor,
                 y_fake: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D optimiser step on these reals and fakes (one backward); returns the losses.

        If ``x_real`` requires grad, its ``.grad`` holds d(D loss)/dx_real afterwards (through the augmentation).
        """
        losses = self.d_losses(step, x_real, y_real, x_fake, y_fake, z)
        self.precision.backward_step(losses["d_loss"], self.m.opt_d, "d")
        return losses

    def d_step(self, step: int) -> dict[str, torch.Tensor]:
        """One D update: ``train.accumulate`` micro-batches, each a fresh real batch and fresh fakes."""
        def micro_batch() -> dict[str, torch.Tensor]:
            x_real, y_real = self.real_batch()
            x_fake, y_fake, z = self.fakes(x_real.shape[0], x_real.device)
            return self.d_losses(step, x_real, y_real, x_fake, y_fake, z)
        return self.accumulate(micro_batch, "d", self.m.opt_d, self.m.d_synced)

    def accumulate(self, micro_batch: Callable[[], dict[str, torch.Tensor]], net: str, opt: torch.optim.Optimizer,
                   ddp_module: Callable) -> dict[str, torch.Tensor]:
        """One optimiser step of ``net`` on the mean gradient of ``train.accumulate`` micro-batches' losses
        (StudioGAN's acml_steps: each micro-batch's loss divided by their number, batch-coupled losses
        such as D2D-CE within a micro-batch). Returns the losses averaged over the micro-batches. Under DDP
        the gradients are all-reduced once, in the last micro-batch's backward."""
        k = self.cfg.train.accumulate
        no_sync = getattr(ddp_module, "no_sync", None)
        opt.zero_grad(set_to_none=True)
        logged = []
        for i in range(k):
            with no_sync() if no_sync is not None and i < k - 1 else contextlib.nullcontext():
                losses = micro_batch()
                loss = losses[f"{net}_loss"]
                self.precision.backward(loss / k if k > 1 else loss, net)
            logged.append({name: value.detach() for name, value in losses.items()})
        self.precision.step(opt, net)
        return logged[0] if k == 1 else {name: torch.stack([log[name] for log in logged]).mean() for name in logged[0]}

    def g_step(self, device: torch.device, step: int) -> dict[str, torch.Tensor]:
        """One G update: ``train.accumulate`` micro-batches of fresh latents."""
        D = self.m.D
        D.requires_grad_(False)  # G's backward needs no grads for D's weights
        losses = self.accumulate(lambda: self.g_losses(device), "g", self.m.opt_g, self.m.g_fwd)
        D.requires_grad_(True)
        return losses

    def g_losses(self, device: torch.device) -> dict[str, torch.Tensor]:
        """G's losses on a fresh batch of latents (``g_loss`` the one to minimise), with their graph."""
        z, y, extras = self.fake_inputs(self.sampler.local_batch, device)
        with self.precision.autocast():
            x_fake = self.m.g_fwd(z, y, **extras)
        fake = self.d_pass(x_fake, y)
        real_features = None
        if self.cfg.loss.fm_weight:
            x_real, y_real = self.real_batch()
            with torch.no_grad():
                real_features = self.d_pass(x_real, y_real).features
        with self.precision.autocast():  # zCR's second G pass
            g_reg = self.regularizers.g_terms(self.m.g_fwd, z, y, x_fake)
        adv_logits = self.regularizers.g_adv_logits(fake.adv, self.sampler.epoch)
        return total("g", self.objective.g_terms(fake, y, adv_logits, real_features), g_reg)

    def step(self, device: torch.device, step: int = 0) -> dict[str, torch.Tensor]:
        """One iteration after ``step`` finished G steps (its n_dis D steps and its G step, in ``train.order``);
        returns detached losses (no host sync)."""
        g_losses = self.g_step(device, step) if self.g_first else {}
        n_dis, d_losses = self.cfg.train.n_dis, {}
        for i in range(n_dis):
            self.d_index = step * n_dis + i  # D steps so far: lazy regularisers count them
            # the last D step's values, and a lazy term from whichever D step computed it
            d_losses = {**d_losses, **self.d_step(step)}
        if not self.g_first:
            g_losses = self.g_step(device, step)
        return {k: v.detach() for k, v in {**d_losses, **g_losses, **self.log_values()}.items()}

    @property
    def g_first(self) -> bool:
        """Whether an iteration starts with its G step (``train.order``; auto: only StyleGAN2's does)."""
        order = self.cfg.train.order
        return order == "g_first" or (order == "auto" and self.cfg.train.strategy == "stylegan2")

    def log_values(self) -> dict[str, torch.Tensor]:
        """Run-state values logged with the losses (ADA's p, ...)."""
        return self.augmentation.log_values()

    def state_dict(self) -> dict:
        """Run state beyond nets and optimisers: the regularisers' EMAs, the latent stream, the loss scalers,
        the augmentation's state (ADA's p), the stream of loss.neg_drop's masks.

        The same on every rank (a collective under torchrun in subclasses: call it on every rank).
        """
        return {"regularizers": self.regularizers.state_dict(), "noise": self.noise.get_state(),
                "scalers": self.precision.state_dict(), "augmentation": self.augmentation.state_dict(),
                "neg_drop": self.drop_stream.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.regularizers.load_state_dict(state.get("regularizers", {}))
        if "noise" in state:  # absent in checkpoints written before the latent stream had its own generator
            self.noise.set_state(state["noise"].cpu())
        if "neg_drop" in state:  # absent in checkpoints written before loss.neg_drop
            self.drop_stream.set_state(state["neg_drop"].cpu())
        self.precision.load_state_dict(state.get("scalers", {}))
        self.augmentation.load_state_dict(state.get("augmentation", {}))



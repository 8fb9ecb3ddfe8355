"""The augmentation a training run applies to every D input (``aug.*``), with ADA's adaptive p.

The training loop sees one object with four duties: augment a batch (``__call__``), observe D's real
outputs of each D-update pass (``observe_real``), report values to log, and save / restore its state.

ADA's controller (Karras et al. 2020; stylegan2-ada-pytorch's training loop):
    every ``aug.ada_interval`` D steps, with n real images seen by D over that interval (all ranks),
        r_t = E[sign(D(x_real))] over those n outputs
        p <- max(0, p + sign(r_t - target) * n / (ada_kimg * 1000))
so p moves by at most 1 per ada_kimg thousand images, and, as NVIDIA's, p is clamped at 0 only (the ops
clamp their own probabilities at 1). StudioGAN counts its interval in G steps; with train.n_dis = 1 the two
agree. The accumulators and p live on the training device and are updated without host syncs; under
torchrun the interval's sums are all-reduced, so every rank holds the same p. p, the accumulators and the
step count are run state (checkpointed): a resumed run continues the same trajectory exactly.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..config import AugConfig
from .ada import ada_augment
from .diffaug import diff_augment


class Augmentation:
    """No augmentation (the base of the others): the identity, nothing to observe, no state."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] in [-1, 1] -> the augmented batch, same shape (differentiable)."""
        return x

    def observe_real(self, real_adv: torch.Tensor) -> None:
        """D's adversarial outputs [N] on this rank's reals of one D-update pass."""

    def log_values(self) -> dict[str, torch.Tensor]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class DiffAugmentation(Augmentation):
    """DiffAugment with a fixed policy (``aug.diffaug``)."""

    def __init__(self, policy: str) -> None:
        self.policy = policy

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x.float(), self.policy)  # float32 draws and maths, also for half-precision fakes


class AdaptiveAugmentation(Augmentation):
    """ADA with probability p, fixed (target None) or adapted to D's real outputs (see the module docstring).

    ``reduce_sum`` sums a tensor over ranks (the identity in one process).
    """

    def __init__(self, cfg: AugConfig, device: torch.device,
                 reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> None:
        self.pipeline = cfg.ada
        self.target = cfg.ada_target
        self.interval = cfg.ada_interval
        self.kimg = cfg.ada_kimg
        self.reduce_sum = reduce_sum
        self.p = torch.tensor(float(cfg.ada_p), device=device)
        self.signs = torch.zeros(2, device=device)  # [sum of sign(D(x_real)), count] since the last adjustment
        self.r_t = torch.zeros((), device=device)  # the last interval's E[sign(D(x_real))], for the log
        self.d_steps = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ada_augment(x.float(), self.p, pipeline=self.pipeline)

    def observe_real(self, real_adv: torch.Tensor) -> None:
        if self.target is None:
            return
        adv = real_adv.detach().float()
        self.signs[0] += adv.sign().sum()
        self.signs[1] += adv.shape[0]
        self.d_steps += 1
        if self.d_steps % self.interval == 0:
            self.adjust()

    def adjust(self) -> None:
        """Move p once from the accumulated signs (all ranks), then start a new interval."""
        total = self.reduce_sum(self.signs.clone())
        self.r_t = total[0] / total[1]
        step = torch.sign(self.r_t - self.target) * total[1] / (self.kimg * 1000)
        self.p = (self.p + step).clamp(min=0.0)
        self.signs.zero_()

    def log_values(self) -> dict[str, torch.Tensor]:
        values = {"aug_p": self.p.clone()}
        if self.target is not None:
            values["aug_rt"] = self.r_t.clone()
        return values

    def state_dict(self) -> dict:
        return {"p": self.p.cpu(), "signs": self.signs.cpu(), "r_t": self.r_t.cpu(), "d_steps": self.d_steps}

    def load_state_dict(self, state: dict) -> None:
        device = self.p.device
        self.p = state["p"].to(device, torch.float32).reshape(())
        self.signs = state["signs"].to(device, torch.float32).reshape(2)
        self.r_t = state["r_t"].to(device, torch.float32).reshape(())
        self.d_steps = int(state["d_steps"])


def build_augmentation(cfg: AugConfig, device: torch.device,
                       reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> Augmentation:
    """The run's augmentation for ``aug.*`` (at most one of diffaug and ada is on: the config checks it)."""
    if cfg.ada:
        return AdaptiveAugmentation(cfg, device, reduce_sum)
    if cfg.diffaug.strip():
        return DiffAugmentation(cfg.diffaug)
    return Augmentation()

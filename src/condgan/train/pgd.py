"""RobGAN's step strategy: each D step trains on a PGD attack of its real batch.

Per D step: x_r is attacked with ``robust.pgd_steps`` (k) signed ascent steps of size tau on D's real-side
loss, from a uniform random start in [-eps, eps], projected onto the eps ball and clipped to [-1, 1]
after every step; each step's D pass goes through the run's augmentation (fresh draws). D is in eval mode
during the attack (no spectral-norm power iteration, running BN statistics) and the attack leaves D's
parameter gradients untouched; then one ordinary D step on the attacked reals and fresh fakes (with n_dis D
steps per G step, RobGAN's 5).
"""
from __future__ import annotations

import torch

from .objective import total
from .perturbation import ascend, initial_delta, perturb
from .strategy import StandardStrategy


class PGDStrategy(StandardStrategy):
    """n_dis D steps on PGD-attacked reals, then one G step."""

    def attack(self, x_real: torch.Tensor, y_real: torch.Tensor) -> torch.Tensor:
        """The attacked batch clamp(x_real + delta, -1, 1), detached. x_real [B, C, H, W], y_real [B]."""
        D, r = self.m.D, self.cfg.robust
        delta = initial_delta(tuple(x_real.shape), r.epsilon, "uniform", x_real.device)  # this rank's own draw
        was_training = D.training
        D.eval()
        try:
            for _ in range(r.pgd_steps):
                x_adv = perturb(x_real, delta).requires_grad_(True)
                out = self.d_pass(x_adv, y_real)  # through the run's augmentation, fresh draws each step
                loss = total("d", self.objective.d_real_terms(out, y_real))["d_loss"]
                (grad,) = torch.autograd.grad(loss, x_adv)  # input gradient only: D's .grad stays as it was
                delta = ascend(delta, grad, r.step_size, r.epsilon)
        finally:
            D.train(was_training)
        return perturb(x_real, delta).detach()

    def d_step(self, step: int) -> dict[str, torch.Tensor]:
        x_real, y_real = self.real_batch()
        x_adv = self.attack(x_real, y_real)
        x_fake, y_fake, z = self.fakes(x_real.shape[0], x_real.device)
        return self.d_update(step, x_adv, y_real, x_fake, y_fake, z)

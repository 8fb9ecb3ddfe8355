"""Wiring of the regularisers of ``cfg.reg`` to D and G forwards (the math is in condgan.losses.regularizers).

    gp       WGAN-GP on x_hat = a x_real + (1 - a) x_fake, a ~ U[0, 1] per sample, D at the real labels
    dra      DRAGAN on x_hat = x_real + a * 0.5 std(x_real) U[0, 1)
    r1       gamma / 2 E ||grad_x D||^2 at the reals; lazy with reg.r1_interval k: every k-th D step, times k
             (with reg.r1_own_step the stylegan2 strategy takes it as a step of its own instead)
    cr       MSE between D's outputs on x_real and on translate_flip(x_real): adv, plus the classifier
             logits (ac, mh) or the embedding (2c, d2d_ce)
    bcr      the same on reals and on fakes, weighted separately
    zcr      D: the same between G(z) and G(z + sigma n); G: - MSE(G(z), G(z + sigma n)) over pixels
    lecam    on EMAs of D's mean real / fake adversarial outputs, updated every D step (decay 0 before
             reg.lecam_start, after which the term switches on)
    topk     G's adversarial loss over the k best fakes, k = max(gamma^epoch, nu) * batch
These are StudioGAN's reference forms. The EMAs are run state: they go into every checkpoint.

Every D pass goes through the run's :class:`~condgan.train.discriminate.DiscriminatorPass`: the gradient
penalties (gp, dra, r1) are taken with respect to the un-augmented input, through the run's augmentation
(as stylegan2-ada's R1); the consistency terms (cr, bcr, zcr) compare D's output of the D-update pass with
a pass on their own transform alone, without the run's augmentation (as StudioGAN).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..config import Config
from ..data import translate_flip
from ..losses import consistency, dragan_perturb, gradient_penalty, interpolate, lecam, r1_penalty, topk, topk_count
from ..nets.heads import DOutput
from .discriminate import DiscriminatorPass
from .objective import Terms


def output_consistency(a: DOutput, b: DOutput, mh: bool) -> torch.Tensor:
    """Sum of the MSEs between the compared outputs of two D passes (for mh: its C + 1 logits only)."""
    if mh:
        return consistency(a.cls_logits, b.cls_logits)
    pairs = [(a.adv, b.adv)]
    if a.cls_logits is not None:
        pairs.append((a.cls_logits, b.cls_logits))
    if a.embed is not None:
        pairs.append((a.embed, b.embed))
    return sum(consistency(x, y) for x, y in pairs)


class Regularizers:
    """The enabled regularisers of one run; ``d_terms``/``g_terms`` return weighted terms for the objective."""

    def __init__(self, cfg: Config, gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.reg = cfg.reg
        # Under torchrun: every rank's rows, so LeCam's EMAs and top-k's selection span the global batch.
        self.gather = gather or (lambda x: x)
        self.mh = cfg.loss.cond == "mh"
        self.ema_real: torch.Tensor | None = None  # LeCam EMAs of D's mean adversarial output
        self.ema_fake: torch.Tensor | None = None

    # -- discriminator ------------------------------------------------------------------------------
    def d_terms(self, d_pass: DiscriminatorPass, G: nn.Module, step: int, x_real: torch.Tensor,
                y_real: torch.Tensor, x_fake: torch.Tensor, y_fake: torch.Tensor, z: torch.Tensor, real: DOutput,
                fake: DOutput, d_index: int = 0) -> Terms:
        """Weighted D terms; ``step`` counts finished G steps, ``d_index`` D steps before this one. x_*: [B, C, H, W]
        before the run's augmentation."""
        r = self.reg
        terms: Terms = {}
        if r.gp:
            x_hat = interpolate(x_real, x_fake, torch.rand(x_real.shape[0], device=x_real.device))
            terms["d_gp"] = (self._penalty(d_pass, x_hat, y_real, gradient_penalty), r.gp)
        if r.dra:
            alpha = torch.rand(x_real.shape[0], device=x_real.device)
            perturbed = dragan_perturb(x_real, torch.rand_like(x_real))
            terms["d_dra"] = (self._penalty(d_pass, interpolate(perturbed, x_real, alpha), y_real, gradient_penalty),
                              r.dra)
        if r.r1 and not r.r1_own_step and d_index % r.r1_interval == 0:
            terms["d_r1"] = (self.r1(d_pass, x_real, y_real), r.r1 / 2 * r.r1_interval)
        def own_transform(x: torch.Tensor, y: torch.Tensor) -> DOutput:  # the consistency terms' second pass
            return d_pass(x, y, augment=False)

        if r.cr:
            terms["d_cr"] = (output_consistency(real, own_transform(translate_flip(x_real), y_real), self.mh), r.cr)
        if r.bcr_real:
            terms["d_bcr_real"] = (output_consistency(real, own_transform(translate_flip(x_real), y_real), self.mh),
                                   r.bcr_real)
        if r.bcr_fake:
            terms["d_bcr_fake"] = (output_consistency(fake, own_transform(translate_flip(x_fake), y_fake), self.mh),
                                   r.bcr_fake)
        if r.zcr_d:
            with torch.no_grad():
                x_eps = G(z + r.zcr_sigma * torch.randn_like(z), y_fake)
            terms["d_zcr"] = (output_consistency(fake, own_transform(x_eps, y_fake), self.mh), r.zcr_d)
        if r.lecam:
            self._update_lecam(step, self.gather(real.adv.detach()).mean(), self.gather(fake.adv.detach()).mean())
            if step > r.lecam_start:
                terms["d_lecam"] = (lecam(real.adv, fake.adv, self.ema_real, self.ema_fake), r.lecam)
        return terms

    def r1(self, d_pass: DiscriminatorPass, x_real: torch.Tensor, y_real: torch.Tensor,
           synced: bool = False) -> torch.Tensor:
        """E ||grad D(augment(x_real))||^2 with respect to the un-augmented reals (unweighted), differentiable.

        ``synced``: a pass whose loss alone updates D (a separate R1 step); every D output then joins the loss
        with weight 0 (as StudioGAN's enable_allreduce), so that DDP sees a gradient for every parameter."""
        return self._penalty(d_pass, x_real, y_real, r1_penalty, synced)

    @staticmethod
    def _penalty(d_pass: DiscriminatorPass, x: torch.Tensor, y: torch.Tensor, fn, synced: bool = False) -> torch.Tensor:
        """fn(D's adversarial outputs, x) on the eager D (the penalty differentiates an input gradient)."""
        x = x.detach().requires_grad_(True)
        out = d_pass(x, y, synced=synced, eager=True)
        untouched = sum(v.sum() * 0 for v in vars(out).values() if isinstance(v, torch.Tensor) and v.requires_grad)
        return fn(out.adv, x) + (untouched if synced else 0)

    def _update_lecam(self, step: int, real_mean: torch.Tensor, fake_mean: torch.Tensor) -> None:
        decay = self.reg.lecam_decay if step >= self.reg.lecam_start else 0.0
        if self.ema_real is None:
            self.ema_real, self.ema_fake = real_mean, fake_mean
        else:
            self.ema_real = decay * self.ema_real + (1 - decay) * real_mean
            self.ema_fake = decay * self.ema_fake + (1 - decay) * fake_mean

    # -- generator ----------------------------------------------------------------------------------
    def g_terms(self, G: nn.Module, z: torch.Tensor, y: torch.Tensor, x_fake: torch.Tensor) -> Terms:
        """Weighted G terms (zCR's diversity reward)."""
        if not self.reg.zcr_g:
            return {}
        x_eps = G(z + self.reg.zcr_sigma * torch.randn_like(z), y)
        return {"g_zcr": (-consistency(x_fake, x_eps), self.reg.zcr_g)}

    def g_adv_logits(self, fake_adv: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """Top-k selection of G's adversarial logits [N] -> [k] after ``epoch`` passes over the real data,
        or None when top-k training is off."""
        if not self.reg.topk:
            return None
        fake_adv = self.gather(fake_adv)
        return topk(fake_adv, topk_count(fake_adv.shape[0], epoch, self.reg.topk_gamma, self.reg.topk_nu))

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"ema_real": self.ema_real, "ema_fake": self.ema_fake}

    def load_state_dict(self, state: dict) -> None:
        self.ema_real, self.ema_fake = state.get("ema_real"), state.get("ema_fake")

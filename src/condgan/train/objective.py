"""The training objective: an adversarial loss plus a weighted conditional term on D's head outputs."""
from __future__ import annotations

import torch

from ..config import LossConfig
from ..losses import ADVERSARIAL, ac_ce, d2d_ce
from ..nets.heads import DOutput


class Objective:
    """D and G losses for one configuration; pure functions of D's outputs and the labels."""

    def __init__(self, cfg: LossConfig) -> None:
        self.cfg = cfg
        self.adv_d, self.adv_g = ADVERSARIAL[cfg.adv]

    def conditional(self, out: DOutput, labels: torch.Tensor) -> torch.Tensor | None:
        """The conditional term on one side (real in D, fake in G); None where it lives in ``adv`` (PD) or is off."""
        c = self.cfg
        if c.cond == "d2d_ce":
            return d2d_ce(out.embed, out.proxy, labels, temperature=c.temperature, m_p=c.m_p, m_n=c.m_n,
                          reference_form=c.reference_form)
        if c.cond == "ac":
            return ac_ce(out.cls_logits, labels)
        return None

    def d_loss(self, real: DOutput, fake: DOutput, real_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'d_loss': total, 'd_adv': ..., 'd_cond': ...}; the conditional term uses real images only."""
        adv = self.adv_d(real.adv, fake.adv)
        parts = {"d_adv": adv}
        cond = self.conditional(real, real_labels)
        if cond is not None:
            parts["d_cond"] = cond
            adv = adv + self.cfg.cond_weight * cond
        return {"d_loss": adv, **parts}

    def g_loss(self, fake: DOutput, fake_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'g_loss': total, 'g_adv': ..., 'g_cond': ...} on fakes generated for ``fake_labels``."""
        adv = self.adv_g(fake.adv)
        parts = {"g_adv": adv}
        cond = self.conditional(fake, fake_labels)
        if cond is not None:
            parts["g_cond"] = cond
            adv = adv + self.cfg.cond_weight * cond
        return {"g_loss": adv, **parts}

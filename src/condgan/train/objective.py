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

    def _with_conditional(self, side: str, adv: torch.Tensor, out: DOutput,
                          labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """{side_loss: adv + lambda * cond, side_adv: adv, side_cond: cond (when there is one)}."""
        parts = {f"{side}_adv": adv}
        cond = self.conditional(out, labels)
        total = adv
        if cond is not None:
            parts[f"{side}_cond"] = cond
            total = adv + self.cfg.cond_weight * cond
        return {f"{side}_loss": total, **parts}

    def d_loss(self, real: DOutput, fake: DOutput, real_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's losses; the conditional term uses real images only."""
        return self._with_conditional("d", self.adv_d(real.adv, fake.adv), real, real_labels)

    def g_loss(self, fake: DOutput, fake_labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's losses on fakes generated for ``fake_labels``."""
        return self._with_conditional("g", self.adv_g(fake.adv), fake, fake_labels)

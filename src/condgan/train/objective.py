"""The training objective: adversarial loss + weighted conditional terms on D's head outputs.

Conditioning methods (``loss.cond``), lambda = ``loss.cond_weight``; L is CE (ac), contrastive_2c (2c) or
d2d_ce (d2d_ce; its Table 6 ablations with ``loss.data_to_data`` / ``loss.margins`` off: normalized_ce) of the
embeddings and the proxies of the given labels:

    none, pd, spd  no separate term (the projections live in D's adversarial logit)
    ac/2c/d2d_ce  D: + lambda L(real, y_r) [+ lambda L(fake, y_f) with loss.ac_fake_in_d]   G: + lambda L(fake, y_f)
    mh         replaces the adversarial loss. D: MH(real, y_r) + MH(fake, C)   G: lambda MH(fake, y_f) + fm FM
G's lambda is ``loss.g_cond_weight`` when set; ac's CE is ac_ce_clipped under ``loss.cls_grad_clip``. FastGAN
(ac): D + alpha_f KL(U || p(.|x_f)), alpha_f = ``loss.fake_kl_weight`` (see condgan.losses.fastgan).
``loss.d_fake_weight`` scales D's adversarial loss on fakes.
Auxiliary variants (StudioGAN's reference forms) of ac / 2c / d2d_ce, L~ = L on the twin heads:
    tac        D: + a_d L~(fake, y_f)                      G: - a_g L~(fake, y_f)
    adc        2C classes, reals are 2y_r; D: + lambda L(fake, 2y_f + 1)
               G: lambda [L(fake, 2y_f) - L(fake, 2y_f + 1)]
Feature matching (``loss.fm_weight``) FM = mean_d |mean_n h_fake - mean_n h_real| (h_real detached).
Under torchrun the batch-coupled terms (2c, d2d_ce: negatives from the whole batch; feature matching: batch
means) see the global batch through ``gather`` (condgan.distributed.all_gather_cat).
Every D term is a real-side part plus a fake-side part (``d_real_terms``, ``d_fake_terms``), so a strategy may
back-propagate the two separately or attack the real side alone.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..config import LossConfig
from ..losses import (ADVERSARIAL, ac_ce, ac_ce_clipped, clip_feature_norm, contrastive_2c, d2d_ce, kl_to_uniform,
                      multi_hinge, normalized_ce)
from ..nets.heads import DOutput

Terms = dict[str, tuple[torch.Tensor, float]]  # name -> (unweighted value, weight)


class Objective:
    """D and G losses for one configuration; pure functions of D's outputs and the labels."""

    def __init__(self, cfg: LossConfig, num_classes: int,
                 gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 drop_stream: torch.Generator | None = None) -> None:
        self.cfg = cfg
        self.num_classes = num_classes
        self.gather = gather or (lambda x: x)  # rows of every rank, for losses coupling the samples of a batch
        # loss.neg_drop's masks: drawn over the global batch from a stream seeded alike on every rank, so every
        # rank drops the same pairs, whatever the number of ranks
        self.drop_stream = drop_stream or torch.Generator().manual_seed(0)
        if cfg.adv != "mh":
            self.adv = ADVERSARIAL[cfg.adv]

    def class_loss(self, out: DOutput, labels: torch.Tensor, twin: bool = False) -> torch.Tensor:
        """L(out, labels) of the classifier-like methods (ac, 2c, d2d_ce), on the twin heads if ``twin``."""
        c = self.cfg
        if c.cond == "ac" and c.cls_grad_clip is not None and not twin:  # Table A5's gradient clipping
            return ac_ce_clipped(out.cls_logits, labels, out.features, c.cls_grad_clip)
        if c.cond == "ac":
            return ac_ce(out.tac_logits if twin else out.cls_logits, labels)
        embed, table = (out.tac_embed, out.tac_proxies) if twin else (out.embed, out.proxies)
        embed, labels = self.gather(embed), self.gather(labels)
        # Negatives are decided by the labels passed (2y / 2y+1 under ADC), as in the reference.
        if c.cond == "2c":
            return contrastive_2c(embed, table[labels], labels, temperature=c.temperature)
        if not (c.data_to_data and c.margins):  # a Table 6 ablation of D2D-CE
            return normalized_ce(embed, table, labels, temperature=c.temperature, data_to_data=c.data_to_data,
                                 margins=c.margins, m_p=c.m_p, m_n=c.m_n)
        keep = None
        if c.neg_drop:
            n = labels.shape[0]
            keep = torch.rand(n, n, generator=self.drop_stream, device=self.drop_stream.device) >= c.neg_drop
        return d2d_ce(embed, table[labels], labels, temperature=c.temperature, m_p=c.m_p, m_n=c.m_n,
                      reference_form=c.reference_form, keep=None if keep is None else keep.to(embed.device))

    def target_probability(self, out: DOutput, labels: torch.Tensor) -> torch.Tensor | None:
        """Mean probability the classifier gives the target class (ReACGAN Fig. 2's diagnostic), no graph: the
        softmax of ``ac``'s logits, or of cos(embedding, proxy_c) / T over every class proxy for ``2c`` and
        ``d2d_ce``; None for the other methods."""
        c, labels = self.cfg, self._labels(labels)
        with torch.no_grad():
            if c.cond == "ac":
                logits = out.cls_logits
            elif c.cond in ("2c", "d2d_ce"):
                logits = F.normalize(out.embed.float(), dim=1) @ F.normalize(out.proxies.float(), dim=1).t()
                logits = logits / c.temperature
            else:
                return None
            return logits.float().softmax(dim=1).gather(1, labels[:, None]).mean()

    def gradient_norms(self, out: DOutput, cond_loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """ReACGAN Fig. 2's gradient norms of ``cond_loss`` (the batch mean computed from ``out``), no graph:
        ``d_cond_grad_norm``, the mean over samples of ||d(sum_i L_i) / d h_i|| (D's features), and
        ``d_head_grad_norm``, ||d cond_loss / d W||_F for the weight W the classifier (ac) or embedding (2c,
        d2d_ce) head applies to h: the classifier gradient of the paper's Sec. 3.1, which grows with the feature
        norms. {} for the other methods or without a graph.

        Under torchrun a gathered loss's gradient reaches each rank's rows summed over the ranks (see
        condgan.distributed), i.e. 1 / local batch times the sum's, as in one process: one scaling serves both.
        """
        head_out = out.cls_logits if self.cfg.cond == "ac" else out.embed
        if self.cfg.cond not in ("ac", "2c", "d2d_ce") or not cond_loss.requires_grad or out.head_weight is None:
            return {}
        (grad,) = torch.autograd.grad(cond_loss, head_out, retain_graph=True)
        grad, h = grad.detach(), out.features.detach().to(grad.dtype)
        if self.cfg.cond == "ac" and self.cfg.feature_clip is not None:  # what the classifier saw
            h = clip_feature_norm(h, self.cfg.feature_clip)
        return {"d_cond_grad_norm": (grad * head_out.shape[0] @ out.head_weight.to(grad.dtype)).norm(dim=1).mean(),
                "d_head_grad_norm": (grad.t() @ h).norm()}

    def _labels(self, y: torch.Tensor, fake: bool = False) -> torch.Tensor:
        """Class indices of the main classifier: y, or 2y (real) / 2y + 1 (fake) under ADC."""
        return 2 * y + int(fake) if self.cfg.aux == "adc" else y

    def d_real_terms(self, real: DOutput, y_real: torch.Tensor) -> Terms:
        """D's terms on reals: the adversarial real side, then the conditional loss."""
        c = self.cfg
        if c.cond == "mh":
            return {"d_adv": (multi_hinge(real.cls_logits, y_real), 1.0)}
        terms: Terms = {"d_adv": (self.adv.d_real(real.adv), 1.0)}
        if c.cond in ("ac", "2c", "d2d_ce"):
            terms["d_cond"] = (self.class_loss(real, self._labels(y_real)), c.cond_weight)
        return terms

    def d_fake_terms(self, fake: DOutput, y_fake: torch.Tensor) -> Terms:
        """D's terms on fakes made for ``y_fake``: the adversarial fake side, then class terms on fakes."""
        c = self.cfg
        if c.cond == "mh":
            return {"d_adv": (multi_hinge(fake.cls_logits, torch.full_like(y_fake, self.num_classes)), 1.0)}
        terms: Terms = {"d_adv": (c.d_fake_weight * self.adv.d_fake(fake.adv), 1.0)}
        cond = []
        if c.ac_fake_in_d:
            cond.append(self.class_loss(fake, y_fake))
        if c.aux == "adc":
            cond.append(self.class_loss(fake, self._labels(y_fake, fake=True)))
        if cond:
            terms["d_cond"] = (sum(cond), c.cond_weight)
        if c.aux == "tac":
            terms["d_tac"] = (self.class_loss(fake, y_fake, twin=True), c.tac_d_weight)
        if c.fake_kl_weight:
            terms["d_kl"] = (kl_to_uniform(fake.cls_logits), c.fake_kl_weight)
        return terms

    def d_terms(self, real: DOutput, fake: DOutput, y_real: torch.Tensor, y_fake: torch.Tensor) -> Terms:
        """D's terms: real side plus fake side (a term on both sides is summed)."""
        return add_terms(self.d_real_terms(real, y_real), self.d_fake_terms(fake, y_fake))

    def g_terms(self, fake: DOutput, y_fake: torch.Tensor, adv_logits: torch.Tensor | None = None,
                real_features: torch.Tensor | None = None) -> Terms:
        """G's terms on fakes made for ``y_fake``. adv_logits overrides fake.adv (top-k); real_features [M, F]
        (detached) feed feature matching."""
        c = self.cfg
        terms: Terms = {}
        if c.cond == "mh":
            terms["g_adv"] = (multi_hinge(fake.cls_logits, y_fake), c.cond_weight)
        else:
            terms["g_adv"] = (self.adv.g(fake.adv if adv_logits is None else adv_logits), 1.0)
        if c.fm_weight:
            fm = (self.gather(fake.features).mean(0) - self.gather(real_features).mean(0)).abs().mean()
            terms["g_fm"] = (fm, c.fm_weight)
        if c.cond not in ("ac", "2c", "d2d_ce"):  # none, pd, spd (in the adversarial logit), mh
            return terms
        cond = self.class_loss(fake, self._labels(y_fake))
        if c.aux == "adc":
            cond = cond - self.class_loss(fake, self._labels(y_fake, fake=True))
        terms["g_cond"] = (cond, c.cond_weight if c.g_cond_weight is None else c.g_cond_weight)
        if c.aux == "tac":
            terms["g_tac"] = (-self.class_loss(fake, y_fake, twin=True), c.tac_g_weight)
        return terms


def add_terms(a: Terms, b: Terms) -> Terms:
    """Terms of ``a`` and ``b``; a name in both gets the sum of the values (its weights must agree)."""
    out = dict(a)
    for name, (value, weight) in b.items():
        if name in out:
            assert out[name][1] == weight, f"term {name} has weights {out[name][1]} and {weight}"
            value = out[name][0] + value
        out[name] = (value, weight)
    return out


def total(side: str, *term_sets: Terms) -> dict[str, torch.Tensor]:
    """{side_loss: sum of weight * value, name: value for every term} over one or more term sets."""
    merged = {k: v for terms in term_sets for k, v in terms.items()}
    loss = sum(w * v for v, w in merged.values())
    return {f"{side}_loss": loss, **{k: v for k, (v, _w) in merged.items()}}

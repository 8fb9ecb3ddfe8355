"""The FastGAN loss: hinge + auxiliary classifier, with a KL-to-uniform term on fakes in D.

With o = D's adversarial logit and p(.|x) = softmax of D's classifier logits over C classes:

    D, real  E ReLU(1 - o(x_r)) + alpha_r CE(p(.|x_r), y_r)          (x_r may carry an adversarial delta)
    D, fake  E ReLU(1 + o(x_f)) + alpha_f E KL(U || p(.|x_f))         U = uniform over the C classes
    G        -E o(x_f) + alpha_g CE(p(.|x_f), y_f)

KL(U || p) = sum_k (1/C) log((1/C) / p_k) = -log C - (1/C) sum_k log p_k: zero iff D's classifier is
undecided on a fake, so D is pushed to not recognise the class of fakes (instead of ACGAN's reward for
recognising it) while G is pushed to make it recognisable. Inside condgan these are the terms
``loss.cond=ac`` with ``loss.cond_weight`` (alpha_r), ``loss.fake_kl_weight`` (alpha_f) and
``loss.g_cond_weight`` (alpha_g); the functions here spell the whole method out in one place.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .adversarial import HINGE
from .conditional import ac_ce


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(U || softmax(logits)). logits [N, C] -> scalar (>= 0; 0 iff every row is uniform)."""
    return -math.log(logits.shape[1]) - F.log_softmax(logits, dim=1).mean(dim=1).mean()


def fastgan_d_real(adv: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                   alpha_r: float = 1.0) -> torch.Tensor:
    """D's loss on (perturbed) reals. adv [N], logits [N, C], labels [N] long -> scalar."""
    return HINGE.d_real(adv) + alpha_r * ac_ce(logits, labels)


def fastgan_d_fake(adv: torch.Tensor, logits: torch.Tensor, alpha_f: float = 1.0) -> torch.Tensor:
    """D's loss on fakes (their labels are not used). adv [N], logits [N, C] -> scalar."""
    return HINGE.d_fake(adv) + alpha_f * kl_to_uniform(logits)


def fastgan_g(adv: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, alpha_g: float = 1.0) -> torch.Tensor:
    """G's loss on fakes made for ``labels``. adv [N], logits [N, C], labels [N] long -> scalar."""
    return HINGE.g(adv) + alpha_g * ac_ce(logits, labels)

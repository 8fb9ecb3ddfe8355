"""Adversarial (real/fake) losses on the discriminator's logits o.

Every D loss is a sum of a term on real logits and a term on fake logits; each loss is registered in
:data:`ADVERSARIAL` as its three parts ``(d_real, d_fake, g)`` under the name used by configs, so a
strategy may back-propagate the real and the fake side separately (free adversarial training).
Logits may be shaped [N] or [N, 1] (every element is one sample's logit).

    hinge        D = E ReLU(1 - o_r) + E ReLU(1 + o_f)     G = -E o_f
    ns           D = E softplus(-o_r) + E softplus(o_f)    G = E softplus(-o_f)   (non-saturating / logistic)
    ls           D = 1/2 E (o_r - 1)^2 + 1/2 E o_f^2       G = 1/2 E (o_f - 1)^2   (least squares, a=0 b=c=1)
    wasserstein  D = E o_f - E o_r                         G = -E o_f              (pair it with a penalty)
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

Side = Callable[[torch.Tensor], torch.Tensor]


class AdversarialLoss(NamedTuple):
    """One adversarial loss as its D-on-real, D-on-fake and G parts (each: logits -> scalar)."""
    d_real: Side
    d_fake: Side
    g: Side

    def d(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """The whole D loss: d_real(real_logits) + d_fake(fake_logits)."""
        return self.d_real(real_logits) + self.d_fake(fake_logits)


def _mean_neg(o: torch.Tensor) -> torch.Tensor:
    return -o.mean()


def _neg_log_sigmoid(o: torch.Tensor) -> torch.Tensor:
    """E -log sigmoid(o) via softplus (stable at any logit): the ns loss of a sample labelled real."""
    return F.softplus(-o).mean()


def _half_sq_to_one(o: torch.Tensor) -> torch.Tensor:
    """1/2 E (o - 1)^2: the ls loss of a sample labelled real."""
    return 0.5 * (o - 1.0).square().mean()


# D on reals and G on fakes share their form for ns and ls (both push toward "real"), as they do for
# wasserstein (-E o); hinge's G is the plain -E o.
HINGE = AdversarialLoss(lambda o: F.relu(1.0 - o).mean(), lambda o: F.relu(1.0 + o).mean(), _mean_neg)
NS = AdversarialLoss(_neg_log_sigmoid, lambda o: F.softplus(o).mean(), _neg_log_sigmoid)
LS = AdversarialLoss(_half_sq_to_one, lambda o: 0.5 * o.square().mean(), _half_sq_to_one)
WASSERSTEIN = AdversarialLoss(_mean_neg, lambda o: o.mean(), _mean_neg)

ADVERSARIAL: dict[str, AdversarialLoss] = {"hinge": HINGE, "ns": NS, "ls": LS, "wasserstein": WASSERSTEIN}


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss. real_logits: [N] or [N, 1]; fake_logits: [M] or [M, 1]. Returns a scalar."""
    return HINGE.d(real_logits, fake_logits)


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss -E[o_f]. fake_logits: [N] or [N, 1]. Returns a scalar."""
    return HINGE.g(fake_logits)


def ns_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic D loss -E log sigmoid(o_r) - E log(1 - sigmoid(o_f)), via softplus (stable). Scalar."""
    return NS.d(real_logits, fake_logits)


def ns_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss -E log sigmoid(o_f). Scalar."""
    return NS.g(fake_logits)


def ls_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares D loss 1/2 E (o_r - 1)^2 + 1/2 E o_f^2. Scalar."""
    return LS.d(real_logits, fake_logits)


def ls_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares G loss 1/2 E (o_f - 1)^2. Scalar."""
    return LS.g(fake_logits)


def wasserstein_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Critic loss E o_f - E o_r (the negated Wasserstein-1 estimate). Scalar."""
    return WASSERSTEIN.d(real_logits, fake_logits)


def wasserstein_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss -E o_f. Scalar."""
    return WASSERSTEIN.g(fake_logits)

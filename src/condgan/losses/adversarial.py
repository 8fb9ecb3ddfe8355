"""Adversarial (real/fake) losses on the discriminator's logits o.

Each loss comes as a pair ``(d_loss, g_loss)`` registered in :data:`ADVERSARIAL` under the name used by
configs; logits may be shaped [N] or [N, 1] (every element is one sample's logit).

    hinge        D = E ReLU(1 - o_r) + E ReLU(1 + o_f)     G = -E o_f
    ns           D = E softplus(-o_r) + E softplus(o_f)    G = E softplus(-o_f)   (non-saturating / logistic)
    ls           D = 1/2 E (o_r - 1)^2 + 1/2 E o_f^2       G = 1/2 E (o_f - 1)^2   (least squares, a=0 b=c=1)
    wasserstein  D = E o_f - E o_r                         G = -E o_f              (pair it with a penalty)
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss. real_logits: [N] or [N, 1]; fake_logits: [M] or [M, 1]. Returns a scalar."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss -E[o_f]. fake_logits: [N] or [N, 1]. Returns a scalar."""
    return -fake_logits.mean()


def ns_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic D loss -E log sigmoid(o_r) - E log(1 - sigmoid(o_f)), via softplus (stable). Scalar."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def ns_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss -E log sigmoid(o_f). Scalar."""
    return F.softplus(-fake_logits).mean()


def ls_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares D loss 1/2 E (o_r - 1)^2 + 1/2 E o_f^2. Scalar."""
    return 0.5 * (real_logits - 1.0).square().mean() + 0.5 * fake_logits.square().mean()


def ls_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Least-squares G loss 1/2 E (o_f - 1)^2. Scalar."""
    return 0.5 * (fake_logits - 1.0).square().mean()


def wasserstein_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Critic loss E o_f - E o_r (the negated Wasserstein-1 estimate). Scalar."""
    return fake_logits.mean() - real_logits.mean()


def wasserstein_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss -E o_f. Scalar."""
    return -fake_logits.mean()


DLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GLoss = Callable[[torch.Tensor], torch.Tensor]

# name -> (discriminator loss, generator loss)
ADVERSARIAL: dict[str, tuple[DLoss, GLoss]] = {
    "hinge": (hinge_d, hinge_g),
    "ns": (ns_d, ns_g),
    "ls": (ls_d, ls_g),
    "wasserstein": (wasserstein_d, wasserstein_g),
}

"""Adversarial (real/fake) losses on the discriminator's logits.

Each loss comes as a pair ``(d_loss, g_loss)`` registered in :data:`ADVERSARIAL` under the name used by
configs; logits may be shaped [N] or [N, 1] (every element is one sample's logit).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss E[ReLU(1 - o_r)] + E[ReLU(1 + o_f)].

    real_logits: [N] or [N, 1]; fake_logits: [M] or [M, 1]. Returns a scalar.
    """
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss -E[o_f]. fake_logits: [N] or [N, 1]. Returns a scalar."""
    return -fake_logits.mean()


DLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GLoss = Callable[[torch.Tensor], torch.Tensor]

# name -> (discriminator loss, generator loss)
ADVERSARIAL: dict[str, tuple[DLoss, GLoss]] = {
    "hinge": (hinge_d, hinge_g),
}

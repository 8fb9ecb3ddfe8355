"""Losses: adversarial (real/fake) pairs and class-conditioning losses (AC, D2D-CE)."""
from .adversarial import ADVERSARIAL, hinge_d, hinge_g
from .conditional import ac_ce, d2d_ce

__all__ = ["ADVERSARIAL", "hinge_d", "hinge_g", "ac_ce", "d2d_ce"]

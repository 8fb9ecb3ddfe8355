"""Differentiable augmentations of D's inputs: DiffAugment (Zhao et al. 2020) and ADA (Karras et al. 2020).

The ops are pure functions of a batch [N, C, H, W] in [-1, 1] and a random generator; what a training run
applies (and ADA's adaptive p) is in :mod:`condgan.augment.training`.
"""
from .ada import ADA_PIPELINES, ada_augment
from .diffaug import DIFFAUG_FAMILIES, diff_augment, parse_policy

__all__ = ["ADA_PIPELINES", "DIFFAUG_FAMILIES", "ada_augment", "diff_augment", "parse_policy"]

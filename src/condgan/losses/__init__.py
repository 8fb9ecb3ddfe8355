"""Losses: adversarial (real/fake) pairs, class-conditioning losses and regularisers, as pure functions."""
from .adversarial import (ADVERSARIAL, AdversarialLoss, hinge_d, hinge_g, ls_d, ls_g, ns_d, ns_g, wasserstein_d,
                          wasserstein_g)
from .conditional import ac_ce, ac_ce_clipped, clip_feature_norm, contrastive_2c, d2d_ce, multi_hinge, normalized_ce
from .fastgan import fastgan_d_fake, fastgan_d_real, fastgan_g, kl_to_uniform
from .regularizers import (consistency, dragan_perturb, gradient_penalty, interpolate, lecam, path_lengths, r1_penalty,
                           topk, topk_count)

__all__ = ["ADVERSARIAL", "AdversarialLoss", "hinge_d", "hinge_g", "ns_d", "ns_g", "ls_d", "ls_g", "wasserstein_d",
           "wasserstein_g", "ac_ce", "ac_ce_clipped", "clip_feature_norm", "contrastive_2c", "d2d_ce", "multi_hinge",
           "normalized_ce",
           "kl_to_uniform", "fastgan_d_real", "fastgan_d_fake", "fastgan_g",
           "consistency", "dragan_perturb", "gradient_penalty", "interpolate", "lecam", "path_lengths", "r1_penalty", "topk",
           "topk_count"]

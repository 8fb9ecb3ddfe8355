"""Kernel Inception Distance (Binkowski et al. 2018) as torch-fidelity computes it, in float64.

KID is the unbiased estimate of the squared MMD between the generated and real features under the cubic
polynomial kernel k(x, y) = (x . y / d + 1)^3, averaged over random subsets:

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

for m generated features x and m real features y per subset. torch-fidelity's defaults (which clean-fid and
dgm-eval follow): 100 subsets of 1000 features, each drawn without replacement by ``numpy.random.RandomState(2020)``,
the generated set's subset first; the report is the mean and the (population, ddof 0) standard deviation over
subsets. The subsets are drawn exactly as torch-fidelity draws them, so the values equal its
``kid_features_to_metric`` on the same features. When a set has fewer features than a subset, the subset shrinks
to the smaller set (as clean-fid does) and the record says so.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import EvalError

SUBSETS, SUBSET_SIZE, SEED = 100, 1000, 2020  # torch-fidelity's kid_subsets, kid_subset_size, rng_seed


def polynomial_mmd2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 of x [m, d] and y [m, d] under (x . y / d + 1)^3 (a float64 scalar tensor)."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    off_diagonal = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return off_diagonal / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def subset_indices(n_fake: int, n_real: int, subsets: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (generated, real) index pairs of every subset, drawn as torch-fidelity draws them."""
    rng = np.random.RandomState(seed)
    return [(rng.choice(n_fake, size, replace=False), rng.choice(n_real, size, replace=False))
            for _ in range(subsets)]


def kid(fake: torch.Tensor, real: torch.Tensor, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
        seed: int = SEED) -> dict:
    """KID of generated features ``fake`` [N, d] against ``real`` [M, d]: {kid_mean, kid_std, kid_subsets,
    kid_subset_size} (the subset size actually used; smaller than asked when a set is smaller)."""
    if fake.dim() != 2 or real.dim() != 2 or fake.shape[1] != real.shape[1]:
        raise EvalError(f"KID needs features [N, d] of one width; got {tuple(fake.shape)} and {tuple(real.shape)}")
    if subsets < 1 or subset_size < 2:
        raise EvalError(f"KID needs at least 1 subset of at least 2 features; got {subsets} of {subset_size}")
    size = min(subset_size, fake.shape[0], real.shape[0])
    if size < 2:
        raise EvalError(f"KID needs at least 2 generated and 2 real images; got {fake.shape[0]} and {real.shape[0]}")
    x, y = fake.to(torch.float64), real.to(fake.device, torch.float64)
    values = torch.stack([polynomial_mmd2(x[torch.from_numpy(i).to(x.device)], y[torch.from_numpy(j).to(x.device)])
                          for i, j in subset_indices(x.shape[0], y.shape[0], subsets, size, seed)]).cpu().numpy()
    return {"kid_mean": float(values.mean()), "kid_std": float(values.std()), "kid_subsets": subsets,
            "kid_subset_size": size}

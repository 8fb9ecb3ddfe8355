"""Inception Score: exp(E_x KL(p(y|x) || p(y))), averaged over consecutive splits, in float64."""
from __future__ import annotations

import math

import numpy as np
import torch


def inception_score(probs: torch.Tensor | np.ndarray, splits: int = 10) -> tuple[float, float]:
    """probs [N, K] class probabilities (softmax outputs, rows sum to 1) -> (mean, std) over splits.

    The rows are cut into ``splits`` consecutive chunks whose sizes differ by at most one (the first
    ones larger, like ``numpy.array_split``); each chunk's score uses its own marginal p(y). The std is
    the population std (ddof=0). Terms with p(y|x) = 0 contribute 0 (0 log 0 = 0).
    """
    p = torch.as_tensor(probs).to(torch.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must be a non-empty [N, K], got shape {tuple(p.shape)}")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in [1, N={n}], got {splits}")
    if bool((p < 0).any()) or not bool(torch.isfinite(p).all()):
        raise ValueError("probs must be finite and non-negative")
    # array_split sizes: the first n % splits chunks get one extra row
    sizes = [n // splits + (1 if i < n % splits else 0) for i in range(splits)]
    scores = []
    for chunk in p.split(sizes):
        marginal = chunk.mean(0, keepdim=True)
        # xlogy gives 0 where p(y|x) = 0, whatever the marginal
        kl = (torch.special.xlogy(chunk, chunk) - torch.special.xlogy(chunk, marginal)).sum(1)
        scores.append(math.exp(float(kl.mean())))
    s = torch.tensor(scores, dtype=torch.float64)
    return float(s.mean()), float(s.std(unbiased=False))

"""Frechet distance between Gaussian fits of two feature sets (FID), in float64.

FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).  S1 S2 is not symmetric, so its square root is
awkward (scipy's ``sqrtm`` goes through a complex Schur form and can return spurious imaginary parts
for nearly singular covariances). Its trace is obtained through a symmetric matrix instead: with
A = S1^{1/2}, S1 S2 = A (A S2) and A S2 A = (A S2) A have the same eigenvalues (XY and YX always do),
and A S2 A is symmetric positive semi-definite, so Tr (S1 S2)^{1/2} = sum sqrt(eig(A S2 A)).
Both steps are symmetric eigendecompositions (``eigh``), stable for rank-deficient covariances; tiny
negative eigenvalues from rounding are clamped to 0.
"""
from __future__ import annotations

import numpy as np
import torch


def _as_float64(x: torch.Tensor | np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    return torch.as_tensor(x, device=device).to(torch.float64)


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """features [N, D] (any float dtype) -> (mu [D], sigma [D, D]) in float64, on the input's device.

    ``sigma`` is the unbiased covariance (ddof=1), as ``numpy.cov(features, rowvar=False)``.
    """
    acc = StatsAccumulator()
    acc.update(features)
    return acc.compute()


class StatsAccumulator:
    """Streaming mean / covariance of feature batches [B, D], summed in float64 on the batch device.

    Keeps the running sum and the sum of outer products around a shift (the first batch's mean), which
    avoids the cancellation of the raw E[x x^T] - mu mu^T formula when features share a large offset.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None

    def update(self, batch: torch.Tensor | np.ndarray) -> None:
        """Add a batch [B, D] (B may be 0)."""
        x = torch.as_tensor(batch)
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {tuple(x.shape)}")
        if self._shift is not None and x.shape[1] != self._shift.shape[0]:
            raise ValueError(f"feature dim changed: {self._shift.shape[0]} then {x.shape[1]}")
        if x.shape[0] == 0:
            return
        x = x.to(torch.float64)
        if self._shift is None:
            self._shift = x.mean(0)
            self._sum = torch.zeros_like(self._shift)
            self._outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        xc = x.to(self._shift.device) - self._shift
        self._sum += xc.sum(0)
        self._outer += xc.T @ xc
        self.count += x.shape[0]

    @property
    def mean(self) -> torch.Tensor:
        """mu [D] of everything seen so far."""
        if self._shift is None:
            raise ValueError("no features accumulated")
        return self._shift + self._sum / self.count

    @property
    def cov(self) -> torch.Tensor:
        """Unbiased covariance [D, D] (ddof=1); needs at least 2 samples."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 samples, got {self.count}")
        centred_sum = self._sum / self.count
        cov = (self._outer - self.count * torch.outer(centred_sum, centred_sum)) / (self.count - 1)
        return (cov + cov.T) / 2   # exact symmetry despite rounding

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu [D], sigma [D, D]) in float64."""
        return self.mean, self.cov


def trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Tr (S1 S2)^{1/2} for PSD S1, S2 [D, D], through the symmetric A S2 A with A = S1^{1/2}.

    With S1 = V diag(w) V^T (eigh; negative rounding eigenvalues count as 0), A = B V^T with
    B = V diag(sqrt w), so A S2 A = V (B^T S2 B) V^T has the eigenvalues of B^T S2 B: A is never formed.
    """
    w, v = torch.linalg.eigh(sigma1)
    b = v * w.clamp_min(0).sqrt()
    m = b.T @ sigma2 @ b
    m = (m + m.T) / 2
    return torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum()


def frechet_distance(mu1: torch.Tensor | np.ndarray, sigma1: torch.Tensor | np.ndarray,
                     mu2: torch.Tensor | np.ndarray, sigma2: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between N(mu1 [D], sigma1 [D, D]) and N(mu2 [D], sigma2 [D, D]), float64."""
    mu1 = _as_float64(mu1)
    mu2, s1, s2 = (_as_float64(t, mu1.device) for t in (mu2, sigma1, sigma2))
    if mu1.ndim != 1 or mu2.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"means must be [D] of equal size, got {tuple(mu1.shape)} and {tuple(mu2.shape)}")
    d = mu1.shape[0]
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"covariances must be [{d}, {d}], got {tuple(s1.shape)} and {tuple(s2.shape)}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    diff = mu1 - mu2
    value = diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * trace_sqrt_product(s1, s2)
    return float(value)


def frechet_distance_of_features(x1: torch.Tensor, x2: torch.Tensor) -> float:
    """FID between the Gaussian fits (unbiased covariance) of features x1 [N1, D] and x2 [N2, D], float64.

    Equal to ``frechet_distance(*feature_statistics(x1), *feature_statistics(x2))``; when both N1 and N2 are
    at most D it goes through the N1 x N2 cross-product of the centred features (module docstring), in
    O(N1 N2 (D + min(N1, N2))) time and without D x D memory.
    """
    a, b = _as_float64(x1), _as_float64(x2, x1.device if isinstance(x1, torch.Tensor) else None)
    n1, n2, d = a.shape[0], b.shape[0], a.shape[1]
    if min(n1, n2) < 2:
        raise ValueError(f"covariance needs at least 2 samples, got {min(n1, n2)}")
    if max(n1, n2) > d:
        return frechet_distance(*feature_statistics(a), *feature_statistics(b))
    mu1, mu2 = a.mean(0), b.mean(0)
    ac, bc = (a - mu1) / (n1 - 1) ** 0.5, (b - mu2) / (n2 - 1) ** 0.5   # S1 = ac^T ac, S2 = bc^T bc
    diff = mu1 - mu2
    cross_nuclear = torch.linalg.svdvals(ac @ bc.T).sum()
    return float(diff @ diff + ac.square().sum() + bc.square().sum() - 2 * cross_nuclear)

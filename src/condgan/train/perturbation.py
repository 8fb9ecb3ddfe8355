"""L-inf perturbations of real images for adversarial training of D (free adversarial training and PGD).

Images live in [-1, 1]; a perturbation delta has the batch's shape and |delta| <= epsilon everywhere.
An ascent step moves delta by ``step_size`` along the sign of the loss gradient (FGSM / PGD), then
projects it back onto the epsilon ball. Only the perturbed image is clipped to [-1, 1], delta is not.
"""
from __future__ import annotations

import torch

DELTA_INITS = ("normal", "zero", "uniform")


def perturb(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """clamp(x + delta, -1, 1). x, delta [B, C, H, W] -> [B, C, H, W]."""
    return (x + delta).clamp_(-1.0, 1.0)


def ascend(delta: torch.Tensor, grad: torch.Tensor, step_size: float, epsilon: float) -> torch.Tensor:
    """clamp(delta + step_size * sign(grad), -epsilon, epsilon): one signed ascent step on the loss. Same shape."""
    return (delta + step_size * grad.sign()).clamp_(-epsilon, epsilon)


def initial_delta(shape: tuple[int, ...], epsilon: float, mode: str, device: torch.device,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """A starting perturbation of ``shape``.

    normal: N(0, 1) clamped to [-epsilon, epsilon] (the FastGAN code; almost every entry is +-epsilon);
    zero: all 0 (free adversarial training as in Shafahi et al.); uniform: U[-epsilon, epsilon] (PGD).
    """
    if mode == "normal":
        return torch.randn(shape, device=device, generator=generator).clamp_(-epsilon, epsilon)
    if mode == "zero":
        return torch.zeros(shape, device=device)
    if mode == "uniform":
        return (2 * torch.rand(shape, device=device, generator=generator) - 1) * epsilon
    raise ValueError(f"unknown delta init {mode!r}; expected one of {DELTA_INITS}")

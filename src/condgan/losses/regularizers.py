"""Discriminator regularisers and top-k training, as pure functions of tensors.

Penalties that need input gradients take D's outputs together with the inputs they were computed from
(``inputs.requires_grad`` must be set before D's forward); they build a double-backward graph so the
penalty trains D. The trainer decides which images go in (see :mod:`condgan.train.regularize`).

    gradient_penalty  E (||grad_x o(x_hat)||_2 - 1)^2       WGAN-GP (x_hat on real-fake lines), DRAGAN
                                                           (x_hat between reals and perturbed reals)
    r1_penalty        E ||grad_x o(x_r)||_2^2              R1 (Mescheder et al.); the trainer scales by gamma/2
    path_lengths      ||J_w^T n||_2 per sample              StyleGAN2's path length: n the images' noise, J = d G / d w
    consistency       E ||a - b||^2 / dim                  CR / bCR / zCR: mean squared difference
    lecam             E ReLU(o_r - a_f)^2 + E ReLU(a_r - o_f)^2   LeCam (Tseng et al.), a_* = EMAs of D's outputs
    topk              the k largest fake logits             top-k training (Sinha et al.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _input_gradients(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d(sum outputs)/d inputs with a graph (so a penalty on it can be back-propagated), flattened [N, -1]."""
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(outputs: torch.Tensor, inputs: torch.Tensor, target: float = 1.0) -> torch.Tensor:
    """E_i (||d o_i / d x_i||_2 - target)^2. outputs: [N] D logits of inputs [N, ...]. Scalar."""
    return (_input_gradients(outputs, inputs).norm(dim=1) - target).square().mean()


def r1_penalty(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """E_i ||d o_i / d x_i||_2^2 (unscaled; R1 uses gamma / 2 times this). outputs [N], inputs [N, ...]."""
    return _input_gradients(outputs, inputs).square().sum(dim=1).mean()


def path_lengths(images: torch.Tensor, ws: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's path lengths [N], with a graph: sqrt(mean over layers of ||d sum(images * noise) / d w_l||^2)
    for images [N, C, H, W] generated from ws [N, L, w_dim] (a tensor of their graph) and noise like images
    (N(0, 1) / sqrt(H W) in the penalty)."""
    (grads,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    grads = grads.to(torch.promote_types(grads.dtype, torch.float32))  # half-precision squares would overflow
    return grads.square().sum(dim=2).mean(dim=1).sqrt()


def interpolate(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """alpha * a + (1 - alpha) * b with one alpha per sample. a, b: [N, ...]; alpha: [N]. -> [N, ...]."""
    alpha = alpha.view(-1, *([1] * (a.dim() - 1))).to(a.dtype)
    return alpha * a + (1.0 - alpha) * b


def dragan_perturb(real: torch.Tensor, noise: torch.Tensor, c: float = 0.5) -> torch.Tensor:
    """DRAGAN's perturbed reals x + c * std(x) * noise (noise ~ U[0, 1), std over the whole batch)."""
    return real + c * real.std() * noise


def consistency(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two output tensors of the same shape (CR / bCR / zCR). Scalar."""
    return F.mse_loss(a, b)


def lecam(real_logits: torch.Tensor, fake_logits: torch.Tensor, ema_real: torch.Tensor,
          ema_fake: torch.Tensor) -> torch.Tensor:
    """LeCam regulariser E ReLU(o_r - a_f)^2 + E ReLU(a_r - o_f)^2; ema_* are scalars (no grad). Scalar."""
    return F.relu(real_logits - ema_fake).square().mean() + F.relu(ema_real - fake_logits).square().mean()


def topk_count(batch: int, epoch: int, gamma: float = 0.99, nu: float = 0.5) -> int:
    """k of top-k training after ``epoch`` passes over the data: max(int(gamma^epoch B), int(nu B), 1)."""
    return max(int(gamma ** epoch * batch), int(nu * batch), 1)


def topk(fake_logits: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest of fake_logits [N] (G's adversarial loss then ignores the worst fakes). -> [k]."""
    return torch.topk(fake_logits, k, sorted=False).values

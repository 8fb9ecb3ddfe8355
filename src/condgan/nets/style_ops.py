"""StyleGAN2's low-level ops in plain PyTorch (no custom CUDA kernel): FIR resampling, bias + activation,
equalised-learning-rate resampling convolutions and the modulated convolution.

FIR resampling with the separable low-pass filter f = [1, 3, 3, 1] / 8 per axis, zero outside the image:

    upsample2d    out[2i] = 1/4 x[i-1] + 3/4 x[i],  out[2i+1] = 3/4 x[i] + 1/4 x[i+1]   (per axis)
    downsample2d  out[i] = (x[2i-1] + 3 x[2i] + 3 x[2i+1] + x[2i+2]) / 8                 (per axis)

These are NVIDIA's ``upfirdn2d`` with that filter and the paddings its ``upsample2d`` / ``downsample2d`` /
``conv2d_resample`` choose. A 3x3 convolution with upsampling is a stride-2 transposed convolution followed by
the filter (x4 gain, one pixel cropped per side); with downsampling, the filter (one pixel of zero padding
added per side beyond the conv's own) followed by a stride-2 convolution; a 1x1 one downsamples first.

Demodulation computes its coefficients as rsqrt(styles^2 @ sum_k(W^2)^T + 1e-8), the same sum NVIDIA takes over
the [N, O, I, k, k] modulated weights without materialising them (on a CPU that tensor was a third of
StudioGAN's iteration).
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through a leaky ReLU
_FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def fir_kernel(channels: int, gain: float, like: torch.Tensor) -> torch.Tensor:
    """The depthwise 4x4 filter outer(f, f) * gain for ``channels`` channels: [channels, 1, 4, 4]."""
    taps = torch.tensor(_FIR_TAPS, dtype=like.dtype, device=like.device)
    kernel = torch.outer(taps, taps) * (gain / taps.sum() ** 2)
    return kernel.expand(channels, 1, 4, 4)


def fir_filter(x: torch.Tensor, pad: int, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """The [1, 3, 3, 1] filter over x [N, C, H, W] zero-padded by ``pad`` per side, every ``stride``-th output:
    [N, C, (H + 2 pad - 4) / stride + 1, ...]. A negative ``pad`` crops instead."""
    if pad >= 0:
        x = F.pad(x, (pad, pad, pad, pad))
    else:
        x = x[:, :, -pad:pad, -pad:pad]
    return F.conv2d(x, fir_kernel(x.shape[1], gain, x), stride=stride, groups=x.shape[1])


def upsample2d(x: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] -> [N, C, 2H, 2W]: zeros inserted, then the filter (gain 4); G's skip images."""
    n, c, h, w = x.shape
    spread = F.pad(x.reshape(n, c, h, 1, w, 1), (0, 1, 0, 0, 0, 1)).reshape(n, c, 2 * h, 2 * w)
    return fir_filter(F.pad(spread, (2, 1, 2, 1)), 0, gain=4.0)


def downsample2d(x: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] (H, W even) -> [N, C, H/2, W/2]: the filter, then every second pixel."""
    return fir_filter(x, 1, stride=2)


def conv2d_resampled(x: torch.Tensor, weight: torch.Tensor, up: bool = False, down: bool = False,
                     groups: int = 1) -> torch.Tensor:
    """A same-size convolution of x [N, I, H, W] with weight [O, I / groups, k, k] (k odd), preceded by a 2x FIR
    upsampling (``up``) or followed by a 2x FIR downsampling (``down``): [N, O, H', W']."""
    o, i, k, _ = weight.shape
    if up and k == 1:
        return upsample2d(F.conv2d(x, weight, groups=groups))
    if up:  # conv_transpose2d wants [in, out / groups, k, k]
        w = weight.reshape(groups, o // groups, i, k, k).transpose(1, 2).reshape(groups * i, o // groups, k, k)
        y = F.conv_transpose2d(x, w, stride=2, groups=groups)  # [N, O, 2H + k - 2, ...]
        return fir_filter(y, 2 - k // 2, gain=4.0)
    if down and k == 1:
        return F.conv2d(downsample2d(x), weight, groups=groups)
    if down:
        return F.conv2d(fir_filter(x, k // 2 + 1), weight, stride=2, groups=groups)
    return F.conv2d(x, weight, padding=k // 2, groups=groups)


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, lrelu: bool, gain: float = 1.0,
             clamp: float | None = None) -> torch.Tensor:
    """(leaky ReLU (slope 0.2) if ``lrelu``)(x + bias) * gain, clamped to +-clamp; x [N, C, ...], bias [C].

    gain > 0 commutes with the leaky ReLU, so the scaling and the activation work in place on the sum: one new
    tensor instead of three. (Not torch.add(b, x, alpha=gain): torch.compile's CPU backend gets that wrong when x
    is a matmul's output.)"""
    fresh = bias is not None or gain != 1
    if bias is not None:
        x = x + bias.to(x.dtype).reshape((1, -1) + (1,) * (x.dim() - 2))
    if gain != 1:
        x = x.mul_(gain) if bias is not None else x * gain
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE, inplace=fresh)
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x [N, D] with each row scaled to a mean square of 1 (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def demodulation(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """1 / ||W_o * s_n|| for every sample and output channel: weight [O, I, k, k], styles [N, I] -> [N, O].

    In float32 whatever the autocast dtype: these sums of squares overflow float16."""
    dtype = torch.promote_types(torch.promote_types(styles.dtype, weight.dtype), torch.float32)
    with torch.autocast(weight.device.type, enabled=False):
        energy = styles.to(dtype).square() @ weight.to(dtype).square().sum(dim=(2, 3)).t()
        return (energy + 1e-8).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     noise: torch.Tensor | None = None, up: bool = False, fused: bool = False) -> torch.Tensor:
    """StyleGAN2's modulated convolution: x [N, I, H, W], weight [O, I, k, k], styles [N, I], noise broadcast to
    the output [N, O, H', W'] (added after demodulation).

    ``fused``: one grouped convolution with per-sample weights (fast for few samples: sampling); otherwise the
    styles scale the input and the coefficients the output around one shared convolution (training, where
    the grouped form's backward is slow). Under reduced precision W and the styles are first scaled to unit
    maxima, as NVIDIA's float16 path does: demodulation cancels the scales, and the conv cannot overflow."""
    n, i = styles.shape
    if demodulate and (x.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(x.device.type)):
        weight = weight / (math.sqrt(weight[0].numel()) * weight.abs().amax(dim=(1, 2, 3), keepdim=True))
        styles = styles / styles.abs().amax(dim=1, keepdim=True)
    dcoefs = demodulation(weight, styles) if demodulate else None
    if fused:
        w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, k, k]
        if dcoefs is not None:
            w = w * dcoefs.to(w.dtype)[:, :, None, None, None]
        y = conv2d_resampled(x.reshape(1, n * i, *x.shape[2:]), w.to(x.dtype).reshape(-1, i, *w.shape[3:]), up=up,
                             groups=n)
        y = y.reshape(n, -1, *y.shape[2:])
        return y if noise is None else y + noise
    y = conv2d_resampled(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), up=up)
    if dcoefs is None:
        return y if noise is None else y + noise
    scale = dcoefs.to(y.dtype)[:, :, None, None]
    return y * scale if noise is None else torch.addcmul(noise.to(y.dtype), y, scale)

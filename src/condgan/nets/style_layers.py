"""StyleGAN2's layers with equalised learning rate: weights are stored N(0, 1) (over the lr multiplier) and scaled
at run time, so Adam's step size acts alike on every layer whatever its fan-in.

Module and tensor names are those of NVIDIA's ``networks.py`` (and so of StudioGAN's ``stylegan2.py``): a state
dict of either reads into these layers key for key, less the ``resample_filter`` constants condgan does not
store (the filter is fixed: :mod:`condgan.nets.style_ops`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .style_ops import LRELU_GAIN, bias_act, conv2d_resampled, modulated_conv2d, normalize_2nd_moment

NOISE_MODES = ("random", "const", "none")


class EqualLinear(nn.Module):
    """x [..., in] -> [..., out]: (leaky ReLU * sqrt 2 if ``lrelu``)(x W^T g + b l), g = l / sqrt(in), l the lr
    multiplier (NVIDIA's FullyConnectedLayer; ``bias_init`` 1 for the style affines)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, lrelu: bool = False,
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.lrelu = lrelu
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def scaled_weight(self) -> torch.Tensor:
        """The weight this layer applies, [out, in]."""
        return self.weight * self.weight_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.scaled_weight().to(x.dtype)
        b = None if self.bias is None else (self.bias * self.bias_gain if self.bias_gain != 1 else self.bias)
        if not self.lrelu and b is not None:
            return torch.addmm(b.to(x.dtype), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.lrelu, LRELU_GAIN if self.lrelu else 1.0)


class EqualConv2d(nn.Module):
    """x [N, in, H, W] -> [N, out, H', W']: a same-size k x k convolution (FIR-downsampled 2x when ``down``),
    bias and leaky ReLU * sqrt 2 (if ``lrelu``), times ``gain``, clamped to +-conv_clamp * gain (NVIDIA's
    Conv2dLayer as D uses it)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 lrelu: bool = False, down: bool = False, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.lrelu, self.down, self.conv_clamp = lrelu, down, conv_clamp
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        x = conv2d_resampled(x, (self.weight * self.weight_gain).to(x.dtype), down=self.down)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, self.lrelu, (LRELU_GAIN if self.lrelu else 1.0) * gain, clamp)


class MappingNetwork(nn.Module):
    """(z [N, z_dim], c [N, c_dim] one-hot or class weights) -> w [N, w_dim]: the normalised z and the
    normalised class embedding (``embed``, lr multiplier 1), concatenated, through ``num_layers`` leaky-ReLU
    layers (lr multiplier 0.01). z_dim 0: a class-only mapping (D's cmap and proxies); c_dim 0: unconditional.
    ``track_w_avg``: keep the ``w_avg`` buffer (G's, for truncation)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int, lr_multiplier: float = 0.01,
                 track_w_avg: bool = False) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.num_layers = z_dim, c_dim, num_layers
        embed_features = w_dim if c_dim else 0
        if c_dim:
            self.embed = EqualLinear(c_dim, embed_features)
        features = [z_dim + embed_features] + [w_dim] * num_layers
        for i in range(num_layers):
            self.add_module(f"fc{i}", EqualLinear(features[i], features[i + 1], lrelu=True,
                                                  lr_multiplier=lr_multiplier))
        if track_w_avg:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z))
        if self.c_dim:
            parts.append(normalize_2nd_moment(self.embed(c.to(self.embed.weight.dtype))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x

    @torch.no_grad()
    def track(self, w_mean: torch.Tensor, beta: float) -> None:
        """w_avg <- lerp(w_mean [w_dim], w_avg, beta): the running mean of w that truncation pulls toward."""
        self.w_avg.copy_(w_mean.to(self.w_avg.dtype).lerp(self.w_avg, beta))


class SynthesisLayer(nn.Module):
    """One modulated 3x3 convolution of G: (x [N, in, H, W], w [N, w_dim]) -> [N, out, R, R] (R = ``resolution``;
    H = R / 2 with ``up``), then per-pixel noise * noise_strength, bias and leaky ReLU * sqrt 2 * ``gain``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def noise(self, x: torch.Tensor, mode: str, given: torch.Tensor | None) -> torch.Tensor | None:
        """The noise added to this layer's output: ``given`` [N, 1, R, R], else by ``mode`` (random draws from
        the global generator; const: the layer's fixed map), times the learned strength."""
        if given is not None:
            return given.to(x.dtype) * self.noise_strength
        if mode == "random":
            return torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                               dtype=x.dtype) * self.noise_strength
        if mode == "const":
            return self.noise_const.to(x.dtype) * self.noise_strength
        if mode != "none":
            raise ValueError(f"unknown noise mode {mode!r}; expected one of {NOISE_MODES}")
        return None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", noise: torch.Tensor | None = None,
                fused: bool = False, gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, noise=self.noise(x, noise_mode, noise), up=self.up, fused=fused)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, True, LRELU_GAIN * gain, clamp)


class ToRGBLayer(nn.Module):
    """(x [N, in, R, R], w [N, w_dim]) -> [N, img_channels, R, R]: a modulated 1x1 convolution without
    demodulation (styles scaled by 1 / sqrt(in)), plus a bias."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = False) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, False, 1.0, self.conv_clamp)


def minibatch_std(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """x [N, C, H, W] -> [N, C + 1, H, W]: the mean over features of the standard deviation over each group of
    min(group_size, N) samples, as an extra channel. Group g_j = samples {j, j + n, j + 2n, ...}, n = N / G (the
    reference's grouping: strided, not contiguous), so N must be a multiple of G."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, c, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0)                      # [n, C, H, W] variance over the group
    y = (y + 1e-8).sqrt().mean(dim=(1, 2, 3))                          # [n]
    return torch.cat([x, y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)], dim=1)

"""The residual blocks every ResNet-style G and D here is built from (BigGAN, SNGAN/SAGAN, FastGAN).

GenBlock     G's up-block: cBN, ReLU, nearest x2, conv3, cBN, ReLU, conv3; shortcut nearest x2, conv1x1.
DiscOptBlock D's first block, on raw pixels (no pre-activation), always halving the size.
DiscBlock    D's pre-activation block, optionally halving the size, with either reference's shortcut.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import ConditionalBatchNorm2d, conv2d, upsample_conv3x3


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling: [B, C, H, W] -> [B, C, 2H, 2W]."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GenBlock(nn.Module):
    """Residual up-block: forward(x [B, in, H, W], a [B, affine_dim]) -> [B, out, 2H, 2W].

    ``a`` conditions both BNs (BigGAN: shared class embedding + a z chunk; SNGAN/FastGAN: the class one-hot).
    ``bn_eps``: the BNs' eps (StudioGAN's 1e-4 by default; each architecture passes its reference's).
    """

    def __init__(self, in_ch: int, out_ch: int, affine_dim: int, sn: bool, bn_eps: float = 1e-4) -> None:
        super().__init__()
        self.cbn1 = ConditionalBatchNorm2d(in_ch, affine_dim, sn=sn, eps=bn_eps)
        self.conv0 = conv2d(in_ch, out_ch, 3, padding=1, sn=sn)
        self.cbn2 = ConditionalBatchNorm2d(out_ch, affine_dim, sn=sn, eps=bn_eps)
        self.conv1 = conv2d(out_ch, out_ch, 3, padding=1, sn=sn)
        self.conv_sc = conv2d(in_ch, out_ch, 1, sn=sn)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.cbn1(x, a), inplace=True)
        h = upsample_conv3x3(h, self.conv0)  # = self.conv0(upsample2x(h)) at 4/9 of the multiply-adds
        h = F.relu(self.cbn2(h, a), inplace=True)
        h = self.conv1(h)
        # A 1x1 conv commutes with nearest upsampling, so convolving first is the same map at 1/4 the cost.
        return h + upsample2x(self.conv_sc(x))


class DiscOptBlock(nn.Module):
    """First D block (no pre-activation on raw pixels): x [B, in, H, W] -> [B, out, H/2, W/2]."""

    def __init__(self, in_ch: int, out_ch: int, sn: bool) -> None:
        super().__init__()
        self.conv0 = conv2d(in_ch, out_ch, 3, padding=1, sn=sn)
        self.conv1 = conv2d(out_ch, out_ch, 3, padding=1, sn=sn)
        self.conv_sc = conv2d(in_ch, out_ch, 1, sn=sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.conv0(x), inplace=True))
        return F.avg_pool2d(h, 2) + self.conv_sc(F.avg_pool2d(x, 2))


class DiscBlock(nn.Module):
    """Pre-activation residual block: x [B, in, H, W] -> [B, out, H', W'] (H' = H/2 if downsample).

    block(x) = F(relu x) + S(relu x) with ``relu_shortcut`` (the default), else F(relu x) + S(x); F = conv3,
    ReLU, conv3 (, avg-pool 2), S = 1x1 conv (+ avg-pool 2) or the identity. Why both: StudioGAN, whose runs
    produced the ReACGAN / BigGAN / SNGAN numbers, keeps ``x0 = x`` and then applies ``nn.ReLU(inplace=True)``
    to ``x``, which rewrites ``x0`` as well, so its shortcut sees relu(x); the official FastGAN nets use the
    out-of-place ``F.relu`` and their shortcut sees the raw x. Each architecture follows its reference code.
    ``hidden``: width between the two 3x3 convs (default ``out_ch``).
    """

    def __init__(self, in_ch: int, out_ch: int, downsample: bool, sn: bool, hidden: int | None = None,
                 relu_shortcut: bool = True) -> None:
        super().__init__()
        self.downsample, self.relu_shortcut = downsample, relu_shortcut
        hidden = hidden or out_ch
        self.conv0 = conv2d(in_ch, hidden, 3, padding=1, sn=sn)
        self.conv1 = conv2d(hidden, out_ch, 3, padding=1, sn=sn)
        self.conv_sc = conv2d(in_ch, out_ch, 1, sn=sn) if (in_ch != out_ch or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(x)  # not in place: x may be needed by the shortcut, and the caller's tensor stays intact
        h = self.conv1(F.relu(self.conv0(a), inplace=True))
        sc = a if self.relu_shortcut else x
        if self.downsample:
            h = F.avg_pool2d(h, 2)
            # Average pooling commutes with a 1x1 conv (bias included); pooling first is 4x cheaper.
            sc = F.avg_pool2d(sc, 2)
        if self.conv_sc is not None:
            sc = self.conv_sc(sc)
        return h + sc

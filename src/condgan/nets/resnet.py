"""Plain ResNet pairs with class-conditional BN in G: SNGAN / WGAN-GP (CIFAR10) and FastGAN (32 and 64 px).

G: z -> Linear -> [c_0, 4, 4]; residual up-blocks c_i -> c_{i+1} (nearest x2; BN conditioned on the class
   one-hot: a per-class gain and bias); BN, ReLU, 3x3 conv, tanh.
D: optimised block (img -> d_0, /2), then pre-activation blocks d_{i-1} -> d_i (some downsampling), ReLU,
   sum-pool, shared heads.
``resnet32`` is the SNGAN CIFAR layout of StudioGAN: G 3 blocks at model.g_width (256), D 4 blocks at
model.d_width (128), only the first block after the optimised one downsamples (8x8 at the end), D blocks'
shortcuts see relu(x). ``fastgan`` is the layout of the FastGAN code: every D block downsamples to 2x2 and
its shortcut sees the raw x; at 32 px all widths equal (128), at 64 px G narrows 16w -> w and D widens
w -> 16w (w = 64), D's hidden convs keep the input width; no SN, Xavier init and
per-class BN gains starting at 1. Left as in the rest of condgan: BN eps 1e-4 (the reference: 2e-5 in the
per-class BNs, 1e-5 in the last) and a bias-free classifier head (10 parameters at 32 px).
``conditional=False`` gives the unconditional G of the "w/o condition" rows (one class: plain BN affine).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .biggan import DiscBlock, DiscOptBlock, GenBlock
from .heads import DiscriminatorHeads, DOutput
from .layers import ConditionalBatchNorm2d, class_onehot, conv2d, init_weights, linear

D_DOWNSAMPLE = (True, False, False)  # the three blocks after the optimised block (SNGAN CIFAR layout)


class ResNetGenerator(nn.Module):
    """G(z [B, z_dim], y [B] long) -> images [B, img_channels, R, R] in [-1, 1], R = 4 * 2^(len(channels) - 1).

    ``channels`` lists the widths at 4x4 and after each up-block; default: ``width`` four times (32 px).
    """

    def __init__(self, z_dim: int = 128, num_classes: int = 10, width: int = 256, img_channels: int = 3,
                 sn: bool = False, init: str = "orthogonal", conditional: bool = True,
                 channels: Sequence[int] | None = None) -> None:
        super().__init__()
        channels = tuple(channels or (width,) * 4)
        self.z_dim, self.channels, self.conditional = z_dim, channels, conditional
        self.num_classes = num_classes if conditional else 1
        self.linear0 = linear(z_dim, channels[0] * 4 * 4, sn=sn)
        self.blocks = nn.ModuleList(GenBlock(c_in, c_out, self.num_classes, sn)
                                    for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.bn = nn.BatchNorm2d(channels[-1], eps=1e-4, momentum=0.1)
        self.conv_out = conv2d(channels[-1], img_channels, 3, padding=1, sn=sn)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = class_onehot(y, self.num_classes, self.conditional, z.dtype)  # per-class BN gain and bias
        x = self.linear0(z).view(z.shape[0], self.channels[0], 4, 4)
        for block in self.blocks:
            x = block(x, onehot)
        x = F.relu(self.bn(x), inplace=True)
        return torch.tanh(self.conv_out(x))


class ResNetDiscriminator(nn.Module):
    """D(x [B, img_channels, R, R], y [B] long) -> DOutput (features are [B, channels[-1]]).

    ``channels``: the optimised block's width, then each later block's; ``downsample``: per later block;
    ``hidden_in``: a block's first conv keeps its input width (FastGAN) instead of the output width;
    ``relu_shortcut``: the blocks' shortcut sees relu(x) (StudioGAN) or x (FastGAN), see :class:`DiscBlock`.
    Default: ``width`` four times with the SNGAN CIFAR downsampling.
    """

    batch_coupled = False  # one sample's output never depends on the rest of its batch (no BN, no minibatch-std)

    def __init__(self, num_classes: int = 10, width: int = 128, img_channels: int = 3, cond: str = "pd",
                 embed_dim: int = 512, sn: bool = True, init: str = "orthogonal", aux: str = "none",
                 channels: Sequence[int] | None = None, downsample: Sequence[bool] = D_DOWNSAMPLE,
                 hidden_in: bool = False, relu_shortcut: bool = True) -> None:
        super().__init__()
        channels = tuple(channels or (width,) * 4)
        if len(downsample) != len(channels) - 1:
            raise ValueError(f"downsample needs one flag per block after the first; got {len(downsample)} "
                             f"for {len(channels)} widths")
        self.opt_block = DiscOptBlock(img_channels, channels[0], sn)
        self.blocks = nn.ModuleList(DiscBlock(c_in, c_out, down, sn, hidden=c_in if hidden_in else c_out,
                                              relu_shortcut=relu_shortcut)
                                    for c_in, c_out, down in zip(channels[:-1], channels[1:], downsample))
        self.heads = DiscriminatorHeads(channels[-1], num_classes, cond, embed_dim, sn, aux)
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        h = self.opt_block(x)
        for block in self.blocks:
            h = block(h)
        return self.heads(F.relu(h).sum(dim=(2, 3)), y)


# resolution -> (G width multipliers from 4x4 up, D width multipliers from the optimised block on)
FASTGAN_LAYOUTS = {32: ((1, 1, 1, 1), (1, 1, 1, 1)), 64: ((16, 8, 4, 2, 1), (1, 2, 4, 8, 16))}


def fastgan_pair(resolution: int, z_dim: int, num_classes: int, g_width: int, d_width: int, img_channels: int,
                 cond: str, embed_dim: int, aux: str = "none", g_sn: bool = False, d_sn: bool = False,
                 init: str = "xavier", conditional: bool = True) -> tuple[ResNetGenerator, ResNetDiscriminator]:
    """The FastGAN (G, D) for ``resolution`` 32 or 64; D's last feature map is 2x2."""
    if resolution not in FASTGAN_LAYOUTS:
        raise ValueError(f"fastgan nets exist for resolutions {sorted(FASTGAN_LAYOUTS)}; got {resolution}")
    g_mult, d_mult = FASTGAN_LAYOUTS[resolution]
    g = ResNetGenerator(z_dim, num_classes, img_channels=img_channels, sn=g_sn, init=init, conditional=conditional,
                        channels=[g_width * m for m in g_mult])
    for m in g.modules():  # per-class BN gain 1 and bias 0 at the start, as in the reference
        if isinstance(m, ConditionalBatchNorm2d):
            nn.init.zeros_(m.gain.weight)
            nn.init.zeros_(m.bias.weight)
    down = (True,) * (int(math.log2(resolution)) - 2)
    d = ResNetDiscriminator(num_classes, img_channels=img_channels, cond=cond, embed_dim=embed_dim, sn=d_sn,
                            init=init, aux=aux, channels=[d_width * m for m in d_mult], downsample=down,
                            hidden_in=True, relu_shortcut=False)  # the FastGAN code's out-of-place F.relu
    return g, d

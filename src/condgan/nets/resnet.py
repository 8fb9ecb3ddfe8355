"""The ResNet pair for 32x32 images of WGAN-GP / SNGAN (CIFAR10), with class-conditional BN in G.

G: z -> Linear -> [w_g, 4, 4]; three residual up-blocks at w_g channels (BN conditioned on the class
   one-hot: a per-class gain and bias); BN, ReLU, 3x3 conv, tanh.
D: optimised block (img -> w_d, 32 -> 16), block (down, 16 -> 8), two blocks (8x8), ReLU, sum-pool,
   shared heads. Widths: w_g = model.g_width (256 in SNGAN), w_d = model.d_width (128).
``conditional=False`` gives the unconditional G of the "w/o condition" rows (one class: plain BN affine).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .biggan import DiscBlock, DiscOptBlock, GenBlock
from .heads import DiscriminatorHeads, DOutput
from .layers import class_onehot, conv2d, init_weights, linear

D_DOWNSAMPLE = (True, False, False)  # the three blocks after the optimised block (SNGAN CIFAR layout)


class ResNetGenerator(nn.Module):
    """G(z [B, z_dim], y [B] long) -> images [B, img_channels, 32, 32] in [-1, 1]."""

    def __init__(self, z_dim: int = 128, num_classes: int = 10, width: int = 256, img_channels: int = 3,
                 sn: bool = False, init: str = "orthogonal", conditional: bool = True) -> None:
        super().__init__()
        self.z_dim, self.width, self.conditional = z_dim, width, conditional
        self.num_classes = num_classes if conditional else 1
        self.linear0 = linear(z_dim, width * 4 * 4, sn=sn)
        self.blocks = nn.ModuleList(GenBlock(width, width, self.num_classes, sn) for _ in range(3))
        self.bn = nn.BatchNorm2d(width, eps=1e-4, momentum=0.1)
        self.conv_out = conv2d(width, img_channels, 3, padding=1, sn=sn)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = class_onehot(y, self.num_classes, self.conditional, z.dtype)  # per-class BN gain and bias
        x = self.linear0(z).view(z.shape[0], self.width, 4, 4)
        for block in self.blocks:
            x = block(x, onehot)
        x = F.relu(self.bn(x), inplace=True)
        return torch.tanh(self.conv_out(x))


class ResNetDiscriminator(nn.Module):
    """D(x [B, img_channels, 32, 32], y [B] long) -> DOutput (features are [B, width])."""

    def __init__(self, num_classes: int = 10, width: int = 128, img_channels: int = 3, cond: str = "pd",
                 embed_dim: int = 512, sn: bool = True, init: str = "orthogonal", aux: str = "none") -> None:
        super().__init__()
        self.opt_block = DiscOptBlock(img_channels, width, sn)
        self.blocks = nn.ModuleList(DiscBlock(width, width, down, sn) for down in D_DOWNSAMPLE)
        self.heads = DiscriminatorHeads(width, num_classes, cond, embed_dim, sn, aux)
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        h = self.opt_block(x)
        for block in self.blocks:
            h = block(h)
        return self.heads(F.relu(h).sum(dim=(2, 3)), y)

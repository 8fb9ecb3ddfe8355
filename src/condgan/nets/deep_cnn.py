"""The "Deep CNN" (DCGAN) pair of StudioGAN's deep_conv model at 32x32 (ReACGAN paper Table A3).

G: z -> Linear -> [512, 4, 4] (no norm or activation), three (4x4 stride-2 transposed conv, BN conditioned
   on the class one-hot, ReLU) stages 512 -> 256 -> 128 -> 64, then 3x3 conv -> tanh.
D: three (3x3 conv, ReLU, 4x4 stride-2 conv, ReLU) stages 3 -> 64 -> 128 -> 256, 3x3 conv -> 512, ReLU,
   sum-pool, shared heads: the DCGAN discriminator body with ReLU (StudioGAN's default activation).
The widths are fixed, as in the reference; ``conditional=False`` gives plain-BN (one-class) G.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import ConditionalBatchNorm2d, class_onehot, conv2d, init_weights, linear

G_CHANNELS = (512, 256, 128, 64)


class DeepCNNGenerator(nn.Module):
    """G(z [B, z_dim], y [B] long) -> images [B, img_channels, 32, 32] in [-1, 1]."""

    def __init__(self, z_dim: int = 128, num_classes: int = 10, img_channels: int = 3, sn: bool = False,
                 init: str = "orthogonal", conditional: bool = True) -> None:
        super().__init__()
        if sn:
            raise ValueError("the deep_cnn generator has no spectral-norm variant (model.g_sn must be false)")
        self.z_dim, self.conditional = z_dim, conditional
        self.num_classes = num_classes if conditional else 1
        self.linear0 = linear(z_dim, G_CHANNELS[0] * 4 * 4, sn=False)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1)
                                 for a, b in zip(G_CHANNELS[:-1], G_CHANNELS[1:]))
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, self.num_classes, sn=False) for c in G_CHANNELS[1:])
        self.conv_out = conv2d(G_CHANNELS[-1], img_channels, 3, padding=1, sn=False)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = class_onehot(y, self.num_classes, self.conditional, z.dtype)
        x = self.linear0(z).view(z.shape[0], G_CHANNELS[0], 4, 4)
        for up, norm in zip(self.ups, self.norms):
            x = F.relu(norm(up(x), onehot))
        return torch.tanh(self.conv_out(x))

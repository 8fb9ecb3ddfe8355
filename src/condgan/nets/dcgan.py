"""A small DCGAN-style conditional pair for 32x32 images: the fast demo model.

G: z -> 4x4 -> three (transposed-conv x2, class-conditional BN, ReLU) stages -> 32x32 -> conv -> tanh.
D: SNGAN-style "standard CNN" (3x3 conv, 4x4 stride-2 conv) x3 -> sum-pool -> shared heads.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .heads import DiscriminatorHeads, DOutput
from .layers import ConditionalBatchNorm2d, class_embedding, conv2d, init_weights, linear


class DCGANGenerator(nn.Module):
    """G(z [B, z_dim], y [B]) -> images [B, img_channels, 32, 32] in [-1, 1]."""

    def __init__(self, z_dim: int, num_classes: int, width: int = 64, img_channels: int = 1,
                 shared_dim: int = 64, sn: bool = False, init: str = "normal", conditional: bool = True) -> None:
        super().__init__()
        self.z_dim, self.conditional = z_dim, conditional
        # Unconditional ("w/o condition"): a single embedding row, i.e. a learned constant for every sample.
        num_classes = num_classes if conditional else 1
        chans = [4 * width, 2 * width, width, width // 2]
        self.shared = nn.Embedding(num_classes, shared_dim)
        # The class enters both the first layer (so it shapes the layout) and every BN (so it styles it).
        self.fc = linear(z_dim + shared_dim, chans[0] * 16, sn=sn)
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, shared_dim, sn=sn) for c in chans)
        self.ups = nn.ModuleList(
            _conv_transpose(cin, cout, sn) for cin, cout in zip(chans[:-1], chans[1:]))
        self.out = conv2d(chans[-1], img_channels, 3, padding=1, sn=sn)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = class_embedding(self.shared, y) if self.conditional else self.shared.weight.expand(z.shape[0], -1)
        x = self.fc(torch.cat([z, c], dim=1)).view(z.shape[0], -1, 4, 4)
        for norm, up in zip(self.norms, self.ups):
            x = up(F.relu(norm(x, c)))
        x = F.relu(self.norms[-1](x, c))
        return torch.tanh(self.out(x))


def _conv_transpose(cin: int, cout: int, sn: bool) -> nn.Module:
    # Upsampling by nearest x2 + 3x3 conv avoids the checkerboard of strided transposed convs.
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv2d(cin, cout, 3, padding=1, sn=sn))


class DCGANDiscriminator(nn.Module):
    """D(x [B, img_channels, 32, 32], y [B]) -> DOutput."""

    batch_coupled = False  # one sample's output never depends on the rest of its batch (no BN, no minibatch-std)

    def __init__(self, num_classes: int, width: int = 64, img_channels: int = 1, cond: str = "d2d_ce",
                 embed_dim: int = 128, sn: bool = True, init: str = "normal", aux: str = "none",
                 negative_slope: float = 0.1) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        cin = img_channels
        for c in chans:
            layers += [conv2d(cin, c, 3, padding=1, sn=sn), nn.LeakyReLU(negative_slope),
                       conv2d(c, c, 4, stride=2, padding=1, sn=sn), nn.LeakyReLU(negative_slope)]
            cin = c
        layers += [conv2d(cin, 2 * cin, 3, padding=1, sn=sn), nn.LeakyReLU(negative_slope)]
        self.body = nn.Sequential(*layers)
        self.heads = DiscriminatorHeads(2 * cin, num_classes, cond, embed_dim, sn, aux)
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        h = self.body(x).sum(dim=(2, 3))
        return self.heads(h, y)

"""BigGAN (Brock et al. 2019) as StudioGAN's ``big_resnet.py`` runs it, at 32 / 64 / 128 / 256 px.

G: z split in (blocks + 1) equal chunks; chunk 0 -> linear -> [c_0, 4, 4]; each up-block is conditioned by
   cat(shared class embedding, its own z chunk) through conditional BN; self-attention after one block;
   BN, ReLU, 3x3 conv, tanh.
D: optimised block, pre-activation blocks (shortcut on relu(x), as StudioGAN), self-attention after the
   optimised block, ReLU, sum-pool, shared heads.
Widths, attention and downsampling come from :data:`~condgan.nets.stages.STUDIOGAN_STAGES`. With width 96,
z 80, shared 128 at 32 px this is the CIFAR10 reference pair (G 9,416,196 / D 2,517,186 parameters for D2D-CE
with embed_dim 512 on 10 classes); tests/test_nets.py pins the 64 and 128 px references' counts.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import DiscBlock, DiscOptBlock, GenBlock
from .heads import DiscriminatorHeads, DOutput
from .layers import SelfAttention, class_embedding, conv2d, init_weights, linear
from .stages import STUDIOGAN_STAGES


class BigGANGenerator(nn.Module):
    """G(z [B, z_dim], y [B] long) -> images [B, img_channels, R, R] in [-1, 1], R = ``resolution``."""

    def __init__(self, resolution: int = 32, z_dim: int = 80, num_classes: int = 10, width: int = 96,
                 shared_dim: int = 128, img_channels: int = 3, attention: bool = True, sn: bool = True,
                 init: str = "orthogonal", conditional: bool = True) -> None:
        super().__init__()
        stages = STUDIOGAN_STAGES[resolution]
        chunks = stages.g_blocks + 1
        if z_dim % chunks:
            raise ValueError(f"BigGAN z_dim must split into {chunks} equal chunks at {resolution} px; got {z_dim}")
        # Unconditional ("w/o condition"): no shared class embedding; the BNs see the z chunks only.
        self.conditional = conditional
        self.z_dim, self.num_classes = z_dim, num_classes
        self.chunk = z_dim // chunks
        channels = [width * m for m in stages.g_channels]
        self.ch0 = channels[0]
        self.linear0 = linear(self.chunk, channels[0] * 4 * 4, sn=sn)
        # not spectrally normalised, as in BigGAN
        self.shared = nn.Embedding(num_classes, shared_dim) if conditional else None
        affine_dim = (shared_dim if conditional else 0) + self.chunk
        self.blocks = nn.ModuleList(GenBlock(c_in, c_out, affine_dim, sn)
                                    for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.attn_after = stages.g_attn_after if attention else 0
        self.attn = SelfAttention(channels[self.attn_after], sn) if self.attn_after else None
        self.bn = nn.BatchNorm2d(channels[-1], eps=1e-4, momentum=0.1)
        self.conv_out = conv2d(channels[-1], img_channels, 3, padding=1, sn=sn)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zs = z.split(self.chunk, dim=1)
        s = class_embedding(self.shared, y) if self.shared is not None else None
        x = self.linear0(zs[0]).view(z.shape[0], self.ch0, 4, 4)
        for i, block in enumerate(self.blocks, start=1):
            a = zs[i] if s is None else torch.cat([s, zs[i]], dim=1)  # shared embedding first (StudioGAN)
            x = block(x, a)
            if i == self.attn_after:
                x = self.attn(x)
        x = F.relu(self.bn(x), inplace=True)
        return torch.tanh(self.conv_out(x))


class BigGANDiscriminator(nn.Module):
    """D(x [B, img_channels, R, R], y [B] long) -> DOutput (features are [B, d_channels[-1] * width])."""

    batch_coupled = False  # one sample's output never depends on the rest of its batch (no BN, no minibatch-std)

    def __init__(self, resolution: int = 32, num_classes: int = 10, width: int = 96, img_channels: int = 3,
                 cond: str = "d2d_ce", embed_dim: int = 512, attention: bool = True, sn: bool = True,
                 init: str = "orthogonal", aux: str = "none") -> None:
        super().__init__()
        stages = STUDIOGAN_STAGES[resolution]
        channels = [width * m for m in stages.d_channels]
        self.opt_block = DiscOptBlock(img_channels, channels[0], sn)
        self.attn_after = stages.d_attn_after if attention else 0
        self.attn = SelfAttention(channels[self.attn_after - 1], sn) if self.attn_after else None
        self.blocks = nn.ModuleList(DiscBlock(c_in, c_out, down, sn)
                                    for c_in, c_out, down in zip(channels[:-1], channels[1:], stages.d_down))
        self.heads = DiscriminatorHeads(channels[-1], num_classes, cond, embed_dim, sn, aux)
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        h = x
        for i, block in enumerate([self.opt_block, *self.blocks], start=1):
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        h = F.relu(h, inplace=True).sum(dim=(2, 3))
        return self.heads(h, y)

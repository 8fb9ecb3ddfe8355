"""BigGAN for 32x32 images, as in the ReACGAN / StudioGAN CIFAR10 reference configuration.

G: z split in 4 chunks; chunk 0 -> linear -> [4w, 4, 4]; three up-blocks (4w channels) each conditioned by
   cat(shared class embedding, next z chunk) through conditional BN; self-attention after the second
   block (16x16); BN, ReLU, 3x3 conv, tanh.
D: optimised block (img -> 2w, 32 -> 16), self-attention (16x16), block (2w, 16 -> 8), two blocks
   (2w, 8x8), ReLU, sum-pool, shared heads.
With width 96, z 80, shared 128 this is the reference pair (G 9,416,196 / D 2,517,186 parameters for
D2D-CE with embed_dim 512 on 10 classes).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .heads import DiscriminatorHeads, DOutput
from .layers import ConditionalBatchNorm2d, SelfAttention, conv2d, init_weights, linear, upsample_conv3x3

G_BLOCKS = 3        # 4 -> 8 -> 16 -> 32
G_ATTN_AFTER = 1    # index of the G block after which attention runs (its output is 16x16)
D_DOWNSAMPLE = (True, False, False)  # the three DiscBlocks after the optimised block


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GenBlock(nn.Module):
    """Residual up-block: forward(x [B, in, H, W], a [B, affine_dim]) -> [B, out, 2H, 2W]."""

    def __init__(self, in_ch: int, out_ch: int, affine_dim: int, sn: bool) -> None:
        super().__init__()
        self.cbn1 = ConditionalBatchNorm2d(in_ch, affine_dim, sn=sn)
        self.conv0 = conv2d(in_ch, out_ch, 3, padding=1, sn=sn)
        self.cbn2 = ConditionalBatchNorm2d(out_ch, affine_dim, sn=sn)
        self.conv1 = conv2d(out_ch, out_ch, 3, padding=1, sn=sn)
        self.conv_sc = conv2d(in_ch, out_ch, 1, sn=sn)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.cbn1(x, a), inplace=True)
        h = upsample_conv3x3(h, self.conv0)  # = self.conv0(_up(h)) at 4/9 of the multiply-adds
        h = F.relu(self.cbn2(h, a), inplace=True)
        h = self.conv1(h)
        # A 1x1 conv commutes with nearest upsampling, so convolving first is the same map at 1/4 the cost.
        return h + _up(self.conv_sc(x))


class BigGANGenerator(nn.Module):
    """G(z [B, z_dim], y [B] long) -> images [B, img_channels, 32, 32] in [-1, 1]."""

    def __init__(self, z_dim: int = 80, num_classes: int = 10, width: int = 96, shared_dim: int = 128,
                 img_channels: int = 3, attention: bool = True, sn: bool = True,
                 init: str = "orthogonal", conditional: bool = True) -> None:
        super().__init__()
        if z_dim % (G_BLOCKS + 1):
            raise ValueError(f"BigGAN z_dim must split into {G_BLOCKS + 1} equal chunks; got {z_dim}")
        # Unconditional ("w/o condition"): no shared class embedding; the BNs see the z chunks only.
        self.conditional = conditional
        self.z_dim, self.num_classes = z_dim, num_classes
        self.chunk = z_dim // (G_BLOCKS + 1)
        self.ch = ch = 4 * width
        self.linear0 = linear(self.chunk, ch * 4 * 4, sn=sn)
        # not spectrally normalised, as in BigGAN
        self.shared = nn.Embedding(num_classes, shared_dim) if conditional else None
        affine_dim = (shared_dim if conditional else 0) + self.chunk
        self.blocks = nn.ModuleList(GenBlock(ch, ch, affine_dim, sn) for _ in range(G_BLOCKS))
        self.attn = SelfAttention(ch, sn) if attention else None
        self.bn = nn.BatchNorm2d(ch, eps=1e-4, momentum=0.1)
        self.conv_out = conv2d(ch, img_channels, 3, padding=1, sn=sn)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zs = z.split(self.chunk, dim=1)
        s = self.shared(y) if self.shared is not None else None
        x = self.linear0(zs[0]).view(z.shape[0], self.ch, 4, 4)
        for i, block in enumerate(self.blocks):
            a = zs[i + 1] if s is None else torch.cat([s, zs[i + 1]], dim=1)  # shared embedding first (StudioGAN)
            x = block(x, a)
            if i == G_ATTN_AFTER and self.attn is not None:
                x = self.attn(x)
        x = F.relu(self.bn(x), inplace=True)
        return torch.tanh(self.conv_out(x))


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


class BigGANDiscriminator(nn.Module):
    """D(x [B, img_channels, 32, 32], y [B] long) -> DOutput (features are [B, 2*width])."""

    batch_coupled = False  # one sample's output never depends on the rest of its batch (no BN, no minibatch-std)

    def __init__(self, num_classes: int = 10, width: int = 96, img_channels: int = 3, cond: str = "d2d_ce",
                 embed_dim: int = 512, attention: bool = True, sn: bool = True,
                 init: str = "orthogonal", aux: str = "none") -> None:
        super().__init__()
        ch = 2 * width
        self.opt_block = DiscOptBlock(img_channels, ch, sn)  # 32 -> 16
        # Attention right after the optimised block, at 16x16 (StudioGAN attn_d_loc=[1]).
        self.attn = SelfAttention(ch, sn) if attention else None
        self.blocks = nn.ModuleList(DiscBlock(ch, ch, down, sn) for down in D_DOWNSAMPLE)
        self.heads = DiscriminatorHeads(ch, num_classes, cond, embed_dim, sn, aux)
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        h = self.opt_block(x)
        if self.attn is not None:
            h = self.attn(h)
        for block in self.blocks:
            h = block(h)
        h = F.relu(h, inplace=True).sum(dim=(2, 3))
        return self.heads(h, y)

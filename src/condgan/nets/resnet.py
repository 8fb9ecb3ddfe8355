"""Plain ResNet pairs with class-conditional BN in G: SNGAN / SAGAN (StudioGAN) and FastGAN (official code).

G: z -> Linear -> [c_0, 4, 4]; residual up-blocks c_i -> c_{i+1} (nearest x2; BN conditioned on the class
   one-hot: a per-class gain and bias); optional self-attention after one block; BN, ReLU, 3x3 conv, tanh.
D: optimised block (img -> d_0, /2), then pre-activation blocks d_{i-1} -> d_i (some downsampling), optional
   self-attention after one block, ReLU, sum-pool, shared heads.

``resnet``: StudioGAN's ``resnet.py`` at 32 / 64 / 128 / 256 px (SNGAN; with ``model.attention`` SAGAN),
widths from :data:`~condgan.nets.stages.STUDIOGAN_STAGES` times model.g_width / d_width (StudioGAN's
g_conv_dim / d_conv_dim, 64 in its configs), D blocks' shortcuts on relu(x).
``resnet32``: the same 32 px net with model.g_width / d_width read as the block widths themselves (256 / 128),
the name runs made before ``resnet`` existed resume under.
``fastgan``: the official FastGAN nets (:data:`~condgan.nets.stages.FASTGAN_LAYOUTS`): D's hidden convs keep
the input width and its shortcut sees the raw x; no SN, Xavier init and per-class BN gains starting at 1; G's
BN eps the code's (:data:`~condgan.nets.stages.FASTGAN_BN_EPS`: 2e-5 in the per-class BNs, torch's 1e-5 in the
last and in the plain BNs of the unconditional G; StudioGAN's nets keep its 1e-4). Left as in the rest of
condgan: a bias-free classifier head unless ``model.cls_bias`` (the reference has one).
``conditional=False`` gives the unconditional G of the "w/o condition" rows (one class: plain BN affine).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import DiscBlock, DiscOptBlock, GenBlock
from .heads import DiscriminatorHeads, DOutput
from .layers import ConditionalBatchNorm2d, SelfAttention, class_onehot, conv2d, init_weights, linear
from .stages import STUDIOGAN_BN_EPS, BNEps, StageTable


class ResNetGenerator(nn.Module):
    """G(z [B, z_dim], y [B] long) -> images [B, img_channels, R, R] in [-1, 1], R = 4 * 2^(len(channels) - 1).

    ``channels`` lists the widths at 4x4 and after each up-block; ``attn_after``: the block (from 1) whose
    output gets self-attention, 0 = none; ``bn_eps``: the BNs' eps, as the architecture's reference sets them
    (the blocks' per-class ones, or their plain ones when unconditional, and the last).
    """

    def __init__(self, z_dim: int, num_classes: int, channels: Sequence[int], img_channels: int = 3,
                 sn: bool = False, init: str = "orthogonal", conditional: bool = True, attn_after: int = 0,
                 bn_eps: BNEps = STUDIOGAN_BN_EPS) -> None:
        super().__init__()
        self.z_dim, self.channels, self.conditional = z_dim, tuple(channels), conditional
        self.num_classes = num_classes if conditional else 1
        self.linear0 = linear(z_dim, channels[0] * 4 * 4, sn=sn)
        block_eps = bn_eps.cond if conditional else bn_eps.plain
        self.blocks = nn.ModuleList(GenBlock(c_in, c_out, self.num_classes, sn, bn_eps=block_eps)
                                    for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.attn_after = attn_after
        if attn_after:
            self.attn = SelfAttention(channels[attn_after], sn)
        self.bn = nn.BatchNorm2d(channels[-1], eps=bn_eps.out, momentum=0.1)
        self.conv_out = conv2d(channels[-1], img_channels, 3, padding=1, sn=sn)
        init_weights(self, init)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = class_onehot(y, self.num_classes, self.conditional, z.dtype)  # per-class BN gain and bias
        x = self.linear0(z).view(z.shape[0], self.channels[0], 4, 4)
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, onehot)
            if i == self.attn_after:
                x = self.attn(x)
        x = F.relu(self.bn(x), inplace=True)
        return torch.tanh(self.conv_out(x))


class ResNetDiscriminator(nn.Module):
    """D(x [B, img_channels, R, R], y [B] long) -> DOutput (features are [B, channels[-1]]).

    ``channels``: the optimised block's width, then each later block's; ``downsample``: per later block;
    ``attn_after``: the block (from 1 = the optimised block) whose output gets self-attention, 0 = none;
    ``hidden_in``: a block's first conv keeps its input width (FastGAN) instead of the output width;
    ``relu_shortcut``: the blocks' shortcut sees relu(x) (StudioGAN) or x (FastGAN), see :class:`DiscBlock`;
    ``cls_bias``: the classifier head has a bias (the FastGAN code's).
    """

    batch_coupled = False  # one sample's output never depends on the rest of its batch (no BN, no minibatch-std)

    def __init__(self, num_classes: int, channels: Sequence[int], downsample: Sequence[bool], img_channels: int = 3,
                 cond: str = "pd", embed_dim: int = 512, sn: bool = True, init: str = "orthogonal",
                 aux: str = "none", attn_after: int = 0, hidden_in: bool = False, relu_shortcut: bool = True,
                 cls_bias: bool = False) -> None:
        super().__init__()
        if len(downsample) != len(channels) - 1:
            raise ValueError(f"downsample needs one flag per block after the first; got {len(downsample)} "
                             f"for {len(channels)} widths")
        self.opt_block = DiscOptBlock(img_channels, channels[0], sn)
        self.blocks = nn.ModuleList(DiscBlock(c_in, c_out, down, sn, hidden=c_in if hidden_in else c_out,
                                              relu_shortcut=relu_shortcut)
                                    for c_in, c_out, down in zip(channels[:-1], channels[1:], downsample))
        self.attn_after = attn_after
        if attn_after:
            self.attn = SelfAttention(channels[attn_after - 1], sn)
        self.heads = DiscriminatorHeads(channels[-1], num_classes, cond, embed_dim, sn, aux, cls_bias)
        init_weights(self, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        h = x
        for i, block in enumerate([self.opt_block, *self.blocks], start=1):
            h = block(h)
            if i == self.attn_after:
                h = self.attn(h)
        return self.heads(F.relu(h).sum(dim=(2, 3)), y)


def resnet_pair(stages: StageTable, z_dim: int, num_classes: int, g_width: int, d_width: int, img_channels: int,
                cond: str, embed_dim: int, attention: bool, aux: str = "none", g_sn: bool = False,
                d_sn: bool = True, init: str = "orthogonal", conditional: bool = True,
                cls_bias: bool = False) -> tuple[ResNetGenerator, ResNetDiscriminator]:
    """(G, D) of one stage table, widths multiplied by ``g_width`` / ``d_width``; attention where the table
    puts it when ``attention`` (SAGAN)."""
    g = ResNetGenerator(z_dim, num_classes, [g_width * m for m in stages.g_channels], img_channels, sn=g_sn,
                        init=init, conditional=conditional, attn_after=stages.g_attn_after if attention else 0,
                        bn_eps=stages.g_bn_eps)
    d = ResNetDiscriminator(num_classes, [d_width * m for m in stages.d_channels], stages.d_down, img_channels,
                            cond=cond, embed_dim=embed_dim, sn=d_sn, init=init, aux=aux,
                            attn_after=stages.d_attn_after if attention else 0, hidden_in=stages.d_hidden_in,
                            relu_shortcut=stages.relu_shortcut, cls_bias=cls_bias)
    return g, d


def start_cbn_gains_at_one(g: nn.Module) -> None:
    """Per-class BN gain 1 and bias 0 at the start (FastGAN's reference init of its categorical BNs)."""
    for m in g.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            nn.init.zeros_(m.gain.weight)
            nn.init.zeros_(m.bias.weight)

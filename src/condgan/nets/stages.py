"""Per-resolution stage tables: which widths, where attention sits and which D blocks downsample.

Widths are multiples of ``model.g_width`` / ``model.d_width``. G starts from a 4x4 map, so a table with
n + 1 G widths has n up-blocks and makes 4 * 2^n pixels. D starts with the optimised block (which always
halves the size); ``d_down`` covers the blocks after it. Attention positions count blocks from 1, the
optimised block being D's block 1 (StudioGAN's ``attn_g_loc`` / ``attn_d_loc``).

STUDIOGAN_STAGES  StudioGAN's ``big_resnet.py`` and ``resnet.py`` dictionaries (the two files share them):
                  BigGAN, SNGAN and SAGAN at 32 / 64 / 128 / 256 px, attention where the configs put it.
FASTGAN_LAYOUTS   the official FastGAN nets (tools/networks/gan/sn_resnet_*.py) by (layout, resolution):
                  "cifar" (32), "imagenet143" (the cat/dog ImageNet-143 nets, 64 and 128) and "imagenet"
                  (full ImageNet at 128, the SNGAN ImageNet layout). Their D blocks' first conv keeps the
                  input width and their shortcut sees the raw x; their G's BNs have their own eps
                  (:data:`FASTGAN_BN_EPS`).
"""
from __future__ import annotations

from dataclasses import dataclass

T, F = True, False


@dataclass(frozen=True)
class BNEps:
    """G's BatchNorm eps, as each reference sets it: the blocks' per-class BNs (``cond``), the blocks' plain BNs
    of an unconditional G (``plain``) and the BN before the output conv (``out``)."""

    cond: float = 1e-4
    plain: float = 1e-4
    out: float = 1e-4


STUDIOGAN_BN_EPS = BNEps()  # ops.batchnorm_2d (eps=1e-4) everywhere, its ConditionalBatchNorm2d included
# sn_resblocks.py's CatCondBatchNorm2d (eps=2.0e-5); torch's nn.BatchNorm2d default (1e-5) for the finalbn and,
# with n_classes=0, the blocks' BNs
FASTGAN_BN_EPS = BNEps(cond=2e-5, plain=1e-5, out=1e-5)


@dataclass(frozen=True)
class StageTable:
    """One architecture row; see the module docstring for the conventions."""

    g_channels: tuple[int, ...]   # at 4x4, then after each G up-block
    d_channels: tuple[int, ...]   # after the optimised block, then after each later D block
    d_down: tuple[bool, ...]      # per D block after the optimised one
    g_attn_after: int = 0         # the G block (from 1) whose output is attended; 0 = nowhere
    d_attn_after: int = 0         # the D block (from 1 = the optimised block) whose output is attended
    d_hidden_in: bool = False     # a D block's first conv keeps its input width (FastGAN) instead of the output's
    relu_shortcut: bool = True    # D blocks' shortcut sees relu(x) (StudioGAN) or x (FastGAN)
    g_bn_eps: BNEps = STUDIOGAN_BN_EPS  # G's BN eps

    def __post_init__(self) -> None:
        if len(self.d_down) != len(self.d_channels) - 1:
            raise ValueError(f"d_down needs one flag per D block after the optimised one; got {len(self.d_down)} "
                             f"for {len(self.d_channels)} blocks")

    @property
    def g_blocks(self) -> int:
        return len(self.g_channels) - 1


STUDIOGAN_STAGES: dict[int, StageTable] = {
    32: StageTable((4, 4, 4, 4), (2, 2, 2, 2), (T, F, F), g_attn_after=2, d_attn_after=1),
    64: StageTable((16, 8, 4, 2, 1), (1, 2, 4, 8, 16), (T, T, T, F), g_attn_after=3, d_attn_after=1),
    128: StageTable((16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), (T, T, T, T, F), g_attn_after=4, d_attn_after=1),
    # StudioGAN's 256 px configs (AFHQv2) run without attention; with model.attention it sits at 64x64, as
    # in BigGAN-PyTorch's 256 px launch scripts (G_attn 64, D_attn 64).
    256: StageTable((16, 16, 8, 8, 4, 2, 1), (1, 2, 4, 8, 8, 16, 16), (T, T, T, T, T, F), g_attn_after=4,
                    d_attn_after=2),
}


def _fastgan(g_channels: tuple[int, ...], d_channels: tuple[int, ...], d_down: tuple[bool, ...]) -> StageTable:
    """A FastGAN row: what every official FastGAN net shares (D's blocks, G's BN eps) filled in."""
    return StageTable(g_channels, d_channels, d_down, d_hidden_in=True, relu_shortcut=False,
                      g_bn_eps=FASTGAN_BN_EPS)


FASTGAN_LAYOUTS: dict[tuple[str, int], StageTable] = {
    ("cifar", 32): _fastgan((1, 1, 1, 1), (1, 1, 1, 1), (T, T, T)),
    ("imagenet143", 64): _fastgan((16, 8, 4, 2, 1), (1, 2, 4, 8, 16), (T, T, T, T)),
    ("imagenet143", 128): _fastgan((8, 8, 4, 4, 2, 1), (1, 2, 4, 4, 8, 8), (T, T, T, T, F)),
    ("imagenet", 128): _fastgan((16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), (T, T, T, T, F)),
}
FASTGAN_DEFAULT_LAYOUT = {32: "cifar", 64: "imagenet143", 128: "imagenet"}

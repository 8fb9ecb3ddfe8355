"""DINOv2's Vision Transformer (without registers), in plain torch, with the official state-dict layout.

The feature FD_DINOv2 reads (Stein et al. 2023, dgm-eval; EDM2) is the class token after the final LayerNorm of
``dinov2_vitl14``. The network is a pre-norm ViT: a patch convolution, a class token, learned position embeddings
trained on a 37 x 37 grid (518 px), then blocks of ``x + ls1(attn(norm1(x)))`` and ``x + ls2(mlp(norm2(x)))``
(LayerNorm eps 1e-6, exact GELU, LayerScale), and a final LayerNorm. At 224 px the grid is 16 x 16: the official
code resizes the 37 x 37 position embeddings with a bicubic ``interpolate`` given the *scale factor* (16 + 0.1) / 37
(a historical offset), in float32, without antialiasing. Asking for ``size=16`` instead gives different weights,
and different features: :func:`resize_position_embeddings` reproduces the official call.

Submodule names follow the official ``DinoVisionTransformer``, so the released files load unchanged
(``cls_token``, ``pos_embed``, ``mask_token``, ``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj,
ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}``, ``norm``). ``mask_token`` is only used in training; it is kept so
the layout is the official one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

INTERPOLATE_OFFSET = 0.1  # the official code's offset on the target grid size (its "historical kludge")


@dataclass(frozen=True)
class ViTSpec:
    """One DINOv2 ViT size: width, blocks, heads, patch size and the grid its position embeddings were trained on."""
    name: str
    dim: int
    depth: int
    heads: int
    patch: int = 14
    grid: int = 37  # 518 px / 14

    def describe(self) -> str:
        return f"{self.name} (width {self.dim}, {self.depth} blocks)"


# ViT-g/14 uses a SwiGLU MLP and is not built here; FD_DINOv2 is defined on ViT-L/14.
VIT_SPECS = {s.name: s for s in (ViTSpec("ViT-S/14", 384, 12, 6), ViTSpec("ViT-B/14", 768, 12, 12),
                                 ViTSpec("ViT-L/14", 1024, 24, 16))}


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (bias on qkv and proj)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, D] -> [B, T, D]."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).unbind(2)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2, hidden width 4 * dim."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LayerScale(nn.Module):
    """A learned per-channel gain (``gamma``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-6), Mlp(dim), LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch convolution to tokens."""

    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, H, W] -> tokens [B, (H/p)(W/p), D]."""
        return self.proj(x).flatten(2).transpose(1, 2)


def resize_position_embeddings(pos_embed: torch.Tensor, grid: int, size: int) -> torch.Tensor:
    """[1, 1 + grid^2, D] -> [1, 1 + size^2, D] as the official code resizes them (see the module docstring).

    The class entry is kept; the grid is resized in float32 with bicubic ``interpolate`` at the scale factor
    (size + 0.1) / grid, and the result returned in ``pos_embed``'s dtype.
    """
    if size == grid:
        return pos_embed
    table = pos_embed.float()
    dim = table.shape[-1]
    patches = table[:, 1:].reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    scale = (size + INTERPOLATE_OFFSET) / grid
    patches = F.interpolate(patches, mode="bicubic", antialias=False, scale_factor=(scale, scale))
    if patches.shape[-2:] != (size, size):
        raise ValueError(f"position embeddings resized to {tuple(patches.shape[-2:])}, expected {size}x{size}")
    patches = patches.permute(0, 2, 3, 1).reshape(1, size * size, dim)
    return torch.cat((table[:, :1], patches), dim=1).to(pos_embed.dtype)


class DinoViT(nn.Module):
    """DINOv2 ViT: images [B, 3, H, W] (ImageNet-normalised, H = W a multiple of the patch) -> CLS features [B, D]."""

    def __init__(self, spec: ViTSpec = VIT_SPECS["ViT-L/14"]) -> None:
        super().__init__()
        self.spec = spec
        d = spec.dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + spec.grid ** 2, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.patch_embed = PatchEmbed(d, spec.patch)
        self.blocks = nn.ModuleList(Block(d, spec.heads) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1] // self.spec.patch
        if x.shape[-2] != x.shape[-1] or side * self.spec.patch != x.shape[-1]:
            raise ValueError(f"input must be square with a side a multiple of {self.spec.patch}; got {tuple(x.shape)}")
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + resize_position_embeddings(self.pos_embed, self.spec.grid, side)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


def spec_of_state(state: dict) -> ViTSpec | None:
    """The :data:`VIT_SPECS` entry whose width and depth a DINOv2 state dict has (None if it has neither)."""
    pos, blocks = state.get("pos_embed"), {k.split(".")[1] for k in state if k.startswith("blocks.")}
    if not isinstance(pos, torch.Tensor) or pos.dim() != 3:
        return None
    return next((s for s in VIT_SPECS.values() if s.dim == pos.shape[-1] and s.depth == len(blocks)), None)

"""StyleGAN2 (Karras et al. 2020) as NVIDIA's stylegan2-ada-pytorch and PyTorch-StudioGAN run it, in plain PyTorch.

G: w = mapping(normalised z, normalised class embedding) [mapping_layers leaky-ReLU layers], broadcast to one w
   per layer (truncation pulls w toward ``mapping.w_avg``, or a class's mean w); the synthesis network starts
   from a learned 4x4 constant, and each block doubles the size with two modulated 3x3 convolutions (the first
   upsampling), per-pixel noise, and a ToRGB whose images are summed over the blocks ("skip" G).
D: one block per resolution from R down to 8 (1x1 fromRGB at the first, two 3x3 convs, the second
   downsampling; "resnet" adds a 1x1 downsampling skip, both branches times sqrt(1/2)), then the epilogue at
   4x4: minibatch standard deviation, 3x3 conv, fully connected -> features h [N, C_4]; heads on h
   (:mod:`condgan.nets.stylegan2_heads`).
Widths come from :func:`stage_channels`: a resolution's channels are min(channel_base / res, channel_max).
At 32 px with base 32768 / max 512, mapping 2, this is the CIFAR10 pair of Table 5 (cStyleGAN2: G 20,215,315 /
D 23,089,664 parameters); at 512 px with mapping 8 the AFHQ pair (G 30,540,775 / D 31,348,288).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .heads import DOutput
from .layers import full_precision
from .style_layers import EqualConv2d, EqualLinear, MappingNetwork, SynthesisLayer, ToRGBLayer, minibatch_std
from .style_ops import upsample2d
from .stylegan2_heads import StyleGAN2Heads

RESOLUTIONS = (32, 64, 128, 256, 512)  # the sizes condgan builds (NVIDIA's formula holds for any power of 2)
D_ARCHITECTURES = ("orig", "resnet")


def stage_channels(resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """The stage table: {4: c_4, 8: c_8, ..., resolution: c_R}, c_r = min(channel_base // r, channel_max)."""
    sizes = [4 * 2 ** i for i in range(resolution.bit_length() - 2)]
    return {r: min(channel_base // r, channel_max) for r in sizes}


class SynthesisBlock(nn.Module):
    """One resolution of G: (x [N, C_{R/2}, R/2, R/2] or None, img [N, 3, R/2, R/2] or None, ws [N, k, w_dim])
    -> (x [N, C_R, R, R], img [N, 3, R, R]); k = 2 (4x4: 1) convs + 1 ToRGB."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None) -> None:
        super().__init__()
        self.first = in_channels == 0
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp)
        self.num_conv = 1 if self.first else 2

    def layers(self) -> list[SynthesisLayer]:
        return [self.conv1] if self.first else [self.conv0, self.conv1]

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                noise: list[torch.Tensor | None], fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            x = self.const.to(ws.dtype)[None].repeat(ws.shape[0], 1, 1, 1)  # not a view: no-grad views of a
            # parameter trip module hooks (torch.utils.flop_counter)
        for i, layer in enumerate(self.layers()):
            x = layer(x, ws[:, i], noise_mode, noise[i], fused)
        rgb = full_precision(self.torgb(x, ws[:, self.num_conv], fused))
        return x, rgb if img is None else upsample2d(img) + rgb


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images [N, img_channels, R, R]; blocks ``b4`` ... ``b{R}``."""

    def __init__(self, w_dim: int, resolution: int, img_channels: int, channel_base: int, channel_max: int,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        channels = stage_channels(resolution, channel_base, channel_max)
        self.resolutions = list(channels)
        for res in self.resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            self.add_module(f"b{res}", SynthesisBlock(in_channels, channels[res], w_dim, res, img_channels,
                                                      conv_clamp))
        self.num_ws = sum(b.num_conv for b in self.blocks()) + 1  # a block's ToRGB shares the next block's first w

    def blocks(self) -> list[SynthesisBlock]:
        return [getattr(self, f"b{res}") for res in self.resolutions]

    def noise_resolutions(self) -> list[int]:
        """The side of every noise map, layer by layer (the order of ``noise``)."""
        return [layer.resolution for block in self.blocks() for layer in block.layers()]

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", noise: list[torch.Tensor] | None = None,
                fused: bool = False) -> torch.Tensor:
        x = img = None
        w_index = layer_index = 0
        for block in self.blocks():
            count = block.num_conv
            given = [None] * count if noise is None else noise[layer_index:layer_index + count]
            x, img = block(x, img, ws[:, w_index:w_index + count + 1], noise_mode, given, fused)
            w_index, layer_index = w_index + count, layer_index + count
        return img


class StyleGAN2Generator(nn.Module):
    """G(z [N, z_dim], y [N] int64 or class weights [N, C]) -> images [N, img_channels, R, R] in about [-1, 1].

    Keyword options of the forward pass (all off by default, giving the plain sample):
      truncation, truncation_cutoff, center: w <- lerp(center, w, truncation) on the first ``truncation_cutoff``
          layers (all if None); center [w_dim] or [N, w_dim], default ``mapping.w_avg``
      noise_mode: "random" (global generator), "const" (each layer's fixed map) or "none"; ``noise``: the maps
          themselves, [N, 1, r, r] per layer in :meth:`noise_resolutions` order (training draws them)
      mix_z, mix_cutoff: style mixing, layers from ``mix_cutoff`` on take the w of latents ``mix_z``
      return_ws: also return ws [N, num_ws, w_dim] (path-length regularisation differentiates by it)
    Sampling uses one grouped convolution per layer when ``fused_modconv`` (None, the default: NVIDIA's rule on a
    GPU, eval mode in float32 or for one sample; never on a CPU, where the shared convolution measured faster).
    """

    def __init__(self, z_dim: int = 512, num_classes: int = 10, w_dim: int = 512, resolution: int = 32,
                 img_channels: int = 3, mapping_layers: int = 8, channel_base: int = 32768, channel_max: int = 512,
                 conv_clamp: float | None = None, conditional: bool = True) -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.conditional = z_dim, num_classes, conditional
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base, channel_max, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, num_classes if conditional else 0, w_dim, mapping_layers,
                                      track_w_avg=True)
        self.fused_modconv: bool | None = None

    def class_input(self, y: torch.Tensor) -> torch.Tensor | None:
        """The mapping's class input: one-hot labels [N, C] (class weights as they are), None when unconditional."""
        if not self.conditional:
            return None
        if y.is_floating_point():
            if y.dim() != 2 or y.shape[1] != self.num_classes:
                raise ValueError(f"class weights must be [batch, {self.num_classes}]; got {tuple(y.shape)}")
            return y
        return F.one_hot(y, self.num_classes).float()

    def ws(self, z: torch.Tensor, y: torch.Tensor, truncation: float = 1.0, truncation_cutoff: int | None = None,
           center: torch.Tensor | None = None) -> torch.Tensor:
        """The per-layer latents [N, num_ws, w_dim] of (z, y), truncated as asked."""
        w = self.mapping(z, self.class_input(y))
        ws = w[:, None].expand(-1, self.num_ws, -1)
        if truncation == 1:
            return ws
        center = self.mapping.w_avg if center is None else center
        center = center[:, None] if center.dim() == 2 else center
        layers = self.num_ws if truncation_cutoff is None else truncation_cutoff
        truncated = center.to(ws.dtype).lerp(ws[:, :layers], truncation)
        return torch.cat([truncated, ws[:, layers:]], dim=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor, *, truncation: float = 1.0,
                truncation_cutoff: int | None = None, center: torch.Tensor | None = None, noise_mode: str = "random",
                noise: list[torch.Tensor] | None = None, mix_z: torch.Tensor | None = None,
                mix_cutoff: torch.Tensor | int | None = None,
                return_ws: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        ws = self.ws(z, y, truncation, truncation_cutoff, center)
        if mix_z is not None:
            mixed = self.ws(mix_z, y, truncation, truncation_cutoff, center)
            later = torch.arange(self.num_ws, device=ws.device) >= torch.as_tensor(mix_cutoff, device=ws.device)
            ws = torch.where(later[None, :, None], mixed, ws)
        img = self.render(ws, noise_mode, noise)
        return (img, ws) if return_ws else img

    def render(self, ws: torch.Tensor, noise_mode: str = "random",
               noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Images [N, img_channels, R, R] of per-layer latents ws [N, num_ws, w_dim] (noise as in forward), with
        the convolution form ``fused_modconv`` picks."""
        fused = self.fused_modconv
        if fused is None:  # NVIDIA's rule on a GPU; on a CPU the shared convolution was faster at every batch
            half = torch.is_autocast_enabled(ws.device.type) or ws.dtype in (torch.float16, torch.bfloat16)
            fused = not self.training and ws.device.type == "cuda" and (not half or ws.shape[0] == 1)
        return self.synthesis(ws, noise_mode, noise, fused)


class DiscriminatorBlock(nn.Module):
    """x [N, C_R, R, R] (or the image at the first block) -> [N, C_{R/2}, R/2, R/2]."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int, resnet: bool,
                 conv_clamp: float | None) -> None:
        super().__init__()
        self.first, self.resnet = in_channels == 0, resnet
        if self.first:
            self.fromrgb = EqualConv2d(img_channels, tmp_channels, 1, lrelu=True, conv_clamp=conv_clamp)
        self.conv0 = EqualConv2d(tmp_channels, tmp_channels, 3, lrelu=True, conv_clamp=conv_clamp)
        self.conv1 = EqualConv2d(tmp_channels, out_channels, 3, lrelu=True, down=True, conv_clamp=conv_clamp)
        if resnet:
            self.skip = EqualConv2d(tmp_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            x = self.fromrgb(x)
        if not self.resnet:
            return self.conv1(self.conv0(x))
        half = 0.5 ** 0.5
        return self.skip(x, gain=half) + self.conv1(self.conv0(x), gain=half)


class DiscriminatorEpilogue(nn.Module):
    """x [N, C_4, 4, 4] -> features h [N, C_4]: minibatch std, 3x3 conv, fully connected (leaky ReLU each)."""

    def __init__(self, channels: int, mbstd_group: int, conv_clamp: float | None) -> None:
        super().__init__()
        self.mbstd_group = mbstd_group
        self.conv = EqualConv2d(channels + 1, channels, 3, lrelu=True, conv_clamp=conv_clamp)
        self.fc = EqualLinear(channels * 16, channels, lrelu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in float32 under autocast, as the reference runs its epilogue: the group statistics need the precision
        with torch.autocast(x.device.type, enabled=False):
            x = self.conv(minibatch_std(full_precision(x), self.mbstd_group))
            return self.fc(x.flatten(1))


class StyleGAN2Discriminator(nn.Module):
    """D(x [N, img_channels, R, R], y [N] int64) -> DOutput (features [N, C_4]); ``d_arch`` orig or resnet."""

    batch_coupled = True  # the minibatch standard deviation mixes the samples of a group

    def __init__(self, resolution: int = 32, num_classes: int = 10, img_channels: int = 3, d_arch: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, mbstd_group: int = 4,
                 conv_clamp: float | None = None, cond: str = "d2d_ce", embed_dim: int = 512,
                 aux: str = "none") -> None:
        super().__init__()
        if d_arch not in D_ARCHITECTURES:
            raise ValueError(f"unknown StyleGAN2 D architecture {d_arch!r}; expected one of {D_ARCHITECTURES}")
        channels = stage_channels(resolution, channel_base, channel_max)
        self.resolutions = [r for r in reversed(channels) if r > 4]
        for res in self.resolutions:
            in_channels = channels[res] if res < resolution else 0
            self.add_module(f"b{res}", DiscriminatorBlock(in_channels, channels[res], channels[res // 2],
                                                          img_channels, d_arch == "resnet", conv_clamp))
        self.b4 = DiscriminatorEpilogue(channels[4], mbstd_group, conv_clamp)
        self.heads = StyleGAN2Heads(channels[4], num_classes, cond, embed_dim, aux)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features h [N, C_4] the heads read."""
        for res in self.resolutions:
            x = getattr(self, f"b{res}")(x)
        return self.b4(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        return self.heads(self.features(x), y)

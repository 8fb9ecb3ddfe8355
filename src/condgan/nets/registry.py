"""Every architecture by its ``model.arch`` name: how it is built, at which resolutions, what it needs.

The config reads its choices from here (:data:`ARCHITECTURES`, :data:`LAYOUTS`) and asks
:func:`model_problem` whether a model section names a network at a resolution, so this module must not
import the config package (it imports this one).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Callable

from torch import nn

from ..losses.conditional import clip_feature_norm
from .biggan import BigGANDiscriminator, BigGANGenerator
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .deep_cnn import DeepCNNGenerator
from .heads import CONDITIONING as SHARED_HEADS
from .resnet import resnet_pair, start_cbn_gains_at_one
from .stages import FASTGAN_DEFAULT_LAYOUT, FASTGAN_LAYOUTS, STUDIOGAN_STAGES, StageTable
from .stylegan2 import RESOLUTIONS as STYLEGAN2_RESOLUTIONS
from .stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from .stylegan2_heads import STYLEGAN2_CONDITIONING

if TYPE_CHECKING:
    from ..config import Config, ModelConfig

Pair = tuple[nn.Module, nn.Module]


def _dcgan(cfg: Config, num_classes: int, channels: int) -> Pair:
    m, cond = cfg.model, cfg.loss.cond
    g = DCGANGenerator(m.z_dim, num_classes, m.g_width, channels, sn=m.g_sn, init=m.init, conditional=cond != "none")
    d = DCGANDiscriminator(num_classes, m.d_width, channels, cond, m.embed_dim, sn=m.d_sn, init=m.init,
                           aux=cfg.loss.aux)
    return g, d


def _deep_cnn(cfg: Config, num_classes: int, channels: int) -> Pair:
    # Fixed reference widths (G 512 -> 64, D 64 -> 512); model.g_width / d_width do not apply.
    m, cond = cfg.model, cfg.loss.cond
    g = DeepCNNGenerator(m.z_dim, num_classes, channels, sn=m.g_sn, init=m.init, conditional=cond != "none")
    d = DCGANDiscriminator(num_classes, 64, channels, cond, m.embed_dim, sn=m.d_sn, init=m.init, aux=cfg.loss.aux,
                           negative_slope=0.0)
    return g, d


def _resnet_family(cfg: Config, num_classes: int, channels: int, stages: StageTable, attention: bool) -> Pair:
    m, cond = cfg.model, cfg.loss.cond
    return resnet_pair(stages, m.z_dim, num_classes, m.g_width, m.d_width, channels, cond, m.embed_dim, attention,
                       aux=cfg.loss.aux, g_sn=m.g_sn, d_sn=m.d_sn, init=m.init, conditional=cond != "none",
                       cls_bias=m.cls_bias)


def _resnet(cfg: Config, num_classes: int, channels: int) -> Pair:
    return _resnet_family(cfg, num_classes, channels, STUDIOGAN_STAGES[cfg.data.resolution], attention=False)


def _sagan(cfg: Config, num_classes: int, channels: int) -> Pair:
    return _resnet_family(cfg, num_classes, channels, STUDIOGAN_STAGES[cfg.data.resolution], attention=True)


# resnet32's widths are the blocks' own (G 256, D 128), not multiples: the same net as resnet at 32 px.
_RESNET32 = replace(STUDIOGAN_STAGES[32], g_channels=(1, 1, 1, 1), d_channels=(1, 1, 1, 1))


def _resnet32(cfg: Config, num_classes: int, channels: int) -> Pair:
    return _resnet_family(cfg, num_classes, channels, _RESNET32, attention=False)


def _fastgan(cfg: Config, num_classes: int, channels: int) -> Pair:
    res = cfg.data.resolution
    g, d = _resnet_family(cfg, num_classes, channels,
                          FASTGAN_LAYOUTS[(cfg.model.layout or FASTGAN_DEFAULT_LAYOUT[res], res)], attention=False)
    start_cbn_gains_at_one(g)
    return g, d


def _biggan(cfg: Config, num_classes: int, channels: int) -> Pair:
    m, cond, res = cfg.model, cfg.loss.cond, cfg.data.resolution
    g = BigGANGenerator(res, z_dim=m.z_dim, num_classes=num_classes, width=m.g_width, shared_dim=m.shared_dim,
                        img_channels=channels, attention=m.attention, sn=m.g_sn, init=m.init,
                        conditional=cond != "none")
    d = BigGANDiscriminator(res, num_classes=num_classes, width=m.d_width, img_channels=channels, cond=cond,
                            embed_dim=m.embed_dim, attention=m.attention, sn=m.d_sn, init=m.init, aux=cfg.loss.aux)
    return g, d


def _stylegan2(cfg: Config, num_classes: int, channels: int) -> Pair:
    m, cond, res = cfg.model, cfg.loss.cond, cfg.data.resolution
    g = StyleGAN2Generator(m.z_dim, num_classes, m.w_dim, res, channels, m.mapping_layers, m.channel_base,
                           m.channel_max, m.conv_clamp, conditional=cond != "none")
    d = StyleGAN2Discriminator(res, num_classes, channels, m.d_arch, m.channel_base, m.channel_max, m.mbstd_group,
                               m.conv_clamp, cond, m.embed_dim, cfg.loss.aux)
    return g, d


@dataclass(frozen=True)
class Architecture:
    build: Callable[[Config, int, int], Pair]  # (cfg, num_classes, image channels) -> (G, D)
    resolutions: tuple[int, ...]


_STUDIOGAN_RES = tuple(STUDIOGAN_STAGES)
ARCHITECTURES: dict[str, Architecture] = {
    "dcgan": Architecture(_dcgan, (32,)),  # the small demo pair
    "deep_cnn": Architecture(_deep_cnn, (32,)),  # StudioGAN's DCGAN (fixed widths)
    "resnet": Architecture(_resnet, _STUDIOGAN_RES),  # SNGAN ResNet (StudioGAN resnet.py; widths x g/d_width)
    "sagan": Architecture(_sagan, _STUDIOGAN_RES),  # SAGAN: the SNGAN ResNet with self-attention
    "resnet32": Architecture(_resnet32, (32,)),  # SNGAN / WGAN-GP ResNet at 32 px, g/d_width = block widths
    "biggan": Architecture(_biggan, _STUDIOGAN_RES),  # BigGAN (StudioGAN big_resnet.py)
    "biggan32": Architecture(_biggan, (32,)),  # BigGAN at 32 px (the name of runs made before biggan)
    "fastgan": Architecture(_fastgan, tuple(sorted(FASTGAN_DEFAULT_LAYOUT))),  # the FastGAN code's nets (model.layout)
    "stylegan2": Architecture(_stylegan2, STYLEGAN2_RESOLUTIONS),  # StyleGAN2 (NVIDIA / StudioGAN stylegan2.py)
}
# loss.cond: the shared heads' methods (condgan.nets.heads) and spd, which only StyleGAN2's D has
CONDITIONING = ("d2d_ce", "2c", "ac", "mh", "pd", "spd", "none")
assert set(CONDITIONING) == set(SHARED_HEADS) | set(STYLEGAN2_CONDITIONING)
# model keys that only StyleGAN2 reads, and what the others' keys must be for it (it has neither SN nor BN)
STYLEGAN2_KEYS = ("w_dim", "mapping_layers", "channel_base", "channel_max", "d_arch", "mbstd_group", "conv_clamp",
                  "w_avg_beta")
STYLEGAN2_FIXED = {"g_sn": False, "d_sn": False, "init": "default", "attention": False, "sync_bn": False}
LAYOUTS = tuple(dict.fromkeys(name for name, _ in FASTGAN_LAYOUTS))  # model.layout choices besides ""
RESNET_FAMILY = ("resnet", "sagan", "resnet32", "fastgan")  # built by resnet_pair
ALIASES = {"biggan32": "biggan"}  # old name -> the architecture it builds (a run resumes under either name)


def same_architecture(a: str, b: str) -> bool:
    """Whether ``model.arch`` names ``a`` and ``b`` build the same networks."""
    return ALIASES.get(a, a) == ALIASES.get(b, b)


def model_problem(model: ModelConfig, resolution: int) -> str | None:
    """Why ``model`` at ``resolution`` names no network, as the end of a config error; None if it does."""
    arch, layout, z_dim = model.arch, model.layout, model.z_dim
    builds = ALIASES.get(arch, arch)
    allowed = ARCHITECTURES[arch].resolutions
    if resolution not in allowed:
        sizes = ", ".join(map(str, allowed))
        return f"'data.resolution' must be one of {sizes} for model.arch={arch}; got {resolution}"
    if layout and arch != "fastgan":
        return f"'model.layout' applies to model.arch=fastgan only; got {layout!r} with {arch}"
    if layout and (layout, resolution) not in FASTGAN_LAYOUTS:
        sizes = sorted(r for name, r in FASTGAN_LAYOUTS if name == layout)
        return f"'model.layout' {layout} exists at {', '.join(map(str, sizes))} px; got data.resolution={resolution}"
    if model.cls_bias and builds not in RESNET_FAMILY:
        return f"'model.cls_bias' applies to model.arch {', '.join(RESNET_FAMILY)}; got {arch}"
    if arch == "fastgan" and model.g_sn:
        return ("'model.g_sn' must be false for model.arch=fastgan: its per-class BN gains start at zero, which "
                "spectral norm cannot divide (the SN generators of the FastGAN code are model.arch resnet / sagan)")
    if builds == "biggan":
        chunks = STUDIOGAN_STAGES[resolution].g_blocks + 1
        if z_dim % chunks:
            return f"'model.z_dim' must split into {chunks} equal chunks for {arch} at {resolution} px; got {z_dim}"
    return _stylegan2_problem(model, resolution) if arch == "stylegan2" else None


def _stylegan2_problem(model: ModelConfig, resolution: int) -> str | None:
    for key, value in STYLEGAN2_FIXED.items():
        if getattr(model, key) != value:
            return (f"'model.{key}' must be {value!r} for model.arch=stylegan2 (equalised learning rate, no spectral "
                    f"or batch norm, no attention); got {getattr(model, key)!r}")
    for key in ("w_dim", "mapping_layers", "channel_base", "channel_max", "mbstd_group"):
        if getattr(model, key) < 1:
            return f"'model.{key}' must be positive; got {getattr(model, key)}"
    if model.channel_base < resolution:
        return (f"'model.channel_base' ({model.channel_base}) must be at least data.resolution ({resolution}): the "
                f"last block has channel_base / resolution channels")
    if model.conv_clamp is not None and not model.conv_clamp > 0:
        return f"'model.conv_clamp' must be positive or null; got {model.conv_clamp}"
    if not 0.0 <= model.w_avg_beta < 1.0:
        return f"'model.w_avg_beta' must be in [0, 1); got {model.w_avg_beta}"
    return None


def build_nets(cfg: Config, num_classes: int, img_channels: int) -> Pair:
    """(G, D) for ``cfg.model.arch`` at ``cfg.data.resolution``, for images of ``img_channels`` channels.

    The config has been validated (:func:`model_problem` is None for it)."""
    try:
        g, d = ARCHITECTURES[cfg.model.arch].build(cfg, num_classes, img_channels)
    except ValueError as e:  # a combination the checks above cannot see, e.g. widths too narrow for attention
        from ..config import ConfigError  # the config package imports this module

        raise ConfigError(f"the model settings build no {cfg.model.arch} network at {cfg.data.resolution} px: {e} "
                          f"(model.g_width={cfg.model.g_width}, model.d_width={cfg.model.d_width})") from None
    if cfg.loss.feature_clip is not None:  # ReACGAN Table A5's feature clipping, before the classifier head
        d.heads.classifier_input = partial(clip_feature_norm, max_norm=cfg.loss.feature_clip)
    return g, d

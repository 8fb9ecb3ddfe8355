"""Generators and discriminators, built from a :class:`~condgan.config.ModelConfig` by architecture name."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..config import Config, ConfigError
from .biggan import BigGANDiscriminator, BigGANGenerator
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .deep_cnn import DeepCNNGenerator
from .heads import DiscriminatorHeads, DOutput
from .layers import count_parameters
from .resnet import FASTGAN_LAYOUTS, ResNetDiscriminator, ResNetGenerator, fastgan_pair


def _dcgan(cfg: Config, num_classes: int, channels: int) -> tuple[nn.Module, nn.Module]:
    m, cond = cfg.model, cfg.loss.cond
    g = DCGANGenerator(m.z_dim, num_classes, m.g_width, channels, sn=m.g_sn, init=m.init, conditional=cond != "none")
    d = DCGANDiscriminator(num_classes, m.d_width, channels, cond, m.embed_dim, sn=m.d_sn, init=m.init,
                           aux=cfg.loss.aux)
    return g, d


def _deep_cnn(cfg: Config, num_classes: int, channels: int) -> tuple[nn.Module, nn.Module]:
    # Fixed reference widths (G 512 -> 64, D 64 -> 512); model.g_width / d_width do not apply.
    m, cond = cfg.model, cfg.loss.cond
    g = DeepCNNGenerator(m.z_dim, num_classes, channels, sn=m.g_sn, init=m.init, conditional=cond != "none")
    d = DCGANDiscriminator(num_classes, 64, channels, cond, m.embed_dim, sn=m.d_sn, init=m.init, aux=cfg.loss.aux,
                           negative_slope=0.0)
    return g, d


def _resnet32(cfg: Config, num_classes: int, channels: int) -> tuple[nn.Module, nn.Module]:
    m, cond = cfg.model, cfg.loss.cond
    g = ResNetGenerator(m.z_dim, num_classes, m.g_width, channels, sn=m.g_sn, init=m.init,
                        conditional=cond != "none")
    d = ResNetDiscriminator(num_classes, m.d_width, channels, cond, m.embed_dim, sn=m.d_sn, init=m.init,
                            aux=cfg.loss.aux)
    return g, d


def _biggan32(cfg: Config, num_classes: int, channels: int) -> tuple[nn.Module, nn.Module]:
    m, cond = cfg.model, cfg.loss.cond
    g = BigGANGenerator(z_dim=m.z_dim, num_classes=num_classes, width=m.g_width, shared_dim=m.shared_dim,
                        img_channels=channels, attention=m.attention, sn=m.g_sn, init=m.init,
                        conditional=cond != "none")
    d = BigGANDiscriminator(num_classes=num_classes, width=m.d_width, img_channels=channels, cond=cond,
                            embed_dim=m.embed_dim, attention=m.attention, sn=m.d_sn, init=m.init, aux=cfg.loss.aux)
    return g, d


def _fastgan(cfg: Config, num_classes: int, channels: int) -> tuple[nn.Module, nn.Module]:
    m, cond = cfg.model, cfg.loss.cond
    return fastgan_pair(cfg.data.resolution, m.z_dim, num_classes, m.g_width, m.d_width, channels, cond,
                        m.embed_dim, aux=cfg.loss.aux, g_sn=m.g_sn, d_sn=m.d_sn, init=m.init,
                        conditional=cond != "none")


# Every G is unconditional when loss.cond is "none" (the "w/o condition" rows).
ARCHITECTURES: dict[str, Callable[[Config, int, int], tuple[nn.Module, nn.Module]]] = {
    "dcgan": _dcgan,
    "deep_cnn": _deep_cnn,
    "resnet32": _resnet32,
    "biggan32": _biggan32,
    "fastgan": _fastgan,
}
RESOLUTIONS = {"fastgan": tuple(FASTGAN_LAYOUTS)}  # the others: 32 only


def build_nets(cfg: Config, num_classes: int, img_channels: int) -> tuple[nn.Module, nn.Module]:
    """(G, D) for ``cfg.model.arch`` at ``cfg.data.resolution``, for images of ``img_channels`` channels."""
    allowed = RESOLUTIONS.get(cfg.model.arch, (32,))
    if cfg.data.resolution not in allowed:
        raise ConfigError(f"config key 'data.resolution' must be {' or '.join(map(str, allowed))} for "
                          f"model.arch={cfg.model.arch}; got {cfg.data.resolution}")
    return ARCHITECTURES[cfg.model.arch](cfg, num_classes, img_channels)


__all__ = ["ARCHITECTURES", "build_nets", "count_parameters", "DOutput", "DiscriminatorHeads",
           "BigGANGenerator", "BigGANDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
           "ResNetGenerator", "ResNetDiscriminator", "DeepCNNGenerator"]

"""The heads of StyleGAN2's D: features h [N, F] and labels y [N] -> the :class:`DOutput` every loss reads.

Layers have equalised learning rate; names are PyTorch-StudioGAN's (``linear1``, ``linear2``, ``embedding``,
``mapping``, ``linear_mi``, ``embedding_mi``), so its checkpoints import key for key (under ``heads.``).

    none     adv = linear1(h)
    spd      cStyleGAN2 (NVIDIA's conditional D, StudioGAN's "SPD"): adv = <linear1(h), cmap_y> / sqrt(F), linear1:
             F -> F, cmap_y = an 8-layer class mapping network of one_hot(y) (lr multiplier 0.01)
    pd       condgan's own projection on this backbone: adv = linear1(h) + <e_y, h>, e_y a row of an equalised
             class table [C, F] scaled by 1 / sqrt(F). (StudioGAN's PD on StyleGAN2 calls a module it never
             builds, so there is no reference to follow.)
    ac       adv as none; classifier linear2 (no bias) on normalize(h): StudioGAN's form with normalize_d_embed
             (its weight normalisation loop rebinds a loop variable and does nothing, so only h is normalised)
    mh       linear1: F -> C + 1 (column C means "fake")
    2c, d2d_ce  adv as none; embed = linear2(h) (F -> E, bias); proxies: a 1-layer class mapping network
             (fc K -> E, normalised, leaky-ReLU fc E -> E, lr multiplier 0.01) of the identity: the table [K, E];
             both are L2-normalised by the losses
    aux tac  a twin of the classifier (ac, on normalize(h)) or of embed + proxies (2c, d2d_ce), over C classes
    aux adc  the classifier / proxies over K = 2C classes
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .heads import AUXILIARY, DOutput
from .style_layers import EqualLinear, MappingNetwork

STYLEGAN2_CONDITIONING = ("none", "spd", "pd", "ac", "mh", "2c", "d2d_ce")
SPD_MAPPING_LAYERS = 8  # NVIDIA's mapping default, which its conditional D (and StudioGAN's SPD) keeps


class ClassTable(nn.Module):
    """An equalised class table: y [N] int64 -> rows [N, F] of N(0, 1) weights scaled by 1 / sqrt(F)."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, features))
        self.gain = 1 / math.sqrt(features)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.weight[y] * self.gain


class StyleGAN2Heads(nn.Module):
    """Heads on StyleGAN2 D's features: forward(h [N, F], y [N] int64) -> DOutput; see the module docstring."""

    def __init__(self, in_features: int, num_classes: int, cond: str, embed_dim: int, aux: str = "none") -> None:
        super().__init__()
        if cond not in STYLEGAN2_CONDITIONING:
            raise ValueError(f"unknown conditioning method {cond!r}; expected one of {STYLEGAN2_CONDITIONING}")
        if aux not in AUXILIARY or (aux != "none" and cond not in ("ac", "2c", "d2d_ce")):
            raise ValueError(f"auxiliary classifier {aux!r} needs cond ac, 2c or d2d_ce; got {cond!r}")
        self.cond, self.aux, self.num_classes = cond, aux, num_classes
        k = 2 * num_classes if aux == "adc" else num_classes
        outputs = {"mh": num_classes + 1, "spd": in_features}.get(cond, 1)
        self.linear1 = EqualLinear(in_features, outputs)
        if cond == "spd":
            self.mapping = MappingNetwork(0, num_classes, in_features, SPD_MAPPING_LAYERS)
        if cond == "pd":
            self.projection = ClassTable(num_classes, in_features)
        if cond == "ac":
            self.linear2 = EqualLinear(in_features, k, bias=False)
        if cond in ("2c", "d2d_ce"):
            self.linear2 = EqualLinear(in_features, embed_dim)
            self.embedding = MappingNetwork(0, k, embed_dim, 1)
        if aux == "tac" and cond == "ac":
            self.linear_mi = EqualLinear(in_features, num_classes, bias=False)
        elif aux == "tac":
            self.linear_mi = EqualLinear(in_features, embed_dim)
            self.embedding_mi = MappingNetwork(0, num_classes, embed_dim, 1)

    @staticmethod
    def _table(mapping: MappingNetwork, like: torch.Tensor) -> torch.Tensor:
        """A class mapping network's output for every class: [K, E]."""
        return mapping(None, torch.eye(mapping.c_dim, dtype=like.dtype, device=like.device))

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> DOutput:
        if self.cond == "mh":
            logits = self.linear1(h)
            return DOutput(adv=logits[:, :-1].amax(dim=1) - logits[:, -1], features=h, cls_logits=logits)
        if self.cond == "spd":
            cmap = self.mapping(None, F.one_hot(y, self.num_classes).to(h.dtype))
            adv = (self.linear1(h) * cmap).sum(dim=1) / math.sqrt(cmap.shape[1])
        else:
            adv = self.linear1(h)[:, 0]
        if self.cond == "pd":
            adv = adv + (self.projection(y).to(h.dtype) * h).sum(dim=1)
        out = DOutput(adv=adv, features=h)
        if self.cond == "ac":
            unit = F.normalize(h, dim=1)
            weight = self.linear2.scaled_weight().to(h.dtype)
            out.cls_logits, out.head_weight = F.linear(unit, weight), weight.detach()
            if self.aux == "tac":
                out.tac_logits = self.linear_mi(unit)
        elif self.cond in ("2c", "d2d_ce"):
            weight = self.linear2.scaled_weight().to(h.dtype)
            out.embed, out.head_weight = F.linear(h, weight, self.linear2.bias.to(h.dtype)), weight.detach()
            out.proxies = self._table(self.embedding, h)
            if self.aux == "tac":
                out.tac_embed, out.tac_proxies = self.linear_mi(h), self._table(self.embedding_mi, h)
        return out

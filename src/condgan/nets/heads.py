"""The discriminator's heads, shared by every D backbone: pooled features h [N, F] -> :class:`DOutput`.

Which heads exist is decided by the conditioning method (``COND_HEADS``); a new method registers the
heads it needs in ``HEAD_BUILDERS`` / ``COND_HEADS`` and fills its fields in ``DiscriminatorHeads.forward``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .layers import embedding, linear


@dataclass
class DOutput:
    """Everything a loss may need from one discriminator pass over N images."""

    adv: torch.Tensor                  # [N] adversarial logit (includes <proj(y), h> when cond == "pd")
    features: torch.Tensor             # [N, F] pooled pre-head features h
    cls_logits: torch.Tensor | None    # [N, C] when cond == "ac"
    embed: torch.Tensor | None         # [N, embed_dim] unnormalised, when cond == "d2d_ce"
    proxy: torch.Tensor | None         # [N, embed_dim] unnormalised proxies of the given labels ("d2d_ce")


# (in_features F, num_classes C, embed_dim E, sn) -> module
HeadBuilder = Callable[[int, int, int, bool], nn.Module]

HEAD_BUILDERS: dict[str, HeadBuilder] = {
    "adv": lambda f, c, e, sn: linear(f, 1, bias=True, sn=sn),
    "projection": lambda f, c, e, sn: embedding(c, f, sn=sn),   # PD: <proj(y), h> joins the adv logit
    "classifier": lambda f, c, e, sn: linear(f, c, bias=True, sn=sn),
    "embed": lambda f, c, e, sn: linear(f, e, bias=True, sn=sn),  # D2D-CE / 2C image embedding
    "proxy": lambda f, c, e, sn: embedding(c, e, sn=sn),          # D2D-CE / 2C class proxies
}

# Heads each conditioning method needs besides "adv", which every D has.
COND_HEADS: dict[str, tuple[str, ...]] = {
    "none": (),
    "pd": ("projection",),
    "ac": ("classifier",),
    "d2d_ce": ("embed", "proxy"),
}


class DiscriminatorHeads(nn.Module):
    """Heads on pooled features: forward(h [N, F], y [N] long) -> DOutput."""

    def __init__(self, in_features: int, num_classes: int, cond: str, embed_dim: int, sn: bool) -> None:
        super().__init__()
        if cond not in COND_HEADS:
            raise ValueError(f"unknown conditioning method {cond!r}; expected one of {tuple(COND_HEADS)}")
        self.cond = cond
        self.head_names = ("adv",) + COND_HEADS[cond]
        for name in self.head_names:
            # Plain attributes (not a ModuleDict) keep state-dict keys short: heads.adv.weight, ...
            self.add_module(name, HEAD_BUILDERS[name](in_features, num_classes, embed_dim, sn))

    def _head(self, name: str) -> nn.Module | None:
        return self._modules.get(name) if name in self.head_names else None

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> DOutput:
        adv = self.adv(h)[:, 0]
        projection = self._head("projection")
        if projection is not None:
            adv = adv + (projection(y) * h).sum(dim=1)
        classifier, embed, proxy = self._head("classifier"), self._head("embed"), self._head("proxy")
        return DOutput(
            adv=adv,
            features=h,
            cls_logits=classifier(h) if classifier is not None else None,
            embed=embed(h) if embed is not None else None,
            proxy=proxy(y) if proxy is not None else None,
        )

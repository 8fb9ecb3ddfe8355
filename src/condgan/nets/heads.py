"""The discriminator's heads, shared by every D backbone: pooled features h [N, F] -> :class:`DOutput`.

Which heads exist is decided by the conditioning method and its auxiliary variant (:func:`head_names`):

    pd       adv += <Embedding(y), h>                      (projection discriminator)
    ac       classifier Linear(h -> K, no bias)            K = C, or 2C with aux "adc" (2y real, 2y+1 fake)
    mh       adv Linear(h -> C + 1) replaces the 1-logit adv head; column C means "fake"
    2c, d2d_ce  embed Linear(h -> E), proxies Embedding(K, E)
    aux tac  a twin of the classifier (ac) or of embed + proxies (2c, d2d_ce) over C classes, trained on fakes
Layout and biases follow the StudioGAN reference models.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .layers import embedding, full_precision, linear

CONDITIONING = ("none", "pd", "ac", "mh", "2c", "d2d_ce")
AUXILIARY = ("none", "tac", "adc")
EMBEDDING_METHODS = ("2c", "d2d_ce")


@dataclass
class DOutput:
    """Everything a loss may need from one discriminator pass over N images."""

    adv: torch.Tensor                       # [N] adversarial logit (includes <proj(y), h> for "pd")
    features: torch.Tensor                  # [N, F] pooled pre-head features h
    cls_logits: torch.Tensor | None = None  # [N, K] ("ac": K = C or 2C; "mh": the C + 1 adversarial logits)
    embed: torch.Tensor | None = None       # [N, E] unnormalised ("2c", "d2d_ce")
    proxies: torch.Tensor | None = None     # [K, E] unnormalised class proxies, the whole table (not per sample)
    tac_logits: torch.Tensor | None = None  # [N, C] twin classifier ("ac" + "tac")
    tac_embed: torch.Tensor | None = None   # [N, E] twin embedding ("2c"/"d2d_ce" + "tac")
    tac_proxies: torch.Tensor | None = None  # [C, E] twin proxies
    # the (spectrally normalised) weight the classifier [K, F] / embedding [E, F] head applied to h, detached:
    # d loss / d h = (d loss / d head output) @ weight, without a graph from h (which D may have sliced or cast)
    head_weight: torch.Tensor | None = None

    TABLES = ("proxies", "tac_proxies", "head_weight")  # not indexed by sample

    def rows(self, sl: slice) -> "DOutput":
        """The same output restricted to samples ``sl`` (tables are shared)."""
        return DOutput(**{f.name: _rows(getattr(self, f.name), sl, f.name in self.TABLES) for f in fields(self)})

    def float(self) -> "DOutput":
        """The same output with half-precision tensors in float32 (losses of a mixed-precision pass are computed
        in float32; a float64 pass stays float64)."""
        return DOutput(**{f.name: None if (v := getattr(self, f.name)) is None else full_precision(v)
                          for f in fields(self)})


def _rows(value: torch.Tensor | None, sl: slice, table: bool) -> torch.Tensor | None:
    return value if (value is None or table) else value[sl]


def head_names(cond: str, aux: str = "none") -> tuple[str, ...]:
    """The heads D needs for conditioning ``cond`` with auxiliary variant ``aux`` ("adv" always first)."""
    if cond not in CONDITIONING:
        raise ValueError(f"unknown conditioning method {cond!r}; expected one of {CONDITIONING}")
    if aux not in AUXILIARY:
        raise ValueError(f"unknown auxiliary classifier {aux!r}; expected one of {AUXILIARY}")
    if aux != "none" and cond not in ("ac",) + EMBEDDING_METHODS:
        raise ValueError(f"auxiliary classifier {aux!r} needs cond ac, 2c or d2d_ce; got {cond!r}")
    names = {"none": (), "pd": ("projection",), "ac": ("classifier",), "mh": (),
             "2c": ("embed", "proxy"), "d2d_ce": ("embed", "proxy")}[cond]
    if aux == "tac":
        names += ("tac_classifier",) if cond == "ac" else ("tac_embed", "tac_proxy")
    return ("adv",) + names


def _build_head(name: str, cond: str, aux: str, f: int, c: int, e: int, sn: bool, cls_bias: bool = False) -> nn.Module:
    """One head module: ``f`` input features, ``c`` classes, ``e`` embedding dims; ``cls_bias``: the classifier
    has a bias (the FastGAN code's; StudioGAN's has none)."""
    k = 2 * c if aux == "adc" else c
    if name == "adv":
        return linear(f, c + 1 if cond == "mh" else 1, bias=True, sn=sn)
    if name == "projection":
        return embedding(c, f, sn=sn)
    if name == "classifier":
        return linear(f, k, bias=cls_bias, sn=sn)
    if name in ("embed", "tac_embed"):
        return linear(f, e, bias=True, sn=sn)
    if name == "proxy":
        return embedding(k, e, sn=sn)
    if name == "tac_proxy":
        return embedding(c, e, sn=sn)
    if name == "tac_classifier":
        return linear(f, c, bias=False, sn=sn)
    raise ValueError(f"unknown head {name!r}")


def _table(module: nn.Module) -> torch.Tensor:
    """A Linear's or an Embedding's (spectrally normalised when SN) weight: [out, in] or the table [K, E]."""
    norm = getattr(module, "normalized_weight", None)
    return norm() if norm is not None else module.weight


class DiscriminatorHeads(nn.Module):
    """Heads on pooled features: forward(h [N, F], y [N] long) -> DOutput.

    ``classifier_input`` (None: identity) maps h to what the classifier head (ac) sees: ReACGAN Table A5's
    feature clipping (set by :func:`condgan.nets.registry.build_nets`); every other head sees h.
    """

    classifier_input: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(self, in_features: int, num_classes: int, cond: str, embed_dim: int, sn: bool,
                 aux: str = "none", cls_bias: bool = False) -> None:
        super().__init__()
        self.cond, self.aux = cond, aux
        self.head_names = head_names(cond, aux)
        for name in self.head_names:
            # Plain attributes (not a ModuleDict) keep state-dict keys short: heads.adv.weight, ...
            self.add_module(name, _build_head(name, cond, aux, in_features, num_classes, embed_dim, sn, cls_bias))

    def _head(self, name: str) -> nn.Module | None:
        return self._modules.get(name) if name in self.head_names else None

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> DOutput:
        if self.cond == "mh":
            # The C + 1 multi-hinge logits are the adversarial output; ``adv`` keeps a real-vs-fake score
            # (best class logit minus the fake logit) for diagnostics only.
            logits = self.adv(h)
            return DOutput(adv=logits[:, :-1].amax(dim=1) - logits[:, -1], features=h, cls_logits=logits)
        out = DOutput(adv=self.adv(h)[:, 0], features=h)
        projection = self._head("projection")
        if projection is not None:
            out.adv = out.adv + (projection(y) * h).sum(dim=1)
        for field, name, table in (("cls_logits", "classifier", False), ("embed", "embed", False),
                                   ("proxies", "proxy", True), ("tac_logits", "tac_classifier", False),
                                   ("tac_embed", "tac_embed", False), ("tac_proxies", "tac_proxy", True)):
            head = self._head(name)
            if head is None:
                continue
            if table:
                setattr(out, field, _table(head))
            elif name in ("classifier", "embed"):  # what head(h) computes, keeping the weight it used
                weight = _table(head)
                x = self.classifier_input(h) if name == "classifier" and self.classifier_input else h
                setattr(out, field, F.linear(x, weight, head.bias))
                out.head_weight = weight.detach()
            else:
                setattr(out, field, head(h))
        return out

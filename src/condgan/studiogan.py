"""PyTorch-StudioGAN's state-dict layout for condgan's nets, and the conversion both ways.

condgan's ``biggan``, ``resnet`` / ``sagan`` / ``resnet32`` and ``deep_cnn`` are the networks of StudioGAN's
``models/big_resnet.py``, ``models/resnet.py`` and ``models/deep_conv.py`` (the layout of its v0.4 tree, commit
947b35e); only the names differ, plus three stored forms:

* Spectral norm. StudioGAN's layers (``torch.nn.utils.spectral_norm``) store ``weight_orig``, ``weight_u`` and
  ``weight_v`` and, in eval mode, divide by sigma = u^T W v from the stored vectors. condgan stores ``weight`` and
  ``u`` and, in eval mode, uses sigma = ||W^T u|| (v recomputed). Import keeps W and u's direction and scales u by
  sigma / ||W^T u||, so condgan's eval-mode sigma is StudioGAN's exactly; the first training forward normalises
  u again. Export writes u / ||u|| and v = normalize(W^T u), whose u^T W v is condgan's sigma (exact for a unit u,
  as every condgan-trained layer has).
* Self-attention's gain: ``sigma`` [1] there, ``gamma`` [] here.
* The unconditional G of resnet.py / deep_conv.py has plain affine BNs where condgan has a one-class conditional
  BN: weight = 1 + gain, bias = bias.

condgan's ``stylegan2`` is StudioGAN's ``models/stylegan2.py`` (NVIDIA's ``networks.py``) under the same names, but
StudioGAN keeps D's heads at the top level (``linear1.weight``) where condgan has them under ``heads.``, and it
stores its FIR filter as a ``resample_filter`` buffer [4, 4] in every synthesis block and layer, D block and D
convolution: outer([1, 3, 3, 1]) / 64 from NVIDIA's ``setup_filter``. condgan's filter is a constant
(:mod:`condgan.nets.style_ops`), so export writes it and import checks that a file's is exactly that one.
condgan's ``pd`` head on StyleGAN2 is its own (StudioGAN's PD StyleGAN2 D calls an embedding it never builds):
it has no StudioGAN name.

:func:`to_studiogan` and :func:`load_studiogan` walk the same list of units, so each name is written once.
"""
from __future__ import annotations

import re
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from .nets.deep_cnn import DeepCNNGenerator
from .nets.layers import ConditionalBatchNorm2d, SelfAttention, _SpectralNorm
from .nets.resnet import ResNetGenerator
from .nets.style_layers import EqualConv2d, SynthesisLayer
from .nets.style_ops import fir_kernel
from .nets.stylegan2 import DiscriminatorBlock, StyleGAN2Discriminator, StyleGAN2Generator, SynthesisBlock
from .train.checkpoint import first_nonfinite

# condgan model.arch -> StudioGAN's MODEL.backbone of the same network
BACKBONES = {"biggan": "big_resnet", "biggan32": "big_resnet", "resnet": "resnet", "sagan": "resnet",
             "resnet32": "resnet", "deep_cnn": "deep_conv", "stylegan2": "stylegan2"}

# condgan module name -> StudioGAN's, inside residual blocks, self-attention and the D heads
_BLOCK = {"conv_sc": "conv2d0", "conv0": "conv2d1", "conv1": "conv2d2", "cbn1": "bn1", "cbn2": "bn2"}
_ATTENTION = {"theta": "conv1x1_theta", "phi": "conv1x1_phi", "g": "conv1x1_g", "o": "conv1x1_attn"}
_HEADS = {"adv": "linear1", "classifier": "linear2", "embed": "linear2", "projection": "embedding",
          "proxy": "embedding", "tac_classifier": "linear_mi", "tac_embed": "linear_mi", "tac_proxy": "embedding_mi"}
# StyleGAN2: the modules in which StudioGAN stores its FIR filter, and that buffer's leaf name
_FILTER_OWNERS = (SynthesisBlock, SynthesisLayer, DiscriminatorBlock, EqualConv2d)
FIXED = "resample_filter"
_BLOCK_KEY = re.compile(r"^(?:synthesis\.)?b(\d+)\.")


class StudioGANError(ValueError):
    """A StudioGAN state dict that does not fit the condgan net; the message names the first key."""


class NonFiniteState(StudioGANError):
    """A StudioGAN state dict holding NaN or infinity: the file is damaged, whichever net it is meant for."""


_SPECTRAL = {"weight_u": "u vector", "weight_v": "v vector", "weight_orig": "weight"}  # torch's spectral_norm


def check_finite(state: dict, what: str) -> None:
    """A one-line NonFiniteState naming the first tensor of a StudioGAN ``state`` (``what`` names the file) that
    holds NaN or infinity; a spectral-norm tensor is called one (its layer's sigma cannot be computed)."""
    bad = first_nonfinite({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    if bad is None:
        return
    part = _SPECTRAL.get(bad.rsplit(".", 1)[-1])
    kind = f", a spectral-norm {part}," if part else ""
    why = " (its layer's sigma, u^T W v, cannot be computed)" if part else ""
    raise NonFiniteState(f"{what}: '{bad}'{kind} holds NaN or infinity{why}: the file is damaged or its training "
                         f"diverged")


def resample_filter(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The [4, 4] filter condgan's StyleGAN2 resamples with, as StudioGAN stores it: outer([1, 3, 3, 1]) / 64."""
    return fir_kernel(1, 1.0, torch.empty((), dtype=dtype))[0, 0].clone()


def stylegan2_resolution(state: dict) -> int | None:
    """The image size of a StyleGAN2 G or D state dict (StudioGAN's or condgan's layout): its largest block,
    ``synthesis.b<R>`` (G) or ``b<R>`` (D); None when it has no such block."""
    keys = (k.removeprefix("module.") for k in state if isinstance(k, str))
    sizes = [int(m.group(1)) for k in keys if (m := _BLOCK_KEY.match(k))]
    return max(sizes, default=None)


def _stylegan2_name(path: str, net: nn.Module) -> str:
    """StudioGAN's name of a StyleGAN2 module: condgan's, with D's heads at the top level."""
    head, _, rest = path.partition(".")
    if not isinstance(net, StyleGAN2Discriminator) or head != "heads":
        return path
    if rest.split(".")[0] == "projection":
        raise StudioGANError("condgan's pd head on StyleGAN2 ('heads.projection') has no StudioGAN counterpart: "
                             "StudioGAN's PD StyleGAN2 D calls an embedding it never builds")
    return rest


def studiogan_name(path: str, net: nn.Module) -> str:
    """StudioGAN's name of condgan module ``path`` (a dotted name in ``net``, a G or a D of a BACKBONES arch).

    StudioGAN keeps its blocks in one list, ``blocks.<slot>.0``, with the self-attention layer a slot of its own
    right after the block it follows; condgan counts D's optimised block as block 1, as StudioGAN's attn_d_loc.
    """
    if isinstance(net, (StyleGAN2Generator, StyleGAN2Discriminator)):
        return _stylegan2_name(path, net)
    head, *rest = path.split(".")
    attn = getattr(net, "attn_after", 0)
    is_d = hasattr(net, "heads")  # every D has its heads; no G has

    def slot(block: int, inner: list[str]) -> str:
        name = f"blocks.{block - 1 + int(bool(attn) and block > attn)}.0"
        return ".".join([name, _BLOCK.get(inner[0], inner[0]), *inner[1:]]) if inner else name

    if head == "blocks":
        return slot(int(rest[0]) + (2 if is_d else 1), rest[1:])
    if head == "opt_block":
        return slot(1, rest)
    if head == "attn":
        return ".".join([f"blocks.{attn}.0", *([_ATTENTION[rest[0]]] if rest else [])])
    if head == "heads":
        return _HEADS[rest[0]]
    if head in ("ups", "norms"):  # deep_conv's G: blocks.i.0 = deconv0, bn0
        return ".".join([f"blocks.{rest[0]}.0", "deconv0" if head == "ups" else "bn0", *rest[1:]])
    if head == "body":  # deep_conv's D: blocks.i.0 = conv0, conv1 (each followed by its ReLU), then conv1
        layer = int(rest[0])
        return "conv1" if layer == 12 else f"blocks.{layer // 4}.0.conv{layer % 4 // 2}"
    if head == "conv_out":
        return "conv4" if isinstance(net, DeepCNNGenerator) else "conv2d5"
    return {"bn": "bn4"}.get(head, path)


def _units(net: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every module that owns tensors (in StudioGAN: StyleGAN2's filter owners too), in order;
    a one-class conditional BN of a G that StudioGAN builds with plain BNs counts as one unit (its children are
    not listed)."""
    plain_bn = isinstance(net, (ResNetGenerator, DeepCNNGenerator)) and not net.conditional
    skip: tuple[str, ...] = ()
    for name, module in net.named_modules():
        if not name or (skip and name.startswith(skip)):
            continue
        if plain_bn and isinstance(module, ConditionalBatchNorm2d):
            skip += (name + ".",)
            yield name, module
        elif (any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))
              or isinstance(module, _FILTER_OWNERS)):
            yield name, module


def _eval_weight(layer: nn.Module) -> torch.Tensor:
    return layer.normalized_weight() if isinstance(layer, _SpectralNorm) else layer.weight


@torch.no_grad()
def _export_unit(module: nn.Module) -> dict[str, torch.Tensor]:
    """One unit's tensors under StudioGAN's leaf names."""
    if isinstance(module, ConditionalBatchNorm2d):  # one class: a plain affine BN
        return {"weight": 1 + _eval_weight(module.gain)[:, 0], "bias": _eval_weight(module.bias)[:, 0],
                **module.bn.state_dict()}
    if isinstance(module, SelfAttention):
        return {"sigma": module.gamma.detach().reshape(1)}
    out = {k: v.detach() for k, v in module.state_dict().items() if "." not in k}
    if isinstance(module, _SpectralNorm):
        mat = out.pop("weight").reshape(module.weight.shape[0], -1)
        u = out.pop("u")
        out = {"weight_orig": module.weight.detach(), "weight_u": F.normalize(u, dim=0, eps=module.sn_eps),
               "weight_v": F.normalize(mat.t() @ u, dim=0, eps=module.sn_eps), **out}
    if isinstance(module, _FILTER_OWNERS):
        out[FIXED] = resample_filter(next(module.parameters()).dtype)
    return {k: v.clone() for k, v in out.items()}


def _layout(net: nn.Module) -> list[tuple[nn.Module, str, dict[str, torch.Tensor]]]:
    """(module, StudioGAN prefix, its tensors under StudioGAN's leaf names) of every unit, read in eval mode."""
    was_training = net.training
    net.eval()  # spectral norm's eval weights: no power step, so reading never changes u
    try:
        return [(module, studiogan_name(name, net), _export_unit(module)) for name, module in _units(net)]
    finally:
        net.train(was_training)


def to_studiogan(net: nn.Module) -> dict[str, torch.Tensor]:
    """``net``'s state dict in StudioGAN's layout: the same function in eval mode (see the module docstring)."""
    return {f"{prefix}.{k}": v for _, prefix, tensors in _layout(net) for k, v in tensors.items()}


def condgan_keys(net: nn.Module) -> dict[str, str]:
    """StudioGAN state key -> condgan's, for every tensor stored in both (not spectral norm's v, which condgan
    does not store, nor the plain BN that condgan stores as a one-class conditional BN, nor StyleGAN2's filter)."""
    rename = {"weight_orig": "weight", "weight_u": "u", "sigma": "gamma"}
    return {f"{studiogan_name(name, net)}.{k}": f"{name}.{rename.get(k, k)}" for name, module in _units(net)
            if not isinstance(module, ConditionalBatchNorm2d) for k in _export_unit(module)
            if k not in ("weight_v", FIXED)}


def _set_spectral(layer: nn.Module, weight: torch.Tensor, sigma: torch.Tensor, direction: torch.Tensor,
                  key: str) -> None:
    """Make SN ``layer`` compute ``weight / sigma`` in eval mode: u = direction * sigma / ||W^T direction||."""
    w64, d64, s64 = weight.double(), direction.double(), sigma.double()
    reach = torch.linalg.vector_norm(w64.reshape(w64.shape[0], -1).t() @ d64)
    if not (bool(torch.isfinite(s64)) and float(s64) > 0 and float(reach) > 0):
        raise StudioGANError(f"'{key}' gives spectral norm sigma {float(s64):.4g} (with ||W^T u|| "
                             f"{float(reach):.4g}): not a spectrally normalised layer condgan can represent")
    layer.weight.copy_(weight)
    layer.u.copy_(d64 * (s64 / reach))


@torch.no_grad()
def _import_unit(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Set one unit from its StudioGAN tensors (keys and shapes already checked)."""
    if isinstance(module, ConditionalBatchNorm2d):
        module.bn.load_state_dict({k: tensors[k] for k in module.bn.state_dict()})
        gain, bias = (tensors["weight"] - 1)[:, None], tensors["bias"][:, None]
        for layer, value, name in ((module.gain, gain, "weight"), (module.bias, bias, "bias")):
            if isinstance(layer, _SpectralNorm):  # a column's sigma is its norm: u along it, scaled to sigma 1
                _set_spectral(layer, value, torch.ones(()), F.normalize(value[:, 0], dim=0), f"{prefix}.{name}")
            else:
                layer.weight.copy_(value)
        return
    if isinstance(module, SelfAttention):
        module.gamma.copy_(tensors["sigma"].reshape(()))
        return
    own = {k: tensors[k] for k in module.state_dict() if "." not in k and k not in ("weight", "u")}
    if isinstance(module, _SpectralNorm):
        w, u, v = tensors["weight_orig"], tensors["weight_u"], tensors["weight_v"]
        sigma = u.double() @ w.double().reshape(w.shape[0], -1) @ v.double()
        _set_spectral(module, w, sigma, u, f"{prefix}.weight_u")
    elif "weight" in module.state_dict():
        own["weight"] = tensors["weight"]
    for k, v in own.items():
        getattr(module, k).copy_(v)


def load_studiogan(net: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Set condgan ``net`` from ``state`` in StudioGAN's layout (``what`` names it in errors, e.g. "G_ema of X").

    Every tensor must be finite (else a NonFiniteState), every key must be there with its shape, and nothing else,
    and StyleGAN2's ``resample_filter`` buffers must hold condgan's filter: the first that does not fit is a
    one-line StudioGANError (before ``net`` changes).
    A DataParallel ``module.`` prefix on every key is dropped.
    """
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    check_finite(state, what)
    layout = _layout(net)
    expected = {f"{prefix}.{k}": v for _, prefix, tensors in layout for k, v in tensors.items()}
    size, own = stylegan2_resolution(state), stylegan2_resolution(expected)
    if isinstance(net, (StyleGAN2Generator, StyleGAN2Discriminator)) and size is not None and size != own:
        raise StudioGANError(f"{what}: a {size} px StyleGAN2 (its largest block is b{size}); condgan's net is "
                             f"{own} px (data.resolution)")
    for key, want in expected.items():
        have = state.get(key)
        if have is None:
            raise StudioGANError(f"{what}: no '{key}', which condgan's net needs (shape {tuple(want.shape)}); "
                                 f"is it another architecture or config?")
        if not isinstance(have, torch.Tensor) or have.shape != want.shape:
            shape = tuple(have.shape) if isinstance(have, torch.Tensor) else type(have).__name__
            raise StudioGANError(f"{what}: '{key}' is {shape}, condgan's net expects {tuple(want.shape)}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise StudioGANError(f"{what}: '{extra[0]}' has no place in condgan's net ({len(extra)} such keys): "
                             f"is it another architecture or config?")
    for key, want in expected.items():
        if key.rsplit(".", 1)[-1] == FIXED and not torch.equal(state[key].double(), want.double()):
            raise StudioGANError(f"{what}: '{key}' is not the filter condgan's StyleGAN2 resamples with "
                                 f"(outer([1, 3, 3, 1]) / 64, NVIDIA's setup_filter): a net with another filter "
                                 f"cannot be imported")
    for module, prefix, tensors in layout:
        try:
            _import_unit(module, {k: state[f"{prefix}.{k}"] for k in tensors}, prefix)
        except StudioGANError as e:
            raise StudioGANError(f"{what}: {e}") from None

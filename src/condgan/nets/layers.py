"""Building blocks shared by every architecture: spectral norm, conditional BN, self-attention, init.

Spectral normalisation is our own small implementation (not ``torch.nn.utils.spectral_norm``) so the
trainable tensor keeps its plain name ``weight``: state dicts read ``weight``, ``bias``, ``u`` and
parameter counts equal those of the unnormalised layer.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

SN_EPS = 1e-6  # BigGAN / StudioGAN value; also the floor of the vector norms in the power iteration

INIT_METHODS = ("orthogonal", "normal", "xavier", "default")


class _SpectralNorm:
    """Mixin for a layer with a ``weight`` whose dim 0 is the output dim: uses ``weight / sigma``.

    sigma is the top singular value of ``weight.reshape(out, -1)``, estimated with one power iteration
    per training forward (the left vector ``u`` persists as a buffer, so the estimate converges over
    steps). In eval mode ``u`` is left untouched and condgan recomputes ``v = normalize(W^T u)`` from it:
    sigma = u^T W v. Only ``u`` is stored. ``torch.nn.utils.spectral_norm`` (StudioGAN's layers) stores
    ``v`` too and in eval mode uses both as stored, with no power step; the two agree exactly when its
    stored v equals normalize(W^T u) (as after a condgan training forward) and up to the power iteration's
    convergence otherwise.
    """

    weight: nn.Parameter
    u: torch.Tensor
    training: bool

    def _init_spectral_norm(self, eps: float) -> None:
        self.sn_eps = eps
        u = torch.randn(self.weight.shape[0], dtype=self.weight.dtype, device=self.weight.device)
        self.register_buffer("u", F.normalize(u, dim=0, eps=eps))  # type: ignore[attr-defined]

    def normalized_weight(self) -> torch.Tensor:
        """``weight / sigma``, same shape as ``weight``; differentiable through sigma (u, v held fixed)."""
        w = self.weight
        # fp16 power iterations under autocast lose the precision sigma needs; do them in the weight's dtype.
        with torch.autocast(device_type=w.device.type, enabled=False):
            mat = w.reshape(w.shape[0], -1)
            with torch.no_grad():
                if self.training:
                    v = F.normalize(torch.mv(mat.t(), self.u), dim=0, eps=self.sn_eps)
                    u = F.normalize(torch.mv(mat, v), dim=0, eps=self.sn_eps)
                    self.u.copy_(u)
                else:
                    # A copy, so a later training forward updating the buffer cannot invalidate this graph.
                    u = self.u.clone()
                    v = F.normalize(torch.mv(mat.t(), u), dim=0, eps=self.sn_eps)
            # u is a fresh tensor (not the buffer), so calling the layer twice before backward is safe.
            sigma = torch.dot(u, torch.mv(mat, v))
        return w / sigma

    def sigma(self) -> torch.Tensor:
        """Current estimate of the top singular value (scalar, no grad), without updating ``u``."""
        with torch.no_grad():
            mat = self.weight.reshape(self.weight.shape[0], -1)
            v = F.normalize(torch.mv(mat.t(), self.u), dim=0, eps=self.sn_eps)
            return torch.dot(self.u, torch.mv(mat, v))


class SNConv2d(_SpectralNorm, nn.Conv2d):
    """Spectrally normalised ``nn.Conv2d``: x [B, in, H, W] -> [B, out, H', W']."""

    def __init__(self, *args, sn_eps: float = SN_EPS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_spectral_norm(sn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)


class SNLinear(_SpectralNorm, nn.Linear):
    """Spectrally normalised ``nn.Linear``: x [..., in] -> [..., out]."""

    def __init__(self, *args, sn_eps: float = SN_EPS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_spectral_norm(sn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class SNEmbedding(_SpectralNorm, nn.Embedding):
    """Spectrally normalised ``nn.Embedding`` (u over dim 0, the embeddings): idx [...] -> [..., dim]."""

    def __init__(self, *args, sn_eps: float = SN_EPS, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_spectral_norm(sn_eps)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.normalized_weight(), self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)


def conv_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The weight ``conv`` convolves with: ``weight / sigma`` for a spectrally normalised conv."""
    return conv.normalized_weight() if isinstance(conv, _SpectralNorm) else conv.weight


def _fold_taps(w: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3 taps of ``w`` along ``dim`` folded into 2 for each output phase of a 2x nearest upsampling:
    phase 0 sees source offsets (-1, 0) = (t0, t1 + t2), phase 1 sees (0, +1) = (t0 + t1, t2)."""
    t0, t1, t2 = w.unbind(dim)
    return torch.stack([t0, t1 + t2], dim), torch.stack([t0 + t1, t2], dim)


def upsample_conv3x3(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(nearest_2x_upsample(x))`` for a 3x3, stride-1, padding-1 ``conv``, at 4/9 of its multiply-adds.

    x [B, I, H, W] -> [B, O, 2H, 2W]. Output pixel (2i + a, 2j + c) reads source rows {i - 1, i} (a = 0) or
    {i, i + 1} (a = 1), and likewise columns, so on the source image the 3x3 kernel is one 2x2 kernel per
    phase (a, c). A single 2x2 conv with 4 O outputs over the 1-padded source gives all four phases (each at
    its own offset) and pixel_shuffle interleaves them. The same linear map: only the rounding differs.
    """
    w = conv_weight(conv)                                   # [O, I, 3, 3]
    kernels = [k for rows in _fold_taps(w, 2) for k in _fold_taps(rows, 3)]  # phases 00, 01, 10, 11: [O, I, 2, 2]
    k = torch.stack(kernels, 1).flatten(0, 1)               # [4 O, I, 2, 2], output o * 4 + phase
    bias = None if conv.bias is None else conv.bias.repeat_interleave(4)
    b, _, h, wd = x.shape
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), k, bias).unflatten(1, (-1, 4))  # [B, O, 4, H + 1, W + 1]
    phases = torch.stack([y[:, :, 2 * a + c, a:a + h, c:c + wd] for a in (0, 1) for c in (0, 1)], 2)
    return F.pixel_shuffle(phases.flatten(1, 2), 2)


def conv2d(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0,
           bias: bool = True, sn: bool = True) -> nn.Conv2d:
    """A Conv2d, spectrally normalised when ``sn``."""
    cls = SNConv2d if sn else nn.Conv2d
    return cls(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=bias)


def linear(in_f: int, out_f: int, bias: bool = True, sn: bool = True) -> nn.Linear:
    """A Linear, spectrally normalised when ``sn``."""
    cls = SNLinear if sn else nn.Linear
    return cls(in_f, out_f, bias=bias)


def embedding(num: int, dim: int, sn: bool = True) -> nn.Embedding:
    """An Embedding of ``num`` vectors of size ``dim``, spectrally normalised when ``sn``."""
    cls = SNEmbedding if sn else nn.Embedding
    return cls(num, dim)


class ConditionalBatchNorm2d(nn.Module):
    """BN without affine, then a per-sample affine from a conditioning vector (BigGAN-style).

    forward(x [B, C, H, W], c [B, cond_dim]) -> [B, C, H, W] = bn(x) * (1 + gain(c)) + bias(c).
    """

    def __init__(self, num_features: int, cond_dim: int, sn: bool, eps: float = 1e-4,
                 momentum: float = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        # No biases: "1 +" centres the gain at identity, and bias(c) already is the shift.
        self.gain = linear(cond_dim, num_features, bias=False, sn=sn)
        self.bias = linear(cond_dim, num_features, bias=False, sn=sn)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = self.gain(c)[:, :, None, None]
        bias = self.bias(c)[:, :, None, None]
        return self.bn(x) * (1 + gain) + bias


def class_onehot(y: torch.Tensor, num_classes: int, conditional: bool, dtype: torch.dtype) -> torch.Tensor:
    """One-hot labels [B, num_classes] feeding a per-class conditional BN (class weights y [B, C] as they are:
    a soft label); all class 0 when unconditional, which leaves a single learned BN affine (build the BN with
    num_classes = 1 then)."""
    if not conditional:
        return F.one_hot(torch.zeros(y.shape[0], dtype=torch.long, device=y.device), num_classes).to(dtype)
    if y.is_floating_point():
        return class_weights(y, num_classes).to(dtype)
    return F.one_hot(y, num_classes).to(dtype)


def class_embedding(table: nn.Embedding, y: torch.Tensor) -> torch.Tensor:
    """The class vectors of labels y [B] int64 (rows of ``table``), or of class weights y [B, C] (the weighted
    sum of the rows: a soft label, e.g. a point between two classes) -> [B, dim]."""
    if y.is_floating_point():
        return class_weights(y, table.num_embeddings).to(table.weight.dtype) @ table.weight
    return table(y)


def class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``y`` checked to be class weights [B, num_classes] (a ValueError naming the shape otherwise)."""
    if y.dim() != 2 or y.shape[1] != num_classes:
        raise ValueError(f"class weights must be [batch, {num_classes}]; got {tuple(y.shape)}")
    return y


class SelfAttention(nn.Module):
    """SAGAN/BigGAN self-attention with 2x2 max-pooled keys and values.

    forward(x [B, C, H, W], H and W even) -> x + gamma * o(attended values), same shape; gamma starts at
    0 so the layer starts as the identity.
    """

    def __init__(self, channels: int, sn: bool) -> None:
        super().__init__()
        if channels < 8:
            raise ValueError(f"SelfAttention needs at least 8 channels; got {channels}")
        self.theta = conv2d(channels, channels // 8, 1, bias=False, sn=sn)
        self.phi = conv2d(channels, channels // 8, 1, bias=False, sn=sn)
        self.g = conv2d(channels, channels // 2, 1, bias=False, sn=sn)
        self.o = conv2d(channels // 2, channels, 1, bias=False, sn=sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2)                      # [B, C/8, HW]
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)         # [B, C/8, HW/4]
        g = F.max_pool2d(self.g(x), 2).flatten(2)             # [B, C/2, HW/4]
        attn = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # [B, HW, HW/4]
        attended = torch.bmm(g, attn.transpose(1, 2)).view(b, g.shape[1], h, w)
        return x + self.gamma * self.o(attended)


def init_weights(module: nn.Module, method: str) -> None:
    """Re-initialise every Conv2d/ConvTranspose2d/Linear/Embedding weight in ``module`` (biases to 0).

    method: "orthogonal" (BigGAN), "normal" (N(0, 0.02), DCGAN), "xavier" (Xavier-uniform, gain 1: SNGAN's
    and FastGAN's code) or "default" (keep torch's init).
    Normalisation layers are left alone.
    """
    if method not in INIT_METHODS:
        raise ValueError(f"unknown init method {method!r}; expected one of {INIT_METHODS}")
    if method == "default":
        return
    for m in module.modules():
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            continue
        if method == "orthogonal":
            nn.init.orthogonal_(m.weight)
        elif method == "xavier":
            nn.init.xavier_uniform_(m.weight)
        else:
            nn.init.normal_(m.weight, 0.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """x in float32 if it is half precision (bfloat16, float16); float32 and float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def count_parameters(module: nn.Module) -> int:
    """Number of scalars in ``module``'s parameters (SN layers count their single ``weight``)."""
    return sum(p.numel() for p in module.parameters())

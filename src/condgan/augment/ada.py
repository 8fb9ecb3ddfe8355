"""ADA's augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data").

Op for op as NVIDIA's stylegan2-ada-pytorch (``training/augment.py``, ``AugmentPipe``); StudioGAN's ADA is a port
of the same code. Images are float [N, C, H, W] in [-1, 1], C = 3 (the main case) or 1. Every op fires
independently per sample with probability p (a sample whose op does not fire gets the op's identity):

    blit   xflip      mirror left-right with probability 1/2
           rotate90   k quarter turns, k uniform in {0, 1, 2, 3}
           xint       integer translation round(t * size), t ~ U(-0.125, 0.125) per axis
    geom   scale      isotropic scale 2^(0.2 z)                 z ~ N(0, 1)
           rotate     arbitrary rotation, angle ~ U(-pi, pi), once before and once after the anisotropic
                      scale, each with probability 1 - sqrt(1 - p), so that P(at least one of them) = p
           aniso      scale x by a, y by 1 / a, a = 2^(0.2 z)
           xfrac      translation t * size, t ~ N(0, 0.125^2) per axis
    colour brightness add b ~ N(0, 0.2^2)
           contrast   multiply by 2^(0.5 z)
           lumaflip   with probability 1/2, reflect the colour through the plane orthogonal to the luma axis
           hue        rotate the colour about the luma axis by an angle ~ U(-pi, pi)
           saturation scale the colour's component orthogonal to the luma axis by 2^z

The luma axis is v = (1, 1, 1) / sqrt(3) in the [-1, 1] colour space (grey 0 is the rotation centre).

Geometry. Coordinates are centred pixel units, (x, y) = (column - (W - 1) / 2, row - (H - 1) / 2), y down. The
blit and geom ops compose into one 3x3 *inverse* matrix per sample, mapping an output position to the input
position it samples, as the product of the ops' inverses in the order listed above (so the forward transform
applies xflip first and xfrac last). The warp reflect-pads the image, upsamples it 2x with the sym6 wavelet
low-pass (input pixel i sits at upsampled sample 2i), samples it bilinearly (zeros outside) on a grid 2x as
dense as the output and 3 pixels wider on each side, then downsamples 2x with the same filter, which crops to
the output size. Integer shifts (and the identity) are exact up to float rounding, because up- then
down-sampling with an orthogonal wavelet filter is the identity. Flips and quarter turns are not, here as in the
reference: reversing an axis reverses the upsampled signal, and sym6 is not symmetric, so along each reversed
axis the result is the exact flip / torch.rot90 of the image filtered by a short kernel (centre tap 0.965,
others up to 0.1 in magnitude, centroid -0.098 pixel); on noise images that is up to ~0.3 away from the pixel
permutation, on smooth ones much less.

Colour ops compose into one 4x4 homogeneous matrix per sample (applied to (r, g, b, 1)) in the order listed.
A 1-channel image is treated as the grey colour (g, g, g): its output is the mean over the three output channels
of that matrix applied to (g, g, g, 1). Hue and saturation leave grey unchanged, so for C = 1 they are neither
drawn nor applied (as the reference).

Draw order (``draw_ada_params``; what a seeded generator yields). For each op enabled by the pipeline, in the
order of the table above: first its value, then one uniform per sample that gates it (fires when below p):

    xflip     U [N] (value floor(2u)),      gate U [N]
    rotate90  U [N] (value floor(4u)),      gate U [N]
    xint      U [N, 2] (x, y),              gate U [N]
    scale     N [N],                        gate U [N]
    rotate    U [N] (the pre-rotation),     gate U [N]
    aniso     N [N],                        gate U [N]
    rotate    U [N] (the post-rotation),    gate U [N]
    xfrac     N [N, 2] (x, y),              gate U [N]
    brightness N [N], gate U [N];  contrast N [N], gate U [N];  lumaflip U [N], gate U [N]
    hue       U [N], gate U [N]; saturation N [N], gate U [N]   (only when C > 1)

U: torch.rand, N: torch.randn, always float32 on x's device. This is the reference's order, so with the same
seed the global RNG gives the reference's augmentations.

No host synchronisation: everything is batched on x's device, p may be a 0-dim device tensor, and no tensor
value decides a Python branch or a tensor size.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .resample import SYM6, downsample_2x, sym6_lowpass, upsample_2x

# --- pipelines -------------------------------------------------------------------------------------------------

BLIT_OPS = ("xflip", "rotate90", "xint")
GEOM_OPS = ("scale", "rotate", "aniso", "xfrac")
COLOUR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")

# Pipeline name -> the ops it enables (each at the reference's full strength: probability p).
ADA_PIPELINES: dict[str, frozenset[str]] = {
    "bgc": frozenset(BLIT_OPS + GEOM_OPS + COLOUR_OPS),
    "bg": frozenset(BLIT_OPS + GEOM_OPS),
    "b": frozenset(BLIT_OPS),
    "g": frozenset(GEOM_OPS),
    "c": frozenset(COLOUR_OPS),
}

# Op strengths (the reference's defaults).
XINT_MAX = 0.125        # integer translation range, fraction of the image size
SCALE_STD = 0.2         # log2 std of the isotropic scale
ROTATE_MAX = 1.0        # range of the arbitrary rotation, 1 = the full circle
ANISO_STD = 0.2         # log2 std of the anisotropic scale
XFRAC_STD = 0.125       # std of the fractional translation, fraction of the image size
BRIGHTNESS_STD = 0.2    # std of the added brightness
CONTRAST_STD = 0.5      # log2 std of the contrast factor
HUE_MAX = 1.0           # range of the hue rotation, 1 = the full circle
SATURATION_STD = 1.0    # log2 std of the saturation factor

# Extra low-res pixels on each side of the warp's sampling grid, so the downsampling filter sees no grid edge.
GRID_BORDER = len(SYM6) // 4


def pipeline_ops(pipeline: str) -> frozenset[str]:
    """The ops a pipeline name enables; ValueError for an unknown name."""
    try:
        return ADA_PIPELINES[pipeline]
    except KeyError:
        raise ValueError(f"unknown ADA pipeline {pipeline!r}; choose one of {', '.join(ADA_PIPELINES)}") from None


# --- parameters --------------------------------------------------------------------------------------------------

class AdaParams(NamedTuple):
    """Per-sample parameters of every op, [N] or [N, 2]; an op that did not fire holds its identity value."""

    xflip: Tensor        # [N] 1 = mirror left-right, 0 = keep
    rotate90: Tensor     # [N] quarter turns k in {0, 1, 2, 3}: the image becomes torch.rot90(x, k, dims=(2, 3))
    xint: Tensor         # [N, 2] integer translation (x, y) in pixels; content moves right / down
    scale: Tensor        # [N] isotropic scale factor; > 1 enlarges the content
    rotate_pre: Tensor   # [N] radians, the sense of rotate90 (pi / 2 is one torch.rot90 step)
    aniso: Tensor        # [N] content scaled by a along x and by 1 / a along y
    rotate_post: Tensor  # [N] radians, as rotate_pre
    xfrac: Tensor        # [N, 2] translation (x, y) in pixels, any real value
    brightness: Tensor   # [N] added to every channel
    contrast: Tensor     # [N] multiplies every channel
    lumaflip: Tensor     # [N] 1 = Householder reflection about the luma axis, 0 = keep
    hue: Tensor          # [N] radians of rotation about the luma axis (right-handed: 2 pi / 3 sends red to green)
    saturation: Tensor   # [N] factor on the colour's component orthogonal to the luma axis

    def to(self, dtype: torch.dtype) -> AdaParams:
        """The same parameters in another floating dtype."""
        return AdaParams(*(t.to(dtype) for t in self))


def identity_params(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> AdaParams:
    """Parameters of n samples on which no op fires (the whole pipeline is the identity)."""
    def zeros(*shape: int) -> Tensor:
        return torch.zeros(n, *shape, dtype=dtype, device=device)

    def ones() -> Tensor:
        return torch.ones(n, dtype=dtype, device=device)

    return AdaParams(xflip=zeros(), rotate90=zeros(), xint=zeros(2), scale=ones(), rotate_pre=zeros(), aniso=ones(),
                     rotate_post=zeros(), xfrac=zeros(2), brightness=zeros(), contrast=ones(), lumaflip=zeros(),
                     hue=zeros(), saturation=ones())


def rotation_probability(p: float | Tensor) -> float | Tensor:
    """Probability 1 - sqrt(1 - p) of each of the two rotations, so that P(pre or post) = p (p clamped to [0, 1]).

    A Python float is computed in float32 like a tensor p, so that float and 0-dim tensor p gate identically.
    """
    if isinstance(p, Tensor):
        return 1 - torch.sqrt((1 - p).clamp(0, 1))
    q = np.clip(np.float32(1) - np.float32(p), np.float32(0), np.float32(1))
    return float(np.float32(1) - np.sqrt(q, dtype=np.float32))


def draw_ada_params(n: int, channels: int, height: int, width: int, p: float | Tensor, *, pipeline: str = "bgc",
                    generator: torch.Generator | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> AdaParams:
    """Draw every op's parameters for n images of [channels, height, width], in the module docstring's order.

    p: probability of each op (Python float or 0-dim tensor, values above 1 fire always); generator: on
    ``device`` (None: torch's global RNG). Ops the pipeline does not enable draw nothing and keep their
    identity. The draws and the gating comparisons are float32 whatever ``dtype`` (the same random stream and
    the same firing decisions); the values are computed from them in ``dtype``, on ``device``.
    """
    ops = pipeline_ops(pipeline)
    params = identity_params(n, device, dtype)._asdict()

    def uniform(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=device).to(dtype)

    def normal(*shape: int) -> Tensor:
        return torch.randn(shape, generator=generator, device=device).to(dtype)

    def gated(value: Tensor, identity: float, prob: float | Tensor) -> Tensor:
        # One gate per sample (shared by an [N, 2] value's two components), drawn after the value.
        fires = torch.rand((n, *([1] * (value.ndim - 1))), generator=generator, device=device) < prob
        return torch.where(fires, value, identity)

    size = (width, height)
    if "xflip" in ops:
        params["xflip"] = gated(torch.floor(uniform(n) * 2), 0.0, p)
    if "rotate90" in ops:
        params["rotate90"] = gated(torch.floor(uniform(n) * 4), 0.0, p)
    if "xint" in ops:
        t = gated((uniform(n, 2) * 2 - 1) * XINT_MAX, 0.0, p)
        params["xint"] = torch.stack([torch.round(t[:, i] * size[i]) for i in (0, 1)], dim=1)
    if "scale" in ops:
        params["scale"] = gated(torch.exp2(normal(n) * SCALE_STD), 1.0, p)
    p_rot = rotation_probability(p)
    if "rotate" in ops:
        params["rotate_pre"] = gated((uniform(n) * 2 - 1) * (math.pi * ROTATE_MAX), 0.0, p_rot)
    if "aniso" in ops:
        params["aniso"] = gated(torch.exp2(normal(n) * ANISO_STD), 1.0, p)
    if "rotate" in ops:
        params["rotate_post"] = gated((uniform(n) * 2 - 1) * (math.pi * ROTATE_MAX), 0.0, p_rot)
    if "xfrac" in ops:
        t = gated(normal(n, 2) * XFRAC_STD, 0.0, p)
        params["xfrac"] = torch.stack([t[:, i] * size[i] for i in (0, 1)], dim=1)
    if "brightness" in ops:
        params["brightness"] = gated(normal(n) * BRIGHTNESS_STD, 0.0, p)
    if "contrast" in ops:
        params["contrast"] = gated(torch.exp2(normal(n) * CONTRAST_STD), 1.0, p)
    if "lumaflip" in ops:
        params["lumaflip"] = gated(torch.floor(uniform(n) * 2), 0.0, p)
    if "hue" in ops and channels > 1:
        params["hue"] = gated((uniform(n) * 2 - 1) * (math.pi * HUE_MAX), 0.0, p)
    if "saturation" in ops and channels > 1:
        params["saturation"] = gated(torch.exp2(normal(n) * SATURATION_STD), 1.0, p)
    return AdaParams(**params)


# --- geometric matrices ---------------------------------------------------------------------------------------

def _identity_batch(like: Tensor, size: int) -> Tensor:
    """[N, size, size] identity matrices in like's dtype and device (like: [N, ...])."""
    eye = torch.eye(size, dtype=like.dtype, device=like.device)
    return eye.expand(like.shape[0], size, size).clone()


def translation_2d(t: Tensor) -> Tensor:
    """[N, 2] shifts (x, y) -> [N, 3, 3] homogeneous matrices adding them."""
    m = _identity_batch(t, 3)
    m[:, :2, 2] = t
    return m


def scaling_2d(sx: Tensor, sy: Tensor) -> Tensor:
    """[N] factors along x and y -> [N, 3, 3] diagonal matrices."""
    m = _identity_batch(sx, 3)
    m[:, 0, 0] = sx
    m[:, 1, 1] = sy
    return m


def rotation_2d(theta: Tensor) -> Tensor:
    """[N] angles -> [N, 3, 3] matrices [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]."""
    m = _identity_batch(theta, 3)
    cos, sin = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


def geometric_matrix(params: AdaParams) -> Tensor:
    """[N, 3, 3] inverse transform: output position -> input position it samples (centred pixel units).

    The product of each op's inverse, xflip's on the left and xfrac's on the right, i.e. the forward transform
    applies xflip first and xfrac last. Ops at their identity contribute identity factors.
    """
    flip = 1 - 2 * params.xflip
    factors = [
        scaling_2d(flip, torch.ones_like(flip)),                 # a mirror is its own inverse
        rotation_2d(params.rotate90 * (math.pi / 2)),
        translation_2d(-params.xint),
        scaling_2d(1 / params.scale, 1 / params.scale),
        rotation_2d(params.rotate_pre),
        scaling_2d(1 / params.aniso, params.aniso),
        rotation_2d(params.rotate_post),
        translation_2d(-params.xfrac),
    ]
    return functools.reduce(torch.matmul, factors)


# --- colour matrices ------------------------------------------------------------------------------------------

@functools.cache
def _luma_operators(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """4x4 homogeneous blocks (zero homogeneous row and column) for the luma axis v = (1, 1, 1) / sqrt(3):
    v v^T (projection onto the axis), I3 - v v^T (onto the plane orthogonal to it) and K with K c = v x c.
    Cached per device and dtype so that building colour matrices copies nothing from the host after the first
    call."""
    v = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    blocks = [np.pad(a, ((0, 1), (0, 1))) for a in (np.outer(v, v), np.eye(3) - np.outer(v, v), cross)]
    vvt, chroma, cross = (torch.as_tensor(b, dtype=dtype, device=device) for b in blocks)
    return vvt, chroma, cross


def colour_matrix(params: AdaParams) -> Tensor:
    """[N, 4, 4] forward colour transform on (r, g, b, 1): saturation @ hue @ lumaflip @ contrast @ brightness."""
    n = params.brightness.shape[0]
    eye = _identity_batch(params.brightness, 4)
    vvt, chroma, cross = _luma_operators(params.brightness.device, params.brightness.dtype)

    def per_sample(t: Tensor) -> Tensor:
        return t.reshape(n, 1, 1)

    brightness = eye.clone()
    brightness[:, :3, 3] = params.brightness[:, None]
    contrast = eye.clone()
    contrast[:, :3, :3] *= per_sample(params.contrast)
    lumaflip = eye - 2 * per_sample(params.lumaflip) * vvt                       # Householder reflection
    sin, cos = per_sample(torch.sin(params.hue)), per_sample(torch.cos(params.hue))
    hue = eye + sin * cross + (1 - cos) * (cross @ cross)                        # Rodrigues' formula
    # The reference's saturation matrix also scales the homogeneous coordinate by s; that row is never used
    # (saturation is the last factor and only the top three rows are applied), so it is kept at 1 here.
    saturation = eye + (per_sample(params.saturation) - 1) * chroma
    return saturation @ hue @ lumaflip @ contrast @ brightness


# --- applying ---------------------------------------------------------------------------------------------------

def _affine_3x3(sx: float, sy: float, tx: float, ty: float, like: Tensor) -> Tensor:
    """[3, 3] matrix (x, y) -> (sx x + tx, sy y + ty) in like's dtype and device, filled on the device."""
    m = torch.eye(3, dtype=like.dtype, device=like.device)
    m[0, 0], m[1, 1], m[0, 2], m[1, 2] = sx, sy, tx, ty
    return m


def warp_images(x: Tensor, g_inv: Tensor) -> Tensor:
    """Resample x [N, C, H, W] through per-sample inverse transforms g_inv [N, 3, 3] -> [N, C, H, W].

    g_inv maps an output position to the input position it samples, both in centred pixel units (see the module
    docstring). Reflect padding, 2x sym6 upsampling, bilinear sampling (zeros outside the padded image), 2x sym6
    downsampling. Linear and differentiable in x (to any order).
    """
    n, c, h, w = x.shape
    if n == 0:  # affine_grid refuses an empty batch
        return x.clone()
    f = sym6_lowpass(x.device, x.dtype)
    # The reference pads by the margin the batch's transformed corners need (a value read back to the host),
    # clamped to H - 1 rows and W - 1 columns per side, the most reflect padding allows. Padding always by that
    # bound keeps the host out of the loop. It gives the reference's result up to float rounding wherever the
    # reference's margin covers what the filters read; where it does not (its margin ignores the grid's border
    # and the filter tails), the reference's outermost one or two rows / columns read a few zeros past its
    # padding (measured: differences up to ~4e-5 on random [-1, 1] images) where this warp reads reflected pixels.
    # Cost: the padded, upsampled image is about 36x the input.
    pad_y, pad_x = h - 1, w - 1
    up = upsample_2x(F.pad(x, [pad_x, pad_x, pad_y, pad_y], mode="reflect"), f)
    grid_h, grid_w = 2 * (h + 2 * GRID_BORDER), 2 * (w + 2 * GRID_BORDER)
    # affine_grid and grid_sample (align_corners=False) use normalised coordinates n, sample J at
    # n = (2J + 1) / size - 1. Grid sample 2 (i + GRID_BORDER) lies on output pixel i, so the centred output
    # position of n is n size / 4 + 1/4; input pixel i lies on upsampled sample 2 (i + pad), so a centred input
    # position c is at n = (4c - 1) / size there.
    grid_to_centred = _affine_3x3(grid_w / 4, grid_h / 4, 0.25, 0.25, x)
    centred_to_input = _affine_3x3(4 / up.shape[3], 4 / up.shape[2], -1 / up.shape[3], -1 / up.shape[2], x)
    theta = (centred_to_input @ g_inv.to(x.dtype) @ grid_to_centred)[:, :2, :]
    grid = F.affine_grid(theta, [n, c, grid_h, grid_w], align_corners=False)
    sampled = F.grid_sample(up, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample_2x(sampled, f)


def recolour_images(x: Tensor, c_mat: Tensor) -> Tensor:
    """Apply per-sample colour matrices c_mat [N, 4, 4] to x [N, C, H, W], C = 3 or 1 -> [N, C, H, W].

    C = 3: each pixel's (r, g, b, 1) -> top three rows of c_mat times it. C = 1: a grey g is taken as (g, g, g)
    and the result is the mean of the three output channels (the mean of c_mat's top rows applied to it).
    """
    n, c, h, w = x.shape
    c_mat = c_mat.to(x.dtype)
    if c == 3:
        out = torch.baddbmm(c_mat[:, :3, 3:], c_mat[:, :3, :3], x.reshape(n, 3, h * w))
        return out.reshape(n, c, h, w)
    if c == 1:
        row = c_mat[:, :3, :].mean(dim=1)  # [N, 4]
        return x * row[:, :3].sum(dim=1).reshape(n, 1, 1, 1) + row[:, 3].reshape(n, 1, 1, 1)
    raise ValueError(f"colour augmentation needs 1 or 3 channels, got {c}")


def apply_ada(x: Tensor, params: AdaParams, pipeline: str = "bgc") -> Tensor:
    """x [N, C, H, W] augmented with given parameters: the warp if the pipeline has blit or geom ops, then the
    colour transform if it has colour ops (each skipped, as the reference, when the pipeline has none)."""
    ops = pipeline_ops(pipeline)
    params = params.to(x.dtype)
    if ops & frozenset(BLIT_OPS + GEOM_OPS):
        x = warp_images(x, geometric_matrix(params))
    if ops & frozenset(COLOUR_OPS):
        x = recolour_images(x, colour_matrix(params))
    return x


def ada_augment(x: Tensor, p: float | Tensor, generator: torch.Generator | None = None,
                pipeline: str = "bgc") -> Tensor:
    """ADA: x [N, C, H, W] in [-1, 1] (C = 3 or 1) -> the augmented batch, same shape and dtype.

    p: each op's probability, a Python float or a 0-dim tensor (on x's device, or CPU). generator: on x's device,
    None for torch's global RNG. Differentiable with respect to x; no host synchronisation. Computes in x's dtype
    (float16 / bfloat16 in float32).
    """
    if x.ndim != 4:
        raise ValueError(f"ada_augment expects [N, C, H, W] images, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if pipeline_ops(pipeline) & frozenset(COLOUR_OPS) and c not in (1, 3):
        raise ValueError(f"ADA pipeline {pipeline!r} has colour ops, which need 1 or 3 channels, got {c}")
    work = torch.promote_types(x.dtype, torch.float32)
    params = draw_ada_params(n, c, h, w, p, pipeline=pipeline, generator=generator, device=x.device, dtype=work)
    return apply_ada(x.to(work), params, pipeline).to(x.dtype)

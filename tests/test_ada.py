"""ADA (condgan.augment.ada) against independent references: hand-written matrices, a numpy/scipy warp, per-pixel
numpy colour maths, known answers (flips, quarter turns, shifts) and statistics of the draws."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
from scipy.spatial.transform import Rotation
from torch.utils._python_dispatch import TorchDispatchMode

from condgan.augment.ada import (
    ADA_PIPELINES,
    AdaParams,
    ada_augment,
    apply_ada,
    colour_matrix,
    draw_ada_params,
    geometric_matrix,
    identity_params,
    recolour_images,
    rotation_probability,
    warp_images,
)
from condgan.augment.resample import SYM6, downsample_2x, sym6_lowpass, upsample_2x

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread. With more, a busy machine makes the thousands of tiny ops of gradcheck
    spin-wait on each other (60 s instead of 1 s seen on 2 loaded cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def params_with(n: int = 1, **values) -> AdaParams:
    """float64 identity parameters for n samples with some fields replaced (scalars broadcast)."""
    base = identity_params(n, dtype=F64)
    fields = {k: torch.as_tensor(v, dtype=F64).expand_as(getattr(base, k)).clone() for k, v in values.items()}
    return base._replace(**fields)


def images(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


# --- hand-written matrices ----------------------------------------------------------------------------------------

def np_translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=float)


def np_scale(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def np_rotate(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_pipelines_name_the_reference_op_sets():
    blit, geom = {"xflip", "rotate90", "xint"}, {"scale", "rotate", "aniso", "xfrac"}
    colour = {"brightness", "contrast", "lumaflip", "hue", "saturation"}
    assert ADA_PIPELINES == {"b": blit, "g": geom, "c": colour, "bg": blit | geom, "bgc": blit | geom | colour}
    with pytest.raises(ValueError, match="bgc"):
        ada_augment(images(1, 3, 4, 4), 0.5, pipeline="bgcfnc")


@pytest.mark.parametrize("field, value, inverse", [
    ("xflip", 1.0, np_scale(-1, 1)),
    ("rotate90", 1.0, np_rotate(math.pi / 2)),
    ("rotate90", 3.0, np_rotate(3 * math.pi / 2)),
    ("xint", [3.0, -2.0], np_translate(-3, 2)),
    ("scale", 1.6, np_scale(1 / 1.6, 1 / 1.6)),
    ("rotate_pre", 0.7, np_rotate(0.7)),
    ("aniso", 1.3, np_scale(1 / 1.3, 1.3)),
    ("rotate_post", -2.1, np_rotate(-2.1)),
    ("xfrac", [0.3, -1.7], np_translate(-0.3, 1.7)),
])
def test_each_geometric_op_is_its_inverse_matrix(field, value, inverse):
    g = geometric_matrix(params_with(**{field: value}))
    np.testing.assert_allclose(g[0].numpy(), inverse, atol=1e-15)


def test_geometric_ops_compose_in_the_reference_order():
    v = {"xflip": 1.0, "rotate90": 1.0, "xint": [2.0, -1.0], "scale": 0.8, "rotate_pre": 0.4, "aniso": 1.25,
         "rotate_post": -1.1, "xfrac": [0.6, 0.25]}
    # Inverse of the forward chain xflip -> rotate90 -> xint -> scale -> rotate_pre -> aniso -> rotate_post -> xfrac.
    forward = (np_translate(0.6, 0.25) @ np_rotate(1.1) @ np_scale(1.25, 1 / 1.25) @ np_rotate(-0.4)
               @ np_scale(0.8, 0.8) @ np_translate(2, -1) @ np_rotate(-math.pi / 2) @ np_scale(-1, 1))
    np.testing.assert_allclose(geometric_matrix(params_with(**v))[0].numpy(), np.linalg.inv(forward), atol=1e-14)


# --- the sym6 filter and the resampling ---------------------------------------------------------------------------

def test_sym6_filter_is_the_orthonormal_symlet():
    f = sym6_lowpass(torch.device("cpu"), F64).numpy()
    assert f.shape == (12,) and f.sum() == pytest.approx(1, abs=1e-15)
    g = np.sqrt(2) * f  # the wavelet normalisation
    for shift in range(6):  # orthonormal under even shifts
        assert np.dot(g[2 * shift:], g[:12 - 2 * shift]) == pytest.approx(float(shift == 0), abs=1e-11)
    high = g[::-1] * (-1.0) ** np.arange(12)  # quadrature mirror high-pass: 6 vanishing moments (no more)
    k = np.arange(12.0)
    for m in range(6):
        assert abs(np.dot(high, k**m)) < 1e-10 * np.abs(high).dot(k**m)  # the taps carry ~12 digits
    assert abs(np.dot(high, k**6)) > 1
    # PyWavelets' sym6 dec_lo, a few taps (distinguishes it from db6, which has the same moments).
    assert SYM6[0] == pytest.approx(0.015404109327027373) and SYM6[5] == pytest.approx(0.787641141030194)


def test_up_then_down_is_the_identity():
    f = sym6_lowpass(torch.device("cpu"), F64).numpy()
    x = np.random.default_rng(0).standard_normal(23)
    up = scipy.signal.upfirdn(2 * f, x, up=2)                 # zero insertion, filter 2f: up[2i + k] += 2 f[k] x[i]
    back = np.correlate(up, f, mode="valid")[::2]             # back[i] = sum_k f[k] up[2i + k] (the adjoint)
    np.testing.assert_allclose(back, x, atol=1e-10)
    # The torch pair: upsample_2x keeps 2H samples, downsample_2x keeps the outputs with full support.
    xt = images(2, 3, 10, 14)
    ft = sym6_lowpass(torch.device("cpu"), F64)
    np.testing.assert_allclose(downsample_2x(upsample_2x(xt, ft), ft).numpy(), xt[:, :, 3:-3, 3:-3].numpy(),
                               atol=1e-10)


# --- the warp against numpy ---------------------------------------------------------------------------------------

def np_bilinear_zeros(img: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """img [K, H, W] sampled at fractional (row, column) positions [h, w]; taps outside the image count as 0."""
    y0, x0 = np.floor(py).astype(int), np.floor(px).astype(int)
    out = np.zeros((img.shape[0],) + py.shape)
    for dy in (0, 1):
        for dx in (0, 1):
            yi, xi = y0 + dy, x0 + dx
            weight = (1 - np.abs(py - yi)) * (1 - np.abs(px - xi))
            inside = (yi >= 0) & (yi < img.shape[1]) & (xi >= 0) & (xi < img.shape[2])
            taps = img[:, np.clip(yi, 0, img.shape[1] - 1), np.clip(xi, 0, img.shape[2] - 1)]
            out += np.where(inside, taps * weight, 0.0)
    return out


def np_warp(img: np.ndarray, g_inv: np.ndarray) -> np.ndarray:
    """ADA's warp written out in numpy/scipy. img [K, H, W]; g_inv [3, 3] (output -> input, centred pixels)."""
    f = np.asarray(SYM6) / np.sum(SYM6)
    _, h, w = img.shape
    # Reflect pad by H - 1 / W - 1; upsample 2x (input pixel i on sample 2i): zero-insert, filter with 2f.
    padded = np.pad(img, ((0, 0), (h - 1, h - 1), (w - 1, w - 1)), mode="reflect")
    hp, wp = padded.shape[1:]
    up = scipy.signal.upfirdn(2 * f, padded, up=2, axis=2)[:, :, 5:5 + 2 * wp]
    up = scipy.signal.upfirdn(2 * f, up, up=2, axis=1)[:, 5:5 + 2 * hp, :]
    # Sampling grid: 2x dense, 3 output pixels wider each side; sample J sits on output pixel (J - 6) / 2.
    gy, gx = np.meshgrid(np.arange(2 * h + 12), np.arange(2 * w + 12), indexing="ij")
    out_x, out_y = (gx - 6) / 2 - (w - 1) / 2, (gy - 6) / 2 - (h - 1) / 2
    in_x = g_inv[0, 0] * out_x + g_inv[0, 1] * out_y + g_inv[0, 2]
    in_y = g_inv[1, 0] * out_x + g_inv[1, 1] * out_y + g_inv[1, 2]
    # Centred input position -> input pixel -> padded pixel -> upsampled sample.
    z = np_bilinear_zeros(up, 2 * (in_y + (h - 1) / 2 + h - 1), 2 * (in_x + (w - 1) / 2 + w - 1))
    # Downsample: out[i] = sum_k f[k] z[2i + 1 + k] (a correlation, i.e. a convolution with f reversed).
    z = scipy.signal.upfirdn(f[::-1], z, down=2, axis=2)[:, :, 6:6 + w]
    return scipy.signal.upfirdn(f[::-1], z, down=2, axis=1)[:, 6:6 + h, :]


AFFINES = [
    np.array([[0.9, 0.3, 1.2], [-0.25, 1.1, -0.7], [0, 0, 1]]),    # general affine, small shift
    np.array([[2.3, -0.9, 0.4], [0.8, 1.9, 2.5], [0, 0, 1]]),      # strong shrink: reads past the padding (zeros)
    np.array([[0.6, 0.0, -3.3], [0.0, 0.45, 4.1], [0, 0, 1]]),     # enlarge and shift off-centre
]


def test_warp_matches_numpy_reference():
    x = images(3, 3, 7, 9)
    g = torch.as_tensor(np.stack(AFFINES))
    got = warp_images(x, g).numpy()
    for i, a in enumerate(AFFINES):
        np.testing.assert_allclose(got[i], np_warp(x[i].numpy(), a), atol=1e-10)


def test_warp_gradient_is_the_numpy_transpose():
    h, w = 5, 6
    basis = np.eye(h * w).reshape(h * w, h, w)
    for a in AFFINES[:2]:
        matrix = np_warp(basis, a).reshape(h * w, h * w).T      # [out pixel, in pixel]
        weights = np.random.default_rng(1).standard_normal(h * w)
        x = images(1, 1, h, w).requires_grad_(True)
        out = warp_images(x, torch.as_tensor(a)[None])
        (out.flatten() @ torch.as_tensor(weights)).backward()
        np.testing.assert_allclose(x.grad.flatten().numpy(), matrix.T @ weights, atol=1e-10)


def test_warp_and_recolour_gradcheck():
    x = images(2, 3, 4, 5).requires_grad_(True)
    g = torch.as_tensor(np.stack(AFFINES[:2]))
    assert torch.autograd.gradcheck(lambda t: warp_images(t, g), (x,))
    assert torch.autograd.gradgradcheck(lambda t: warp_images(t, g), (x,))  # R1 on augmented reals needs it
    c = colour_matrix(params_with(2, brightness=0.1, contrast=1.4, lumaflip=1.0, hue=0.8, saturation=0.6))
    assert torch.autograd.gradcheck(lambda t: recolour_images(t, c), (x,))
    assert torch.autograd.gradcheck(lambda t: recolour_images(t, c), (x[:, :1].detach().requires_grad_(True),))


# --- blits: known answers -----------------------------------------------------------------------------------------

def blit(x: torch.Tensor, **values) -> torch.Tensor:
    return warp_images(x, geometric_matrix(params_with(x.shape[0], **values)))


def mirror_kernel() -> np.ndarray:
    """kappa[m], m = -6..6: what the warp's filters leave of a reversed axis. Mirroring an axis reverses the
    upsampled signal, and sym6 is not symmetric, so downsampling no longer undoes the upsampling exactly:
    out[i] = sum_m kappa[m] x[(W - 1 - i) + m] with kappa[m] = 2 (f * f)[10 - 2m], f the filter (sum 1).
    kappa is 0.965 at m = 0 and up to 0.1 elsewhere; the reference's flips and quarter turns do the same."""
    f = np.asarray(SYM6) / np.sum(SYM6)
    ff = np.convolve(f, f)
    return np.array([2 * ff[10 - 2 * m] if 0 <= 10 - 2 * m < ff.size else 0.0 for m in range(-6, 7)])


def np_mirror_filter(x: np.ndarray, axis: int) -> np.ndarray:
    """y[j] = sum_m kappa[m] x[j + m] along axis, x reflected past its ends."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (6, 6)
    padded = np.pad(x, pad, mode="reflect")
    size = x.shape[axis]
    return sum(kappa * np.take(padded, np.arange(size) + 6 + m, axis=axis)
               for m, kappa in zip(range(-6, 7), mirror_kernel()))


def test_xflip_is_a_mirror_through_the_filters():
    x = images(2, 3, 8, 9)
    expected = np.flip(np_mirror_filter(x.numpy(), 3), axis=3)
    np.testing.assert_allclose(blit(x, xflip=1.0).numpy(), expected, atol=1e-10)
    twice = np.flip(np_mirror_filter(expected, 3), axis=3)
    np.testing.assert_allclose(blit(blit(x, xflip=1.0), xflip=1.0).numpy(), twice, atol=1e-10)
    # So not x.flip(3) exactly (as in the reference): kappa keeps constants but moves content by its centroid,
    # about -0.1 pixel, and a noise image ends up ~0.3 away from the pixel permutation.
    kappa = mirror_kernel()
    assert kappa.sum() == pytest.approx(1, abs=1e-12) and kappa[6] == pytest.approx(0.9646, abs=1e-4)
    assert np.dot(np.arange(-6, 7), kappa) == pytest.approx(-0.0983, abs=1e-4)
    assert np.abs(blit(x, xflip=1.0).numpy() - x.flip(3).numpy()).max() > 0.05
    flat = torch.full((1, 3, 8, 9), 0.3, dtype=F64)
    np.testing.assert_allclose(blit(flat, xflip=1.0).numpy(), flat.numpy(), atol=1e-12)


def test_quarter_turns_are_rot90_through_the_filters():
    x = images(2, 3, 8, 8)
    reversed_axes = {1: (3,), 2: (2, 3), 3: (2,)}  # axes that torch.rot90(x, k, dims=(2, 3)) reverses
    for k, axes in reversed_axes.items():
        filtered = x.numpy()
        for axis in axes:
            filtered = np_mirror_filter(filtered, axis)
        expected = np.rot90(filtered, k, axes=(2, 3))  # = torch.rot90(., k, dims=(2, 3))
        np.testing.assert_allclose(blit(x, rotate90=float(k)).numpy(), expected, atol=1e-10)
    y, expected = x, x.numpy()
    for _ in range(4):
        y = blit(y, rotate90=1.0)
        expected = np.rot90(np_mirror_filter(expected, 3), 1, axes=(2, 3))
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("tx, ty", [(2, -1), (-3, 2), (0, 3)])
def test_integer_translation_is_a_reflect_filled_shift(tx, ty):
    x = images(1, 3, 7, 9)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (3, 3), (3, 3)), mode="reflect")
    expected = padded[:, :, 3 - ty:3 - ty + 7, 3 - tx:3 - tx + 9]  # out[y, x] = in[y - ty, x - tx]
    np.testing.assert_allclose(blit(x, xint=[float(tx), float(ty)]).numpy(), expected, atol=1e-10)


def test_p_zero_is_the_identity():
    for c in (3, 1):
        x = images(4, c, 8, 6)
        np.testing.assert_allclose(ada_augment(x, 0.0).numpy(), x.numpy(), atol=1e-10)
        x32 = x.float()
        np.testing.assert_allclose(ada_augment(x32, torch.tensor(0.0)).numpy(), x32.numpy(), atol=2e-5)
    params = draw_ada_params(64, 3, 8, 8, 0.0)
    for got, want in zip(params, identity_params(64)):
        assert torch.equal(got, want)


# --- colour -------------------------------------------------------------------------------------------------------

LUMA = np.ones(3) / np.sqrt(3)


def np_colour_matrix(b: float, c: float, flip: float, theta: float, s: float) -> np.ndarray:
    """The 4x4 colour transform from the ops' definitions, saturation @ hue @ flip @ contrast @ brightness."""
    def homogeneous(m3: np.ndarray, t: float = 0.0) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = m3, t
        return m
    vv = np.outer(LUMA, LUMA)
    brightness = homogeneous(np.eye(3), b)
    contrast = homogeneous(c * np.eye(3))
    lumaflip = homogeneous(np.eye(3) - 2 * flip * vv)                          # Householder about the luma axis
    hue = homogeneous(Rotation.from_rotvec(theta * LUMA).as_matrix())            # rotation about the luma axis
    saturation = homogeneous(vv + s * (np.eye(3) - vv))
    return saturation @ hue @ lumaflip @ contrast @ brightness


ALL_COLOUR = {"brightness": -0.2, "contrast": 0.6, "lumaflip": 1.0, "hue": 2.2, "saturation": 2.5}
COLOUR_CASES = [{"brightness": 0.3}, {"contrast": 1.7}, {"lumaflip": 1.0}, {"hue": 1.1}, {"hue": -2.9},
                {"saturation": 0.4}, ALL_COLOUR]


@pytest.mark.parametrize("values", COLOUR_CASES)
def test_colour_matrix_matches_definitions(values):
    full = {"brightness": 0.0, "contrast": 1.0, "lumaflip": 0.0, "hue": 0.0, "saturation": 1.0} | values
    expected = np_colour_matrix(full["brightness"], full["contrast"], full["lumaflip"], full["hue"],
                                full["saturation"])
    np.testing.assert_allclose(colour_matrix(params_with(**values))[0].numpy(), expected, atol=1e-14)


def test_colour_ops_per_pixel():
    x = images(1, 3, 4, 5)
    rgb = x[0].numpy().reshape(3, -1)
    mean = rgb.mean(axis=0)  # the luma-axis component of each pixel, as a grey level

    def run(**values) -> np.ndarray:
        return recolour_images(x, colour_matrix(params_with(**values)))[0].numpy().reshape(3, -1)

    np.testing.assert_allclose(run(brightness=0.3), rgb + 0.3, atol=1e-14)
    np.testing.assert_allclose(run(contrast=1.7), rgb * 1.7, atol=1e-14)
    np.testing.assert_allclose(run(lumaflip=1.0), rgb - 2 * mean, atol=1e-14)
    np.testing.assert_allclose(run(saturation=0.4), mean + 0.4 * (rgb - mean), atol=1e-14)
    np.testing.assert_allclose(run(saturation=0.0), np.broadcast_to(mean, rgb.shape), atol=1e-14)
    np.testing.assert_allclose(run(hue=2 * math.pi / 3), rgb[[2, 0, 1]], atol=1e-14)  # red -> green -> blue
    m = np_colour_matrix(*ALL_COLOUR.values())
    np.testing.assert_allclose(run(**ALL_COLOUR), m[:3, :3] @ rgb + m[:3, 3:], atol=1e-14)


def test_one_channel_colour_is_the_mean_of_the_grey_colour():
    g = images(2, 1, 4, 5)
    m = np_colour_matrix(*ALL_COLOUR.values())
    grey = g.numpy().reshape(2, 1, -1)
    expected = (m[:3, :3] @ np.concatenate([grey] * 3, axis=1) + m[:3, 3:]).mean(axis=1, keepdims=True)
    got = recolour_images(g, colour_matrix(params_with(2, **ALL_COLOUR))).numpy().reshape(2, 1, -1)
    np.testing.assert_allclose(got, expected, atol=1e-14)
    one = {"brightness": (0.3, g + 0.3), "contrast": (1.7, 1.7 * g), "lumaflip": (1.0, -g)}
    for name, (value, want) in one.items():
        np.testing.assert_allclose(recolour_images(g, colour_matrix(params_with(2, **{name: value}))).numpy(),
                                   want.numpy(), atol=1e-14)
    # Hue and saturation leave grey alone, so a 1-channel batch neither draws nor applies them.
    drawn = draw_ada_params(1000, 1, 8, 8, 1.0)
    assert torch.all(drawn.hue == 0) and torch.all(drawn.saturation == 1)
    assert torch.all(drawn.brightness != 0) and torch.all(drawn.contrast != 1)


# --- the draws ----------------------------------------------------------------------------------------------------

def test_draw_order_is_the_documented_one():
    n, h, w, p = 16, 8, 12, 0.5
    gen = torch.Generator().manual_seed(7)
    got = draw_ada_params(n, 3, h, w, p, generator=torch.Generator().manual_seed(7))

    def u(*shape):
        return torch.rand(shape, generator=gen)

    def z(*shape):
        return torch.randn(shape, generator=gen)

    def gate(value, identity, prob=p):
        fires = u(n, *([1] * (value.ndim - 1))) < prob
        return torch.where(fires, value, torch.full_like(value, identity))

    p_rot = 1 - math.sqrt(1 - p)
    xflip = gate(torch.floor(u(n) * 2), 0)
    rotate90 = gate(torch.floor(u(n) * 4), 0)
    xint = torch.round(gate((u(n, 2) * 2 - 1) * 0.125, 0) * torch.tensor([w, h]))
    scale = gate(2 ** (0.2 * z(n)), 1)
    rotate_pre = gate((u(n) * 2 - 1) * math.pi, 0, p_rot)
    aniso = gate(2 ** (0.2 * z(n)), 1)
    rotate_post = gate((u(n) * 2 - 1) * math.pi, 0, p_rot)
    xfrac = gate(z(n, 2) * 0.125, 0) * torch.tensor([w, h])
    brightness = gate(0.2 * z(n), 0)
    contrast = gate(2 ** (0.5 * z(n)), 1)
    lumaflip = gate(torch.floor(u(n) * 2), 0)
    hue = gate((u(n) * 2 - 1) * math.pi, 0)
    saturation = gate(2 ** z(n), 1)
    expected = AdaParams(xflip, rotate90, xint, scale, rotate_pre, aniso, rotate_post, xfrac, brightness, contrast,
                         lumaflip, hue, saturation)
    for name, a, b in zip(AdaParams._fields, got, expected):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=name)


def fired(params: AdaParams) -> dict[str, torch.Tensor]:
    """[N] bool per op: its value differs from the identity."""
    ident = identity_params(params.scale.shape[0])
    out = {}
    for name, a, b in zip(AdaParams._fields, params, ident):
        diff = a != b
        out[name] = diff.any(dim=1) if diff.ndim == 2 else diff
    return out


def test_firing_frequencies():
    n, w = 100_000, 64
    gen = torch.Generator().manual_seed(3)
    everything = fired(draw_ada_params(n, 3, w, w, 1.0, generator=gen))
    for name in ("scale", "rotate_pre", "aniso", "rotate_post", "xfrac", "brightness", "contrast", "hue",
                 "saturation"):
        assert everything[name].all(), name
    # At p = 1 the discrete ops draw their value over the full range (including the identity).
    tol = 0.01
    assert everything["xflip"].double().mean() == pytest.approx(1 / 2, abs=tol)
    assert everything["rotate90"].double().mean() == pytest.approx(3 / 4, abs=tol)
    assert everything["lumaflip"].double().mean() == pytest.approx(1 / 2, abs=tol)
    assert everything["xint"].double().mean() == pytest.approx(1 - (4 / w) ** 2, abs=tol)  # round(t W) = 0 on both

    p = 0.3
    some = fired(draw_ada_params(n, 3, w, w, torch.tensor(p), generator=gen))
    expect = {name: p for name in ("scale", "aniso", "xfrac", "brightness", "contrast", "hue", "saturation")}
    expect |= {"xflip": p / 2, "lumaflip": p / 2, "rotate90": 3 * p / 4, "xint": p * (1 - (4 / w) ** 2),
               "rotate_pre": 1 - math.sqrt(1 - p), "rotate_post": 1 - math.sqrt(1 - p)}
    for name, freq in expect.items():
        assert some[name].double().mean() == pytest.approx(freq, abs=tol), name
    either = some["rotate_pre"] | some["rotate_post"]
    assert either.double().mean() == pytest.approx(p, abs=tol)
    # Per sample and per op: independent gates.
    assert (some["scale"] & some["aniso"]).double().mean() == pytest.approx(p * p, abs=tol)
    assert (some["scale"] & some["brightness"]).double().mean() == pytest.approx(p * p, abs=tol)


def test_value_distributions_have_the_reference_strengths():
    n, h, w = 100_000, 32, 48
    d = draw_ada_params(n, 3, h, w, 1.0, generator=torch.Generator().manual_seed(4), dtype=F64)
    assert torch.log2(d.scale).std().item() == pytest.approx(0.2, rel=0.02)
    assert torch.log2(d.aniso).std().item() == pytest.approx(0.2, rel=0.02)
    assert torch.log2(d.contrast).std().item() == pytest.approx(0.5, rel=0.02)
    assert torch.log2(d.saturation).std().item() == pytest.approx(1.0, rel=0.02)
    assert d.brightness.std().item() == pytest.approx(0.2, rel=0.02)
    assert (d.xfrac / torch.tensor([w, h])).std(dim=0).numpy() == pytest.approx([0.125, 0.125], rel=0.02)
    for angle in (d.rotate_pre, d.rotate_post, d.hue):  # uniform over the circle
        assert angle.abs().max().item() <= math.pi and angle.abs().mean().item() == pytest.approx(math.pi / 2, rel=0.02)
    assert torch.equal(d.xint, torch.round(d.xint))
    assert d.xint[:, 0].abs().max() == round(0.125 * w) and d.xint[:, 1].abs().max() == round(0.125 * h)
    assert set(d.rotate90.unique().tolist()) == {0, 1, 2, 3} and set(d.xflip.unique().tolist()) == {0, 1}


def test_rotation_probability():
    for p in (0.0, 0.3, 1.0, 1.7):
        q = rotation_probability(p)
        assert 1 - (1 - q) ** 2 == pytest.approx(min(p, 1.0), abs=1e-6)
        assert q == rotation_probability(torch.tensor(p)).item()


# --- the whole pipeline -------------------------------------------------------------------------------------------

def test_reproducible_shapes_dtypes_and_tensor_p():
    for dtype, c in ((torch.float32, 3), (F64, 3), (torch.float32, 1)):
        x = images(6, c, 8, 10, dtype=dtype)
        a = ada_augment(x, 0.7, generator=torch.Generator().manual_seed(1))
        assert a.shape == x.shape and a.dtype == dtype and torch.isfinite(a).all()
        assert torch.equal(a, ada_augment(x, 0.7, generator=torch.Generator().manual_seed(1)))
        assert torch.equal(a, ada_augment(x, torch.tensor(0.7), generator=torch.Generator().manual_seed(1)))
        assert not torch.allclose(a, ada_augment(x, 0.7, generator=torch.Generator().manual_seed(2)))
        torch.manual_seed(5)
        b = ada_augment(x, 0.7)
        torch.manual_seed(5)
        assert torch.equal(b, ada_augment(x, 0.7))
    # Per sample: identical images in a batch come out differently.
    x = images(1, 3, 8, 8).expand(4, 3, 8, 8)
    out = ada_augment(x, 1.0, generator=torch.Generator().manual_seed(0))
    assert all(not torch.allclose(out[0], out[i]) for i in range(1, 4))


@pytest.mark.parametrize("pipeline", sorted(ADA_PIPELINES))
def test_apply_equals_its_parts_and_is_differentiable(pipeline):
    x = images(3, 3, 8, 8).requires_grad_(True)
    params = draw_ada_params(3, 3, 8, 8, 0.8, pipeline=pipeline, generator=torch.Generator().manual_seed(0),
                             dtype=F64)
    expected = x
    if pipeline != "c":
        expected = warp_images(expected, geometric_matrix(params))
    if "c" in pipeline:
        expected = recolour_images(expected, colour_matrix(params))
    out = ada_augment(x, 0.8, generator=torch.Generator().manual_seed(0), pipeline=pipeline)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(apply_ada(x, params, pipeline), expected)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


class _NoHostReads(TorchDispatchMode):
    """Fails on ops that read a tensor value on the host (item, bool, float) or size a result from tensor values.
    (.tolist() reads memory without dispatching an op, so it is not seen; the module has none.)"""

    FORBIDDEN = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique_dim", "_unique2",
                           "unique_consecutive", "repeat_interleave", "equal", "is_nonzero"})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        assert func.__name__.split(".")[0] not in self.FORBIDDEN, f"host sync: {func}"
        return func(*args, **(kwargs or {}))


def test_no_host_synchronisation():
    x = images(4, 3, 8, 8, dtype=torch.float32).requires_grad_(True)
    p = torch.tensor(0.6)
    ada_augment(x[:1], p)  # warm the cached constants outside the mode
    with _NoHostReads():
        out = ada_augment(x, p, generator=torch.Generator().manual_seed(0))
        out.sum().backward()


def test_composed_flips_and_quarter_turns_are_the_identity_matrix_and_warp():
    """Known answers at the matrix level: two x-flips, and four 90-degree turns, compose to the identity
    matrix, and the warp with the identity matrix returns the image (up then down with sym6 is exact)."""
    x = images(2, 3, 8, 9)
    flip = geometric_matrix(params_with(2, xflip=1.0))
    quarter = geometric_matrix(params_with(2, rotate90=1.0))
    eye = torch.eye(3, dtype=F64).expand(2, 3, 3)
    torch.testing.assert_close(flip @ flip, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(quarter @ quarter @ quarter @ quarter, eye, atol=1e-12, rtol=0)
    np.testing.assert_allclose(warp_images(x, flip @ flip).numpy(), x.numpy(), atol=1e-10)
    np.testing.assert_allclose(warp_images(x, quarter @ quarter @ quarter @ quarter).numpy(), x.numpy(), atol=1e-10)

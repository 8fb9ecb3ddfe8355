"""DiffAugment against independent numpy references: values, gradients, exhaustive shift/cutout families."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from condgan.augment.diffaug import (
    DIFFAUG_FAMILIES,
    brightness,
    contrast,
    cutout,
    diff_augment,
    draw_brightness,
    draw_contrast,
    draw_saturation,
    parse_policy,
    saturation,
    translate,
)

SHAPES = [(4, 3, 8, 8), (5, 1, 7, 10), (3, 3, 9, 6), (4, 3, 5, 5), (3, 1, 12, 13), (3, 2, 6, 20), (3, 3, 17, 4)]
POLICIES = ["color", "translation", "cutout", "translation,cutout", "color,translation,cutout"]


# --- numpy references (written from the paper's definitions, one sample at a time where it helps) ---------------

def shift_bound(size: int) -> int:
    return math.floor(0.125 * size + 0.5)


def square_side(size: int) -> int:
    return math.floor(0.5 * size + 0.5)


def centre_count(size: int) -> int:
    """Number of allowed cutout centres along an axis: 0..S-1 for an odd side, 0..S for an even side."""
    return size + (1 if square_side(size) % 2 == 0 else 0)


def np_brightness(x, s):
    return x + s[:, None, None, None]


def np_saturation(x, f):
    m = x.mean(axis=1, keepdims=True)
    return (x - m) * f[:, None, None, None] + m


def np_contrast(x, f):
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - m) * f[:, None, None, None] + m


def np_translate(x, dy, dx):
    n, _, h, w = x.shape
    out = np.zeros_like(x)
    for i in range(n):
        for r in range(h):
            for c in range(w):
                sr, sc = r + dy[i], c + dx[i]
                if 0 <= sr < h and 0 <= sc < w:
                    out[i, :, r, c] = x[i, :, sr, sc]
    return out


def np_cut_mask(h, w, cy, cx):
    """Boolean [H, W]: the square of the reference's side whose centre is (cy, cx), clipped at the border."""
    sh, sw = square_side(h), square_side(w)
    mask = np.zeros((h, w), dtype=bool)
    r0, c0 = cy - sh // 2, cx - sw // 2
    mask[max(r0, 0):max(r0 + sh, 0), max(c0, 0):max(c0 + sw, 0)] = True
    return mask


def np_cutout(x, cy, cx):
    out = x.copy()
    for i in range(x.shape[0]):
        out[i, :, np_cut_mask(x.shape[2], x.shape[3], cy[i], cx[i])] = 0.0
    return out


# Backward maps: the gradient of sum(w * op(x)) with respect to x (the transposed linear map applied to w).

def np_brightness_grad(w, s):
    return w


def np_saturation_grad(w, f):
    f = f[:, None, None, None]
    return f * w + (1 - f) * w.mean(axis=1, keepdims=True)


def np_contrast_grad(w, f):
    f = f[:, None, None, None]
    return f * w + (1 - f) * w.mean(axis=(1, 2, 3), keepdims=True)


def np_translate_grad(w, dy, dx):
    # out[r, c] = x[r + dy, c + dx]  =>  grad x[r, c] = w[r - dy, c - dx] (zero where outside).
    return np_translate(w, -dy, -dx)


def np_cutout_grad(w, cy, cx):
    return np_cutout(w, cy, cx)


NP_OPS = {"brightness": (np_brightness, np_brightness_grad), "saturation": (np_saturation, np_saturation_grad),
          "contrast": (np_contrast, np_contrast_grad), "translation": (np_translate, np_translate_grad),
          "cutout": (np_cutout, np_cutout_grad)}
FAMILY_OPS = {"color": ["brightness", "saturation", "contrast"], "translation": ["translation"],
              "cutout": ["cutout"]}


def redraw(policy: str, shape, seed: int, dtype=torch.float64):
    """[(op name, params as numpy)] drawn straight from torch in the documented order (not via condgan)."""
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = shape
    steps = []
    for fam in [p.strip() for p in policy.split(",") if p.strip()]:
        for name in FAMILY_OPS[fam]:
            if name in ("brightness", "saturation", "contrast"):
                u = torch.rand(n, generator=g, dtype=dtype)
                params = ({"brightness": u - 0.5, "saturation": u * 2, "contrast": u + 0.5}[name],)
            elif name == "translation":
                params = tuple(torch.randint(-shift_bound(s), shift_bound(s) + 1, (n,), generator=g) for s in (h, w))
            else:
                params = tuple(torch.randint(0, centre_count(s), (n,), generator=g) for s in (h, w))
            steps.append((name, tuple(p.numpy() for p in params)))
    return steps


def np_forward(x, steps):
    for name, params in steps:
        x = NP_OPS[name][0](x, *params)
    return x


def np_backward(w, steps):
    for name, params in reversed(steps):
        w = NP_OPS[name][1](w, *params)
    return w


def images(shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.rand(shape, generator=g, dtype=dtype) * 2 - 1


# --- each op with given parameters ------------------------------------------------------------------------------

def op_cases():
    """(name, condgan op, params) with params drawn by a seeded generator, translation/cutout past the ranges."""
    g = torch.Generator().manual_seed(7)
    for shape in SHAPES:
        n, _, h, w = shape
        u = torch.rand(3, n, generator=g, dtype=torch.float64)
        yield shape, "brightness", brightness, (u[0] - 0.5,)
        yield shape, "saturation", saturation, (u[1] * 2,)
        yield shape, "contrast", contrast, (u[2] + 0.5,)
        # Wider than the drawn range (up to fully off the image) so the zero fill is exercised everywhere.
        yield shape, "translation", translate, (torch.randint(-h - 1, h + 2, (n,), generator=g),
                                                torch.randint(-w - 1, w + 2, (n,), generator=g))
        yield shape, "cutout", cutout, (torch.randint(-2, h + 3, (n,), generator=g),
                                        torch.randint(-2, w + 3, (n,), generator=g))


@pytest.mark.parametrize("shape,name,op,params", list(op_cases()),
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) and len(v) == 4 else None)
def test_op_matches_numpy_value_and_gradient(shape, name, op, params):
    x = images(shape).requires_grad_(True)
    wgt = images(shape, seed=1)
    out = op(x, *params)
    np_params = tuple(p.numpy() for p in params)
    forward, backward = NP_OPS[name]
    np.testing.assert_allclose(out.detach().numpy(), forward(x.detach().numpy(), *np_params), rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad((wgt * out).sum(), x)
    np.testing.assert_allclose(grad.numpy(), backward(wgt.numpy(), *np_params), rtol=0, atol=1e-12)


def test_translate_handles_all_shifts_exactly():
    x = images((1, 2, 4, 5))
    for dy, dx in itertools.product(range(-5, 6), range(-6, 7)):
        out = translate(x, torch.tensor([dy]), torch.tensor([dx]))
        assert np.array_equal(out.numpy(), np_translate(x.numpy(), [dy], [dx]))


# --- the whole policy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("policy", POLICIES)
def test_diff_augment_matches_numpy_composition(policy, shape):
    seed = 11
    x = images(shape).requires_grad_(True)
    wgt = images(shape, seed=2)
    out = diff_augment(x, policy, generator=torch.Generator().manual_seed(seed))
    steps = redraw(policy, shape, seed)
    assert [name for name, _ in steps] == [op.name for fam in policy.split(",") for op in DIFFAUG_FAMILIES[fam]]
    np.testing.assert_allclose(out.detach().numpy(), np_forward(x.detach().numpy(), steps), rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad((wgt * out).sum(), x)
    np.testing.assert_allclose(grad.numpy(), np_backward(wgt.numpy(), steps), rtol=0, atol=1e-12)


def test_repeated_families_and_whitespace_draw_in_order():
    shape, policy = (3, 3, 6, 7), " cutout , color,cutout "
    x = images(shape)
    out = diff_augment(x, policy, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(out.numpy(), np_forward(x.numpy(), redraw(policy, shape, 5)), rtol=0, atol=1e-12)


# --- exhaustive families on small images with distinct pixels -------------------------------------------------

def distinct_images(n, h, w):
    """n copies of one image with distinct non-zero pixels, so every shift and every zeroed set is identifiable."""
    x = (torch.randperm(h * w, generator=torch.Generator().manual_seed(3)).double() + 1) / (h * w)
    return x.reshape(1, 1, h, w).expand(n, 1, h, w).contiguous()


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (12, 13), (3, 2), (4, 12), (20, 6)])
def test_translation_family_is_exactly_the_allowed_shifts(h, w):
    n = 1500
    x = distinct_images(n, h, w)
    out = diff_augment(x, "translation", generator=torch.Generator().manual_seed(0)).numpy()
    shifts = list(itertools.product(range(-shift_bound(h), shift_bound(h) + 1),
                                    range(-shift_bound(w), shift_bound(w) + 1)))
    candidates = np.stack([np_translate(x[:1].numpy(), [dy], [dx])[0] for dy, dx in shifts])  # [S, 1, H, W]
    hits = (out[:, None] == candidates[None]).all(axis=(2, 3, 4))  # [N, S]
    assert (hits.sum(axis=1) == 1).all(), "every output is exactly one allowed shift"
    assert hits.any(axis=0).all(), "every allowed shift occurs"


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (3, 2), (1, 5), (6, 11)])
def test_cutout_family_is_exactly_one_clipped_square_at_an_allowed_centre(h, w):
    n = 2500
    x = distinct_images(n, h, w)
    out = diff_augment(x, "cutout", generator=torch.Generator().manual_seed(0)).numpy()
    zeroed = out[:, 0] == 0
    assert np.array_equal(out[:, 0][~zeroed], x[:, 0].numpy()[~zeroed]), "pixels outside the square are untouched"
    centres = list(itertools.product(range(centre_count(h)), range(centre_count(w))))
    masks = np.stack([np_cut_mask(h, w, cy, cx) for cy, cx in centres])  # [K, H, W]
    assert len({m.tobytes() for m in masks}) == len(centres), "centres are identifiable from their squares"
    hits = (zeroed[:, None] == masks[None]).all(axis=(2, 3))  # [N, K]
    assert (hits.sum(axis=1) == 1).all(), "every output zeroes exactly one allowed clipped square"
    assert hits.any(axis=0).all(), "every allowed centre occurs"


# --- distributions --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("draw,low,high", [(draw_brightness, -0.5, 0.5), (draw_saturation, 0.0, 2.0),
                                           (draw_contrast, 0.5, 1.5)])
def test_colour_factor_ranges_and_per_sample(draw, low, high):
    n = 20000
    v = draw(torch.zeros(n, 3, 2, 2), torch.Generator().manual_seed(0))
    assert v.shape == (n,) and v.dtype == torch.float32
    assert v.min() >= low and v.max() < high
    width = high - low
    assert v.min() < low + 0.01 * width and v.max() > high - 0.01 * width
    assert abs(v.mean().item() - (low + high) / 2) < 0.02 * width
    assert v.unique().numel() > 0.99 * n, "each sample gets its own draw"


def test_samples_get_different_augmentations():
    x = images((1, 3, 8, 8)).expand(64, 3, 8, 8)
    out = diff_augment(x, generator=torch.Generator().manual_seed(0)).flatten(1)
    assert torch.unique(out, dim=0).shape[0] == 64


# --- policy parsing and arguments --------------------------------------------------------------------------------

def test_registry_families():
    assert list(DIFFAUG_FAMILIES) == ["color", "translation", "cutout"]
    assert [op.name for op in DIFFAUG_FAMILIES["color"]] == ["brightness", "saturation", "contrast"]


@pytest.mark.parametrize("policy,expected", [
    ("", ()), ("   ", ()), ("color", ("color",)), ("color,translation,cutout", ("color", "translation", "cutout")),
    (" translation , cutout ", ("translation", "cutout")), ("cutout,cutout", ("cutout", "cutout"))])
def test_parse_policy_accepts(policy, expected):
    assert parse_policy(policy) == expected


@pytest.mark.parametrize("policy,culprit", [("colour", "'colour'"), ("color,flip", "'flip'"),
                                            ("color,,cutout", "''"), ("Color", "'Color'")])
def test_parse_policy_rejects_unknown(policy, culprit):
    with pytest.raises(ValueError) as err:
        parse_policy(policy)
    msg = str(err.value)
    assert culprit in msg and "color, translation, cutout" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="unknown DiffAugment family"):
        diff_augment(images((2, 3, 4, 4)), policy)


def test_generator_on_other_device_type_raises():
    x = torch.zeros(2, 3, 4, 4, device="meta")
    with pytest.raises(ValueError, match="cpu"):
        diff_augment(x, "color", generator=torch.Generator())


def test_no_host_sync_runs_on_meta_tensors():
    # Meta tensors have no values: any .item(), .tolist() or bool(tensor) would fail here.
    x = torch.zeros(4, 3, 9, 6, device="meta")
    out = diff_augment(x, "color,translation,cutout,translation")
    assert out.shape == x.shape and out.device.type == "meta"


def test_empty_policy_returns_input():
    x = images((2, 3, 4, 4))
    assert diff_augment(x, "") is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reproducible_and_dtype_preserved(dtype):
    x = images((4, 3, 8, 7), dtype=dtype).requires_grad_(True)
    a = diff_augment(x, generator=torch.Generator().manual_seed(42))
    b = diff_augment(x, generator=torch.Generator().manual_seed(42))
    c = diff_augment(x, generator=torch.Generator().manual_seed(43))
    assert a.dtype == dtype and a.shape == x.shape and a.requires_grad
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(42)
    d = diff_augment(x)
    assert torch.equal(a, d), "generator None draws from the global RNG"


def test_rejects_non_image_input():
    with pytest.raises(ValueError, match="float images"):
        diff_augment(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="float images"):
        diff_augment(torch.zeros(2, 3, 4, 4, dtype=torch.long))

"""Every residual D block against a float64 hand-written reference of the block its paper's code runs.

StudioGAN (big_resnet.py, resnet.py: biggan, resnet, sagan) keeps ``x0 = x`` and applies an in-place ReLU to x,
so its shortcut sees relu(x): block(x) = F(relu x) + S(relu x). The official FastGAN DownBlock uses the
out-of-place F.relu: block(x) = F(relu x) + S(x). F = conv3x3, ReLU, conv3x3 (, 2x2 avg-pool);
S = 1x1 conv then 2x2 avg-pool (in the references' order), or the identity. The references below use
torch.nn.functional only, with the effective weights of condgan's layers (spectral norm recomputed here).
"""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from condgan.config import build_config
from condgan.nets import build_nets
from condgan.nets.blocks import DiscBlock, DiscOptBlock

# arch -> whether its reference code's shortcut sees relu(x)
REFERENCE_SHORTCUT_ON_RELU = {"biggan32": True, "resnet32": True, "biggan": True, "resnet": True, "sagan": True,
                              "fastgan": False}


def effective_weight(conv: torch.nn.Conv2d) -> torch.Tensor:
    """W / sigma with sigma = u^T W v, v = normalize(W^T u) from the stored u (eval mode); W when not SN."""
    w = conv.weight
    if not hasattr(conv, "u"):
        return w
    mat = w.reshape(w.shape[0], -1)
    v = mat.t() @ conv.u
    v = v / v.norm().clamp_min(1e-6)
    return w / (conv.u @ mat @ v)


def reference_block(block: DiscBlock, x: torch.Tensor, shortcut_on_relu: bool) -> torch.Tensor:
    """The reference pre-activation block on x [B, in, H, W] (float64)."""
    relu_x = x.clamp_min(0)
    h = F.conv2d(relu_x, effective_weight(block.conv0), block.conv0.bias, padding=1).clamp_min(0)
    h = F.conv2d(h, effective_weight(block.conv1), block.conv1.bias, padding=1)
    s = relu_x if shortcut_on_relu else x
    if block.conv_sc is not None:
        s = F.conv2d(s, effective_weight(block.conv_sc), block.conv_sc.bias)
    if block.downsample:
        h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
    return h + s


def reference_opt_block(block: DiscOptBlock, x: torch.Tensor) -> torch.Tensor:
    """The first D block of every reference: conv, ReLU, conv, pool + 1x1 conv of the pooled raw image."""
    h = F.conv2d(x, effective_weight(block.conv0), block.conv0.bias, padding=1).clamp_min(0)
    h = F.avg_pool2d(F.conv2d(h, effective_weight(block.conv1), block.conv1.bias, padding=1), 2)
    return h + F.conv2d(F.avg_pool2d(x, 2), effective_weight(block.conv_sc), block.conv_sc.bias)


def tiny_discriminator(arch: str, resolution: int = 32, sn: bool = True) -> torch.nn.Module:
    z_dim = {64: 20, 128: 24}.get(resolution, 16)  # BigGAN's G splits z into one chunk per block + 1
    cfg = build_config({"model": {"arch": arch, "d_width": 8, "g_width": 8, "z_dim": z_dim, "embed_dim": 8,
                                  "d_sn": sn}, "data": {"resolution": resolution}})
    torch.manual_seed(0)
    _, d = build_nets(cfg, 5, 3)
    return d.double().eval()


@pytest.mark.parametrize("arch,resolution", [("biggan32", 32), ("resnet32", 32), ("fastgan", 32), ("fastgan", 64),
                                              ("biggan", 64), ("biggan", 128), ("resnet", 128), ("sagan", 128),
                                              ("fastgan", 128)])
@pytest.mark.parametrize("sn", [True, False])
def test_every_d_block_is_its_reference_block(arch: str, resolution: int, sn: bool) -> None:
    d = tiny_discriminator(arch, resolution, sn)
    on_relu = REFERENCE_SHORTCUT_ON_RELU[arch]
    blocks = [m for m in d.modules() if isinstance(m, DiscBlock)]
    assert len(blocks) >= 3
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in blocks:
            x = torch.randn(3, block.conv0.in_channels, 8, 8, generator=gen, dtype=torch.float64)
            out = block(x)
            torch.testing.assert_close(out, reference_block(block, x, on_relu), rtol=0, atol=1e-12)
            # The other shortcut is a different function on inputs with negative entries: the check can fail.
            assert (out - reference_block(block, x, not on_relu)).abs().max() > 1e-3
        x = torch.randn(3, 3, 8, 8, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(d.opt_block(x), reference_opt_block(d.opt_block, x), rtol=0, atol=1e-12)


def test_block_gradients_follow_the_reference() -> None:
    """d block(x) / dx: with the relu shortcut, negative inputs of an identity block get no gradient."""
    d = tiny_discriminator("biggan32")
    block = next(b for b in d.blocks if b.conv_sc is None)
    x = torch.randn(2, block.conv0.in_channels, 8, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, block.conv1.out_channels, 8, 8, dtype=torch.float64)
    (grad,) = torch.autograd.grad((block(x) * w).sum(), x)
    xr = x.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((reference_block(block, xr, True) * w).sum(), xr)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)
    assert torch.all(grad[x < 0] == 0)


def test_block_leaves_its_input_intact() -> None:
    """Unlike the in-place reference, condgan's block does not rewrite the caller's tensor."""
    block = tiny_discriminator("biggan32").blocks[1]
    x = torch.randn(2, block.conv0.in_channels, 8, 8, dtype=torch.float64)
    before = x.clone()
    block(x)
    assert torch.equal(x, before)

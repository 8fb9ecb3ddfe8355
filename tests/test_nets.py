"""Tests for condgan.nets layers, heads and the BigGAN-32 pair (CPU, small)."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from condgan.nets.biggan import BigGANDiscriminator, BigGANGenerator
from condgan.nets.heads import DiscriminatorHeads, DOutput
from condgan.nets.layers import (ConditionalBatchNorm2d, SelfAttention, SNConv2d, SNEmbedding, SNLinear,
                                 conv2d, count_parameters, embedding, init_weights, linear)

CONDS = ("d2d_ce", "2c", "pd", "ac", "mh", "none")

# Reference pair (StudioGAN big_resnet, CIFAR10 ReACGAN config, counting weight_orig): 9,416,196 / 2,517,186.
# D trunk without heads: 338,112 (opt block) + 46,081 (attn) + 700,992 + 2 * 663,936 = 2,413,057, then
#   d2d_ce: + adv 193 + embed 98,816 + proxy 5,120            = 2,517,186
#   pd:     + adv 193 + projection Embedding(10, 192) 1,920   = 2,415,170
#   ac:     + adv 193 + classifier Linear(192, 10, no bias) 1,920 = 2,415,170
#   mh:     + adv Linear(192, 11) 2,123                       = 2,415,180
#   2c:     as d2d_ce                                         = 2,517,186
#   none:   + adv 193                                         = 2,413,250
D_REFERENCE = {"d2d_ce": 2_517_186, "pd": 2_415_170, "ac": 2_415_170, "mh": 2_415_180, "2c": 2_517_186,
               "none": 2_413_250}


def test_reference_parameter_counts() -> None:
    torch.manual_seed(0)
    g = BigGANGenerator(z_dim=80, num_classes=10, width=96, shared_dim=128)
    assert count_parameters(g) == 9_416_196
    for cond, expected in D_REFERENCE.items():
        d = BigGANDiscriminator(num_classes=10, width=96, cond=cond, embed_dim=512, init="default")
        assert count_parameters(d) == expected, cond


def _tiny_pair(cond: str, sn: bool = True) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    g = BigGANGenerator(z_dim=8, num_classes=5, width=8, shared_dim=6, sn=sn)
    d = BigGANDiscriminator(num_classes=5, width=8, cond=cond, embed_dim=7, sn=sn)
    return g, d


@pytest.mark.parametrize("cond", CONDS)
def test_tiny_forward_shapes_and_backward(cond: str) -> None:
    torch.manual_seed(0)
    g, d = _tiny_pair(cond)
    z, y = torch.randn(4, 8), torch.randint(0, 5, (4,))
    x = g(z, y)
    assert x.shape == (4, 3, 32, 32)
    assert x.abs().max() <= 1.0
    out = d(x, y)
    assert isinstance(out, DOutput)
    assert out.adv.shape == (4,) and out.features.shape == (4, 16)
    assert (out.cls_logits is not None) == (cond in ("ac", "mh"))
    assert (out.embed is not None) == (out.proxies is not None) == (cond in ("d2d_ce", "2c"))
    if cond in ("ac", "mh"):
        assert out.cls_logits.shape == (4, 5 + (cond == "mh"))
    if cond in ("d2d_ce", "2c"):
        assert out.embed.shape == (4, 7) and out.proxies.shape == (5, 7)
    loss = out.adv.sum() + sum(t.sum() for t in (out.cls_logits, out.embed, out.proxies) if t is not None)
    loss.backward()
    for net in (g, d):
        grads = [p.grad for p in net.parameters() if p.requires_grad]
        assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert g.linear0.weight.grad.abs().sum() > 0 and g.shared.weight.grad.abs().sum() > 0


def test_no_sn_variant_runs() -> None:
    torch.manual_seed(0)
    g, d = _tiny_pair("pd", sn=False)
    assert not any(isinstance(m, (SNConv2d, SNLinear, SNEmbedding)) for m in [*g.modules(), *d.modules()])
    y = torch.randint(0, 5, (2,))
    assert d(g(torch.randn(2, 8), y), y).adv.shape == (2,)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mh_typo"):
        DiscriminatorHeads(4, 3, "mh_typo", 8, sn=True)
    with pytest.raises(ValueError):
        BigGANGenerator(z_dim=10)
    with pytest.raises(ValueError):
        init_weights(nn.Linear(2, 2), "xavier_typo")


def test_pd_projection_term() -> None:
    torch.manual_seed(0)
    heads = DiscriminatorHeads(6, 4, "pd", 8, sn=False)
    h, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 1])
    expected = heads.adv(h)[:, 0] + (heads.projection.weight[y] * h).sum(1)
    torch.testing.assert_close(heads(h, y).adv, expected)


# ----------------------------------------------------------------------------------------- spectral norm

def _top_sv(w: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)


@pytest.mark.parametrize("make", [lambda: SNConv2d(4, 6, 3), lambda: SNLinear(7, 5),
                                  lambda: SNEmbedding(9, 4)])
def test_sn_converges_to_top_singular_value(make) -> None:
    torch.manual_seed(0)
    layer = make()
    x = torch.randint(0, 9, (3,)) if isinstance(layer, nn.Embedding) else (
        torch.randn(2, 4, 5, 5) if isinstance(layer, nn.Conv2d) else torch.randn(2, 7))
    for _ in range(50):
        layer(x)
    true = _top_sv(layer.weight.detach())
    assert abs(layer.sigma() - true) / true < 1e-3
    assert abs(_top_sv(layer.normalized_weight().detach()) - 1.0) < 1e-3


def test_sn_eval_keeps_u_and_train_updates_it() -> None:
    torch.manual_seed(0)
    layer = SNLinear(5, 4)
    u0 = layer.u.clone()
    layer.eval()
    layer(torch.randn(3, 5))
    assert torch.equal(layer.u, u0)
    layer.train()
    layer(torch.randn(3, 5))
    assert not torch.equal(layer.u, u0)
    assert torch.allclose(layer.u.norm(), torch.tensor(1.0))


def test_sn_matches_torch_spectral_norm() -> None:
    # One training forward from the same (W, u) gives the same output as torch's implementation.
    torch.manual_seed(0)
    ours = SNConv2d(3, 8, 3, padding=1)
    ref = nn.utils.spectral_norm(nn.Conv2d(3, 8, 3, padding=1), eps=1e-6)
    with torch.no_grad():
        ref.weight_orig.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
        ref.weight_u.copy_(ours.u)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.u, ref.weight_u)


def test_sn_gradient_through_sigma_matches_finite_differences() -> None:
    # With u fixed (eval), d(u^T W v)/dW with v held constant equals the true derivative of ||W^T u||,
    # so autograd must agree with finite differences of the normalised output.
    torch.manual_seed(0)
    layer = SNLinear(4, 3, bias=False).double().eval()
    x, r = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)

    def f() -> torch.Tensor:
        return (layer(x) * r).sum()

    f().backward()
    numeric = torch.zeros_like(layer.weight)
    step = 1e-6
    with torch.no_grad():
        for idx in torch.cartesian_prod(torch.arange(3), torch.arange(4)).tolist():
            w0 = layer.weight[idx[0], idx[1]].item()
            layer.weight[idx[0], idx[1]] = w0 + step
            plus = f()
            layer.weight[idx[0], idx[1]] = w0 - step
            minus = f()
            layer.weight[idx[0], idx[1]] = w0
            numeric[idx[0], idx[1]] = (plus - minus) / (2 * step)
    torch.testing.assert_close(layer.weight.grad, numeric, rtol=1e-6, atol=1e-8)


def test_sn_twice_before_backward() -> None:
    # D runs on reals and fakes before one backward; the in-place u update must not break autograd.
    torch.manual_seed(0)
    layer = SNLinear(4, 3)
    (layer(torch.randn(2, 4)).sum() + layer(torch.randn(2, 4)).sum()).backward()
    assert layer.weight.grad is not None


def test_factories_and_parameter_counts() -> None:
    assert isinstance(conv2d(2, 3, 3, sn=True), SNConv2d)
    assert type(conv2d(2, 3, 3, sn=False)) is nn.Conv2d
    assert isinstance(linear(2, 3), SNLinear) and type(linear(2, 3, sn=False)) is nn.Linear
    assert isinstance(embedding(2, 3), SNEmbedding) and type(embedding(2, 3, sn=False)) is nn.Embedding
    assert count_parameters(conv2d(2, 3, 3)) == count_parameters(conv2d(2, 3, 3, sn=False)) == 57
    assert set(linear(2, 3).state_dict()) == {"weight", "bias", "u"}


def test_init_weights() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(linear(8, 8), conv2d(8, 8, 1, sn=False), nn.BatchNorm2d(8))
    init_weights(net, "orthogonal")
    w = net[0].weight.detach()
    torch.testing.assert_close(w @ w.t(), torch.eye(8), atol=1e-5, rtol=0)
    assert net[0].bias.abs().sum() == 0 and net[1].bias.abs().sum() == 0
    assert torch.equal(net[2].weight, torch.ones(8))  # BN untouched
    init_weights(net, "normal")
    assert 0.005 < net[1].weight.std() < 0.05
    before = net[0].weight.clone()
    init_weights(net, "default")
    assert torch.equal(net[0].weight, before)


# ----------------------------------------------------------------------------------------- other layers

def test_self_attention_identity_at_zero_gamma() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(16, sn=True)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(attn(x), x)
    with torch.no_grad():
        attn.gamma.fill_(0.7)
    y = attn(x)
    assert y.shape == x.shape and not torch.allclose(y, x)


def test_conditional_bn_with_zero_weights_is_plain_bn() -> None:
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(6, 5, sn=False)
    with torch.no_grad():
        cbn.gain.weight.zero_()
        cbn.bias.weight.zero_()
    bn = nn.BatchNorm2d(6, eps=1e-4, momentum=0.1, affine=False)
    x, c = torch.randn(4, 6, 3, 3), torch.randn(4, 5)
    torch.testing.assert_close(cbn(x, c), bn(x), rtol=0, atol=0)
    torch.testing.assert_close(cbn.bn.running_mean, bn.running_mean)


# ----------------------------------------------------------------------------------------- persistence

def test_state_dict_round_trip_and_deepcopy_bitwise() -> None:
    torch.manual_seed(0)
    g, d = _tiny_pair("d2d_ce")
    z, y = torch.randn(3, 8), torch.randint(0, 5, (3,))
    for _ in range(2):  # move u and BN stats away from their initial values
        d(g(z, y), y)
    g2, d2 = _tiny_pair("d2d_ce")
    buf = io.BytesIO()
    torch.save({"g": g.state_dict(), "d": d.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf)
    g2.load_state_dict(state["g"])
    d2.load_state_dict(state["d"])
    g3, d3 = copy.deepcopy(g), copy.deepcopy(d)
    for net in (g, d, g2, d2, g3, d3):
        net.eval()
    x = g(z, y)
    assert torch.equal(g2(z, y), x) and torch.equal(g3(z, y), x)
    ref = d(x, y)
    for other in (d2, d3):
        out = other(x, y)
        assert torch.equal(out.adv, ref.adv) and torch.equal(out.embed, ref.embed)
        assert torch.equal(out.proxies, ref.proxies)
    # Training-mode forwards update u identically in the copy.
    d.train(), d3.train()
    assert torch.equal(d(x, y).adv, d3(x, y).adv)
    assert torch.equal(d.heads.adv.u, d3.heads.adv.u)


# ------------------------------------------------------------------------------ ResNet-32, Deep CNN, no condition
from condgan.nets import DCGANDiscriminator, DeepCNNGenerator, ResNetDiscriminator, ResNetGenerator  # noqa: E402
from condgan.nets.dcgan import DCGANGenerator  # noqa: E402


def _generators(conditional: bool) -> list[nn.Module]:
    return [ResNetGenerator(z_dim=8, num_classes=5, channels=(16,) * 4, conditional=conditional),
            DeepCNNGenerator(z_dim=8, num_classes=5, conditional=conditional),
            BigGANGenerator(z_dim=8, num_classes=5, width=8, shared_dim=6, conditional=conditional),
            DCGANGenerator(8, 5, width=8, img_channels=3, conditional=conditional)]


def test_generators_shapes_and_unconditional_ignores_labels() -> None:
    torch.manual_seed(0)
    z = torch.randn(4, 8)
    for g in _generators(conditional=True) + _generators(conditional=False):
        g.eval()  # BN running statistics: one image's output does not depend on its batch mates
        x = g(z, torch.tensor([0, 1, 2, 3]))
        assert x.shape == (4, 3, 32, 32) and x.abs().max() <= 1
        same = torch.equal(x, g(z, torch.tensor([4, 4, 4, 4])))
        assert same == (not g.conditional), type(g).__name__


def test_resnet_and_deep_cnn_discriminators() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 4])
    d = ResNetDiscriminator(num_classes=5, channels=(16,) * 4, downsample=(True, False, False), cond="ac", aux="adc")
    out = d(x, y)
    assert out.adv.shape == (3,) and out.features.shape == (3, 16) and out.cls_logits.shape == (3, 10)
    relu_d = DCGANDiscriminator(5, 8, 3, cond="mh", negative_slope=0.0)
    out = relu_d(x, y)
    assert out.cls_logits.shape == (3, 6) and not any(isinstance(m, nn.LeakyReLU) and m.negative_slope
                                                      for m in relu_d.modules())


def test_tac_heads_are_twins_of_the_main_ones() -> None:
    heads = DiscriminatorHeads(12, 5, "d2d_ce", 7, sn=True, aux="tac")
    out = heads(torch.randn(4, 12), torch.tensor([0, 1, 2, 3]))
    assert out.embed.shape == out.tac_embed.shape == (4, 7)
    assert out.proxies.shape == out.tac_proxies.shape == (5, 7)
    assert not torch.equal(out.embed, out.tac_embed)
    ac = DiscriminatorHeads(12, 5, "ac", 7, sn=False, aux="tac")(torch.randn(4, 12), torch.zeros(4, dtype=torch.long))
    assert ac.cls_logits.shape == ac.tac_logits.shape == (4, 5)
    with pytest.raises(ValueError, match="auxiliary"):
        DiscriminatorHeads(12, 5, "pd", 7, sn=False, aux="tac")


@pytest.mark.parametrize("sn, bias", [(False, True), (True, False), (True, True)])
def test_upsample_conv_equals_conv_of_the_upsampled_image(sn, bias):
    """The phase-folded 3x3 conv is the same linear map as nearest 2x upsampling then the conv (float64),
    values and gradients, for odd and even sizes."""
    from condgan.nets.layers import conv2d, conv_weight, upsample_conv3x3

    torch.manual_seed(0)
    conv = conv2d(5, 3, 3, padding=1, bias=bias, sn=sn).double().eval()
    if bias:
        torch.nn.init.normal_(conv.bias)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    ref = torch.nn.functional.conv2d(up, conv_weight(conv), conv.bias, padding=1)
    out = upsample_conv3x3(x, conv)
    assert out.shape == ref.shape == (2, 3, 12, 14)
    assert torch.allclose(out, ref, atol=1e-12, rtol=0)
    upstream = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * upstream).sum(), [x, conv.weight])
    g_out = torch.autograd.grad((out * upstream).sum(), [x, conv.weight])
    for a, b in zip(g_ref, g_out):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)

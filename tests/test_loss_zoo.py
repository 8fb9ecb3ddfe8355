"""The loss zoo against independent float64 references written from the formulas (numpy loops), with
central-difference gradients; plus the properties the papers state."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from condgan.losses import (ADVERSARIAL, consistency, contrastive_2c, dragan_perturb, gradient_penalty,
                            interpolate, lecam, ls_d, ls_g, multi_hinge, ns_d, ns_g, r1_penalty, topk,
                            topk_count, wasserstein_d, wasserstein_g)
from test_losses import central_diff, t64


def check_value_and_grads(torch_fn, ref_fn, arrays, atol=1e-6):
    """torch_fn(*tensors) vs ref_fn(*arrays): value and every input's gradient (float64)."""
    tensors = [t64(a, True) for a in arrays]
    value = torch_fn(*tensors)
    assert abs(value.item() - ref_fn(*arrays)) < 1e-9
    value.backward()
    for i, (a, t) in enumerate(zip(arrays, tensors)):
        def partial(x, i=i):
            args = list(arrays)
            args[i] = x
            return ref_fn(*args)
        np.testing.assert_allclose(t.grad.numpy(), central_diff(partial, a), atol=atol)


# ---------------------------------------------------------------------------- adversarial losses
REF_ADV = {
    "ns": (lambda r, f: (np.mean([math.log(1 + math.exp(-v)) for v in r])
                         + np.mean([math.log(1 + math.exp(v)) for v in f])),
           lambda f: np.mean([-math.log(1 / (1 + math.exp(-v))) for v in f])),
    "ls": (lambda r, f: 0.5 * np.mean([(v - 1) ** 2 for v in r]) + 0.5 * np.mean([v ** 2 for v in f]),
           lambda f: 0.5 * np.mean([(v - 1) ** 2 for v in f])),
    "wasserstein": (lambda r, f: np.mean(f) - np.mean(r), lambda f: -np.mean(f)),
}


@pytest.mark.parametrize("name", ["ns", "ls", "wasserstein"])
def test_adversarial_losses_match_reference(name):
    rng = np.random.default_rng(1)
    real, fake = rng.normal(scale=2, size=7), rng.normal(scale=2, size=5)
    d, g = ADVERSARIAL[name].d, ADVERSARIAL[name].g
    ref_d, ref_g = REF_ADV[name]
    check_value_and_grads(d, ref_d, [real, fake])
    check_value_and_grads(g, ref_g, [fake])
    # [N, 1] logits give the same value
    assert d(t64(real[:, None]), t64(fake[:, None])).item() == pytest.approx(ref_d(real, fake), abs=1e-12)


def test_adversarial_properties():
    zero = torch.zeros(4, dtype=torch.float64)
    assert ns_d(zero, zero).item() == pytest.approx(2 * math.log(2))  # D(x) = 1/2 everywhere
    assert ns_g(torch.tensor([50.0])).item() < 1e-20                  # non-saturating: ~0 once fooled
    big = torch.tensor([-800.0, 800.0], dtype=torch.float64)
    assert torch.isfinite(ns_d(big, big)) and torch.isfinite(ns_g(big))
    assert ls_d(torch.ones(3), torch.zeros(3)).item() == 0 and ls_g(torch.ones(3)).item() == 0
    r, f = torch.randn(6), torch.randn(6)
    assert wasserstein_d(r + 3, f + 3).item() == pytest.approx(wasserstein_d(r, f).item(), abs=1e-6)
    assert wasserstein_g(f).item() == pytest.approx(-f.mean().item())


# ---------------------------------------------------------------------------- 2C (ContraGAN)
def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ref_2c(embed, proxy, labels, temperature):
    """Mean of -log[(e^{pos_i/T} + sum_{j!=i, y_j=y_i} e^{s_ij/T}) / (e^{pos_i/T} + sum_{j!=i} e^{s_ij/T})]."""
    f, v = unit(embed), unit(proxy)
    total = 0.0
    for i in range(len(f)):
        p = math.exp(float(f[i] @ v[i]) / temperature)
        num, den = p, p
        for j in range(len(f)):
            if j != i:
                e = math.exp(float(f[i] @ f[j]) / temperature)
                den += e
                num += e if labels[j] == labels[i] else 0.0
        total += -math.log(num / den)
    return total / len(f)


@pytest.mark.parametrize("n,d,classes,temperature", [(1, 3, 1, 1.0), (6, 4, 3, 1.0), (9, 5, 4, 0.5), (8, 3, 8, 0.2)])
def test_contrastive_2c_matches_reference(n, d, classes, temperature):
    rng = np.random.default_rng(n * 100 + d)
    embed, proxy = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    labels = rng.integers(0, classes, size=n)
    y = torch.from_numpy(labels)
    check_value_and_grads(lambda e, p: contrastive_2c(e, p, y, temperature),
                          lambda e, p: ref_2c(e, p, labels, temperature), [embed, proxy])


def test_contrastive_2c_properties():
    rng = np.random.default_rng(5)
    embed, proxy = t64(rng.normal(size=(6, 4))), t64(rng.normal(size=(6, 4)))
    one_class = torch.zeros(6, dtype=torch.long)
    assert contrastive_2c(embed, proxy, one_class).item() == pytest.approx(0.0, abs=1e-12)  # all positives
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    base = contrastive_2c(embed, proxy, y).item()
    assert base > 0
    assert contrastive_2c(embed * 7.0, proxy * 0.1, y).item() == pytest.approx(base, abs=1e-12)  # normalised
    # Large similarities stay finite at a small temperature (log-sum-exp form).
    assert torch.isfinite(contrastive_2c(embed, proxy, y, temperature=1e-3))
    half = contrastive_2c(embed.half(), proxy.half(), y)
    assert half.dtype == torch.float32 and half.item() == pytest.approx(base, abs=5e-3)


# ---------------------------------------------------------------------------- multi-hinge (MH)
def ref_mh(logits, targets):
    total = 0.0
    for o, t in zip(logits, targets):
        others = max(o[k] for k in range(len(o)) if k != t)
        total += max(0.0, 1.0 + others - o[t])
    return total / len(logits)


def test_multi_hinge_matches_reference():
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2, size=(10, 6))
    targets = rng.integers(0, 6, size=10)
    t = torch.from_numpy(targets)
    # keep away from the kinks (margin exactly 1 or tied maxima)
    for o, tt in zip(logits, targets):
        o[tt] += 0.013
    check_value_and_grads(lambda x: multi_hinge(x, t), lambda x: ref_mh(x, targets), [logits])


def test_multi_hinge_properties():
    logits = torch.tensor([[3.0, 1.0, 0.5], [0.0, 0.0, 0.0]], requires_grad=True)
    loss = multi_hinge(logits, torch.tensor([0, 2]))
    # sample 0: target leads by 2 >= 1 -> 0; sample 1: all tied -> 1
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert torch.all(logits.grad[0] == 0)  # a satisfied margin gives no gradient
    assert logits.grad[1, 2].item() == pytest.approx(-0.5)


# ---------------------------------------------------------------------------- regularisers
def test_gradient_penalty_and_r1_on_a_quadratic_critic():
    """D(x) = 0.5 x^T A x + w.x per sample: grad = (A + A^T) x / 2 + w; penalties vs numpy, and their
    gradients w.r.t. D's parameters (A, w) vs central differences (the double-backward path)."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(5, 3))
    a0 = rng.normal(size=(3, 3))
    a0 = a0 + a0.T
    w0 = rng.normal(size=3)

    def grads(a, w):
        return x @ (0.5 * (a + a.T)) + w  # rows: sym(A) x_i + w (finite differences perturb A asymmetrically)

    def ref_gp(a, w):
        return float(np.mean((np.linalg.norm(grads(a, w), axis=1) - 1.0) ** 2))

    def ref_r1(a, w):
        return float(np.mean(np.sum(grads(a, w) ** 2, axis=1)))

    def critic(a, w, xt):
        return 0.5 * torch.einsum("ni,ij,nj->n", xt, a, xt) + xt @ w

    for penalty, ref in ((gradient_penalty, ref_gp), (r1_penalty, ref_r1)):
        def fn(a, w, penalty=penalty):
            xt = t64(x, True)
            return penalty(critic(a, w, xt), xt)
        check_value_and_grads(fn, ref, [a0, w0])


def test_interpolate_and_dragan_perturb():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=(4, 2, 3, 3))
    alpha = rng.uniform(size=4)
    out = interpolate(t64(a), t64(b), t64(alpha)).numpy()
    np.testing.assert_allclose(out, alpha[:, None, None, None] * a + (1 - alpha[:, None, None, None]) * b, atol=1e-12)
    noise = rng.uniform(size=a.shape)
    pert = dragan_perturb(t64(a), t64(noise)).numpy()
    np.testing.assert_allclose(pert, a + 0.5 * np.std(a, ddof=1) * noise, atol=1e-12)  # torch.std is unbiased


def test_lecam_and_consistency_match_reference():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=8), rng.normal(size=8)
    ema_r, ema_f = 0.3, -0.2

    def ref(r, f):
        return float(np.mean(np.maximum(r - ema_f, 0) ** 2) + np.mean(np.maximum(ema_r - f, 0) ** 2))
    check_value_and_grads(lambda r, f: lecam(r, f, torch.tensor(ema_r, dtype=torch.float64),
                                             torch.tensor(ema_f, dtype=torch.float64)), ref, [real, fake])
    a, b = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    check_value_and_grads(consistency, lambda p, q: float(np.mean((p - q) ** 2)), [a, b])


def test_topk_schedule_and_selection():
    assert topk_count(64, 0) == 64
    assert topk_count(64, 10, gamma=0.99, nu=0.5) == int(0.99 ** 10 * 64)
    assert topk_count(64, 10_000, gamma=0.99, nu=0.5) == 32   # floor at nu * batch
    assert topk_count(1, 10_000) == 1
    logits = torch.tensor([0.3, -2.0, 5.0, 1.0])
    assert sorted(topk(logits, 2).tolist()) == [1.0, 5.0]

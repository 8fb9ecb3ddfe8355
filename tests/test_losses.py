"""Tests for condgan.losses against independent float64 references written from the formulas.

The numpy references below follow the papers' notation literally (double loops over i, j and the
-log(softmax-like ratio) form of D2D-CE); they share no code with the implementation.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from condgan.losses import ADVERSARIAL, ac_ce, d2d_ce, hinge_d, hinge_g
from condgan.losses.conditional import _d2d_ce_from_similarities


# ---------------------------------------------------------------------------- numpy references
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ref_reference_m(embed: np.ndarray, m_n: float, temperature: float) -> list[float]:
    """M_i = max over all j != i of (s_ij - m_n) / T (0 when there is no j != i)."""
    f = _unit(embed)
    n = len(f)
    out = []
    for i in range(n):
        vals = [(float(f[i] @ f[j]) - m_n) / temperature for j in range(n) if j != i]
        out.append(max(vals) if vals else 0.0)
    return out


def ref_d2d_ce(embed, proxy, labels, temperature=0.5, m_p=0.98, m_n=None,
               reference_form=False, frozen_m=None) -> float:
    """Mean over i of -log[e^{min(pos_i-m_p,0)/T} / (same + sum_{neg} e^{max(s_ij-m_n,0)/T} (e^{-M_i}))]."""
    m_n = 1.0 - m_p if m_n is None else m_n
    f, v = _unit(embed), _unit(proxy)
    n = len(labels)
    ms = [0.0] * n
    if reference_form:
        ms = frozen_m if frozen_m is not None else ref_reference_m(embed, m_n, temperature)
    total = 0.0
    for i in range(n):
        pos = float(f[i] @ v[i])
        pos_term = math.exp(min(pos - m_p, 0.0) / temperature)
        neg_sum = 0.0
        for j in range(n):
            if j != i and labels[j] != labels[i]:
                s = float(f[i] @ f[j])
                neg_sum += math.exp(max(s - m_n, 0.0) / temperature) * math.exp(-ms[i])
        total += -math.log(pos_term / (pos_term + neg_sum))
    return total / n


def ref_hinge_d(real: np.ndarray, fake: np.ndarray) -> float:
    return float(np.mean(np.maximum(0.0, 1.0 - real)) + np.mean(np.maximum(0.0, 1.0 + fake)))


def ref_hinge_g(fake: np.ndarray) -> float:
    return float(-np.mean(fake))


def ref_ac_ce(logits: np.ndarray, labels: np.ndarray) -> float:
    lsm = log_softmax(logits, axis=1)
    return float(-np.mean(lsm[np.arange(len(labels)), labels]))


def central_diff(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite-difference gradient of scalar fn at x (same shape as x)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (fn(xp) - fn(xm)) / (2 * h)
    return g


# ---------------------------------------------------------------------------- input builders
def make_labels(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    if kind == "same":
        return np.zeros(n, dtype=np.int64)
    if kind == "distinct":
        return rng.permutation(n).astype(np.int64)
    return rng.integers(0, max(1, n // 2), size=n).astype(np.int64)  # "repeat": guaranteed repeats


def make_inputs(rng: np.random.Generator, n: int, d: int):
    """Embeddings plus proxies near some of them, so pos_i spans both sides of typical margins."""
    embed = rng.normal(size=(n, d))
    closeness = rng.choice([0.05, 0.3, 3.0], size=(n, 1))
    proxy = embed + closeness * rng.normal(size=(n, d))
    return embed, proxy


def away_from_kinks(embed, proxy, m_p, m_n, tol=1e-3) -> bool:
    f, v = _unit(embed), _unit(proxy)
    pos = np.sum(f * v, axis=1)
    sim = f @ f.T
    off = ~np.eye(len(f), dtype=bool)
    return bool(np.all(np.abs(pos - m_p) > tol) and np.all(np.abs(sim[off] - m_n) > tol))


def kink_free_inputs(rng, n, d, m_p, m_n):
    for _ in range(1000):
        embed, proxy = make_inputs(rng, n, d)
        if away_from_kinks(embed, proxy, m_p, m_n):
            return embed, proxy
    raise RuntimeError("could not sample kink-free inputs")


def t64(x: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


# ---------------------------------------------------------------------------- D2D-CE values
VALUE_CASES = [
    # (n, d, label kind, temperature, m_p, m_n)
    (1, 3, "same", 0.5, 0.98, None),
    (2, 3, "distinct", 0.5, 0.98, None),
    (2, 8, "same", 0.5, 0.98, None),
    (7, 3, "repeat", 0.5, 0.98, None),
    (7, 8, "distinct", 0.3, 0.9, 0.2),
    (7, 8, "same", 0.5, 0.98, None),
    (16, 8, "repeat", 0.5, 0.98, None),
    (16, 3, "repeat", 0.2, 0.5, -0.1),
    (16, 8, "distinct", 1.0, 0.7, 0.4),
]


@pytest.mark.parametrize("reference_form", [False, True])
@pytest.mark.parametrize("case", VALUE_CASES)
def test_d2d_ce_matches_numpy_reference(case, reference_form):
    n, d, kind, temperature, m_p, m_n = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    embed, proxy = make_inputs(rng, n, d)
    labels = make_labels(rng, n, kind)
    got = d2d_ce(t64(embed), t64(proxy), torch.from_numpy(labels), temperature=temperature,
                 m_p=m_p, m_n=m_n, reference_form=reference_form)
    want = ref_d2d_ce(embed, proxy, labels, temperature, m_p, m_n, reference_form)
    assert got.dtype == torch.float64 and got.dim() == 0
    assert abs(got.item() - want) <= 1e-6 * max(1.0, abs(want))


def test_d2d_ce_no_negatives_is_zero_with_finite_grads():
    rng = np.random.default_rng(0)
    for n in (1, 5):
        for reference_form in (False, True):
            embed, proxy = t64(rng.normal(size=(n, 4)), True), t64(rng.normal(size=(n, 4)), True)
            loss = d2d_ce(embed, proxy, torch.zeros(n, dtype=torch.long), reference_form=reference_form)
            loss.backward()
            assert loss.item() == pytest.approx(0.0, abs=1e-12)
            assert torch.isfinite(embed.grad).all() and torch.isfinite(proxy.grad).all()


# ---------------------------------------------------------------------------- D2D-CE gradients
GRAD_CASES = [
    (2, 3, "distinct", 0.5, 0.98, None),
    (5, 3, "repeat", 0.3, 0.9, 0.2),
    (7, 8, "repeat", 0.5, 0.6, 0.1),
    (6, 8, "distinct", 0.2, 0.8, -0.2),
]


@pytest.mark.parametrize("reference_form", [False, True])
@pytest.mark.parametrize("case", GRAD_CASES)
def test_d2d_ce_grad_matches_finite_differences(case, reference_form):
    n, d, kind, temperature, m_p, m_n = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()) + 1)
    m_n_eff = 1.0 - m_p if m_n is None else m_n
    embed, proxy = kink_free_inputs(rng, n, d, m_p, m_n_eff)
    labels = make_labels(rng, n, kind)
    # M_i is a detached constant in the implementation, so the reference freezes it at the
    # unperturbed value; finite differences would otherwise see it move.
    frozen = ref_reference_m(embed, m_n_eff, temperature) if reference_form else None

    def ref(e, p):
        return ref_d2d_ce(e, p, labels, temperature, m_p, m_n, reference_form, frozen_m=frozen)

    e_t, p_t = t64(embed, True), t64(proxy, True)
    d2d_ce(e_t, p_t, torch.from_numpy(labels), temperature, m_p, m_n, reference_form).backward()
    np.testing.assert_allclose(e_t.grad.numpy(), central_diff(lambda e: ref(e, proxy), embed), atol=1e-6)
    np.testing.assert_allclose(p_t.grad.numpy(), central_diff(lambda p: ref(embed, p), proxy), atol=1e-6)


def test_d2d_ce_gradcheck_paper_form():
    rng = np.random.default_rng(3)
    embed, proxy = kink_free_inputs(rng, 6, 4, 0.7, 0.1)
    labels = torch.tensor([0, 1, 1, 2, 0, 3])

    def fn(e, p):
        return d2d_ce(e, p, labels, temperature=0.4, m_p=0.7, m_n=0.1)

    assert torch.autograd.gradcheck(fn, (t64(embed, True), t64(proxy, True)))


def test_reference_form_differs_and_its_scale_is_detached():
    rng = np.random.default_rng(4)
    n, d, temperature, m_p = 8, 8, 0.5, 0.98
    embed, proxy = kink_free_inputs(rng, n, d, m_p, 1.0 - m_p)
    labels = make_labels(rng, n, "repeat")
    y = torch.from_numpy(labels)
    paper = d2d_ce(t64(embed), t64(proxy), y, temperature, m_p)
    e_t = t64(embed, True)
    ref_form = d2d_ce(e_t, t64(proxy), y, temperature, m_p, reference_form=True)
    assert abs(paper.item() - ref_form.item()) > 1e-3
    ref_form.backward()
    # Letting M_i move with the inputs gives a different gradient: autograd must not see it.
    moving = central_diff(lambda e: ref_d2d_ce(e, proxy, labels, temperature, m_p, None, True), embed)
    assert np.max(np.abs(e_t.grad.numpy() - moving)) > 1e-4


# ---------------------------------------------------------------------------- D2D-CE properties
def similarity_leaves(rng, n, m_p, m_n):
    """pos [N] and sim [N, N] leaves with entries on both sides of the margins (away from them)."""
    pos = rng.uniform(-1, 1, size=n)
    pos[: n // 2] = rng.uniform(m_p + 0.005, 1.0, size=n // 2)
    sim = rng.uniform(-1, 1, size=(n, n))
    pos[np.abs(pos - m_p) < 1e-3] += 2e-3
    sim[np.abs(sim - m_n) < 1e-3] += 2e-3
    return t64(pos, True), t64(sim, True)


@pytest.mark.parametrize("reference_form", [False, True])
def test_margin_properties_on_similarity_gradients(reference_form):
    rng = np.random.default_rng(5)
    n, temperature, m_p, m_n = 12, 0.5, 0.6, 0.1
    labels = torch.from_numpy(make_labels(rng, n, "repeat"))
    pos, sim = similarity_leaves(rng, n, m_p, m_n)
    _d2d_ce_from_similarities(pos, sim, labels, temperature, m_p, m_n, reference_form).mean().backward()
    gp, gs = pos.grad, sim.grad
    # (2) pos_i >= m_p gives no gradient; below the margin the positive is pulled up.
    assert torch.all(gp[pos.detach() >= m_p] == 0)
    assert torch.all(gp[pos.detach() < m_p] < 0)
    # (3) s_ij <= m_n gives no gradient, and non-negative pairs (same class, diagonal) never do.
    is_neg = labels[:, None] != labels[None, :]
    active = is_neg & (sim.detach() > m_n)
    assert torch.all(gs[~active] == 0)
    assert torch.all(gs[active] > 0)
    # (1) within a row, a harder (more similar) negative is pushed at least as hard.
    for i in range(n):
        js = torch.nonzero(is_neg[i]).flatten()
        order = torch.argsort(sim.detach()[i, js])
        g_sorted = gs[i, js][order].abs()
        assert torch.all(g_sorted[1:] >= g_sorted[:-1] - 1e-15)


def test_per_sample_lower_bound_on_similarities():
    rng = np.random.default_rng(6)
    n, temperature, m_p, m_n = 10, 0.3, 0.9, 0.2
    labels = torch.from_numpy(make_labels(rng, n, "repeat"))
    n_neg = (labels[:, None] != labels[None, :]).sum(dim=1).double()
    for _ in range(50):
        pos, sim = similarity_leaves(rng, n, m_p, m_n)
        per = _d2d_ce_from_similarities(pos, sim, labels, temperature, m_p, m_n, False)
        assert torch.all(per >= torch.log1p(n_neg) - 1e-12)


def test_global_minimum_paper_form():
    rng = np.random.default_rng(7)
    num_classes, d = 4, 6
    labels = np.array([0, 0, 1, 2, 2, 2, 3, 1, 0, 3])
    # Orthogonal class directions: pos_i = 1 >= m_p and cross-class s_ij = 0 <= m_n = 0.02.
    basis = np.eye(d)[:num_classes]
    embed = basis[labels] * rng.uniform(0.5, 2.0, size=(len(labels), 1))
    proxy = basis[labels] * rng.uniform(0.5, 2.0, size=(len(labels), 1))
    n_neg = np.array([(labels != y).sum() for y in labels])
    minimum = float(np.mean(np.log1p(n_neg)))
    y = torch.from_numpy(labels)
    e_t = t64(embed, True)
    loss = d2d_ce(e_t, t64(proxy), y)
    loss.backward()
    assert abs(loss.item() - minimum) < 1e-9
    assert abs(ref_d2d_ce(embed, proxy, labels) - minimum) < 1e-9
    assert torch.all(e_t.grad == 0)
    for scale in (1e-3, 0.1, 1.0):
        for _ in range(30):
            e = embed + scale * rng.normal(size=embed.shape)
            p = proxy + scale * rng.normal(size=proxy.shape)
            assert d2d_ce(t64(e), t64(p), y).item() >= minimum - 1e-12


# ---------------------------------------------------------------------------- D2D-CE dtypes
def test_d2d_ce_float32_large_and_zero_row():
    gen = torch.Generator().manual_seed(8)
    embed = torch.randn(128, 512, generator=gen)
    proxy = torch.randn(128, 512, generator=gen)
    labels = torch.randint(0, 10, (128,), generator=gen)
    embed[0] = 0.0  # normalises to the zero vector: pos = s = 0, must stay finite
    for reference_form in (False, True):
        e = embed.clone().requires_grad_(True)
        loss = d2d_ce(e, proxy, labels, reference_form=reference_form)
        loss.backward()
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        assert torch.isfinite(e.grad).all()
        want = d2d_ce(embed.double(), proxy.double(), labels, reference_form=reference_form)
        assert abs(loss.item() - want.item()) < 1e-4


def test_d2d_ce_half_inputs_and_autocast_compute_in_float32():
    gen = torch.Generator().manual_seed(9)
    embed, proxy = torch.randn(32, 16, generator=gen), torch.randn(32, 16, generator=gen)
    labels = torch.randint(0, 4, (32,), generator=gen)
    full = d2d_ce(embed, proxy, labels)
    half = d2d_ce(embed.bfloat16(), proxy.bfloat16(), labels)
    assert half.dtype == torch.float32
    assert abs(half.item() - full.item()) < 5e-2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_amp = d2d_ce(embed, proxy, labels)
    assert under_amp.dtype == torch.float32
    assert abs(under_amp.item() - full.item()) < 1e-6


# ---------------------------------------------------------------------------- hinge and AC
def logits_away_from(rng, shape, kinks, tol=1e-3):
    x = rng.normal(scale=2.0, size=shape)
    for k in kinks:
        x[np.abs(x - k) < tol] += 2 * tol
    return x


@pytest.mark.parametrize("shape", [(9,), (9, 1)])
def test_hinge_values_and_grads(shape):
    rng = np.random.default_rng(10)
    real = logits_away_from(rng, shape, [1.0])
    fake = logits_away_from(rng, (5,) + shape[1:], [-1.0])
    r_t, f_t = t64(real, True), t64(fake, True)
    loss_d = hinge_d(r_t, f_t)
    assert loss_d.dim() == 0 and abs(loss_d.item() - ref_hinge_d(real, fake)) < 1e-12
    loss_d.backward()
    np.testing.assert_allclose(r_t.grad.numpy(), central_diff(lambda r: ref_hinge_d(r, fake), real), atol=1e-6)
    np.testing.assert_allclose(f_t.grad.numpy(), central_diff(lambda f: ref_hinge_d(real, f), fake), atol=1e-6)
    f_t.grad = None
    loss_g = hinge_g(f_t)
    assert abs(loss_g.item() - ref_hinge_g(fake)) < 1e-12
    loss_g.backward()
    np.testing.assert_allclose(f_t.grad.numpy(), central_diff(ref_hinge_g, fake), atol=1e-6)


def test_adversarial_registry():
    real, fake = t64(np.array([-1.5, 0.2, 2.0])), t64(np.array([0.7, -3.0]))
    assert ADVERSARIAL["hinge"].d(real, fake).item() == hinge_d(real, fake).item()
    assert ADVERSARIAL["hinge"].g(fake).item() == hinge_g(fake).item()
    for name, loss in ADVERSARIAL.items():  # the split parts add up to the whole D loss
        assert loss.d(real, fake).item() == (loss.d_real(real) + loss.d_fake(fake)).item(), name


def test_ac_ce_values_and_grads():
    rng = np.random.default_rng(11)
    logits = rng.normal(scale=3.0, size=(8, 5))
    labels = rng.integers(0, 5, size=8)
    l_t = t64(logits, True)
    loss = ac_ce(l_t, torch.from_numpy(labels))
    assert abs(loss.item() - ref_ac_ce(logits, labels)) < 1e-12
    loss.backward()
    np.testing.assert_allclose(l_t.grad.numpy(), central_diff(lambda x: ref_ac_ce(x, labels), logits), atol=1e-6)

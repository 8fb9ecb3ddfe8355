"""Tests for the metric maths (FID, Inception Score, PRDC) against independent float64 references.

The references below are written from the definitions (scipy's sqrtm and a complex eigenvalue form
for FID, numpy for IS, brute-force distance matrices for PRDC) and share no code with condgan; PRDC is
also checked against the reference ``prdc`` package (test extra).
"""
from __future__ import annotations

import contextlib
import importlib
import io

import numpy as np
import pytest
import scipy.linalg
import torch

from condgan.metrics.fid import StatsAccumulator, feature_statistics, frechet_distance, frechet_distance_of_features
from condgan.metrics.inception_score import inception_score
from condgan.metrics.prdc import prdc

prdc_module = importlib.import_module("condgan.metrics.prdc")   # the package re-exports the function
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


# ---------------------------------------------------------------------------- references
def ref_fid_sqrtm(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def ref_fid_eig(mu1, s1, mu2, s2) -> float:
    """Tr sqrt(S1 S2) as the sum of principal square roots of its (complex) eigenvalues."""
    ev = np.linalg.eigvals(s1 @ s2).astype(complex)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev).real.sum())


def ref_inception_score(p: np.ndarray, splits: int) -> tuple[float, float]:
    scores = []
    for part in np.array_split(p.astype(np.float64), splits):
        py = part.mean(0, keepdims=True)
        terms = np.where(part > 0, part * (np.log(np.where(part > 0, part, 1)) - np.log(py)), 0.0)
        scores.append(np.exp(terms.sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def ref_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Brute force from float64 sums of squared differences, as the definitions read."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)

    def d2(a, b):
        return np.stack([((b - row) ** 2).sum(1) for row in a])
    r_rad = np.sort(d2(real, real), 1)[:, k]   # (k+1)-th including self = k-th excluding it
    f_rad = np.sort(d2(fake, fake), 1)[:, k]
    rf = d2(real, fake)
    in_real_ball = rf < r_rad[:, None]
    return {"precision": in_real_ball.any(0).mean(), "recall": (rf < f_rad[None, :]).any(1).mean(),
            "density": in_real_ball.sum(0).mean() / k, "coverage": (rf.min(1) < r_rad).mean()}


def package_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    from prdc import compute_prdc
    with contextlib.redirect_stdout(io.StringIO()):   # it prints the set sizes
        return {key: float(v) for key, v in compute_prdc(real, fake, k).items()}


def assert_same(out: dict, ref: dict, tol: float = 1e-6) -> None:
    assert set(out) == set(ref)
    for key in ref:
        assert isinstance(out[key], float)
        assert abs(out[key] - ref[key]) <= tol, (key, out[key], ref[key])


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def random_cov(rng: np.random.Generator, d: int, low: float, high: float) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * np.logspace(np.log10(low), np.log10(high), d)) @ q.T


# ---------------------------------------------------------------------------- FID
@pytest.mark.parametrize("d", [16, 32, 64])
def test_fid_random_covariances(d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((400, d)) @ rng.standard_normal((d, d))
    y = rng.standard_normal((300, d)) * rng.uniform(0.5, 2, d) + 0.3
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert isinstance(value, float)
    assert rel_diff(value, ref_fid_sqrtm(mu1, s1, mu2, s2)) < 1e-6
    assert rel_diff(value, ref_fid_eig(mu1, s1, mu2, s2)) < 1e-6
    assert frechet_distance(*(torch.as_tensor(t) for t in (mu1, s1, mu2, s2))) == pytest.approx(value, rel=1e-12)


def test_fid_rank_deficient_covariances():
    """N < D: both covariances are singular (rank 19 of 64)."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 64)), rng.standard_normal((20, 64)) * 1.5 + 0.1
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert rel_diff(value, ref_fid_eig(mu1, s1, mu2, s2)) < 1e-6
    assert rel_diff(value, ref_fid_sqrtm(mu1, s1, mu2, s2)) < 1e-6


def test_fid_eigenvalues_spanning_ten_decades():
    rng = np.random.default_rng(2)
    s1, s2 = random_cov(rng, 48, 1e-10, 1.0), random_cov(rng, 48, 1e-10, 1.0)
    mu1, mu2 = rng.standard_normal(48) * 0.01, rng.standard_normal(48) * 0.01
    value = frechet_distance(mu1, s1, mu2, s2)
    assert rel_diff(value, ref_fid_eig(mu1, s1, mu2, s2)) < 1e-6
    assert rel_diff(value, ref_fid_sqrtm(mu1, s1, mu2, s2)) < 1e-6


def test_fid_identical_inputs_is_zero():
    rng = np.random.default_rng(3)
    for x in (rng.standard_normal((500, 32)), rng.standard_normal((10, 32))):   # full rank, singular
        mu, sigma = feature_statistics(x)
        assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


@pytest.mark.parametrize("n1,n2,d,shift", [(20, 30, 64, 0.0), (50, 50, 200, 3.0), (2, 5, 8, 0.0), (100, 80, 16, 1.0)])
def test_fid_of_features_matches_sqrtm_of_numpy_covariances(n1, n2, d, shift):
    """The low-rank route (n <= D: singular values of the n1 x n2 cross-product) and the full one (n > D)
    against scipy's sqrtm on numpy's unbiased covariances."""
    rng = np.random.default_rng(n1 + n2 + d)
    x1 = rng.standard_normal((n1, d)) * rng.uniform(0.1, 3, d) + shift
    x2 = rng.standard_normal((n2, d)) @ rng.standard_normal((d, d)) / d ** 0.5 + 0.5
    ref = ref_fid_sqrtm(x1.mean(0), np.cov(x1, rowvar=False), x2.mean(0), np.cov(x2, rowvar=False))
    assert rel_diff(frechet_distance_of_features(torch.from_numpy(x1), torch.from_numpy(x2)), ref) < 1e-7
    assert abs(frechet_distance_of_features(torch.from_numpy(x1), torch.from_numpy(x1))) < 1e-9 * (1 + shift ** 2) * d


def test_fid_shape_errors():
    mu, s = np.zeros(4), np.eye(4)
    with pytest.raises(ValueError, match="means"):
        frechet_distance(mu, s, np.zeros(5), np.eye(5))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(mu, s, mu, np.eye(3))
    with pytest.raises(ValueError, match="means"):
        frechet_distance(np.zeros((4, 1)), s, mu, s)


# ---------------------------------------------------------------------------- feature statistics
def test_feature_statistics_match_numpy():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((257, 24)) * rng.uniform(0.1, 3, 24) + 1e4).astype(np.float32)
    mu, sigma = feature_statistics(torch.as_tensor(x))
    assert mu.dtype == sigma.dtype == torch.float64 and sigma.shape == (24, 24)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mu.numpy(), x64.mean(0), rtol=1e-13)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-12)


def test_stats_accumulator_streams_like_concatenation():
    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((n, 12)) * 2 + 5 for n in (1, 30, 0, 7, 64)]
    acc = StatsAccumulator()
    for b in batches:
        acc.update(torch.as_tensor(b, dtype=torch.float32))
    full = np.concatenate(batches).astype(np.float32)
    mu, sigma = feature_statistics(full)
    assert acc.count == len(full)
    torch.testing.assert_close(acc.mean, mu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(acc.cov, sigma, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(acc.compute()[1], sigma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(acc.cov.numpy(), np.cov(full.astype(np.float64), rowvar=False), rtol=1e-9)
    with pytest.raises(ValueError):
        acc.update(np.zeros((2, 5)))
    with pytest.raises(ValueError):
        StatsAccumulator().cov


# ---------------------------------------------------------------------------- Inception Score
@pytest.mark.parametrize("splits", [1, 10])
def test_inception_score_matches_numpy(splits):
    rng = np.random.default_rng(splits)
    logits = rng.standard_normal((103, 7)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p[:5, 0] = 0.0   # exact zeros: 0 log 0 = 0
    p[:5] /= p[:5].sum(1, keepdims=True)
    mean, std = inception_score(torch.as_tensor(p, dtype=torch.float64), splits)
    ref_mean, ref_std = ref_inception_score(p, splits)
    assert isinstance(mean, float) and isinstance(std, float)
    assert abs(mean - ref_mean) < 1e-6 and abs(std - ref_std) < 1e-6
    if splits == 1:
        assert std == 0.0


def test_inception_score_limits():
    k, splits = 6, 5
    assert inception_score(np.full((40, k), 1 / k), splits) == pytest.approx((1.0, 0.0), abs=1e-12)
    one_hot = np.eye(k)[np.arange(k * splits * 3) % k]   # every split holds each class equally often
    mean, std = inception_score(one_hot, splits)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        inception_score(one_hot[:3], splits=4)
    with pytest.raises(ValueError):
        inception_score(np.ones(5), splits=1)


# ---------------------------------------------------------------------------- PRDC
def _gauss(rng, n, d, shift=0.0, scale=1.0):
    return (rng.standard_normal((n, d)) * scale + shift).astype(np.float32)


PRDC_CASES = {   # name -> (real, fake, k)
    "overlap": lambda r: (_gauss(r, 300, 32), _gauss(r, 250, 32, 0.2), 5),
    "disjoint": lambda r: (_gauss(r, 120, 16), _gauss(r, 140, 16, 6.0), 3),
    "uneven_k7": lambda r: (_gauss(r, 90, 64, scale=2.0), _gauss(r, 200, 64, 0.1), 7),
    "k1": lambda r: (_gauss(r, 60, 8), _gauss(r, 50, 8), 1),
    "lattice_ties": lambda r: (r.integers(0, 3, (150, 6)).astype(np.float32),
                               r.integers(0, 3, (160, 6)).astype(np.float32), 5),
}


@pytest.mark.parametrize("case", sorted(PRDC_CASES))
def test_prdc_matches_package_and_brute_force(case):
    rng = np.random.default_rng(len(case))
    real, fake, k = PRDC_CASES[case](rng)
    out = prdc(real, fake, k)
    assert_same(out, ref_prdc(real, fake, k))
    assert_same(out, package_prdc(real, fake, k))
    assert_same(prdc(torch.as_tensor(real), torch.as_tensor(fake), k, screen="float64"), out, tol=0.0)


def test_prdc_duplicates_and_points_on_ball_boundaries():
    """Duplicated points, fakes equal to reals, and fakes within 1e-7 of a real ball's boundary."""
    rng = np.random.default_rng(7)
    real = rng.standard_normal((80, 12))
    real[40:50] = real[:10]                      # duplicate pairs (radius still from distinct points)
    r_rad = np.sqrt(np.sort(((real[:, None] - real[None]) ** 2).sum(-1), 1)[:, 3])
    u = rng.standard_normal((30, 12))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    eps = np.where(np.arange(30) % 2 == 0, -1e-7, 1e-7)   # just inside / just outside
    near = real[:30] + u * (r_rad[:30] * (1 + eps))[:, None]
    fake = np.concatenate([real[:10], near, rng.standard_normal((20, 12))])
    out = prdc(real, fake, 3)
    assert_same(out, ref_prdc(real, fake, 3))
    assert_same(out, package_prdc(real, fake, 3))


def test_prdc_int8_screen_refines_exactly():
    """High-dimensional data (the int8 screen's home): both refinement stages run, nothing falls back."""
    rng = np.random.default_rng(8)
    real, fake = _gauss(rng, 500, 256), _gauss(rng, 450, 256, 0.05)
    prdc_module.STATS.clear()
    out = prdc(real, fake, 5)
    stats = dict(prdc_module.STATS)
    assert stats.get("int8_candidates", 0) > 0 and stats.get("dense_fallback_blocks", 0) == 0
    assert stats.get("float32", 0) > 0 and stats.get("exact", 0) > 0
    assert_same(out, ref_prdc(real, fake, 5))
    assert_same(out, package_prdc(real, fake, 5))


def test_prdc_loose_bounds_fall_back_exactly():
    """A huge common offset (float32 resolution 1e-3), a few outlier rows (clipped by the int8 scale,
    refined in full) and very unequal norms (wide bands, dense float64 re-screening): still exact."""
    rng = np.random.default_rng(9)
    real = rng.standard_normal((260, 48)) * rng.uniform(0.05, 4, (260, 1))
    real[:3] *= 60
    fake = rng.standard_normal((240, 48)) * rng.uniform(0.05, 4, (240, 1))
    real, fake = (real + 3e3).astype(np.float32), (fake + 3e3).astype(np.float32)
    prdc_module.STATS.clear()
    out = prdc(real, fake, 4)
    assert prdc_module.STATS["dense_fallback_blocks"] > 0
    assert_same(out, ref_prdc(real, fake, 4))
    assert_same(out, package_prdc(real, fake, 4))
    rows = rng.standard_normal((300, 64)).astype(np.float32)
    rows[:4] *= 30                                   # outliers: marked bad, never screened
    prdc_module.STATS.clear()
    out = prdc(rows[:150], rows[150:], 5)
    assert prdc_module.STATS["int8_candidates"] > 0 and prdc_module.STATS["bad_points"] >= 4
    assert_same(out, ref_prdc(rows[:150], rows[150:], 5))


def test_prdc_input_errors():
    x = np.zeros((10, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="dims"):
        prdc(x, np.zeros((10, 5)), 3)
    with pytest.raises(ValueError, match="k="):
        prdc(x, x, 10)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        prdc(np.zeros(10), x, 3)
    with pytest.raises(ValueError, match="NaN"):
        prdc(np.full((10, 4), np.nan), x, 3)
    assert prdc(x, x + 1, 3) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# ---------------------------------------------------------------------------- CUDA
@cuda
def test_metrics_on_cuda_match_cpu_references():
    rng = np.random.default_rng(10)
    cases = [PRDC_CASES["overlap"](rng), PRDC_CASES["lattice_ties"](rng)]
    cases.append((_gauss(rng, 400, 128), _gauss(rng, 300, 128), 5))   # int8-sized dims: float64 screen on CUDA
    for real, fake, k in cases:
        assert_same(prdc(torch.as_tensor(real).cuda(), torch.as_tensor(fake).cuda(), k), ref_prdc(real, fake, k))
    x, y = rng.standard_normal((300, 32)), rng.standard_normal((200, 32)) + 0.5
    stats = [feature_statistics(torch.as_tensor(v, device="cuda")) for v in (x, y)]
    assert stats[0][1].device.type == "cuda"
    ref = ref_fid_sqrtm(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert rel_diff(frechet_distance(*stats[0], *stats[1]), ref) < 1e-6
    p = np.exp(rng.standard_normal((100, 5)))
    p /= p.sum(1, keepdims=True)
    mean, std = inception_score(torch.as_tensor(p, device="cuda"), 10)
    assert np.allclose((mean, std), ref_inception_score(p, 10), atol=1e-6)

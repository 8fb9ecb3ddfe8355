"""Squared Euclidean distances screened with certified error bounds, refined exactly on demand
(the engine of :func:`condgan.metrics.prdc`).

Every comparison is decided as a float64 brute force decides it ("exact" = float64 sums of squared
differences of the original features), but almost all are decided by a cheap *screen* with a rigorous
error bound. On CPU the screen is an int8 Gram matrix (``torch._int_mm``, exact int32 sums): features
are centred by a common mean (distances unchanged, norms smaller), quantised with one global scale s,
and squared norms are folded into a few extra int8 columns, so one GEMM yields scores S with
|d2_ij - (c - w S_ij)| <= band. The band is Cauchy-Schwarz on the exactly computed norms of the
quantisation residuals, plus the rounding of the folded norms and a float64 slack. Only pairs whose
interval [d2 - band, d2 + band] can fall on either side of a threshold are refined: first by float32
dot products (sparse sampled matmul) with Higham's worst-case rounding bound, then, if still open,
exactly. On CUDA, where int8 is unsafe (int32 range) or where int8 bands leave too many candidates
in a block, the screen is a float64 Gram matrix with a float64 rounding bound, followed by the same exact refinement.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator

import torch

_Q = 127                  # int8 levels on each side of 0
_SLACK = 1e-9             # relative slack covering float64 rounding of norms, folds and scores
_TILE = 1024              # columns per sampled-matmul call, so that they stay in cache
PREP_ROWS = 128           # rows per chunk in element-wise passes (temporaries stay in cache)
_SCALE_QUANTILE = 0.999   # the int8 scale comes from this quantile of the rows' max |x - mu|
_BAD_RESIDUAL = 1.25      # rows whose residual exceeds this x the median skip the screen

STATS: Counter = Counter()   # pairs handled by each stage in this process (tests check every path)

Refiner = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]



def _gamma(n: int, unit: float) -> float:
    """Higham's gamma_n: relative error bound of an n-term floating-point dot product."""
    return n * unit / (1 - n * unit)


class FeatureSet:
    """One feature set: the originals (for exact distances) and screen-independent statistics."""

    def __init__(self, x: torch.Tensor, mu: torch.Tensor) -> None:
        self.x, self.n, self.mu = x, x.shape[0], mu
        self.norm = torch.empty(self.n, dtype=torch.float64, device=x.device)   # |x - mu|
        self.amax = torch.empty_like(self.norm)                                 # max_k |x_k - mu_k|
        for rows, xc in self.centred():
            torch.linalg.vector_norm(xc, dim=1, out=self.norm[rows])
            torch.amax(xc.abs_(), dim=1, out=self.amax[rows])
        if not bool(torch.isfinite(self.norm).all()):
            raise ValueError("features contain NaN or infinite values (or overflow float64)")
        self.x32: torch.Tensor | None = None   # centred float32 copy for refinement (int8 screen)

    def centred(self) -> Iterator[tuple[slice, torch.Tensor]]:
        """(row slice, float64 x - mu) in small chunks."""
        for i in range(0, self.n, PREP_ROWS):
            rows = slice(i, min(i + PREP_ROWS, self.n))
            yield rows, torch.sub(self.x[rows], self.mu)


class _Rep:
    """A set as one screen sees it: row / column forms [N, K], |x_hat|, |x - mu - x_hat|, bad rows."""

    def __init__(self, left: torch.Tensor, right: torch.Tensor, qnorm: torch.Tensor, err: torch.Tensor,
                 fold_abs: torch.Tensor) -> None:
        self.left, self.right, self.qnorm, self.err, self.fold_abs = left, right, qnorm, err, fold_abs
        self.bad = torch.zeros(0, dtype=torch.int64, device=err.device)


def _int8_rep(st: FeatureSet, s: float, fold: torch.Tensor, m: int) -> _Rep:
    """q = round((x - mu) / s) clipped to int8, then -fold = 127 * sum(v[:, :m]) + v[:, m] as extra
    columns: left = [q, v, 127..., 1] and right = [q, 127..., 1, v], so left_i . right_j = q_i . q_j -
    fold_i - fold_j."""
    n, d, dev = st.n, st.x.shape[1], st.x.device
    left = torch.empty(n, d + 2 * m + 2, dtype=torch.int8, device=dev)
    err, qn = torch.empty_like(st.norm), torch.empty_like(st.norm)
    x32 = torch.empty(n, d, dtype=torch.float32, device=dev)
    for rows, xc in st.centred():
        x32[rows] = xc
        # q from the float32 copy (cheaper): any integers will do, the residual is computed exactly
        q = torch.round(x32[rows] * (1 / s)).clamp_(-_Q, _Q)
        torch.linalg.vector_norm(q, dim=1, dtype=torch.float64, out=qn[rows])
        left[rows, :d] = q
        torch.linalg.vector_norm(xc.sub_(q, alpha=s), dim=1, out=err[rows])
    st.x32 = x32 if float(st.norm.max()) < 1e17 else None   # float32 dots must not overflow
    a = torch.round(-fold / _Q)
    w = (-fold - _Q * a).to(torch.int8)[:, None]
    base = torch.div(a, m, rounding_mode="floor")   # spread a over m int8 columns
    v = (base[:, None] + (torch.arange(m, device=dev)[None, :] < (a - base * m)[:, None])).to(torch.int8)
    right = torch.empty_like(left)
    right[:, :d] = left[:, :d]
    left[:, d:d + m], left[:, d + m:d + m + 1], left[:, d + m + 1:-1], left[:, -1] = v, w, _Q, 1
    right[:, d:d + m], right[:, d + m], right[:, d + m + 1:-1], right[:, -1:] = _Q, 1, v, w
    return _Rep(left, right, qn * s, err, torch.zeros_like(err))


def _float_rep(st: FeatureSet, c0: float) -> _Rep:
    """float64 rows [x - mu, a, 1] / [x - mu, 1, a] with a = (c0 - |x - mu|^2) / 2; no residual."""
    a = ((c0 - st.norm ** 2) / 2)[:, None]
    xc, one = torch.sub(st.x, st.mu), torch.ones_like(a)
    return _Rep(torch.cat([xc, a, one], 1), torch.cat([xc, one, a], 1), st.norm, torch.zeros_like(st.norm),
                a.abs().flatten())


class Screen:
    """Scores S_ij = left_i . right_j with |d2_ij - (c - w S_ij)| <= band_ij."""

    def __init__(self, sets: list[FeatureSet], kind: str) -> None:
        self.kind, self.sets = kind, sets
        self.c0 = float((torch.cat([s.norm for s in sets]) ** 2).median())
        if kind == "int8":
            self.u, d = self.scale(sets) ** 2, sets[0].x.shape[1]
            fold = [torch.round((s.norm ** 2 - self.c0) / (2 * self.u)) for s in sets]
            # outlying norms would need many fold columns: cap the fold (<= d / 4 columns), mark them bad
            big = float(torch.quantile(torch.cat(fold).abs().cpu(), _SCALE_QUANTILE))
            cap = math.floor(min(max(2 * big, _Q * _Q), d * _Q * _Q / 4))
            m = math.ceil((cap / _Q + 1) / _Q)
            self.reps = [_int8_rep(st, math.sqrt(self.u), f.clamp(-cap, cap), m) for st, f in zip(sets, fold)]
            # rows clipped by the scale have big residuals; they would widen everyone's band
            cut = _BAD_RESIDUAL * float(torch.cat([r.err for r in self.reps]).median())
            for r, f in zip(self.reps, fold):
                r.bad = ((r.err > cut) | (f.abs() > cap)).nonzero().flatten()
                STATS["bad_points"] += r.bad.numel()
            self.fixed, self.gamma = 2.5 * self.u, 0.0   # folded norms round by <= u/2 each, in d2: 2u
        else:
            self.u = 1.0
            self.reps = [_float_rep(st, self.c0) for st in sets]
            self.fixed, self.gamma = 0.0, 2 * _gamma(sets[0].x.shape[1] + 2, 2.0 ** -53)
        self.c, self.w = 2 * self.c0, 2 * self.u
        self.top = torch.iinfo(torch.int32).max if kind == "int8" else math.inf
        self.lowest = torch.iinfo(torch.int32).min if kind == "int8" else -math.inf

    @staticmethod
    def scale(sets: list[FeatureSet]) -> float:
        """int8 step: a high quantile of the rows' max |x - mu|, at most twice their median, so that a
        few outlier rows (then clipped, hence bad) cannot coarsen everyone's quantisation."""
        amax = torch.cat([s.amax for s in sets]).cpu()
        return min(float(torch.quantile(amax, _SCALE_QUANTILE)), 2 * float(amax.median())) / _Q

    @staticmethod
    def int8_safe(sets: list[FeatureSet]) -> bool:
        """int8 needs a CPU, a nonzero scale and int32-safe sums: |q.q| <= d 127^2 <= 2^29, folds too."""
        d = sets[0].x.shape[1]
        return sets[0].x.device.type == "cpu" and d * _Q * _Q <= 2 ** 29 and Screen.scale(sets) > 0

    def rep(self, st: FeatureSet) -> _Rep:
        return self.reps[0] if st is self.sets[0] else self.reps[1]

    def gram(self, a: FeatureSet, rows: slice, b: FeatureSet) -> torch.Tensor:
        """Scores [rows, b.n]: int32 for int8, float64 otherwise."""
        left, right = self.rep(a).left[rows], self.rep(b).right
        return torch._int_mm(left, right.T) if self.kind == "int8" else left @ right.T

    def bands(self, a: FeatureSet, b: FeatureSet) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row [a.n] and per-column [b.n] bounds on |d2 - (c - w S)| valid for any good partner
        (x.y - x_hat.y_hat = x.e_y + e_x.y_hat = e_x.y + x_hat.e_y); inf for bad points."""
        ra, rb = self.rep(a), self.rep(b)
        ga, gb = (torch.ones(n, dtype=torch.bool, device=a.x.device) for n in (a.n, b.n))
        ga[ra.bad], gb[rb.bad] = False, False

        def mx(v: torch.Tensor, good: torch.Tensor) -> float:
            return float(v[good].max()) if bool(good.any()) else 0.0
        an, bn = mx(a.norm, ga), mx(b.norm, gb)
        row = 2 * (a.norm * mx(rb.err, gb) + ra.err * mx(rb.qnorm, gb))
        col = 2 * (mx(ra.err, ga) * b.norm + mx(ra.qnorm, ga) * rb.err)
        if self.gamma:
            row = row + 2 * self.gamma * (a.norm * bn + ra.fold_abs + mx(rb.fold_abs, gb))
            col = col + 2 * self.gamma * (an * b.norm + mx(ra.fold_abs, ga) + rb.fold_abs)
        row = (row + self.fixed + _SLACK * ((a.norm + bn) ** 2 + abs(self.c))) * (1 + 1e-9)
        col = (col + self.fixed + _SLACK * ((an + b.norm) ** 2 + abs(self.c))) * (1 + 1e-9)
        return row.masked_fill(~ga, math.inf), col.masked_fill(~gb, math.inf)

    def threshold(self, t: torch.Tensor) -> torch.Tensor:
        """Every pair with c - w S <= t has S >= threshold(t)."""
        th = (self.c - t) / self.w
        return th.floor().clamp(self.lowest + 1, self.top).to(torch.int32) if self.kind == "int8" else th

    def interval(self, s: torch.Tensor, brow: torch.Tensor, bcol: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[lo, hi] on d2 for scores s of pairs with these row / column bands."""
        band = torch.minimum(brow, bcol).masked_fill(torch.isinf(brow) | torch.isinf(bcol), math.inf)
        d2 = self.c - self.w * s.double()
        return (d2 - band).clamp_min(0), d2 + band


def _sampled_dots(a: torch.Tensor, b: torch.Tensor, ri: torch.Tensor, cj: torch.Tensor) -> torch.Tensor:
    """a[ri] . b[cj] [P] by sparse sampled matmul, in column tiles of b that stay in cache."""
    out = torch.empty(ri.numel(), dtype=a.dtype, device=a.device)
    order = torch.argsort((cj // _TILE * a.shape[0] + ri) * _TILE + cj % _TILE)
    ri, cj = ri[order], cj[order]
    bounds = torch.searchsorted(cj // _TILE, torch.arange(0, b.shape[0] // _TILE + 2, device=a.device)).tolist()
    for t, (p0, p1) in enumerate(zip(bounds[:-1], bounds[1:])):
        if p1 > p0:
            crow = torch.zeros(a.shape[0] + 1, dtype=torch.int64, device=a.device)
            crow[1:] = torch.bincount(ri[p0:p1], minlength=a.shape[0]).cumsum(0)
            cols = b[t * _TILE:(t + 1) * _TILE]
            with warnings.catch_warnings():   # "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                pattern = torch.sparse_csr_tensor(crow, cj[p0:p1] - t * _TILE, torch.zeros(p1 - p0, dtype=a.dtype),
                                                  size=(a.shape[0], cols.shape[0]), check_invariants=False)
                out[order[p0:p1]] = torch.sparse.sampled_addmm(pattern, a, cols.T, beta=0.0).values()
    return out


def _exact_d2(x: torch.Tensor, y: torch.Tensor, ri: torch.Tensor, cj: torch.Tensor) -> torch.Tensor:
    """|x[ri] - y[cj]|^2 [P] as float64 sums of squared differences: the reference arithmetic."""
    out = torch.empty(ri.numel(), dtype=torch.float64, device=x.device)
    for p in range(0, ri.numel(), PREP_ROWS):
        diff = x[ri[p:p + PREP_ROWS]].double().sub_(y[cj[p:p + PREP_ROWS]])
        out[p:p + PREP_ROWS] = torch.linalg.vecdot(diff, diff)
    return out


def refiners_for(scr: Screen, a: FeatureSet, rows: slice, b: FeatureSet) -> list[Refiner]:
    """Tighter intervals for pairs (row within ``rows``, column): float32 dots, then exact."""
    def exact(ri: torch.Tensor, cj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        STATS["exact"] += ri.numel()
        d2 = _exact_d2(a.x, b.x, ri + rows.start, cj)
        return d2, d2

    def dots32(ri: torch.Tensor, cj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        STATS["float32"] += ri.numel()
        g = _sampled_dots(a.x32[rows], b.x32, ri, cj).double()
        na, nb, d = a.norm[rows][ri], b.norm[cj], a.x.shape[1]
        # float32 rounding of the centred features (3u) and of the d-term sums (gamma_d), underflow
        band = (2 * (_gamma(d, 2.0 ** -24) + 3 * 2.0 ** -24) * na * nb * 1.01
                + _SLACK * (na + nb) ** 2 + d * 2.0 ** -120 * (na + nb + 1))
        d2 = na ** 2 + nb ** 2 - 2 * g
        return (d2 - band).clamp_min(0), d2 + band

    return [dots32, exact] if scr.kind == "int8" and a.x32 is not None and b.x32 is not None else [exact]

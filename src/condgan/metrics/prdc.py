"""Precision, recall, density and coverage (Naeem et al., 2020), exact and fast.

Definitions (as in the reference ``prdc`` package): the radius r of a point is the distance to its k-th
nearest neighbour in its own set, itself excluded; with d(i, j) the real-fake distance,
precision = share of fakes j with d(i, j) < r_i for some real i; recall = share of reals i with
d(i, j) < r_j for some fake j; density = (1/k) * mean over fakes of #{reals i: d(i, j) < r_i};
coverage = share of reals i whose nearest fake is closer than r_i.

Every comparison is decided as a float64 brute force decides it ("exact" = float64 sums of squared
differences of the original features), but almost all are decided by a cheap *screen* with a rigorous
error bound. On CPU the screen is an int8 Gram matrix (``torch._int_mm``, exact int32 sums): features
are centred by a common mean (distances unchanged, norms smaller), quantised with one global scale s,
and squared norms are folded into a few extra int8 columns, so one GEMM yields scores S with
|d2_ij - (c - w S_ij)| <= band. The band is Cauchy-Schwarz on the exactly computed norms of the
quantisation residuals, plus the rounding of the folded norms and a float64 slack. Only pairs whose
interval [d2 - band, d2 + band] can fall on either side of a threshold are refined: first by float32
dot products (sparse sampled matmul) with Higham's worst-case rounding bound, then, if still open,
exactly. k-th neighbour radii are resolved from intervals the same way (``_kth_smallest``). On CUDA,
where int8 is unsafe (int32 range) or where int8 bands leave too many candidates in a block, the
screen is a float64 Gram matrix with a float64 rounding bound, followed by the same exact refinement.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import torch

_Q = 127                  # int8 levels on each side of 0
_SLACK = 1e-9             # relative slack covering float64 rounding of norms, folds and scores
_DENSE_FRACTION = 0.2     # candidate share above which a block is re-screened in float64
_TILE = 1024              # columns per sampled-matmul call, so that they stay in cache
_PREP_ROWS = 128          # rows per chunk in element-wise passes (temporaries stay in cache)
_SCALE_QUANTILE = 0.999   # the int8 scale comes from this quantile of the rows' max |x - mu|
_BAD_RESIDUAL = 1.25      # rows whose residual exceeds this x the median skip the screen

STATS: Counter = Counter()   # pairs handled by each stage in this process (tests check every path)

Refiner = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _gamma(n: int, unit: float) -> float:
    """Higham's gamma_n: relative error bound of an n-term floating-point dot product."""
    return n * unit / (1 - n * unit)


class _Set:
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
        for i in range(0, self.n, _PREP_ROWS):
            rows = slice(i, min(i + _PREP_ROWS, self.n))
            yield rows, torch.sub(self.x[rows], self.mu)


class _Rep:
    """A set as one screen sees it: row / column forms [N, K], |x_hat|, |x - mu - x_hat|, bad rows."""

    def __init__(self, left: torch.Tensor, right: torch.Tensor, qnorm: torch.Tensor, err: torch.Tensor,
                 fold_abs: torch.Tensor) -> None:
        self.left, self.right, self.qnorm, self.err, self.fold_abs = left, right, qnorm, err, fold_abs
        self.bad = torch.zeros(0, dtype=torch.int64, device=err.device)


def _int8_rep(st: _Set, s: float, fold: torch.Tensor, m: int) -> _Rep:
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


def _float_rep(st: _Set, c0: float) -> _Rep:
    """float64 rows [x - mu, a, 1] / [x - mu, 1, a] with a = (c0 - |x - mu|^2) / 2; no residual."""
    a = ((c0 - st.norm ** 2) / 2)[:, None]
    xc, one = torch.sub(st.x, st.mu), torch.ones_like(a)
    return _Rep(torch.cat([xc, a, one], 1), torch.cat([xc, one, a], 1), st.norm, torch.zeros_like(st.norm),
                a.abs().flatten())


class _Screen:
    """Scores S_ij = left_i . right_j with |d2_ij - (c - w S_ij)| <= band_ij."""

    def __init__(self, sets: list[_Set], kind: str) -> None:
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
    def scale(sets: list[_Set]) -> float:
        """int8 step: a high quantile of the rows' max |x - mu|, at most twice their median, so that a
        few outlier rows (then clipped, hence bad) cannot coarsen everyone's quantisation."""
        amax = torch.cat([s.amax for s in sets]).cpu()
        return min(float(torch.quantile(amax, _SCALE_QUANTILE)), 2 * float(amax.median())) / _Q

    @staticmethod
    def int8_safe(sets: list[_Set]) -> bool:
        """int8 needs a CPU, a nonzero scale and int32-safe sums: |q.q| <= d 127^2 <= 2^29, folds too."""
        d = sets[0].x.shape[1]
        return sets[0].x.device.type == "cpu" and d * _Q * _Q <= 2 ** 29 and _Screen.scale(sets) > 0

    def rep(self, st: _Set) -> _Rep:
        return self.reps[0] if st is self.sets[0] else self.reps[1]

    def gram(self, a: _Set, rows: slice, b: _Set) -> torch.Tensor:
        """Scores [rows, b.n]: int32 for int8, float64 otherwise."""
        left, right = self.rep(a).left[rows], self.rep(b).right
        return torch._int_mm(left, right.T) if self.kind == "int8" else left @ right.T

    def bands(self, a: _Set, b: _Set) -> tuple[torch.Tensor, torch.Tensor]:
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
    for p in range(0, ri.numel(), _PREP_ROWS):
        diff = x[ri[p:p + _PREP_ROWS]].double().sub_(y[cj[p:p + _PREP_ROWS]])
        out[p:p + _PREP_ROWS] = torch.linalg.vecdot(diff, diff)
    return out


def _refiners(scr: _Screen, a: _Set, rows: slice, b: _Set) -> list[Refiner]:
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


class _RowLayout:
    """Padding of a row-sorted pair list into [rows, width] matrices for per-row order statistics;
    the few long rows (e.g. bad points, always refined) get their own so as not to widen the rest."""

    def __init__(self, ri: torch.Tensor, nrows: int) -> None:
        counts = torch.bincount(ri, minlength=nrows)
        pos = torch.arange(ri.numel(), device=ri.device) - (counts.cumsum(0) - counts)[ri]
        width = 2 * ri.numel() // max(1, nrows) + 16
        self.nrows, self.groups = nrows, []
        for rows in (counts <= width, counts > width):
            if bool(rows.any()):
                slot, sel = torch.cumsum(rows, 0) - 1, rows[ri]
                shape = (int(rows.sum()), int(counts[rows].max()))
                self.groups.append((rows, sel, slot[ri[sel]], pos[sel], shape))

    def kth(self, v: torch.Tensor, k: int) -> torch.Tensor:
        """k-th smallest of v within each row [nrows] (every row has >= k entries)."""
        out = torch.empty(self.nrows, dtype=v.dtype, device=v.device)
        for rows, sel, slot, pos, shape in self.groups:
            pad = torch.full(shape, math.inf, dtype=v.dtype, device=v.device)
            pad[slot, pos] = v[sel]
            out[rows] = pad.kthvalue(k, dim=1).values
        return out


def _kth_smallest(ri: torch.Tensor, cj: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, nrows: int,
                  k: int, refiners: list[Refiner], refine_all_first: bool) -> torch.Tensor:
    """Exact per-row k-th smallest [nrows] from intervals [lo, hi] of every candidate (ri sorted).

    With L / H the k-th smallest lo / hi of a row, its k-th value r lies in [L, H]; entries with
    hi < L are surely below r, entries with lo > H surely above, so only the others are refined.
    Once those are exact, the k-th smallest hi is r (each hi stays on its entry's side of r).
    With coarse bands nearly every candidate is open at first: ``refine_all_first`` skips the test.
    """
    rows = _RowLayout(ri, nrows)
    for step, refine in enumerate([*refiners, None]):
        if step == 0 and refine_all_first and refine is not None:
            lo, hi = refine(ri, cj)
            continue
        small, big = rows.kth(lo, k), rows.kth(hi, k)
        open_ = (hi >= small[ri]) & (lo <= big[ri]) & (lo < hi)
        if not bool(open_.any()):
            return big
        if refine is None:
            raise RuntimeError("prdc: exact refinement left an open neighbour (please report)")
        lo[open_], hi[open_] = refine(ri[open_], cj[open_])
    raise AssertionError("unreachable")


def _blocks(n_rows: int, n_cols: int) -> list[slice]:
    # 2^23 scores per block: a GEMM big enough to be efficient, and passes over it stay in cache
    size = int(min(2048, max(64, (1 << 23) // max(1, n_cols))))
    return [slice(i, min(i + size, n_rows)) for i in range(0, n_rows, size)]


Pick = Callable[[_Screen, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _candidates(screens: list[Callable[[], _Screen]], a: _Set, rows: slice, b: _Set, pick: Pick):
    """Screen a block and pick candidate pairs (ri sorted); re-screen in float64 if too many."""
    for i, make in enumerate(screens):
        scr = make()
        brow, bcol = scr.bands(a, b)
        s = scr.gram(a, rows, b)
        flat = pick(scr, s, brow[rows], bcol).view(-1).nonzero().squeeze(1)   # row-major order
        STATS[f"{scr.kind}_candidates"] += flat.numel()
        if flat.numel() <= _DENSE_FRACTION * s.numel() or i == len(screens) - 1:
            ri, cj = flat // b.n, flat % b.n
            return scr, ri, cj, *scr.interval(s.view(-1)[flat], brow[rows][ri], bcol[cj])
        STATS["dense_fallback_blocks"] += 1
        del s, flat
    raise AssertionError("unreachable")


def _radii2(screens: list[Callable[[], _Screen]], st: _Set, k: int) -> torch.Tensor:
    """Squared k-NN radii [N] of a set within itself (self excluded), exact."""
    out = torch.empty(st.n, dtype=torch.float64, device=st.x.device)

    def pick(scr: _Screen, s: torch.Tensor, brow: torch.Tensor, bcol: torch.Tensor) -> torch.Tensor:
        b, dev = s.shape[0], s.device
        diag = torch.arange(b, device=dev), torch.arange(rows.start, rows.stop, device=dev)
        s[diag] = scr.lowest   # a point is not its own neighbour
        top = s.topk(k, dim=1).indices.flatten()
        ri = torch.arange(b, device=dev).repeat_interleave(k)
        lo, hi = scr.interval(s[ri, top], brow[ri], bcol[top])
        if scr.kind == "int8":   # tighten the k best guesses; their largest hi bounds the radius
            lo, hi = _refiners(scr, st, rows, st)[0](ri, top)
        mask = s >= scr.threshold(hi.view(b, k).amax(1) + brow)[:, None]   # bad rows: brow = inf
        mask[:, scr.rep(st).bad] = True
        mask[diag] = False
        return mask

    for rows in _blocks(st.n, st.n):
        scr, ri, cj, lo, hi = _candidates(screens, st, rows, st, pick)
        out[rows] = _kth_smallest(ri, cj, lo, hi, rows.stop - rows.start, k, _refiners(scr, st, rows, st),
                                  refine_all_first=scr.kind == "int8")
    return out


def _cross(screens: list[Callable[[], _Screen]], real: _Set, fake: _Set, r2: torch.Tensor, f2: torch.Tensor):
    """Real-fake tests d2 < r2_i (A) and d2 < f2_j (B): per-fake A counts and A / B flags."""
    dev = real.x.device
    count = torch.zeros(fake.n, dtype=torch.int64, device=dev)
    precise = torch.zeros(fake.n, dtype=torch.bool, device=dev)
    covered, recalled = (torch.zeros(real.n, dtype=torch.bool, device=dev) for _ in range(2))

    def pick(scr: _Screen, s: torch.Tensor, brow: torch.Tensor, bcol: torch.Tensor) -> torch.Tensor:
        return (s >= scr.threshold(r2[rows] + brow)[:, None]) | (s >= scr.threshold(f2 + bcol)[None, :])

    for rows in _blocks(real.n, fake.n):
        scr, ri, cj, lo, hi = _candidates(screens, real, rows, fake, pick)
        ta, tb = r2[rows][ri], f2[cj]
        for refine in _refiners(scr, real, rows, fake):
            sure_b = torch.zeros(rows.stop - rows.start, dtype=torch.bool, device=dev)
            sure_b[ri[hi < tb]] = True   # recall is an "any": such rows need no more B tests
            open_ = ((lo < ta) & (hi >= ta)) | ((lo < tb) & (hi >= tb) & ~sure_b[ri])
            if not bool(open_.any()):
                break
            lo[open_], hi[open_] = refine(ri[open_], cj[open_])
        in_a, in_b = hi < ta, hi < tb   # A is fully decided (density counts); B where it matters
        count += torch.bincount(cj[in_a], minlength=fake.n)
        precise[cj[in_a]] = True
        covered[ri[in_a] + rows.start] = True
        recalled[ri[in_b] + rows.start] = True
    return count, precise, covered, recalled


def _as_features(x: torch.Tensor | np.ndarray, name: str, device: torch.device | None = None) -> torch.Tensor:
    t = torch.as_tensor(x, device=device)
    if t.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {tuple(t.shape)}")
    return (t if t.is_floating_point() else t.double()).contiguous()


def prdc(real_features: torch.Tensor | np.ndarray, fake_features: torch.Tensor | np.ndarray,
         k: int = 5, *, screen: str = "auto") -> dict[str, float]:
    """Precision, recall, density and coverage of fakes [M, D] against reals [N, D], k-NN radii.

    Returns Python floats under ``precision``, ``recall``, ``density``, ``coverage``. Runs on the
    reals' device. ``screen``: ``"auto"`` (int8 on CPU when safe, else float64), ``"int8"`` or
    ``"float64"``; the choice only changes speed, never the result.
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features", real.device)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dims differ: real {real.shape[1]} vs fake {fake.shape[1]}")
    if not 1 <= k < min(real.shape[0], fake.shape[0]):
        raise ValueError(f"k={k} needs 1 <= k < min(N, M) = {min(real.shape[0], fake.shape[0])}")
    if screen not in ("auto", "int8", "float64"):
        raise ValueError(f"screen must be 'auto', 'int8' or 'float64', got {screen!r}")
    total = sum(torch.sum(c, 0, dtype=torch.float64) for x in (real, fake) for c in x.split(_PREP_ROWS))
    sets = [_Set(x, total / (real.shape[0] + fake.shape[0])) for x in (real, fake)]
    int8_ok = _Screen.int8_safe(sets)
    if screen == "int8" and not int8_ok:
        raise ValueError("int8 screening is not possible here (device, scale or int32 range)")
    screens = [functools.cache(lambda: _Screen(sets, "int8"))] if screen != "float64" and int8_ok else []
    screens.append(functools.cache(lambda: _Screen(sets, "float64")))
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")   # the float32 bound assumes true float32 sums
    try:
        r2, f2 = _radii2(screens, sets[0], k), _radii2(screens, sets[1], k)
        count, precise, covered, recalled = _cross(screens, sets[0], sets[1], r2, f2)
    finally:
        torch.set_float32_matmul_precision(precision)
    return {"precision": float(precise.double().mean()), "recall": float(recalled.double().mean()),
            "density": float(count.sum()) / (k * fake.shape[0]), "coverage": float(covered.double().mean())}

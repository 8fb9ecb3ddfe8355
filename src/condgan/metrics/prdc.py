"""Precision, recall, density and coverage (Naeem et al., 2020), exact and fast.

Definitions (as in the reference ``prdc`` package): the radius r of a point is the distance to its k-th
nearest neighbour in its own set, itself excluded; with d(i, j) the real-fake distance,
precision = share of fakes j with d(i, j) < r_i for some real i; recall = share of reals i with
d(i, j) < r_j for some fake j; density = (1/k) * mean over fakes of #{reals i: d(i, j) < r_i};
coverage = share of reals i whose nearest fake is closer than r_i.

Every comparison is decided exactly, as a float64 brute force decides it, but almost all by a
cheap screen with a rigorous error bound (:mod:`condgan.metrics.distance_screen`); only pairs the
screen cannot decide are refined. k-th neighbour radii are resolved from distance intervals the
same way (``_kth_smallest``).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from .distance_screen import PREP_ROWS, STATS, FeatureSet, Refiner, Screen, refiners_for

_DENSE_FRACTION = 0.2     # candidate share above which a block is re-screened in float64


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


Pick = Callable[[Screen, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _candidates(screens: list[Callable[[], Screen]], a: FeatureSet, rows: slice, b: FeatureSet, pick: Pick):
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


def _radii2(screens: list[Callable[[], Screen]], st: FeatureSet, k: int) -> torch.Tensor:
    """Squared k-NN radii [N] of a set within itself (self excluded), exact."""
    out = torch.empty(st.n, dtype=torch.float64, device=st.x.device)

    def pick(scr: Screen, s: torch.Tensor, brow: torch.Tensor, bcol: torch.Tensor) -> torch.Tensor:
        b, dev = s.shape[0], s.device
        diag = torch.arange(b, device=dev), torch.arange(rows.start, rows.stop, device=dev)
        s[diag] = scr.lowest   # a point is not its own neighbour
        top = s.topk(k, dim=1).indices.flatten()
        ri = torch.arange(b, device=dev).repeat_interleave(k)
        lo, hi = scr.interval(s[ri, top], brow[ri], bcol[top])
        if scr.kind == "int8":   # tighten the k best guesses; their largest hi bounds the radius
            lo, hi = refiners_for(scr, st, rows, st)[0](ri, top)
        mask = s >= scr.threshold(hi.view(b, k).amax(1) + brow)[:, None]   # bad rows: brow = inf
        mask[:, scr.rep(st).bad] = True
        mask[diag] = False
        return mask

    for rows in _blocks(st.n, st.n):
        scr, ri, cj, lo, hi = _candidates(screens, st, rows, st, pick)
        out[rows] = _kth_smallest(ri, cj, lo, hi, rows.stop - rows.start, k, refiners_for(scr, st, rows, st),
                                  refine_all_first=scr.kind == "int8")
    return out


def _cross(screens: list[Callable[[], Screen]], real: FeatureSet, fake: FeatureSet, r2: torch.Tensor, f2: torch.Tensor):
    """Real-fake tests d2 < r2_i (A) and d2 < f2_j (B): per-fake A counts and A / B flags."""
    dev = real.x.device
    count = torch.zeros(fake.n, dtype=torch.int64, device=dev)
    precise = torch.zeros(fake.n, dtype=torch.bool, device=dev)
    covered, recalled = (torch.zeros(real.n, dtype=torch.bool, device=dev) for _ in range(2))

    def pick(scr: Screen, s: torch.Tensor, brow: torch.Tensor, bcol: torch.Tensor) -> torch.Tensor:
        return (s >= scr.threshold(r2[rows] + brow)[:, None]) | (s >= scr.threshold(f2 + bcol)[None, :])

    for rows in _blocks(real.n, fake.n):
        scr, ri, cj, lo, hi = _candidates(screens, real, rows, fake, pick)
        ta, tb = r2[rows][ri], f2[cj]
        for refine in refiners_for(scr, real, rows, fake):
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
    total = sum(torch.sum(c, 0, dtype=torch.float64) for x in (real, fake) for c in x.split(PREP_ROWS))
    sets = [FeatureSet(x, total / (real.shape[0] + fake.shape[0])) for x in (real, fake)]
    int8_ok = Screen.int8_safe(sets)
    if screen == "int8" and not int8_ok:
        raise ValueError("int8 screening is not possible here (device, scale or int32 range)")
    screens = [functools.cache(lambda: Screen(sets, "int8"))] if screen != "float64" and int8_ok else []
    screens.append(functools.cache(lambda: Screen(sets, "float64")))
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")   # the float32 bound assumes true float32 sums
    try:
        r2, f2 = _radii2(screens, sets[0], k), _radii2(screens, sets[1], k)
        count, precise, covered, recalled = _cross(screens, sets[0], sets[1], r2, f2)
    finally:
        torch.set_float32_matmul_precision(precision)
    return {"precision": float(precise.double().mean()), "recall": float(recalled.double().mean()),
            "density": float(count.sum()) / (k * fake.shape[0]), "coverage": float(covered.double().mean())}

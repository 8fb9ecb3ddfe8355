"""Speed and agreement of condgan's exact metrics against reference implementations.

PRDC: condgan.metrics.prdc vs the ``prdc`` package (``compute_prdc``) on random Gaussian features.
FID:  condgan.metrics.fid.frechet_distance vs a float64 scipy ``sqrtm`` reference, on the statistics of
N random feature vectors.

    PYTHONPATH=src python benchmarks/metrics_bench.py --n 10000 --dim 2048 --k 5

Wall times are the best of ``--repeats`` runs; "steal" is the CPU time the hypervisor gave to other
guests during the condgan runs (from /proc/stat), which inflates wall times on shared machines.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from condgan.metrics.fid import feature_statistics, frechet_distance
from condgan.metrics.prdc import prdc


def _steal_s() -> float:
    """Seconds of CPU steal so far (all CPUs), 0 where /proc/stat is unavailable."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float, object]:
    """(best wall seconds, steal seconds over all runs, last result)."""
    best, steal0, out = float("inf"), _steal_s(), None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best, _steal_s() - steal0, out


def _reference_fid(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    import scipy.linalg   # test extra
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _row(name: str, ours: float, ref: float | None, diff: str, note: str = "") -> str:
    ref_s = f"{ref:9.3f}" if ref is not None else "        -"
    speed = f"{ref / ours:7.1f}x" if ref is not None else "       -"
    return f"{name:<6} {ours:10.3f} {ref_s:>10} {speed:>8}  {diff:<22} {note}"


def bench_prdc(args: argparse.Namespace, device: torch.device) -> str:
    g = torch.Generator().manual_seed(args.seed)
    real = torch.randn(args.n, args.dim, generator=g)
    fake = torch.randn(args.n, args.dim, generator=g)
    prdc(real[:64].to(device), fake[:64].to(device), args.k)   # warm-up (lazy init, CUDA context)
    r_dev, f_dev = real.to(device), fake.to(device)
    t, steal, ours = _timed(lambda: prdc(r_dev, f_dev, args.k), device, args.repeats)
    print("  condgan prdc:", {key: round(v, 6) for key, v in ours.items()})
    try:
        from prdc import compute_prdc
    except ImportError:
        compute_prdc = None
    if args.skip_reference or compute_prdc is None:
        return _row("PRDC", t, None, "-", f"steal {steal:.1f}s" + ("" if compute_prdc else ", no prdc package"))
    with contextlib.redirect_stdout(io.StringIO()):   # it prints the set sizes
        t_ref, _, ref = _timed(lambda: compute_prdc(real.numpy(), fake.numpy(), args.k), torch.device("cpu"), 1)
    print("  prdc package:", {key: round(float(v), 6) for key, v in ref.items()})
    diff = max(abs(ours[key] - float(ref[key])) for key in ours)
    return _row("PRDC", t, t_ref, f"max|diff| {diff:.2e}", f"steal {steal:.1f}s")


def bench_fid(args: argparse.Namespace, device: torch.device) -> str:
    g = torch.Generator().manual_seed(args.seed + 1)
    feats = [torch.randn(args.n, args.dim, generator=g) * torch.rand(args.dim, generator=g) * 2 + shift
             for shift in (0.0, 0.1)]
    (mu1, s1), (mu2, s2) = (feature_statistics(x.to(device)) for x in feats)
    t, steal, ours = _timed(lambda: frechet_distance(mu1, s1, mu2, s2), device, args.repeats)
    if args.skip_reference:
        return _row("FID", t, None, f"value {ours:.6f}", f"steal {steal:.1f}s")
    host = [x.cpu().numpy() for x in (mu1, s1, mu2, s2)]
    t_ref, _, ref = _timed(lambda: _reference_fid(*host), torch.device("cpu"), 1)
    rel = abs(ours - ref) / abs(ref)
    return _row("FID", t, t_ref, f"rel diff {rel:.2e}", f"value {ours:.6f}, steal {steal:.1f}s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000, help="feature vectors per set")
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="condgan runs (best is reported)")
    p.add_argument("--skip-reference", action="store_true", help="time condgan only")
    args = p.parse_args()
    device = torch.device(args.device)
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), device {device}{gpu}")
    print(f"n={args.n} real and {args.n} fake, dim={args.dim}, k={args.k}, seed={args.seed}, "
          "float32 N(0, 1) features")
    rows = [bench_prdc(args, device), bench_fid(args, device)]
    print(f"\n{'metric':<6} {'condgan s':>10} {'ref s':>10} {'speed-up':>8}  {'agreement':<22} notes")
    print("\n".join(rows))


if __name__ == "__main__":
    main()

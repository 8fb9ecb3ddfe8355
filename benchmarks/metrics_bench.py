"""Speed and agreement of condgan's exact metrics against reference implementations.

PRDC: condgan.metrics.prdc vs the ``prdc`` package (``compute_prdc``) on random Gaussian features.
FID:  condgan.metrics.fid.frechet_distance vs a float64 scipy ``sqrtm`` reference, on the statistics of
N random feature vectors.
KID:  condgan.metrics.kid.kid (100 subsets of 1000, float64) on the same features (its agreement with
torch-fidelity is benchmarks/feature_refs.py's; torch-fidelity needs torchvision).
Features (``--features N``): images per second of each backbone's whole pipeline (resize, normalise, network,
fp32 without TF32) on N random 32 px uint8 images, randomly initialised full-size nets (the speed does not depend
on the weights), and the time 10k and 50k images take at that rate (measured on N; "scaled" when N is smaller).

    PYTHONPATH=src python benchmarks/metrics_bench.py --n 10000 --dim 2048 --k 5
    PYTHONPATH=src python benchmarks/metrics_bench.py --features 64 --only-features          # DINOv2 / SwAV on a CPU

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
from pathlib import Path

import numpy as np
import torch

from condgan.metrics.fid import feature_statistics, frechet_distance
from condgan.metrics.kid import kid
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


def bench_kid(args: argparse.Namespace, device: torch.device) -> str:
    g = torch.Generator().manual_seed(args.seed + 2)
    fake, real = (torch.randn(args.n, args.dim, generator=g).to(device) + shift for shift in (0.0, 0.05))
    t, steal, ours = _timed(lambda: kid(fake, real), device, args.repeats)
    return _row("KID", t, None, f"value {ours['kid_mean']:.3e}",
                f"{ours['kid_subsets']} subsets of {ours['kid_subset_size']}, steal {steal:.1f}s")


def bench_features(args: argparse.Namespace, device: torch.device) -> list[str]:
    """One row per backbone: images/s of the whole pipeline on ``args.features`` 32 px images."""
    from condgan.metrics.backbones import DEFAULT_RESIZE
    from condgan.metrics.preprocess import resize_for
    from condgan.metrics.resnet50 import ResNet50Trunk
    from condgan.metrics.ssl_backbones import DINOv2Backbone, SwAVBackbone
    from condgan.metrics.vit import VIT_SPECS, DinoViT, ViTSpec

    g = torch.Generator().manual_seed(args.seed + 3)
    images = torch.randint(0, 256, (args.features, 3, 32, 32), dtype=torch.uint8, generator=g)
    rows = []
    for name in args.feature_backbones.split(","):
        kind = {"dinov2": DINOv2Backbone, "swav": SwAVBackbone}[name]
        spec = ViTSpec("tiny", 32, 2, 2) if args.tiny_nets else VIT_SPECS["ViT-L/14"]
        net = DinoViT(spec) if name == "dinov2" else ResNet50Trunk()
        # the backbone's own pipeline around a random net: no weights file is needed to time it
        backbone = kind.__new__(kind)
        backbone.resize, backbone.device, backbone.dtype = DEFAULT_RESIZE[name], device, torch.float32
        backbone.batch_size, backbone.weights_path = args.feature_batch, Path("random")
        backbone._resize = resize_for(name, backbone.resize)
        backbone.model = net.to(device).eval().requires_grad_(False)
        backbone.extract(images[:2].to(device))  # warm-up (CUDA context, kernels)
        t, steal, _ = _timed(lambda: backbone.extract(images), device, 1)
        rate = args.features / t
        what = (f"DINOv2 {spec.name}" if name == "dinov2" else "SwAV ResNet-50") + ", random weights"
        rows.append(f"{name:<7} {args.features:>7} {t:10.2f} {rate:10.2f}  {10_000 / rate:10.0f} {50_000 / rate:10.0f}"
                    f"  {what}, resize {backbone.resize}, batch {args.feature_batch}, steal {steal:.1f}s"
                    + ("" if args.features >= 50_000 else f" (10k{'/50k' if args.features < 10_000 else ''}: scaled)"))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000, help="feature vectors per set")
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="condgan runs (best is reported)")
    p.add_argument("--skip-reference", action="store_true", help="time condgan only")
    p.add_argument("--features", type=int, default=0, help="images for the feature-extraction rows (0: none)")
    p.add_argument("--feature-backbones", default="dinov2,swav", help="comma list of dinov2, swav")
    p.add_argument("--feature-batch", type=int, default=64, help="images per backbone batch (default 64)")
    p.add_argument("--only-features", action="store_true", help="skip the PRDC, FID and KID rows")
    p.add_argument("--tiny-nets", action="store_true", help="a tiny ViT (smoke runs; not a timing)")
    args = p.parse_args()
    device = torch.device(args.device)
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), device {device}{gpu}")
    if not args.only_features:
        print(f"n={args.n} real and {args.n} fake, dim={args.dim}, k={args.k}, seed={args.seed}, "
              "float32 N(0, 1) features")
        rows = [bench_prdc(args, device), bench_fid(args, device), bench_kid(args, device)]
        print(f"\n{'metric':<6} {'condgan s':>10} {'ref s':>10} {'speed-up':>8}  {'agreement':<22} notes")
        print("\n".join(rows))
    if args.features:
        rows = bench_features(args, device)
        print(f"\n{'space':<7} {'images':>7} {'seconds':>10} {'images/s':>10}  {'10k s':>10} {'50k s':>10}  notes")
        print("\n".join(rows))


if __name__ == "__main__":
    main()

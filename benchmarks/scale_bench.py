"""What the papers' 64 / 128 px rows cost in memory, and the parts that grow with 200-1000 classes.

1. Per paper row: parameters, their fp32 training state (weights, grads, two Adam moments; G_ema), and the
   activations autograd keeps for backward in one training iteration (D steps and G step of the real
   training code), measured on this CPU with saved-tensor hooks at two small batches, fp32 and bf16
   autocast; the per-image slope gives the row's batch (activations of these nets are linear in the batch;
   D2D-CE's N x N terms are measured separately below). Peak = the largest single backward's graph.
2. D2D-CE at a global batch of 2048 on 8 ranks: every rank computes the loss over the gathered batch; the
   bytes its graph keeps and its CPU time.
3. Intra-class FID at 1000 classes x 50 reference images x 2048 features (ImageNet val): the low-rank route
   against one class through the D x D route, times 1000.

    PYTHONPATH=src python benchmarks/scale_bench.py [--rows imagenet128-reacgan,...] [--batches 2,4]

These are byte counts of tensors, not a GPU's allocator peak (which adds workspace and fragmentation); a
GPU's own figures come from step_bench.py --device cuda (its memory column).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.autograd.graph import saved_tensors_hooks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from condgan.data.base import make_dataset  # noqa: E402
from condgan.losses.conditional import d2d_ce  # noqa: E402
from condgan.metrics.conditional import intra_class_fid  # noqa: E402
from condgan.metrics.fid import feature_statistics, frechet_distance  # noqa: E402
from condgan.nets import count_parameters  # noqa: E402
from condgan.train.build import advance, build_run  # noqa: E402
from condgan.train.precision import Precision  # noqa: E402
from paper_rows import ROWS, row_config  # noqa: E402

def saved_bytes_per_backward(name: str, batch: int, precision: str,
                             sets: list[str] = ()) -> tuple[list[tuple[str, int]], object]:
    """[(net, bytes autograd held for that backward)] over one training iteration, and the run."""
    cfg, classes = row_config(name, [f"train.batch_size={batch}", f"speed.precision={precision}", *sets])
    n = batch * cfg.train.n_dis * 2
    images = torch.randint(0, 256, (n, 3, cfg.data.resolution, cfg.data.resolution), dtype=torch.uint8)
    run = build_run(cfg, torch.device("cpu"), dataset=make_dataset(images, torch.arange(n) % classes, classes, "x"))
    weights = {p.untyped_storage().data_ptr() for net in (run.models.G, run.models.D) for p in net.parameters()}
    live: dict[int, int] = {}
    records: list[tuple[str, int]] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            live[storage.data_ptr()] = storage.nbytes()
        return t

    original = Precision.backward  # every backward of training goes through it

    def backward(self, loss, net):
        records.append((net, sum(live.values())))
        live.clear()
        return original(self, loss, net)

    Precision.backward = backward
    try:
        with saved_tensors_hooks(pack, lambda t: t):
            advance(run, 0)
    finally:
        Precision.backward = original
    return records, run


def memory_table(names: list[str], batches: list[int], sets: list[str] = ()) -> None:
    gib = 2 ** 30
    print(f"{'row':<26} {'G params':>11} {'D params':>11} {'state GiB':>9} {'prec':>5} {'act MiB/img':>11} "
          f"{'batch':>5} {'act GiB':>8} {'total GiB':>9}  row")
    for name in names:
        for precision in ("fp32", "bf16"):
            per_batch, run = {}, None
            for b in batches:
                records, run = saved_bytes_per_backward(name, b, precision, sets)
                per_batch[b] = max(byte for _, byte in records)
            slope = (per_batch[batches[1]] - per_batch[batches[0]]) / (batches[1] - batches[0])
            base = per_batch[batches[0]] - slope * batches[0]
            batch, row = ROWS[name]
            g, d = count_parameters(run.models.G), count_parameters(run.models.D)
            state = (16 * (g + d) + 4 * g) / gib  # weights, grads, Adam m and v (fp32) for G and D; G_ema
            act = (base + slope * batch) / gib
            print(f"{name:<26} {g:>11,} {d:>11,} {state:>9.2f} {precision:>5} {slope / 2 ** 20:>11.1f} {batch:>5} "
                  f"{act:>8.1f} {state + act:>9.1f}  {row}", flush=True)


def d2d_ce_table(world: int = 8, per_rank: int = 256, dim: int = 2048, classes: int = 1000) -> None:
    n = world * per_rank
    gen = torch.Generator().manual_seed(0)
    embed = torch.randn(n, dim, generator=gen, requires_grad=True)
    proxies = torch.randn(classes, dim, generator=gen, requires_grad=True)
    labels = torch.randint(0, classes, (n,), generator=gen)
    live: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        live[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    start = time.perf_counter()
    with saved_tensors_hooks(pack, lambda t: t):
        loss = d2d_ce(embed, proxies[labels], labels, 0.25, 0.90, reference_form=True)
    forward = time.perf_counter() - start
    loss.backward()
    total = time.perf_counter() - start
    gathered = embed.numel() * 4
    print(f"\nD2D-CE over a gathered batch of {n} ({world} ranks x {per_rank}), embed {dim}, {classes} classes, fp32:")
    kept = sum(live.values()) / 2 ** 20
    print(f"  gathered embeddings {gathered / 2 ** 20:.0f} MiB, graph kept for backward {kept:.0f} "
          f"MiB per rank; CPU forward {forward:.2f} s, forward + backward {total:.2f} s ({torch.get_num_threads()} "
          f"threads)")


def intra_fid_table(classes: int = 1000, per_class: int = 50, dim: int = 2048) -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(classes * per_class) % classes
    fake = torch.randn(classes * per_class, dim, generator=gen)
    real = torch.randn(classes * per_class, dim, generator=gen) + 0.1
    start = time.perf_counter()
    intra_class_fid(fake, labels, real, labels, classes)
    low_rank = time.perf_counter() - start
    times = []
    for c in range(2):
        t = time.perf_counter()
        frechet_distance(*feature_statistics(fake[labels == c]), *feature_statistics(real[labels == c]))
        times.append(time.perf_counter() - t)
    one = statistics.mean(times)
    print(f"\nIntra-class FID, {classes} classes x {per_class} images x {dim} features (CPU, "
          f"{torch.get_num_threads()} threads):")
    print(f"  low-rank route, all {classes} classes: {low_rank:.1f} s, largest extra matrix {per_class}x{per_class}")
    print(f"  D x D route: {one:.2f} s per class (measured on 2), x {classes} = {one * classes / 60:.0f} min, "
          f"{2 * dim * dim * 8 / 2 ** 20:.0f} MiB of covariances per class")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="imagenet128-reacgan,imagenet128-sngan,cub200-reacgan,tiny-reacgan",
                   help=f"comma list of {', '.join(ROWS)}")
    p.add_argument("--batches", default="2,4", help="two small batches to measure the per-image slope at")
    p.add_argument("--skip", default="", help="comma list of memory, d2d_ce, ifid to skip")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of every row (e.g. model.g_width=8)")
    p.add_argument("--smallest", action="store_true",
                   help="the D2D-CE and intra-FID tables at toy sizes (a smoke run: CI; not the papers' sizes)")
    args = p.parse_args()
    skip = set(args.skip.split(","))
    if "memory" not in skip:
        memory_table(args.rows.split(","), [int(b) for b in args.batches.split(",")], args.set)
    if "d2d_ce" not in skip:
        d2d_ce_table(**(dict(world=2, per_rank=4, dim=16, classes=10) if args.smallest else {}))
    if "ifid" not in skip:
        intra_fid_table(**(dict(classes=10, per_class=5, dim=16) if args.smallest else {}))


if __name__ == "__main__":
    main()

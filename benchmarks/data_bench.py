"""Images per second each data.residency tier delivers, beside what a paper row's training iteration consumes.

    python benchmarks/data_bench.py                       # CPU: 20,000 images at 64 and 128 px
    python benchmarks/data_bench.py --device cuda --iter-ms 128=410,64=230   # GPU, with measured iteration times

1. Fabricates ``--images`` JPEGs (varied sizes, AFHQ's layout) and prepares them with ``condgan prepare``'s
   code (lanczos) at each resolution: the prepare rate is the first table.
2. For each resolution and tier, draws batches of the matching row's batch (64 px: tiny-reacgan, 1024;
   128 px: imagenet128-reacgan, 256) through the training sampler and reports the delivered images/s.
   ``stream`` is measured twice: ``cold`` after evicting the store from the page cache (posix_fadvise
   DONTNEED: every read goes to the disk, as for a store larger than RAM) and ``warm``.
3. The row's consumption: batch x n_dis x accumulate real images per iteration, over the iteration time:
   ``--iter-ms``, else two iterations of the row timed here (a GPU: at the row's batch with ``--option``;
   a CPU: at batch 2 in fp32, scaled linearly to the row's batch). "wait share" is the share of the time
   spent waiting for data while the device is busy for one iteration per n_dis batches (a calibrated
   torch.cuda._sleep on a GPU; a sleep on a CPU: the device's work is asynchronous to the host, as a GPU's
   is); iterations over 3 s (a CPU's) are not simulated: the delivered / needed ratio says it all.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from condgan.data import BatchSampler  # noqa: E402
from condgan.data.prepared import prepare  # noqa: E402
from condgan.data.residency import make_feed  # noqa: E402
from condgan.data.store import open_split  # noqa: E402
from paper_rows import ROWS, row_config  # noqa: E402
from step_bench import condgan_iteration, synchronize  # noqa: E402

ROW_AT = {64: "tiny-reacgan", 128: "imagenet128-reacgan"}
CLASSES = 10
MAX_BUSY_S = 3.0  # slower iterations (a CPU's) are not simulated: the rates' ratio says it all
CLOCK = [0.0]  # torch.cuda._sleep cycles per second, calibrated on a GPU


def fabricate_sources(root: Path, count: int) -> None:
    """``count`` JPEGs of 150-260 px sides in ``root/train/<class>/`` and a small val split."""
    rng = np.random.default_rng(0)
    for split, n in (("train", count), ("val", CLASSES)):
        for i in range(n):
            folder = root / split / f"class{i % CLASSES:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            h, w = rng.integers(150, 260, size=2)
            base = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
            img = Image.fromarray(base).resize((int(w), int(h)), Image.Resampling.BILINEAR)  # smooth, JPEG-like
            img.save(folder / f"{i:06d}.jpg", quality=90)


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (clean pages; no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def per_iteration(resolution: int) -> tuple[int, int]:
    """(row batch, real images one iteration consumes) of the row at ``resolution``."""
    cfg, _ = row_config(ROW_AT[resolution])
    return cfg.train.batch_size, cfg.train.batch_size * cfg.train.n_dis * cfg.train.accumulate


def delivery(dataset, tier: str, device: torch.device, batch: int, batches: int, busy_s: float,
             per_iter: int) -> dict:
    """Delivered images/s (consumer takes batches back to back) and the wait share with ``busy_s`` of device
    work per iteration of ``per_iter`` images."""
    t0 = time.perf_counter()
    feed = make_feed(dataset, tier, device, batch)
    sampler = BatchSampler(dataset, batch, seed=0, feed=feed)
    setup = time.perf_counter() - t0
    sampler.next()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(batches):
        sampler.next()
    synchronize(device)
    rate = batches * batch / (time.perf_counter() - t0)
    wait = float("nan")
    if 0 < busy_s <= MAX_BUSY_S:
        fetches, waited, iterations = max(1, per_iter // batch), 0.0, max(3, batches * batch // per_iter)
        t0 = time.perf_counter()
        for _ in range(iterations):
            for _ in range(fetches):
                t1 = time.perf_counter()
                sampler.next()
                waited += time.perf_counter() - t1
            if device.type == "cuda":
                torch.cuda._sleep(int(busy_s * CLOCK[0]))  # the GPU is busy, the host goes on
            else:
                time.sleep(busy_s)
        synchronize(device)
        wait = waited / (time.perf_counter() - t0)
    sampler.close()
    return {"setup_s": setup, "rate": rate, "wait": wait}


def row_iteration_s(resolution: int, device: torch.device, batch: int, option: str) -> float:
    """Seconds of one iteration of the row at its own batch, timed at ``batch`` (scaled linearly if smaller)."""
    row = ROW_AT[resolution]
    iteration = condgan_iteration(row, batch, option, device)
    iteration(0)
    synchronize(device)
    t0 = time.perf_counter()
    for step in (1, 2):
        iteration(step)
    synchronize(device)
    return (time.perf_counter() - t0) / 2 * ROWS[row][0] / batch


def gpu_cycles_per_second(device: torch.device) -> float:
    """Clock of torch.cuda._sleep, calibrated with events (to keep the GPU busy for a given time)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(10**7)
    start.record()
    torch.cuda._sleep(10**8)
    end.record()
    end.synchronize()
    return 1e8 / (start.elapsed_time(end) / 1000)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20000, help="training images in the fabricated store")
    p.add_argument("--resolutions", default="64,128")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, default=40, help="batches timed per tier")
    p.add_argument("--iter-ms", default="", help="R=ms,...: the row's measured iteration time at R px")
    p.add_argument("--time-batch", type=int, default=0,
                   help="batch at which the row's iteration is timed (default: the row's own on a GPU, 2 on a CPU)")
    p.add_argument("--option", default="bf16", help="step_bench option of the timed iteration on a GPU")
    p.add_argument("--workers", type=int, default=0, help="prepare's processes (0 = every core)")
    p.add_argument("--dir", help="work folder (default: a temporary one, removed)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        CLOCK[0] = gpu_cycles_per_second(device)
    iter_ms = {int(k): float(v) for k, v in (kv.split("=") for kv in args.iter_ms.split(",") if kv)}
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        os.environ["CONDGAN_CACHE"] = str(Path(work) / "cache")
        src = Path(work) / "afhq-like"
        t0 = time.perf_counter()
        fabricate_sources(src, args.images)
        print(f"fabricated {args.images} JPEGs in {time.perf_counter() - t0:.0f} s; device {device}; "
              f"{os.cpu_count()} CPU cores\n")
        print("| resolution | prepare img/s | store MB |\n|---|---|---|")
        stores = {}
        for res in map(int, args.resolutions.split(",")):
            t0 = time.perf_counter()
            (_, folder, manifest), = prepare("afhq", str(src), res, "lanczos", splits=("train",),
                                             workers=args.workers, progress=False)
            rate = manifest["count"] / (time.perf_counter() - t0)
            stores[res] = folder
            print(f"| {res} | {rate:,.0f} | {(folder / 'images.u8').stat().st_size / 2**20:,.0f} |", flush=True)
        print("\n| resolution | tier | batch | setup s | delivered img/s | row needs img/s | delivered / needed "
              "| iteration ms | wait share |\n|---|---|---|---|---|---|---|---|---|")
        for res, folder in stores.items():
            batch, per_iter = per_iteration(res)
            batch = min(batch, args.images)
            if res in iter_ms:
                busy, source = iter_ms[res] / 1000, "given"
            else:
                on_gpu = device.type == "cuda"
                timed = args.time_batch or (batch if on_gpu else 2)
                busy = row_iteration_s(res, device, timed, args.option if on_gpu else "fp32")
                source = f"measured at batch {timed}" + (f", {args.option}" if on_gpu else "")
            needs = per_iter / busy
            for tier in ("device", "host", "stream cold", "stream warm"):
                if tier == "stream cold":
                    evict(folder / "images.u8")
                dataset = open_split(folder, res, "afhq")
                r = delivery(dataset, tier.split()[0], device, batch, args.batches, busy, per_iter)
                wait = "not simulated" if r["wait"] != r["wait"] else f"{r['wait']:.1%}"
                print(f"| {res} | {tier} | {batch} | {r['setup_s']:.1f} | {r['rate']:,.0f} | {needs:,.3g} | "
                      f"{r['rate'] / needs:,.1f} | {busy * 1000:,.0f} ({source}) | {wait} |", flush=True)


if __name__ == "__main__":
    main()

"""Time one training iteration (n_dis D steps + 1 G step + EMA) of a preset, per fast-path option.

    python benchmarks/step_bench.py                                   # cifar10-reacgan, batch 128 and 64
    python benchmarks/step_bench.py --device cuda --options fp32,bf16,fast --studiogan ~/PyTorch-StudioGAN
    python benchmarks/step_bench.py --preset imagenet128-reacgan --batches 4 --options fp32   # a paper row
    python benchmarks/step_bench.py --preset cifar10-stylegan2-d2dce --batches 8 --warmup 1 --iterations 8 \
        --studiogan ~/PyTorch-StudioGAN                       # StyleGAN2 + D2D-CE beside StudioGAN's own

``--preset`` takes any preset; a paper row of benchmarks/paper_rows.py runs at the batch one GPU takes in the
row's training (and its n_dis) unless --batches says otherwise.

Each option is the preset with some ``speed.*`` keys set (see OPTIONS); every contender (each option, and
with --studiogan the same iteration of PyTorch-StudioGAN: its ReACGAN CIFAR10 model, see studiogan_step.py, or
for a StyleGAN2 preset its stylegan2 worker steps with the preset's settings, see studiogan_stylegan2_step.py)
runs on random images of the preset's shape. After the warm-up iterations the contenders take turns, one
iteration each, so a slower or busier spell of the machine hits all of them alike; the table gives the
median, and the mean (StyleGAN2's lazy R1 step lands on every 8th iteration of its D2D-CE preset: time 8
iterations after 1 warm-up for the mean to carry one). Both codes run the same step numbers, so their lazy
steps fall on the same iterations. FLOPs are counted once per model with torch.utils.flop_counter (eager fp32:
the math is the same under every option) over one whole iteration, forward and backward.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from condgan.data.registry import KNOWN_SHAPES  # noqa: E402
from condgan.config import Config, build_config  # noqa: E402
from condgan.data.base import make_dataset  # noqa: E402
from condgan.presets import load_preset  # noqa: E402
from condgan.train.build import advance, build_run  # noqa: E402
from paper_rows import ROWS, row_config  # noqa: E402

OPTIONS = {
    "fp32": [],
    "channels_last": ["speed.channels_last=true"],
    "fused_adam": ["speed.fused_adam=true"],
    "fp32_fast": ["speed.channels_last=true", "speed.fused_adam=true"],  # every fp32 option but compile
    "compile": ["speed.compile=true"],
    "bf16": ["speed.precision=bf16"],
    "fp16": ["speed.precision=fp16"],
    "fast": ["speed.precision=bf16", "speed.channels_last=true", "speed.fused_adam=true", "speed.compile=true"],
}
# dense bf16 tensor-core peak (TFLOP/s) by device-name fragment; --peak-tflops overrides
BF16_PEAK = {"H100 SXM": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0,
             "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}


def preset_config(preset: str, overrides: list[str]) -> tuple[Config, int]:
    """(config, number of classes) of a preset or of a paper row of benchmarks/paper_rows.py."""
    if preset in ROWS:
        return row_config(preset, overrides)
    cfg = build_config(load_preset(preset), overrides)
    return cfg, KNOWN_SHAPES[cfg.data.name][0]


def condgan_iteration(preset: str, batch: int, option: str, device: torch.device,
                      sets: tuple[str, ...] = ()) -> Callable[[int], None]:
    """iteration(step) of ``preset`` at ``batch`` with ``option``'s speed keys, on random uint8 images."""
    cfg, classes = preset_config(preset, [f"train.batch_size={batch}", *OPTIONS[option], *sets])
    channels = 1 if cfg.data.name == "mnist5k" else 3
    n = batch * cfg.train.n_dis * cfg.train.accumulate * 4
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, cfg.data.resolution, cfg.data.resolution), dtype=torch.uint8,
                           generator=gen)
    data = make_dataset(images, torch.arange(n) % classes, classes, "random")
    run = build_run(cfg, device, dataset=data)

    def iteration(step: int) -> None:
        advance(run, step)

    return iteration


def studiogan_iteration(checkout: str, cfg: Config, classes: int, batch: int, device: torch.device,
                        precision: str) -> Callable[[int], None]:
    """PyTorch-StudioGAN's own iteration of the preset's config: its ReACGAN CIFAR10 model (studiogan_step.py),
    or for a StyleGAN2 preset its stylegan2 worker steps with the preset's heads, intervals and order
    (studiogan_stylegan2_step.py; fp32 only: StudioGAN's StyleGAN2 ignores its autocast flag)."""
    if cfg.model.arch != "stylegan2":
        from studiogan_step import build_iteration

        return build_iteration(checkout, batch, device, mixed_precision=precision == "fp16")[0]
    from studiogan_stylegan2_step import build_stylegan2_iteration

    if precision != "fp32":
        raise SystemExit("--studiogan-precision: StudioGAN's StyleGAN2 runs fp32 only here")
    m, reg = cfg.model, cfg.reg
    cond = {"d2d_ce": "D2DCE", "spd": "SPD", "pd": "PD", "none": "W/O"}.get(cfg.loss.cond)
    if cond is None or cfg.aug.ada:
        raise SystemExit(f"--studiogan: no StudioGAN StyleGAN2 iteration for loss.cond {cfg.loss.cond} / ADA here")
    return build_stylegan2_iteration(
        checkout, batch, device, cond=cond, d_updates=cfg.train.n_dis,
        r1_place="outside_loop" if reg.r1_own_step else "inside_loop", d_reg_interval=reg.r1_interval,
        g_reg_interval=reg.pl_interval, r1_lambda=reg.r1, style_mixing_p=reg.style_mixing, pl_weight=reg.pl_weight,
        channel_base=m.channel_base, channel_max=m.channel_max, num_classes=classes,
        resolution=cfg.data.resolution, d_first=cfg.train.order == "d_first", diffaug=bool(cfg.aug.diffaug))[0]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(iteration: Callable[[int], None], step: int) -> int | None:
    """FLOPs of ``iteration(step)``; None when torch's counter cannot follow it (its module tracker refuses the
    double backward of a lazy R1 / path-length step: see plain_step)."""
    try:
        with FlopCounterMode(display=False) as counter:
            iteration(step)
    except (RuntimeError, AssertionError):
        return None
    return counter.get_total_flops()


def plain_step(cfg: Config) -> int:
    """The first step whose iteration runs no lazy regulariser (R1 on a D step, path length), where FLOPs can be
    counted; 0 for the other strategies (the counter then sees their every-step penalties as usual)."""
    if cfg.train.strategy != "stylegan2":
        return 0
    reg, n_dis = cfg.reg, cfg.train.n_dis
    for step in range(1, 64):
        r1 = reg.r1 and any((step * n_dis + i) % reg.r1_interval == 0 for i in range(n_dis))
        if not r1 and not (reg.pl_weight and step % reg.pl_interval == 0):
            return step
    return 0


def measure(contenders: dict[str, Callable[[int], None]], device: torch.device, warmup: int,
            iterations: int, peaks: dict[str, float]) -> dict[str, list[float]]:
    """Seconds per iteration of every contender; after ``warmup`` each, the contenders take turns.

    ``peaks`` receives each contender's CUDA memory peak (GiB allocated) over its warm-up iterations."""
    for name, iteration in contenders.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for step in range(warmup):
            iteration(step)
        synchronize(device)
        if device.type == "cuda":
            peaks[name] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for k in range(iterations):
        for name, iteration in contenders.items():
            synchronize(device)
            start = time.perf_counter()
            iteration(warmup + k)
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def bench_batch(args: argparse.Namespace, batch: int, device: torch.device) -> list[dict]:
    contenders: dict[str, Callable[[int], None]] = {}
    flops: dict[str, int] = {}
    for option in args.options:
        contenders[f"condgan {option}"] = condgan_iteration(args.preset, batch, option, device, args.set)
    cfg, classes = preset_config(args.preset, [f"train.batch_size={batch}", *args.set])
    plain = plain_step(cfg)
    flops["condgan"] = count_flops(condgan_iteration(args.preset, batch, "fp32", device, args.set), plain)
    if args.studiogan:
        for mixed in args.studiogan_precision:
            contenders[f"StudioGAN {mixed}"] = studiogan_iteration(args.studiogan, cfg, classes, batch, device, mixed)
        flops["StudioGAN"] = count_flops(studiogan_iteration(args.studiogan, cfg, classes, batch, device, "fp32"),
                                         plain)
    peaks: dict[str, float] = {}
    times = measure(contenders, device, args.warmup, args.iterations, peaks)
    rows = []
    for name, ts in times.items():
        seconds = statistics.median(ts)
        rows.append({"name": name, "batch": batch, "seconds": seconds, "mean": statistics.mean(ts),
                     "flops": flops[name.split()[0]], "spread": (min(ts), max(ts)), "peak_gib": peaks.get(name)})
    return rows


def print_table(rows: list[dict], device: torch.device, peak: float | None) -> None:
    head = f"{'contender':<22} {'batch':>5} {'ms/it':>10} {'img/s':>8} {'GFLOP/it':>9} {'GFLOP/s':>8}"
    head += f" {'% bf16 peak':>11}" if peak else ""
    head += f" {'vs StudioGAN':>12} {'mean ms':>9} {'vs (mean)':>9} {'peak GiB':>8}  min..max ms"
    print(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)}, bf16 peak {peak:.0f} TFLOP/s)"
                                  if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"))
    print(head)
    for r in rows:
        reference = next((q for q in rows if q["batch"] == r["batch"] and q["name"] == "StudioGAN fp32"), None)
        rate = None if r["flops"] is None else r["flops"] / r["seconds"] / 1e9
        flops = "-" if rate is None else f"{r['flops'] / 1e9:.1f}"
        line = (f"{r['name']:<22} {r['batch']:>5} {1e3 * r['seconds']:>10.1f} {r['batch'] / r['seconds']:>8.1f} "
                f"{flops:>9} {'-' if rate is None else f'{rate:.1f}':>8}")
        if peak:
            line += f" {'-' if rate is None else f'{100 * rate / 1e3 / peak:.1f}%':>11}"
        ratio = f"{reference['seconds'] / r['seconds']:.3f}x" if reference else "-"
        mean_ratio = f"{reference['mean'] / r['mean']:.3f}x" if reference else "-"
        mem = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        line += (f" {ratio:>12} {1e3 * r['mean']:>9.1f} {mean_ratio:>9} {mem:>8}  "
                 f"{1e3 * r['spread'][0]:.0f}..{1e3 * r['spread'][1]:.0f}")
        print(line, flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cifar10-reacgan", help=f"a preset or one of {', '.join(ROWS)}")
    p.add_argument("--batches", help="comma list of batch sizes (default: 128,64; a paper row's own batch)")
    p.add_argument("--options", default="fp32,fp32_fast", help=f"comma list of {', '.join(OPTIONS)}")
    p.add_argument("--device", default="cpu")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per contender (compile: >= 2)")
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per contender")
    p.add_argument("--studiogan", help="path of a PyTorch-StudioGAN checkout to time side by side")
    p.add_argument("--studiogan-precision", default="fp32", help="comma list of fp32, fp16 (its -mpc)")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, if not in the built-in list")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of every contender (e.g. smaller widths for a smoke run)")
    args = p.parse_args(argv)
    args.options = args.options.split(",")
    args.studiogan_precision = args.studiogan_precision.split(",")
    unknown = [o for o in args.options if o not in OPTIONS]
    if unknown:
        p.error(f"unknown option {unknown[0]!r}; choose from {', '.join(OPTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    batches = args.batches or (str(ROWS[args.preset][0]) if args.preset in ROWS else "128,64")
    for batch in (int(b) for b in batches.split(",")):
        rows += bench_batch(args, batch, device)
        print_table(rows, device, peak_tflops(device, args.peak_tflops))
        print()


if __name__ == "__main__":
    main()

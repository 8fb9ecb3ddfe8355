"""FastGAN's speed claim at small scale: training methods side by side for the same wall-clock budget.

All methods train the demo DCGAN pair (widths 16) on the built-in MNIST digits with the same seed, batch
and EMA; what differs is the training method (presets ``mnist5k-*``):

    d2d_ce          standard strategy, ReACGAN's D2D-CE with SN in D, n_dis as in the preset (the demo)
    pd              standard strategy, projection D with SN, n_dis as in the preset
    fastgan         free adversarial D (2 replays on one real + one fake batch, eps = tau = 0.006), hinge + AC
                    + KL-to-uniform on fakes, no SN, Xavier init, lr 0.5^(t / 800)
    fastgan_noadv   the same with adversarial training off (eps = tau = 0: the 2 replays see clean reals)

Every run trains for ``--budget`` seconds of training time (evaluations are not counted), and is scored
at ``--points`` evenly spaced times: conditional accuracy of class-balanced EMA-G samples (the dataset's
evaluation classifier) and classifier-backbone FID against the test split. The table also gives G steps
done and the time per G iteration (training time / G steps).

    PYTHONPATH=src python benchmarks/fastgan_bench.py --budget 300 --points 5 --seed 0 --out /tmp/fastgan_bench

Timed chunks run ``Trainer.advance`` only (no logging or checkpoints). ``--speed PRESETS`` instead times
one training iteration (all of its D steps and the G step, EMA and lr schedule) of full-size presets on
random images of their resolution, beside the seconds per 1,000 iterations of the FastGAN paper's Table 6
(one GTX 1080 Ti) and the paper's iteration counts:

    PYTHONPATH=src python benchmarks/fastgan_bench.py --speed cifar10-fastgan,cifar10-robgan,cifar10-sngan \
        --device cuda
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from condgan.config import build_config
from condgan.metrics.evaluate import Evaluator, request_from_config
from condgan.presets import load_preset
from condgan.train.trainer import Trainer

# method -> (preset, overrides)
METHODS: dict[str, tuple[str, list[str]]] = {
    "d2d_ce": ("mnist5k-reacgan", []),
    "pd": ("mnist5k-pd", []),
    "fastgan": ("mnist5k-fastgan", []),
    "fastgan_noadv": ("mnist5k-fastgan", ["robust.epsilon=0.0", "robust.step_size=0.0"]),
}
CHUNK = 25  # G steps between clock checks
# preset -> (the FastGAN paper's s / 1k iterations on one 1080 Ti, its iterations) from its Tables 6 and 2
PAPER_SPEED = {"cifar10-fastgan": (95.5, 240_000), "cifar100-fastgan": (96.4, 240_000),
               "cifar10-sngan": (245.1, 100_000), "cifar10-robgan": (385.1, 65_000),
               "imagenet143-64-fastgan": (301.3, 120_000)}


def run_method(name: str, args: argparse.Namespace) -> dict:
    preset, extra = METHODS[name]
    never = 10 ** 9  # the budget, not a step count, ends the run
    overrides = [f"train.steps={never}", f"train.seed={args.seed}", f"train.ckpt_every={never}",
                 "eval.metrics=fid,acc",
                 f"eval.num_samples={args.num}", *extra]
    cfg = build_config(load_preset(preset), overrides)
    run_dir = Path(args.out) / name
    shutil.rmtree(run_dir, ignore_errors=True)  # timings must come from one uninterrupted run
    trainer = Trainer(cfg, run_dir, device=args.device, progress=False)
    evaluator = Evaluator(cfg.data, request_from_config(cfg), args.device, train=trainer.run.dataset,
                          progress=False)
    points = [args.budget * (i + 1) / args.points for i in range(args.points)]
    scores, train_s = [], 0.0
    while points:
        start = time.perf_counter()
        for _ in range(CHUNK):  # iterations only: no logging or checkpoint inside the timed chunk
            trainer.advance()
        _sync(args.device)
        train_s += time.perf_counter() - start
        if train_s >= points[0]:
            points.pop(0)
            metrics = evaluator(trainer.run.ema.shadow, cfg.model.z_dim)["metrics"]
            scores.append({"train_s": round(train_s, 1), "steps": trainer.step, "acc": metrics["acc_top1"],
                           "fid": metrics["fid"]})
    return {"method": name, "scores": scores, "ms_per_it": 1000 * train_s / trainer.step}


def random_npz(path: Path, resolution: int, classes: int, n: int = 2048) -> Path:
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (n, resolution, resolution, 3), dtype=np.uint8),
             labels=np.arange(n) % classes)
    return path


def iteration_speed(preset: str, args: argparse.Namespace) -> dict:
    """Seconds per iteration of ``preset`` (its nets, batch, strategy and n_dis) on random images."""
    tree = load_preset(preset)
    resolution = tree["data"].get("resolution", 32)
    classes = {"cifar100": 100, "folder": 143}.get(tree["data"]["name"], 10)
    data = random_npz(Path(args.out) / f"random_{resolution}_{classes}.npz", resolution, classes)
    cfg = build_config(tree, ["data.name=npz", f"data.root={data}", f"train.seed={args.seed}"])
    run_dir = Path(args.out) / f"speed_{preset}"
    shutil.rmtree(run_dir, ignore_errors=True)
    trainer = Trainer(cfg, run_dir, device=args.device, progress=False)
    for i in range(args.warmup + args.iterations):
        if i == args.warmup:
            _sync(args.device)
            start = time.perf_counter()
        trainer.advance()
    _sync(args.device)
    seconds = (time.perf_counter() - start) / args.iterations
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"preset": preset, "s_per_it": seconds, "n_dis": cfg.train.n_dis, "batch": cfg.train.batch_size,
            "strategy": cfg.train.strategy}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def print_speed(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\ndevice {args.device}, {torch.get_num_threads()} threads")
    print(f"{'preset':22} {'strategy':16} {'n_dis':>5} {'batch':>5} {'s/1k it':>8} {'paper s/1k':>10} "
          f"{'paper its':>9} {'its x s/it':>10}")
    for r in rows:
        paper, its = PAPER_SPEED.get(r["preset"], (float("nan"), 0))
        print(f"{r['preset']:22} {r['strategy']:16} {r['n_dis']:5d} {r['batch']:5d} {1000 * r['s_per_it']:8.1f} "
              f"{paper:10.1f} {its:9d} {its * r['s_per_it']:10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per method")
    parser.add_argument("--points", type=int, default=5, help="evaluations, evenly spaced in time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num", type=int, default=2000, help="samples per evaluation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/fastgan_bench", help="run dirs (replaced)")
    parser.add_argument("--speed", default="", help="comma list of presets: time their iterations instead")
    parser.add_argument("--iterations", type=int, default=50, help="--speed: timed iterations per preset")
    parser.add_argument("--warmup", type=int, default=10, help="--speed: untimed iterations first")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.speed:
        rows = [iteration_speed(p, args) for p in args.speed.split(",")]
        for row in rows:
            print(json.dumps(row), flush=True)
        print_speed(rows, args)
        return
    rows = []
    for name in args.methods.split(","):
        rows.append(run_method(name, args))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nbudget {args.budget:g} s of training per method, seed {args.seed}, {args.num} samples per score, "
          f"device {args.device}, {torch.get_num_threads()} threads")
    times = [args.budget * (i + 1) / args.points for i in range(args.points)]  # each score is the first after
    print(f"{'method':14} {'ms/it':>7} " + " ".join(f"{'@' + format(t, '.0f') + 's acc/FID':>16}" for t in times)
          + f" {'G steps':>8}")
    for r in rows:
        cells = " ".join(f"{s['acc']:7.3f}/{s['fid']:<8.2f}" for s in r["scores"])
        print(f"{r['method']:14} {r['ms_per_it']:7.1f} {cells} {r['scores'][-1]['steps']:8d}")


if __name__ == "__main__":
    main()

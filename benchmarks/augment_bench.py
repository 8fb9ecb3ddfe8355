"""Limited data: no augmentation vs DiffAugment vs ADA on 40 MNIST digits per class (400 images).

Every method trains the demo ReACGAN pair (preset ``mnist5k-reacgan``: DCGAN widths 16, D2D-CE, hinge) on
``data.subset=40`` with the same G steps, batch and seeds; only ``aug.*`` changes (presets
``mnist5k-reacgan-limited``, ``-limited-diffaug``, ``-limited-ada``). The judge is trained on the FULL
training split (4,000 digits), so it stays fair: per run it prints the conditional accuracy of class-balanced
EMA-G samples and the classifier-backbone FID against the held-out test split, then ADA's p trajectory (from
the run's log) and each method's time per iteration, with the augmentation's share of it (the same
iterations timed again with the augmentation swapped for the identity).

    PYTHONPATH=src python benchmarks/augment_bench.py --steps 2500 --seeds 0,1 --out /tmp/augment_bench
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from condgan.augment.training import Augmentation
from condgan.config import build_config
from condgan.metrics.evaluate import Evaluator, request_from_config
from condgan.presets import load_preset
from condgan.train.build import advance, build_run
from condgan.train.trainer import Trainer

METHODS: dict[str, str] = {
    "none": "mnist5k-reacgan-limited",
    "diffaug": "mnist5k-reacgan-limited-diffaug",
    "ada": "mnist5k-reacgan-limited-ada",
}


def train_and_score(method: str, seed: int, args: argparse.Namespace) -> dict:
    overrides = [f"train.steps={args.steps}", f"train.seed={seed}", f"train.ckpt_every={args.steps}",
                 f"train.sample_every={args.steps}", f"train.log_every={args.log_every}", "eval.metrics=fid,acc",
                 f"eval.num_samples={args.num}"]
    cfg = build_config(load_preset(METHODS[method]), overrides)
    run_dir = Path(args.out) / f"{method}-seed{seed}"
    start = time.perf_counter()
    with Trainer(cfg, run_dir, device=args.device, progress=False) as trainer:
        trainer.train()
        train_s = time.perf_counter() - start
        # train=None: the judge (classifier, FID features) is built from the whole training split
        evaluator = Evaluator(cfg.data, request_from_config(cfg), args.device, train=None, progress=False)
        metrics = evaluator(trainer.run.ema.shadow, cfg.model.z_dim)["metrics"]
        images = len(trainer.run.dataset)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    p_log = [(r["step"], r["aug_p"]) for r in records if "aug_p" in r]
    return {"method": method, "seed": seed, "train_images": images, "acc": metrics["acc_top1"],
            "fid": metrics["fid"], "train_s": train_s, "p_log": p_log}


def time_iterations(method: str, args: argparse.Namespace, p: float) -> dict:
    """ms per iteration with the method's augmentation and with the identity in its place (same nets)."""
    cfg = build_config(load_preset(METHODS[method]), ["train.seed=0"])
    run = build_run(cfg, torch.device(args.device))
    aug = run.strategy.d_pass.augmentation
    if hasattr(aug, "p"):
        aug.p = torch.tensor(p, device=aug.p.device)  # its cost does not depend on p (every op is computed)

    def ms_per_iteration() -> float:
        for _ in range(3):  # warm-up
            advance(run, 0)
        times = []
        for _ in range(args.time_iters):
            t0 = time.perf_counter()
            advance(run, 0)
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    with_aug = ms_per_iteration()
    run.strategy.d_pass.augmentation = Augmentation()
    without = ms_per_iteration()
    return {"ms_it": with_aug, "ms_it_identity": without, "aug_share": max(0.0, 1 - without / with_aug)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    parser.add_argument("--steps", type=int, default=2500, help="G steps per run (the demo's)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--num", type=int, default=2000, help="samples per evaluation")
    parser.add_argument("--log-every", type=int, default=250, help="log cadence (ADA's p trajectory)")
    parser.add_argument("--time-iters", type=int, default=20, help="timed iterations per method")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/augment_bench", help="run dirs (an existing one resumes)")
    parser.add_argument("--time-only", type=float, metavar="P", default=None,
                        help="only time the iterations (ADA at this p), no training")
    args = parser.parse_args()
    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    if args.time_only is not None:
        for m in methods:
            print(m, json.dumps(time_iterations(m, args, args.time_only)), flush=True)
        return
    rows = []
    for method in methods:
        for seed in seeds:
            rows.append(train_and_score(method, seed, args))
            print(json.dumps(rows[-1]), flush=True)
    final_p = [r["p_log"][-1][1] for r in rows if r["p_log"]]
    speed = {m: time_iterations(m, args, statistics.mean(final_p) if final_p else 0.0) for m in methods}
    print(f"\n{args.steps} G steps, {rows[0]['train_images']} training images, seeds {args.seeds}, "
          f"{args.num} samples, judge trained on the full training split, {torch.get_num_threads()} threads")
    print(f"{'method':8} {'seed':>4} {'cond acc':>9} {'clf FID':>9} {'train s':>8}")
    for r in rows:
        print(f"{r['method']:8} {r['seed']:4d} {r['acc']:9.4f} {r['fid']:9.3f} {r['train_s']:8.1f}")
    print(f"\n{'method':8} {'acc mean':>9} {'FID mean':>9} {'ms/it':>8} {'ms/it id':>9} {'aug share':>9}")
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        s = speed[m]
        print(f"{m:8} {statistics.mean(r['acc'] for r in mine):9.4f} {statistics.mean(r['fid'] for r in mine):9.3f}"
              f" {s['ms_it']:8.1f} {s['ms_it_identity']:9.1f} {100 * s['aug_share']:8.1f}%")
    for r in rows:
        if r["p_log"]:
            print(f"ADA p, seed {r['seed']}: " + " ".join(f"{step}:{p:.3f}" for step, p in r["p_log"]))


if __name__ == "__main__":
    main()

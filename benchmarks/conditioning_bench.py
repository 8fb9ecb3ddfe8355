"""Conditioning methods side by side on the built-in MNIST digits (ReACGAN paper Table 3 / Fig. 2, small).

Every method trains the same small DCGAN pair (the demo preset ``mnist5k-reacgan``: widths 16, hinge loss,
same optimiser, steps, batch and seed); only the conditioning changes (presets ``mnist5k-*``):

    none    unconditional G and D ("w/o condition")
    ac      auxiliary classifier CE (ACGAN-Mod: D classifies reals only), lambda 1
    pd      projection discriminator
    2c      ContraGAN's conditional contrastive loss, T = 1, lambda 1
    d2d_ce  ReACGAN's D2D-CE, T = 0.5, m_p = 0.98, lambda 1 (the demo preset)
    mh      multi-hinge (replaces the adversarial loss), lambda 0.05 + feature matching 1.0 (MHGAN)

Then it prints, per method: the conditional accuracy of 2,000 class-balanced EMA-G samples (the dataset's
evaluation classifier: did each sample show its class?), the classifier-backbone FID against the test split,
and the mean L2 norm of D's pooled pre-head features on real images (logged every ``log_every`` steps),
averaged over training and at the first / last log window (the paper's Fig. 2: AC's norms grow).

    PYTHONPATH=src python benchmarks/conditioning_bench.py --steps 2000 --seed 0 --out /tmp/cond_bench
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from condgan.config import build_config
from condgan.metrics.evaluate import Evaluator, request_from_config
from condgan.presets import load_preset
from condgan.train.trainer import Trainer

# method -> its mnist5k preset (each is the demo preset with one conditioning change)
METHODS: dict[str, str] = {
    "none": "mnist5k-uncond",
    "ac": "mnist5k-acgan",
    "pd": "mnist5k-pd",
    "2c": "mnist5k-contragan",
    "d2d_ce": "mnist5k-reacgan",
    "mh": "mnist5k-mhgan",
}


def _norms(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["d_feat_norm"] for r in records if "d_feat_norm" in r]


def run_method(name: str, args: argparse.Namespace) -> dict:
    overrides = [f"train.steps={args.steps}", f"train.seed={args.seed}",
                                 f"train.ckpt_every={args.steps}", f"train.sample_every={args.steps}",
                                 "train.log_every=50", "eval.metrics=fid,acc", f"eval.num_samples={args.num}"]
    cfg = build_config(load_preset(METHODS[name]), overrides)
    run_dir = Path(args.out) / name
    start = time.perf_counter()
    trainer = Trainer(cfg, run_dir, device=args.device, progress=False)
    trainer.train()
    train_s = time.perf_counter() - start
    evaluator = Evaluator(cfg.data, request_from_config(cfg), args.device, train=trainer.run.dataset,
                          progress=False)
    metrics = evaluator(trainer.run.ema.shadow, cfg.model.z_dim)["metrics"]
    norms = _norms(run_dir)
    return {"method": name, "acc": metrics["acc_top1"], "fid": metrics["fid"],
            "norm_mean": sum(norms) / len(norms), "norm_first": norms[0], "norm_last": norms[-1], "train_s": train_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma list of " + ", ".join(METHODS))
    parser.add_argument("--steps", type=int, default=2000, help="G steps per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num", type=int, default=2000, help="samples per evaluation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/conditioning_bench", help="run dirs (an existing one resumes)")
    args = parser.parse_args()
    rows = []
    for name in args.methods.split(","):
        rows.append(run_method(name, args))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.steps} G steps, seed {args.seed}, {args.num} samples, {torch.get_num_threads()} threads")
    header = ("method", "cond acc", "clf FID", "|h| mean", "|h| first", "|h| last", "train s")
    print(f"{header[0]:8} " + " ".join(f"{h:>9}" for h in header[1:]))
    for r in rows:
        print(f"{r['method']:8} {r['acc']:9.4f} {r['fid']:9.3f} {r['norm_mean']:9.2f} {r['norm_first']:9.2f} "
              f"{r['norm_last']:9.2f} {r['train_s']:9.1f}")


if __name__ == "__main__":
    main()

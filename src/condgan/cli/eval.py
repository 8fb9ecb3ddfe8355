"""``condgan eval RUN_DIR_OR_CHECKPOINT``: score a trained generator (G_ema) and write ``eval.json``.

The record's top level is this evaluation; its ``history`` lists every evaluation written to that file, oldest
first, this one last, so re-scoring a run (another checkpoint, metric or protocol) loses nothing.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import Config
from ..data import ImageDataset, load_dataset
from ..data.classes import check_class_lists, split_label
from ..data.registry import reference_split
from ..files import PendingFile, held_lock
from ..generator import (build_generator, check_checkpoint_model, checkpoint_config, read_checkpoint,
                         standing_statistics)
from ..metrics.backbones import BACKBONES
from ..metrics.errors import EvalError
from ..metrics.evaluate import AUTO, CLASSIFIER_SCALE, DEFAULT_METRICS, EvalRequest, Evaluator
from ..metrics.suite import parse_metrics
from .sample import add_standing_stats_argument, check_standing_stats
from ..train import checkpoint as ckpt


def run_dir_of(target: str, path: Path) -> Path:
    """The run dir of a target that is a run dir, or of its checkpoint file ``path``."""
    if Path(target).is_dir():
        return Path(target)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def run_eval(args: argparse.Namespace) -> int:
    from ..devices import parse_device

    device = parse_device(args.device)
    _check_counts(args)
    # read first: a checkpoint a running trainer prunes meanwhile is looked up again (sample's reading)
    path, state = read_checkpoint(args.target, ckpt.GENERATOR_KEYS)
    out = Path(args.out) if args.out else run_dir_of(args.target, path) / "eval.json"
    if not out.parent.is_dir():
        raise EvalError(f"--out {out}: the folder {out.parent} does not exist")
    if (out.exists() or out.is_symlink()) and not _is_eval_record(out):
        raise EvalError(f"--out {out} exists and is not an eval record (a JSON file condgan eval wrote); "
                        f"refusing to overwrite it")
    check_checkpoint_model(state, path)  # sample's, import's and init_from's check, before any slow work
    cfg = checkpoint_config(state, path)
    ref_split = reference_split(cfg.data.name) if args.ref == "auto" else args.ref
    request = EvalRequest(metrics=parse_metrics(args.metrics), backbone=args.backbone,
                          num_samples=args.num or cfg.eval.num_samples, ref_split=ref_split, resize=args.resize,
                          batch_size=args.batch_size, seed=args.seed, is_splits=args.is_splits,
                          inception_weights=args.inception_weights, allow_download=not args.no_download)
    train = load_dataset(cfg.data, "train")
    _check_run_classes(state, path, train, cfg)  # before any slow work
    with PendingFile(out) as pending:  # an unwritable destination fails now, not after the scoring
        evaluator = Evaluator(cfg.data, request, device, train=train, progress=not args.no_progress,
                              eval_command=True)
        G = build_generator(cfg, state, path, train.num_classes, train.images.shape[1], device)
        if args.standing_stats:
            standing_statistics(G, cfg.model.z_dim, train.num_classes, args.standing_stats, cfg.train.batch_size)
        record = {"checkpoint": str(path), "step": int(state["step"]),
                  "generator": "G_ema" + (f", standing statistics over {args.standing_stats} batches"
                                          if args.standing_stats else ""),
                  **evaluator(G, cfg.model.z_dim)}
        # Another eval may write the same file meanwhile: read its history and replace it under one lock, so
        # neither record is lost (the lock file stays beside the record, as run dirs keep theirs).
        with held_lock(out.parent / f".{out.name}.lock"):
            if (out.exists() or out.is_symlink()) and not _is_eval_record(out):
                raise EvalError(f"--out {out} appeared while scoring and is not an eval record (a JSON file condgan "
                                f"eval wrote); refusing to overwrite it")
            history = _history(out) + [record]
            pending.commit_text(json.dumps({**record, "history": history}, indent=2) + "\n")
    print(format_table(record))
    print(f"wrote {out}")
    return 0


def _check_run_classes(state: dict, path: Path, train: ImageDataset, cfg: Config) -> None:
    """DataError unless the training split lists the classes the checkpoint's generator was trained on (its
    ``generator`` record; a checkpoint written before the record only by the class count its G_ema has)."""
    record = state.get("generator")
    if not isinstance(record, dict):
        return  # build_generator refuses a class count the weights do not have
    names = record.get("class_names") or ()
    try:
        count = int(record["num_classes"])
    except (KeyError, TypeError, ValueError):
        raise ckpt.CheckpointError(f"checkpoint {path}: its 'generator' record is damaged") from None
    check_class_lists((f"the run's generator (checkpoint {path})", count, [str(n) for n in names]),
                      (split_label(cfg.data, "train"), train.num_classes, train.classes),
                      "the data changed since the run was trained: score it against the classes it was trained on")


def _history(path: Path) -> list[dict]:
    """The records an earlier eval record at ``path`` holds, oldest first ([] if none; a record written before
    histories were kept counts as one)."""
    if not _is_eval_record(path):
        return []
    record = json.loads(path.read_text())
    history = record.pop("history", None)
    return history if isinstance(history, list) else [record]


def _is_eval_record(path: Path) -> bool:
    """Whether ``path`` is a regular file holding a record this command wrote (safe to replace)."""
    try:
        record = json.loads(path.read_text()) if path.is_file() and not path.is_symlink() else None
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "protocol" in record and "metrics" in record


def _check_counts(args: argparse.Namespace) -> None:
    """One-line errors for sample and split counts that cannot work, before anything is loaded."""
    check_standing_stats(args.standing_stats)
    if args.num is not None and args.num < 2:
        raise EvalError(f"--num must be at least 2 (a covariance needs two samples); got {args.num}")
    if args.is_splits < 1:
        raise EvalError(f"--is-splits must be at least 1; got {args.is_splits}")
    if args.batch_size < 1:
        raise EvalError(f"--batch-size must be at least 1; got {args.batch_size}")
    if not 0 <= args.seed < 2**63:
        raise EvalError(f"--seed must be in [0, 2^63); got {args.seed}")


def format_table(record: dict) -> str:
    """The scalar metrics as an aligned two-column table under a one-line protocol summary."""
    p = record["protocol"]
    ref = p.get("reference")
    against = ""
    if ref:  # a reference that is the training data is said so: its FID is not a held-out score
        own = ": the training images" if ref.get("training_images") else ""
        against = f" vs {ref['dataset']}/{ref['split']} ({ref['num_images']} images{own})"
    lines = [f"{record['checkpoint']} (step {record['step']}, {record['generator']}): backbone "
             f"{p['backbone']['name']} (resize {p['backbone']['resize']}), {p['num_samples']} samples{against}"]
    scalars = {k: v for k, v in record["metrics"].items() if isinstance(v, (int, float))}
    width = max(map(len, scalars), default=6)
    lines += [f"  {'metric':<{width}}  value", f"  {'-' * width}  ---------"]
    lines += [f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}"
              for k, v in scalars.items()]
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a run dir's latest checkpoint (or a checkpoint file)")
    e.add_argument("target", help="run directory or checkpoint file")
    scale = "up to {} classes at {} px".format(*CLASSIFIER_SCALE)
    e.add_argument("--metrics", default=AUTO,
                   help=f"comma list of fid,is,prdc,ifid,acc,cas (default auto: {','.join(DEFAULT_METRICS)} {scale}, "
                        f"else fid,is,prdc,ifid)")
    e.add_argument("--backbone", default=AUTO, choices=[AUTO, *BACKBONES],
                   help=f"feature network for fid/prdc/ifid/is (default auto: the evaluation classifier {scale}, "
                        f"else inception)")
    e.add_argument("--num", type=int, default=None,
                   help="generated samples, at least the class count (default: the run's eval.num_samples)")
    e.add_argument("--ref", default="auto", choices=["auto", "train", "test"],
                   help="reference split (default auto: the papers', train for cub200 and afhq, else test)")
    e.add_argument("--resize", default="bilinear", choices=["bilinear", "clean"],
                   help="Inception resize: bilinear (pytorch-fid) or clean (PIL bicubic, clean-fid)")
    e.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth")
    e.add_argument("--no-download", action="store_true", help="never download the Inception weights")
    e.add_argument("--is-splits", type=int, default=10, help="Inception Score splits (default 10)")
    e.add_argument("--batch-size", type=int, default=250,
                   help="images the generator makes per batch (default 250); lower it if memory runs out")
    e.add_argument("--seed", type=int, default=0, help="latent seed of the samples (0 to 2^63 - 1)")
    add_standing_stats_argument(e)
    e.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    e.add_argument("--out", help="where to write the JSON record (default RUN_DIR/eval.json; an earlier record "
                                 "there is kept in its history)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=run_eval)

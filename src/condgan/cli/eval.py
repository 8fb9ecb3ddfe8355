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
from ..data.registry import DATASETS
from ..metrics.evaluate import AUTO, CLASSIFIER_SCALE, DEFAULT_METRICS, EvalRequest, Evaluator
from ..metrics.kid import SUBSET_SIZE, SUBSETS
from ..metrics.request import resize_choices
from ..metrics.suite import METRICS, parse_metrics
from ..notices import progress_bar_wanted
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
    if args.images is not None:
        return _run_on_images(args, device)
    if args.target is None:
        raise EvalError("give a run directory or checkpoint to score, or --images DIR|FILE.npz")
    if args.ref_images is not None or args.data is not None:
        raise EvalError("--ref-images and --data name the reference of --images; a run is scored against its own data")
    # read first: a checkpoint a running trainer prunes meanwhile is looked up again (sample's reading)
    path, state = read_checkpoint(args.target, ckpt.GENERATOR_KEYS)
    out = _destination(args.out, run_dir_of(args.target, path) / "eval.json")
    check_checkpoint_model(state, path)  # sample's, import's and init_from's check, before any slow work
    cfg = checkpoint_config(state, path)
    ref_split = reference_split(cfg.data.name) if args.ref == "auto" else args.ref
    request = _request(args, num_samples=args.num or cfg.eval.num_samples, ref_split=ref_split)
    train = load_dataset(cfg.data, "train")
    _check_run_classes(state, path, train, cfg)  # before any slow work
    with PendingFile(out) as pending:  # an unwritable destination fails now, not after the scoring
        evaluator = Evaluator(cfg.data, request, device, train=train,
                              progress=progress_bar_wanted(args.no_progress),
                              eval_command=True)
        G = build_generator(cfg, state, path, train.num_classes, train.images.shape[1], device)
        if args.standing_stats:
            standing_statistics(G, cfg.model.z_dim, train.num_classes, args.standing_stats, cfg.train.batch_size)
        record = {"checkpoint": str(path), "step": int(state["step"]),
                  "generator": "G_ema" + (f", standing statistics over {args.standing_stats} batches"
                                          if args.standing_stats else ""),
                  **evaluator(G, cfg.model.z_dim)}
        _commit(pending, out, record)
    return 0


def _run_on_images(args: argparse.Namespace, device) -> int:
    """``condgan eval --images DIR|FILE.npz`` against ``--ref-images`` or a dataset split (``--data``)."""
    from ..config import DataConfig
    from ..metrics.image_sets import read_image_set, score_image_set

    if args.target is not None:
        raise EvalError(f"give either a run to score ({args.target}) or --images, not both")
    if (args.ref_images is None) == (args.data is None):
        raise EvalError("--images needs one reference: --ref-images DIR|FILE.npz, or --data NAME (a dataset, with "
                        "--root and --resolution where it needs them)")
    images = Path(args.images).expanduser()
    out = _destination(args.out, images / "eval.json" if images.is_dir() else images.with_suffix(".eval.json"))
    fake = read_image_set(images)
    if args.data is not None:
        data_cfg = DataConfig(name=args.data, root=args.root or "", resolution=args.resolution)
        split = reference_split(args.data) if args.ref == "auto" else args.ref
        real = load_dataset(data_cfg, split)
    else:
        real, split = read_image_set(args.ref_images, "--ref-images"), "images"
    backbone = "inception" if args.backbone == AUTO else args.backbone
    metrics = ["fid", "kid"] if args.metrics == AUTO else parse_metrics(args.metrics)
    request = _request(args, num_samples=len(fake), ref_split=split if split in ("train", "test") else "test",
                       backbone=backbone, metrics=metrics)
    with PendingFile(out) as pending:
        record = {"images": str(images), **score_image_set(fake, real, request, device, split,
                                                         progress=progress_bar_wanted(args.no_progress))}
        _commit(pending, out, record)
    return 0


def _request(args: argparse.Namespace, **fields) -> EvalRequest:
    """The request of the flags shared by both modes (``fields`` override or add)."""
    weights = dict(_pair(w, "--weights") for w in args.weights)
    base = {"metrics": parse_metrics(args.metrics), "backbone": args.backbone, "resize": args.resize,
            "batch_size": args.batch_size, "seed": args.seed, "is_splits": args.is_splits,
            "kid_subsets": args.kid_subsets, "kid_subset_size": args.kid_subset_size,
            "inception_weights": args.inception_weights, "weights": weights, "allow_download": not args.no_download}
    return EvalRequest(**{**base, **fields})


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise EvalError(f"{flag} takes BACKBONE=PATH (e.g. dinov2=~/dinov2_vitl14_pretrain.pth); got '{text}'")
    return name.strip(), value.strip()


def _destination(given: str | None, default: Path) -> Path:
    """Where the record goes; a one-line error for a missing folder or a file that is not an eval record."""
    out = Path(given) if given else default
    if not out.parent.is_dir():
        raise EvalError(f"--out {out}: the folder {out.parent} does not exist")
    if (out.exists() or out.is_symlink()) and not _is_eval_record(out):
        raise EvalError(f"--out {out} exists and is not an eval record (a JSON file condgan eval wrote); "
                        f"refusing to overwrite it")
    return out


def _commit(pending: PendingFile, out: Path, record: dict) -> None:
    """Write ``record`` with the file's earlier history, print its table."""
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
    if args.kid_subsets < 1 or args.kid_subset_size < 2:
        raise EvalError(f"--kid-subsets must be at least 1 and --kid-subset-size at least 2; got "
                        f"{args.kid_subsets} and {args.kid_subset_size}")


def format_table(record: dict) -> str:
    """The scalar metrics as an aligned table (a column per backbone) under a one-line protocol summary."""
    p = record["protocol"]
    ref = p.get("reference")
    against = ""
    if ref:  # a reference that is the training data is said so: its FID is not a held-out score
        own = ": the training images" if ref.get("training_images") else ""
        where = ref.get("source") or f"{ref['dataset']}/{ref['split']}"
        against = f" vs {where} ({ref['num_images']} images{own})"
    spaces = p.get("backbones") or {p["backbone"]["name"]: p["backbone"]}
    how = ", ".join(f"{name} (resize {d['resize']})" for name, d in spaces.items())
    head = (f"{record['checkpoint']} (step {record['step']}, {record['generator']})" if "checkpoint" in record
            else f"{record['images']} ({p['num_images']} images)")
    count = "" if "checkpoint" not in record else f", {p['num_samples']} samples"
    lines = [f"{head}: backbone {how}{count}{against}"]
    metrics = record["metrics"]
    columns = metrics.get("by_backbone") or {next(iter(spaces)): metrics}
    names = list(dict.fromkeys(k for vals in [metrics, *columns.values()] for k, v in vals.items()
                               if isinstance(v, (int, float)) and not isinstance(v, bool)))
    width = max(map(len, names), default=6)
    lines.append(f"  {'metric':<{width}}" + "".join(f"  {b:>12}" for b in columns))
    lines.append(f"  {'-' * width}" + "  ------------" * len(columns))
    first = next(iter(columns))
    for name in names:  # a value that is not per backbone (acc, cas) is the primary's column only
        cells = [columns[b].get(name, metrics.get(name) if b == first else None) for b in columns]
        lines.append(f"  {name:<{width}}" + "".join(f"  {_cell(v):>12}" for v in cells))
    return "\n".join(lines)


def _cell(value: float | int | None) -> str:
    """4 decimals; small values (KID) in 4 significant digits; a dash for a value this space lacks."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value == 0 or 0.01 <= abs(value) < 1e6 else f"{value:.3e}"
    return str(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a run dir's latest checkpoint (or a checkpoint file), or --images")
    e.add_argument("target", nargs="?", help="run directory or checkpoint file (or give --images)")
    scale = "up to {} classes at {} px".format(*CLASSIFIER_SCALE)
    e.add_argument("--metrics", default=AUTO,
                   help=f"comma list of {','.join(METRICS)} (default auto: {','.join(DEFAULT_METRICS)} {scale}, "
                        f"else fid,is,prdc,ifid; with --images fid,kid)")
    e.add_argument("--backbone", default=AUTO, metavar="NAME[,NAME...]",
                   help=f"feature networks, comma list of {', '.join(BACKBONES)}: the samples are made once and "
                        f"scored in each; the first is the primary (default auto: the evaluation classifier {scale}, "
                        f"else inception; with --images inception)")
    e.add_argument("--num", type=int, default=None,
                   help="generated samples, at least the class count (default: the run's eval.num_samples)")
    e.add_argument("--ref", default="auto", choices=["auto", "train", "test"],
                   help="reference split (default auto: the papers', train for cub200 and afhq, else test)")
    e.add_argument("--resize", default="bilinear", metavar="METHOD[,BACKBONE=METHOD]",
                   help=f"input resize: a bare METHOD is the Inception's (bilinear: pytorch-fid; clean: clean-fid), "
                        f"BACKBONE=METHOD another's. {resize_choices()}")
    e.add_argument("--weights", action="append", default=[], metavar="BACKBONE=PATH",
                   help="a backbone's weights file (repeatable), for machines without internet: "
                        "dinov2=dinov2_vitl14_pretrain.pth, swav=swav_800ep_pretrain.pth.tar (or set "
                        "$CONDGAN_DINOV2_WEIGHTS / $CONDGAN_SWAV_WEIGHTS); default: torch hub's cache, else a download")
    e.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth")
    e.add_argument("--no-download", action="store_true", help="never download weights")
    e.add_argument("--is-splits", type=int, default=10, help="Inception Score splits (default 10)")
    e.add_argument("--kid-subsets", type=int, default=SUBSETS, help=f"KID subsets (default {SUBSETS})")
    e.add_argument("--kid-subset-size", type=int, default=SUBSET_SIZE,
                   help=f"images per KID subset (default {SUBSET_SIZE}; smaller sets use their size)")
    e.add_argument("--batch-size", type=int, default=EvalRequest.batch_size,
                   help=f"images the generator makes per batch (default {EvalRequest.batch_size}); lower it if "
                        "memory runs out")
    e.add_argument("--seed", type=int, default=EvalRequest.seed,
                   help=f"latent seed of the samples (0 to 2^63 - 1; default {EvalRequest.seed}, as the "
                        "end-of-training report)")
    add_standing_stats_argument(e)
    i = e.add_argument_group("scoring images instead of a run (any model's samples)")
    i.add_argument("--images", metavar="DIR|FILE.npz",
                   help="the images to score: a folder (class sub-folders give labels) or an .npz ('images' or "
                        "'arr_0', optional 'labels'); sizes may differ")
    i.add_argument("--ref-images", metavar="DIR|FILE.npz", help="the reference images, read the same way")
    i.add_argument("--data", choices=list(DATASETS), metavar="NAME",
                   help="or a dataset as reference (its --ref split): " + ", ".join(DATASETS))
    i.add_argument("--root", help="the dataset's folder or file, where it needs one")
    i.add_argument("--resolution", type=int, default=32, help="the dataset's resolution (default 32)")
    e.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    e.add_argument("--out", help="where to write the JSON record (default RUN_DIR/eval.json, DIR/eval.json for "
                                 "--images DIR, FILE.eval.json for FILE.npz; an earlier record there is kept in its "
                                 "history)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=run_eval)

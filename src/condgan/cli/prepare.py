"""``condgan prepare --data NAME --root DIR --resolution R``: build a dataset's memory-mappable store once."""
from __future__ import annotations

import argparse
import os
import shlex

from ..data.readers import READERS
from ..data.store import DEFAULT_RESIZER, RESIZERS
from ..notices import progress_bar_wanted


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.base import DataError, check_resolution
    from ..data.prepared import prepare
    from ..data.registry import largest_resolution

    check_resolution(args.resolution, "--resolution", largest_resolution())  # named as the user typed it
    cores = os.cpu_count() or 1
    if args.workers < 0 or args.workers > 4 * cores:  # decoding is CPU-bound: thousands of forks help nothing
        raise DataError(f"--workers must be >= 0 (0 = every core) and at most {4 * cores} (4 per core of this "
                        f"machine), got {args.workers}")
    done = prepare(args.data, args.root, args.resolution, args.resizer, args.classes or "", tuple(args.split),
                   args.workers, progress=progress_bar_wanted(args.no_progress))
    for split, folder, manifest in done:
        print(f"{args.data} {split}: {manifest['count']:,} images of {len(manifest['classes'])} classes at "
              f"{manifest['resolution']} px ({manifest['resizer']}) in {folder}")
    # absolute paths: the hint (the store, the class list) works from any working directory
    root = os.path.abspath(os.path.expanduser(args.root))
    classes = os.path.abspath(os.path.expanduser(args.classes)) if args.classes else ""
    settings = [f"data.name={args.data}", f"data.root={root}", f"data.resolution={args.resolution}",
                f"data.resizer={args.resizer}"] + ([f"data.classes={classes}"] if classes else [])
    print("train on it with: " + " ".join(f"--set {shlex.quote(s)}" for s in settings))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``condgan prepare``."""
    p = sub.add_parser("prepare", help="decode, crop and resize a downloaded dataset once into a store that "
                                       "training memory-maps (rerun to finish an interrupted one)")
    p.add_argument("--data", required=True, choices=list(READERS), metavar="NAME",
                   help="; ".join(f"{r.name}: {r.about}" for r in READERS.values()))
    p.add_argument("--root", required=True, help="the downloaded dataset's folder (the layout it ships in)")
    p.add_argument("--resolution", required=True, type=int,
                   help="side length of the stored images (4 up to the largest any architecture takes)")
    p.add_argument("--resizer", default=DEFAULT_RESIZER, choices=list(RESIZERS),
                   help=f"PIL filter of the resize after the centre crop (default {DEFAULT_RESIZER}, StudioGAN's "
                        "documented choice); images already at the resolution are never resized")
    p.add_argument("--classes", help="imagenet143: the file listing its wnids, one per line")
    p.add_argument("--split", action="append", default=[], help="only this split (repeatable; default all)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (default 0 = every core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_prepare)

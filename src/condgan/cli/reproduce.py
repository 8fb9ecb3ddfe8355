"""``condgan reproduce [TABLE] [--run]``: list the papers' tables, a table's rows and commands, or run them."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..config import ConfigError


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds must be a comma list of integers; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"--seeds must be distinct integers >= 0; got {text!r}")
    return seeds


def run_reproduce(args: argparse.Namespace) -> int:
    from ..reproduce import TABLES, describe, get_table, run

    if args.table is None:
        width = max(map(len, TABLES))
        for name, table in TABLES.items():
            print(f"{name:<{width}}  {table.title} ({len(table.rows)} rows)")
        return 0
    table = get_table(args.table)
    if args.also_backbone:
        table = _with_backbones(table, args.also_backbone)
    seeds, out = _seeds(args.seeds), Path(args.out)
    if args.nproc < 1:
        raise ConfigError(f"--nproc must be at least 1; got {args.nproc}")
    if not args.run:
        print(describe(table, seeds, out, args.set, args.device, args.nproc))
        return 0
    run(table, seeds, out, args.set, args.device, args.nproc)
    return 0


def _with_backbones(table, extra: str):
    """``table`` whose protocol also scores in the backbones of the comma list ``extra`` (beside the paper's)."""
    from dataclasses import replace

    from ..metrics.backbones import BACKBONES

    names = [b.strip() for b in extra.split(",") if b.strip()]
    have = table.protocol.backbones
    bad = next((b for b in names if b not in BACKBONES or b in have), None)
    if bad is not None or not names:
        raise ConfigError(f"--also-backbone takes a comma list of backbones other than the table's "
                          f"({', '.join(have)}), among {', '.join(BACKBONES)}; got {extra!r}")
    return replace(table, protocol=replace(table.protocol, backbone=",".join([*have, *names])))


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("reproduce", help="the papers' tables: rows, presets, commands, paper figures; --run runs "
                                         "them and writes paper vs condgan as markdown")
    r.add_argument("table", nargs="?", help="a table name (without one: list the tables)")
    r.add_argument("--run", action="store_true",
                   help="train and evaluate every row x seed not finished yet, then write OUT/TABLE.md")
    r.add_argument("--seeds", default="0,1,2", help="comma list of training seeds (default 0,1,2, as the paper)")
    r.add_argument("--out", default="runs/reproduce", help="where the runs and the table go")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for every row's training (e.g. data.root=/data/tiny-imagenet-200)")
    r.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    r.add_argument("--also-backbone", metavar="NAME[,NAME]",
                   help="also score every row in these feature spaces (e.g. dinov2: FD_DINOv2 beside the paper's FID), "
                        "from the same samples; a column per space")
    r.add_argument("--nproc", type=int, default=1, help="GPUs per row: train under torchrun with N processes")
    r.set_defaults(func=run_reproduce)

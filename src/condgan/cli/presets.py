"""``condgan presets [PATTERN] [--table | --show NAME]`` and ``condgan config keys [PREFIX]``."""
from __future__ import annotations

import argparse
import fnmatch

from ..config import ConfigError, build_config, to_yaml
from ..presets import list_presets, load_preset

TABLE_COLUMNS = ("preset", "data", "px", "arch", "cond", "strategy", "reproduces")


def matching_presets(pattern: str | None) -> dict[str, tuple[str, str]]:
    """The presets (name -> (paper row, description)) whose name, description or row matches ``pattern``:
    a case-insensitive substring, or a glob where it holds ``*``, ``?`` or ``[``."""
    presets = list_presets()
    if not pattern:
        return presets
    want = pattern.lower()
    glob = any(c in want for c in "*?[")

    def hit(text: str) -> bool:
        return fnmatch.fnmatchcase(text.lower(), want) if glob else want in text.lower()

    found = {name: v for name, v in presets.items() if hit(name) or hit(v[0]) or hit(v[1])}
    if not found:
        raise ConfigError(f"no preset's name, description or paper row matches '{pattern}'; `condgan presets` "
                          f"lists all {len(presets)}")
    return found


def preset_row(name: str, row: str) -> tuple[str, ...]:
    """One line of ``--table``: the preset's dataset, resolution, architecture, conditioning, strategy, row."""
    cfg = build_config(load_preset(name), [])
    cond = cfg.loss.cond + (f"+{cfg.loss.aux}" if cfg.loss.aux not in ("", "none") else "")
    return (name, cfg.data.name, str(cfg.data.resolution), cfg.model.arch, cond, cfg.train.strategy, row or "-")


def run_presets(args: argparse.Namespace) -> int:
    if args.show:
        return _show(args.show, args.set)
    presets = matching_presets(args.pattern)
    if args.table:
        rows = [TABLE_COLUMNS] + [preset_row(name, row) for name, (row, _desc) in presets.items()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS) - 1)]
        for r in rows:
            print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)) + "  " + r[-1])
        return 0
    width = max(map(len, presets))
    for name, (row, desc) in presets.items():
        print(f"{name:<{width}}  {desc}")
        if row:
            print(f"{'':<{width}}  reproduces: {row}")
    return 0


def _show(name: str, overrides: list[str]) -> int:
    cfg = build_config(load_preset(name), overrides)
    print(to_yaml(cfg), end="")
    from ..data.registry import KNOWN_SHAPES

    shape = KNOWN_SHAPES.get(cfg.data.name)
    if shape:
        from ..nets import build_nets, count_parameters

        g, d = build_nets(cfg, *shape)
        print(f"# parameters: G {count_parameters(g):,}  D {count_parameters(d):,}  "
              f"({shape[0]} classes, {shape[1]} channels)")
    return 0


def run_config_keys(args: argparse.Namespace) -> int:
    from ..config.docs import key_docs

    docs = [d for d in key_docs() if d.key.startswith(args.prefix)]
    if not docs:
        raise ConfigError(f"no config key starts with '{args.prefix}'")
    width = max(len(d.key) for d in docs)
    for d in docs:
        default = _yaml_value(d.default)
        choices = f"  {{{', '.join(repr(c) if c == '' else c for c in d.choices)}}}" if d.choices else ""
        print(f"{d.key:<{width}}  {d.type} = {default}{choices}  {d.meaning}")
    return 0


def _yaml_value(value: object) -> str:
    """A value as it would be written in a config file or after --set (null, true, "", 0.0002)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return '""' if value == "" else str(value)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("presets", help="list the presets (PATTERN filters them; --table), or show one resolved")
    s.add_argument("pattern", nargs="?", help="only presets whose name, description or paper row holds this "
                                              "(case-insensitive; a glob with * or ?), e.g. cifar10 or 'Table 5'")
    s.add_argument("--table", action="store_true",
                   help="one line per preset: dataset, resolution, architecture, conditioning, strategy, paper row")
    s.add_argument("--show", metavar="NAME", help="print the resolved config and parameter counts")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    s.set_defaults(func=run_presets)

    c = sub.add_parser("config", help="about the config: `condgan config keys` lists every key")
    c_sub = c.add_subparsers(dest="config_command", required=True)
    k = c_sub.add_parser("keys", help="every config key with its type, default, choices and meaning")
    k.add_argument("prefix", nargs="?", default="", help="only keys starting with this (e.g. loss.)")
    k.set_defaults(func=run_config_keys)

"""Class lists that must agree: a label means the same class in every split (and run) scored together.

Two stores of one dataset prepared at different times (a class folder added in between) give shifted label
indices; scoring a generator's class-``k`` samples against another split's class ``k`` would then be silently
wrong. Every consumer of two splits (the evaluator, the end-of-training report, ``condgan eval``) checks with
:func:`check_same_classes` first.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from condgan.data.base import DataError, ImageDataset

if TYPE_CHECKING:
    from condgan.config import DataConfig


def split_label(cfg: "DataConfig", split: str) -> str:
    """How a message names ``split`` ("train" | "test") of ``cfg``'s dataset: a prepared dataset's store split
    (val or test) with its store folder, else ``<name> <split> split``."""
    from condgan.data.readers import READERS

    reader = READERS.get(cfg.name)
    if reader is None:
        return f"{cfg.name} {split} split"
    from condgan.data.prepared import held_out_split, store_key

    store_split = "train" if split == "train" else held_out_split(reader)
    root = Path(cfg.root).expanduser()
    try:  # data.root is the downloaded folder (its store is in the cache) or a store folder itself
        folder = root if (root / "train" / "manifest.json").is_file() else store_key(
            cfg.name, cfg.root, cfg.resolution, cfg.resizer, cfg.classes).folder()
    except (DataError, OSError):
        return f"{cfg.name} {store_split} store"
    return f"{cfg.name} {store_split} store ({folder / store_split})"


def remedy(cfg: "DataConfig | None") -> str:
    """What to do about two disagreeing splits of ``cfg``'s dataset."""
    from condgan.data.readers import READERS

    if cfg is not None and cfg.name in READERS:
        from condgan.data.prepared import prepare_command

        return f"prepare every split again from the same source: {prepare_command(cfg)}"
    return "give every split the same classes in the same order"


def first_difference(first: Sequence[str], second: Sequence[str]) -> int | None:
    """The first class index where two class lists differ (one list ending early counts), None if equal."""
    for index, (a, b) in enumerate(zip(first, second)):
        if a != b:
            return index
    return None if len(first) == len(second) else min(len(first), len(second))


def check_class_lists(first: tuple[str, int, Sequence[str]], second: tuple[str, int, Sequence[str]],
                      advice: str) -> None:
    """DataError unless two (label, class count, class names) agree: the same count and, where both name their
    classes, the same names in the same order. ``advice`` ends the message (what to do)."""
    (a_label, a_count, a_names), (b_label, b_count, b_names) = first, second
    index = first_difference(tuple(a_names), tuple(b_names)) if a_names and b_names else None
    if index is None and a_count == b_count:
        return
    counts = f"{a_count} and {b_count} classes"
    if index is not None:
        def name(names: Sequence[str]) -> str:
            return repr(names[index]) if index < len(names) else "missing"
        counts += f"; class {index} is {name(a_names)} in the first, {name(b_names)} in the second"
    raise DataError(f"{a_label} and {b_label} do not list the same classes in the same order ({counts}): their "
                    f"labels would mean different classes; {advice}")


def check_same_classes(first: ImageDataset, second: ImageDataset, first_label: str, second_label: str,
                       cfg: "DataConfig | None" = None) -> None:
    """DataError naming both splits and their first differing class unless ``first`` and ``second`` have the
    same classes in the same order (``cfg``: their dataset's config, for the remedy)."""
    if first is second:
        return
    check_class_lists((first_label, first.num_classes, first.classes),
                      (second_label, second.num_classes, second.classes), remedy(cfg))

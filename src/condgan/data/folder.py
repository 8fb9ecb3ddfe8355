"""``folder`` datasets: a directory with one sub-folder of images per class.

Class indices follow the sorted sub-folder names. If the root holds ``train/`` and ``test/``
sub-directories, each split reads its own; otherwise both splits read the whole folder (there is no
held-out set, so "test" metrics are then computed on the training images).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from condgan.data.base import DataError, ImageDataset, make_dataset
from condgan.notices import warn

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
FILE_RESIZER = "PIL bicubic"  # what data.resize=true resizes a folder dataset's files with


def link_error(path: Path) -> DataError | None:
    """A DataError naming ``path`` when it is a link that leads nowhere (dangling, or a loop), else None: such a
    link in a dataset folder is a file or class the user meant to have, so it is never skipped in silence."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as err:
        return DataError(f"{path} is a link that leads nowhere ({err.strerror or err}): restore its target or "
                         f"remove it")
    return None


def _visible_dirs(path: Path) -> list[Path]:
    dirs = []
    for p in sorted(path.iterdir()):
        if p.name.startswith("."):
            continue
        broken = link_error(p)
        if broken is not None:
            raise broken
        if p.is_dir():
            dirs.append(p)
    return dirs


def _split_root(root: Path, split: str) -> Path:
    """``root/<split>`` when the root has both train/ and test/, else the root itself."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return root / split
    return root


def list_images(class_dir: Path) -> list[Path]:
    """Image files under ``class_dir`` (recursively, case-insensitive suffix), in sorted order; a link that
    leads nowhere is a DataError naming it."""
    found = []
    for p in class_dir.rglob("*"):
        if p.name.startswith("."):
            continue
        if p.is_file():
            if p.suffix.lower() in IMAGE_SUFFIXES:
                found.append(p)
        elif (broken := link_error(p)) is not None:
            raise broken
    return sorted(found)


def read_image(path: Path, resolution: int, resample: int = Image.Resampling.BICUBIC,
               resize: bool = True) -> np.ndarray:
    """One image file -> uint8 [R, R, 3]: RGB, centre-cropped to its short side, resized with ``resample`` (a PIL
    filter; not at all when the crop already has side R). ``resize`` False: an image that is not R x R is a
    DataError (data.resize). PIL's warnings (a decompression bomb) become condgan warnings naming the file."""
    img = _open_rgb(path)
    if img.size != (resolution, resolution) and not resize:
        raise DataError(f"image {path} is {img.width}x{img.height} px, data.resolution is {resolution}: set "
                        f"data.resize=true to centre-crop and resize the images ({FILE_RESIZER}), or give "
                        f"{resolution} px images")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if side != resolution:
        img = img.resize((resolution, resolution), resample)
    return np.asarray(img, dtype=np.uint8)


def read_any_image(path: Path) -> np.ndarray:
    """One image file at its own size -> uint8 [H, W, 3] (RGB as :func:`_to_rgb` makes it); DataError naming it."""
    return np.asarray(_open_rgb(path), dtype=np.uint8)


def _open_rgb(path: Path) -> Image.Image:
    """The decoded 8-bit RGB image of ``path``; unreadable files are a DataError, PIL's warnings condgan's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(path) as img:
                img = _to_rgb(img)  # also forces the full decode, so truncated files fail here
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise DataError(f"cannot read image {path}: {' '.join(str(err).split())}") from None
    for caught_warning in caught:
        warn(f"image {path}: {' '.join(str(caught_warning.message).split())}")
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB. 16-bit images are scaled to 8 bits (Pillow's convert would clip every value above 255)."""
    if img.mode.startswith("I;16") or (img.mode == "I" and np.asarray(img).max(initial=0) > 255):
        wide = np.asarray(img).astype(np.int64).clip(0, 65535)
        img = Image.fromarray((wide >> 8).astype(np.uint8), "L")
    return img.convert("RGB")


def load_folder(root: str, split: str, resolution: int, resize: bool = False) -> ImageDataset:
    """uint8 [N, 3, R, R] images and their class indices from ``root/<class>/*.png`` (see module doc); files
    that are not R x R are resized only with ``resize`` (data.resize), else a DataError names the first."""
    if not root:
        raise DataError("data.root must name the image folder for data.name=folder")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"image folder not found: {base}")
    # Classes come from the train side so both splits agree on the index of every class.
    classes = [d.name for d in _visible_dirs(_split_root(base, "train"))]
    split_dir = _split_root(base, split)
    if not classes:
        raise DataError(f"no class sub-folders in {_split_root(base, 'train')}")
    extra = sorted({d.name for d in _visible_dirs(split_dir)} - set(classes))
    if extra:
        raise DataError(f"class folder {split_dir / extra[0]} has no counterpart in the train split")
    arrays, labels = [], []
    for index, name in enumerate(classes):
        files = list_images(split_dir / name) if (split_dir / name).is_dir() else []
        if not files and split_dir == _split_root(base, "train"):
            raise DataError(f"class folder {split_dir / name} contains no images")
        arrays.extend(read_image(path, resolution, resize=resize) for path in files)
        labels.extend([index] * len(files))
    if not arrays:
        raise DataError(f"no images found in {split_dir}")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return make_dataset(images, torch.tensor(labels, dtype=torch.int64), len(classes), "folder", tuple(classes))

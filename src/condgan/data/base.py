"""The in-memory dataset record shared by every loader, its error type and a resize helper.

Datasets are small enough (CIFAR-scale) to live entirely in memory, and later on the training
device, as one uint8 tensor; everything downstream works on :class:`ImageDataset`.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


class DataError(ValueError):
    """Bad or missing data (file, key or value); the one-line message names the culprit."""


@dataclass
class ImageDataset:
    """Labelled images held as tensors.

    images: uint8 [N, C, H, W] with C in {1, 3}; labels: int64 [N] in [0, num_classes).
    ``identity`` is a short hash of the pixels and labels, stable across machines (a cache key);
    ``classes`` names the classes where the source does (empty otherwise); ``mapped``: the images are
    memory-mapped from a store (read from disk on first touch), not held in RAM.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str
    identity: str
    classes: tuple[str, ...] = ()
    mapped: bool = False

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> "ImageDataset":
        """A copy with ``images`` and ``labels`` moved to ``device``."""
        return dataclasses.replace(self, images=self.images.to(device), labels=self.labels.to(device), mapped=False)

    def in_ram(self) -> torch.Tensor:
        """The images held in RAM: read whole from the store if memory-mapped, else as they are."""
        return self.images.clone() if self.mapped else self.images


def data_identity(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> str:
    """First 16 hex digits of sha1 over shapes, class count, pixel bytes and label bytes."""
    digest = hashlib.sha1()
    digest.update(f"{tuple(images.shape)}|{tuple(labels.shape)}|{num_classes}|".encode())
    # Hash the raw buffers without an extra copy; contiguity makes the byte order canonical.
    digest.update(np.ascontiguousarray(images.detach().cpu().numpy()).data)
    digest.update(np.ascontiguousarray(labels.detach().cpu().to(torch.int64).numpy()).data)
    return digest.hexdigest()[:16]


def make_dataset(images: torch.Tensor, labels: torch.Tensor, num_classes: int, name: str,
                 classes: tuple[str, ...] = ()) -> ImageDataset:
    """Validate tensors (images uint8 [N, C, H, W], labels int [N]) and wrap them with their identity;
    ``classes``: the classes' names where the source gives them (() or one per class)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"{name}: images must be uint8 [N, C, H, W] with C in (1, 3), got "
                        f"{images.dtype} {tuple(images.shape)}")
    labels = labels.to(torch.int64)
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{name}: labels must be [N={images.shape[0]}], got {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"{name}: labels must lie in [0, {num_classes}), got "
                        f"[{int(labels.min())}, {int(labels.max())}]")
    if classes and len(classes) != num_classes:
        raise DataError(f"{name}: {len(classes)} class names for {num_classes} classes")
    images, labels = images.contiguous(), labels.contiguous()
    return ImageDataset(images, labels, int(num_classes), name, data_identity(images, labels, num_classes),
                        tuple(classes))


SUBSET_SEED = 0  # data.subset's shuffle: the same images whatever train.seed, so seeds are comparable


def first_per_class(dataset: ImageDataset, k: int, seed: int = SUBSET_SEED) -> ImageDataset:
    """The first ``k`` images of each class in a fixed shuffle of ``dataset`` (all of a class with fewer),
    in the dataset's own order: a limited-data training set (``data.subset``)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    labels = dataset.labels.cpu()[order]
    rank_in_class = F.one_hot(labels, dataset.num_classes).cumsum(0)[torch.arange(len(labels)), labels] - 1
    keep = order[rank_in_class < k].sort().values
    return make_dataset(dataset.images.cpu()[keep], dataset.labels.cpu()[keep], dataset.num_classes,
                        f"{dataset.name}-first{k}", dataset.classes)


def check_resolution(resolution: int, name: str = "data.resolution", largest: int | None = None) -> int:
    """Return ``resolution`` if it is a usable image side length (at most ``largest``, when given), else raise
    DataError naming ``name``: the config key or the flag, as the user wrote it."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4:
        raise DataError(f"{name} must be an integer >= 4, got {resolution!r}")
    if largest is not None and resolution > largest:
        raise DataError(f"{name} {resolution} is larger than any condgan network takes: at most {largest} px")
    return resolution


# What data.resize=true resizes in-memory images with (config/schema.py's help text says the same).
TENSOR_RESIZER = "torch's antialiased bilinear"


def fit_resolution(images: torch.Tensor, resolution: int, resize: bool, source: str) -> torch.Tensor:
    """uint8 [N, C, H, W] images at ``resolution`` x ``resolution`` as they are; others centre-cropped and
    resized (:func:`resize_uint8`) only when the user asked for it (``resize``: data.resize), else a DataError
    naming ``source``: data of another size must never be resized without a word."""
    height, width = images.shape[-2:]
    if (height, width) == (resolution, resolution):
        return images.contiguous()
    if not resize:
        raise DataError(f"{source} holds {width}x{height} px images, data.resolution is {resolution}: set "
                        f"data.resize=true to centre-crop and resize them ({TENSOR_RESIZER}), or give "
                        f"{resolution} px data")
    return resize_uint8(images, resolution)


def center_crop_square(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, S, S] with S = min(H, W), cropped about the centre."""
    height, width = images.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[..., top:top + side, left:left + side]


def resize_uint8(images: torch.Tensor, resolution: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, R, R]: centre crop to square, then bilinear antialiased resize.

    Works in chunks so a 50k-image set upsampled to 128 px never needs a full float copy at once.
    """
    images = center_crop_square(images)
    if images.shape[-1] == resolution:
        return images.contiguous()
    out = torch.empty(images.shape[0], images.shape[1], resolution, resolution, dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk].to(torch.float32)
        part = F.interpolate(part, size=(resolution, resolution), mode="bilinear",
                             align_corners=False, antialias=True)
        out[start:start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out

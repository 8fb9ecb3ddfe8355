"""Datasets as uint8 tensors (in memory, or memory-mapped from a prepared store), where they live while training,
on-device augmentation and a resumable batch sampler."""
from condgan.data.base import DataError, ImageDataset
from condgan.data.download import cache_dir, download
from condgan.data.loader import BatchSampler
from condgan.data.prepared import prepare
from condgan.data.readers import READERS, list_source
from condgan.data.registry import DATASETS, load_dataset, reference_split
from condgan.data.residency import RESIDENCIES, make_feed
from condgan.data.transforms import augment, to_float, to_uint8, translate_flip

__all__ = [
    "BatchSampler",
    "DATASETS",
    "DataError",
    "ImageDataset",
    "READERS",
    "RESIDENCIES",
    "augment",
    "cache_dir",
    "download",
    "list_source",
    "load_dataset",
    "make_feed",
    "prepare",
    "reference_split",
    "to_float",
    "to_uint8",
    "translate_flip",
]

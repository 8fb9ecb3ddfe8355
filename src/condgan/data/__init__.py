"""Datasets as in-memory uint8 tensors, on-device augmentation and a resumable batch sampler."""
from condgan.data.base import DataError, ImageDataset
from condgan.data.download import cache_dir, download
from condgan.data.loader import BatchSampler
from condgan.data.registry import load_dataset
from condgan.data.transforms import augment, to_float, to_uint8, translate_flip

__all__ = [
    "BatchSampler",
    "DataError",
    "ImageDataset",
    "augment",
    "translate_flip",
    "cache_dir",
    "download",
    "load_dataset",
    "to_float",
    "to_uint8",
]

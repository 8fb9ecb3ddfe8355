"""Reference (real-image) statistics, computed once per dataset split and backbone, cached on disk.

The cache holds the features (for PRDC and per-class statistics), the labels, and the float64 mean and
covariance. Its file name joins the dataset name, split, the split's content hash and the backbone's
cache key (which changes with the backbone's weights and resize method), so a stale file is never read.
Reference images are the split's raw uint8 pixels: training augmentation never touches them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import ImageDataset, cache_dir
from ..files import load_verified, save_atomic
from ..notices import warn
from .backbones import Backbone
from .fid import feature_statistics

FORMAT = 1


@dataclass
class Reference:
    """features float32 [N, F], labels int64 [N], mu float64 [F], sigma float64 [F, F], and provenance."""
    features: torch.Tensor
    labels: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    meta: dict
    from_cache: bool = False

    def to(self, device: torch.device | str) -> "Reference":
        return Reference(self.features.to(device), self.labels.to(device), self.mu.to(device),
                         self.sigma.to(device), self.meta, self.from_cache)


def reference_path(data: ImageDataset, split: str, backbone: Backbone) -> Path:
    """``cache_dir()/reference/<dataset>-<split>-<content hash>-<backbone key>.pt``."""
    return cache_dir() / "reference" / f"{data.name}-{split}-{data.identity}-{backbone.cache_key}.pt"


def _read(path: Path, data: ImageDataset) -> Reference | None:
    try:
        blob = load_verified(path)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError("not a reference-statistics file of this format")
        if blob["format"] != FORMAT or blob["meta"]["num_images"] != len(data):
            raise ValueError("format or size differs")
        return Reference(blob["features"], blob["labels"], blob["mu"], blob["sigma"], blob["meta"], True)
    except Exception as err:  # noqa: BLE001 - any corruption: recompute
        warn(f"ignoring unreadable reference statistics {path} ({err}); recomputing")
        return None


def reference_statistics(data: ImageDataset, split: str, backbone: Backbone, progress: bool = True,
                         use_cache: bool = True) -> Reference:
    """Features and float64 statistics of every image of ``data`` (the ``split`` of a dataset)."""
    path = reference_path(data, split, backbone)
    if use_cache and path.exists():
        cached = _read(path, data)
        if cached is not None:
            return cached
    feats, _ = backbone.extract(data.images, progress=progress, desc=f"reference {data.name}/{split}")
    mu, sigma = feature_statistics(feats)
    meta = {"dataset": data.name, "split": split, "identity": data.identity, "num_images": len(data),
            "backbone": backbone.descriptor}
    ref = Reference(feats.float().cpu(), data.labels.cpu(), mu.cpu(), sigma.cpu(), meta)
    if use_cache:
        save_atomic({"format": FORMAT, "features": ref.features, "labels": ref.labels, "mu": ref.mu,
                     "sigma": ref.sigma, "meta": meta}, path)
    return ref

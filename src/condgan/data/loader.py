"""Fixed-size random batches: the order (a seeded permutation per epoch) and the position in it.

The sampler alone decides which images make each batch; where the images live (device, host RAM or a
memory-mapped store, data/residency.py) only changes how they are fetched, so every tier gives the same
batches and a checkpoint taken in one tier resumes in any other.
"""
from __future__ import annotations

import torch

from condgan.data.base import DataError, ImageDataset
from condgan.data.residency import DeviceFeed
from condgan.distributed import World


class BatchSampler:
    """Draws fixed-size batches (drop_last semantics) from ``dataset`` through ``feed``.

    Each epoch is a permutation from a dedicated CPU generator seeded with ``seed``. ``batch_size`` is the
    global batch: under torchrun every rank draws the same global batches and keeps its own equal share
    (``world.shard``), so the state is independent of the number of processes. ``feed`` defaults to the
    ``device`` tier on the dataset's own device.
    """

    def __init__(self, dataset: ImageDataset, batch_size: int, seed: int, world: World = World(),
                 feed: DeviceFeed | None = None) -> None:
        size = len(dataset)
        if batch_size < 1 or batch_size > size:
            raise DataError(f"batch_size {batch_size} must be in [1, {size}] for dataset {dataset.name} "
                            f"of {size} images")
        if batch_size % world.size:
            raise DataError(f"train.batch_size {batch_size} must be divisible by the number of processes "
                            f"({world.size})")
        self.dataset = dataset
        self.feed = feed if feed is not None else DeviceFeed(dataset, dataset.images.device)
        self.world = world
        self.batch_size = int(batch_size)
        self.local_batch = self.batch_size // world.size
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.epoch = 0
        self.position = 0
        self._new_permutation()

    @property
    def device(self) -> torch.device:
        """Where batches arrive (the training device)."""
        return self.feed.device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.dataset.images.shape[1:])

    @property
    def batches_per_epoch(self) -> int:
        """Full batches per epoch (the incomplete tail is dropped)."""
        return len(self.dataset) // self.batch_size

    def _new_permutation(self) -> None:
        self.perm = torch.randperm(len(self.dataset), generator=self.generator)
        self.feed.start_epoch(self.perm, self._next_permutation)

    def _next_permutation(self) -> torch.Tensor:
        """The permutation the next epoch will draw, computed from a copy of the generator (nothing drawn)."""
        ahead = torch.Generator()
        ahead.set_state(self.generator.get_state())
        return torch.randperm(len(self.dataset), generator=ahead)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the next global batch: uint8 images [b, C, H, W] and int64 labels [b] on the
        training device, b = batch_size / world size."""
        if self.position + self.batch_size > self.perm.numel():
            self.epoch += 1
            self.position = 0
            self._new_permutation()
        start = self.position
        self.position += self.batch_size
        return self.feed.fetch(start, start + self.batch_size, self.world.shard(self.batch_size))

    def close(self) -> None:
        """Stop the feed's background readers (stream)."""
        self.feed.close()

    def state_dict(self) -> dict:
        """Epoch, position, generator state and current permutation (loads with weights_only=True)."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "generator": self.generator.get_state(),
            "perm": self.perm.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume exactly where :meth:`state_dict` was taken (same dataset size required; any tier)."""
        missing = [key for key in ("epoch", "position", "generator", "perm") if key not in state]
        if missing:
            raise DataError(f"batch sampler state is missing key '{missing[0]}'")
        perm = state["perm"]
        if not isinstance(perm, torch.Tensor) or perm.dtype != torch.int64 or perm.numel() != len(self.dataset):
            raise DataError(f"batch sampler state 'perm' does not match a dataset of {len(self.dataset)} images")
        if int(state.get("batch_size", self.batch_size)) != self.batch_size:
            raise DataError(f"batch sampler state has batch_size {state['batch_size']}, "
                            f"this sampler uses {self.batch_size}")
        self.generator.set_state(state["generator"].cpu())
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.perm = perm.cpu().clone()
        self.feed.start_epoch(self.perm, self._next_permutation)

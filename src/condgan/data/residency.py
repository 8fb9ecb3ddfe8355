"""Where the training images live while a run reads them: ``data.residency``.

- ``device``: the whole uint8 set on the training device; a batch is one on-device gather (CIFAR-scale).
- ``host``: the whole set in (pinned) host RAM; background threads gather the next batches (across epoch
  boundaries too) while the device trains on the current one, and each is copied non-blocking.
- ``stream``: the same, but the set stays in its memory-mapped store (ImageNet at 128 px: 63 GB): only the
  batches in flight are in RAM.

A feed is told the epoch's permutation and asked for rows ``[start, stop)`` of it; which images those are is
decided by the sampler alone (data/loader.py), so every tier gives the same batches, and a run can resume
in another tier. Labels always live on the device (8 bytes an image).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch

from condgan.data.base import DataError, ImageDataset

RESIDENCIES = ("auto", "device", "host", "stream")
DEVICE_SHARE = 0.25  # auto: the set goes on the device if it takes at most this share of its free memory
HOST_SHARE = 0.5  # ... else in host RAM if at most this share of this process's part of the available RAM
PREFETCH = 4  # host and stream: batches read ahead


def choose_residency(dataset: ImageDataset, device: torch.device, processes_per_host: int = 1) -> str:
    """``auto``: device if the set is small beside the device's free memory, else host if it fits in this
    process's share of the host's available RAM, else stream."""
    size = dataset.images.numel() * dataset.images.element_size()
    host = available_host_memory() / max(1, processes_per_host)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        if size <= DEVICE_SHARE * free:
            return "device"
    elif size <= HOST_SHARE * host:  # on a CPU, "device" is host RAM
        return "device"
    return "host" if size <= HOST_SHARE * host else "stream"


def gather_rows(images: torch.Tensor, index: torch.Tensor, pin: bool = False) -> torch.Tensor:
    """images[index] for uint8 [N, C, H, W] and int64 [b]. Written into a preallocated tensor: on a CPU,
    index_select into a new tensor takes a path ~20x slower than into ``out=`` (torch 2.x, 128 px batches)."""
    out = torch.empty((index.numel(), *images.shape[1:]), dtype=images.dtype, device=images.device, pin_memory=pin)
    return torch.index_select(images, 0, index, out=out)


def available_host_memory() -> int:
    """Bytes of RAM available to new allocations (Linux's MemAvailable; total RAM elsewhere)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class DeviceFeed:
    """Images and labels on the training device; the epoch's permutation too (one copy per epoch)."""

    tier = "device"

    def __init__(self, dataset: ImageDataset, device: torch.device) -> None:
        self.device = device
        self.images = dataset.in_ram().to(device)
        self.labels = dataset.labels.to(device)
        self.wait_s = 0.0  # time the caller spent blocked on data (stream only)

    def start_epoch(self, perm: torch.Tensor, next_perm: Callable[[], torch.Tensor] | None = None) -> None:
        """perm: int64 [N] on the CPU, the epoch's order (next_perm: for feeds that read ahead)."""
        self.perm = perm.to(self.device)

    def fetch(self, start: int, stop: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images [b, C, H, W] and int64 labels [b] on the device: ``rows`` of perm[start:stop]."""
        index = self.perm[start:stop][rows]
        return gather_rows(self.images, index), self.labels.index_select(0, index)

    def close(self) -> None:
        """Stop background work (none here)."""


class HostFeed(DeviceFeed):
    """Images in host RAM (pinned when the device is a GPU, so copies are asynchronous), gathered by
    ``workers`` background threads ``prefetch`` batches ahead (into the next epoch too), so the training loop
    only waits when the gathering falls behind."""

    tier = "host"

    def __init__(self, dataset: ImageDataset, device: torch.device, batch_size: int, workers: int = 4,
                 prefetch: int = PREFETCH, resident: bool = True) -> None:
        self.device = device
        self.pin = device.type == "cuda"
        # resident: read the whole set into RAM now (a memory-mapped store's pages would otherwise be read
        # at random during training); stream keeps the mapping
        images = dataset.images.cpu()
        if resident:
            images = images.pin_memory() if self.pin else dataset.in_ram()
        self.images = images
        self.labels = dataset.labels.to(device)
        self.wait_s = 0.0
        self.batch_size, self.prefetch = batch_size, prefetch
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"condgan-{self.tier}")
        self.pending: dict[tuple[int, int], Future] = {}  # (0: this epoch | 1: the next, start) -> images
        self.upcoming: torch.Tensor | None = None  # the next epoch's order, once reading ahead reached it

    def start_epoch(self, perm: torch.Tensor, next_perm: Callable[[], torch.Tensor] | None = None) -> None:
        """perm: the epoch's order; next_perm: computes the next epoch's (without drawing it), so the reading
        ahead goes on across the epoch boundary. Batches read ahead for this epoch are kept, if ``perm`` is the
        order they were read from (after a resume it may not be: then everything is read anew)."""
        carried = {}
        if self.upcoming is not None and torch.equal(perm, self.upcoming):
            carried = {start: future for (ahead, start), future in self.pending.items() if ahead == 1}
            self.pending = {key: future for key, future in self.pending.items() if key[0] == 0}
        self._drop_pending()
        self.pending = {(0, start): future for start, future in carried.items()}
        self.perm_host, self.perm = perm, perm.to(self.device)
        self.next_perm, self.upcoming = next_perm, None

    def gather(self, perm: torch.Tensor, start: int, rows: slice) -> torch.Tensor:
        """uint8 [b, C, H, W] on the CPU (pinned for a GPU): the images of ``rows`` of perm[start:start + B]."""
        return gather_rows(self.images, perm[start:start + self.batch_size][rows], self.pin)

    def fetch(self, start: int, stop: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        future = self.pending.pop((0, start), None)
        self._read_ahead(start, rows)
        t0 = time.perf_counter()
        images = future.result() if future is not None else self.gather(self.perm_host, start, rows)
        self.wait_s += time.perf_counter() - t0
        # Pinned buffers come from torch's caching host allocator, which does not reuse a buffer before
        # its asynchronous copy has finished, so a fresh buffer per batch is safe with non_blocking.
        images = images.to(self.device, non_blocking=True)
        return images, self.labels.index_select(0, self.perm[start:stop][rows])

    def _read_ahead(self, start: int, rows: slice) -> None:
        """Start reading the ``prefetch`` batches after the one at ``start``, into the next epoch if need be
        (the sampler moves by batch_size and starts a new epoch when a whole batch no longer fits)."""
        per_epoch = self.perm_host.numel() // self.batch_size
        for batch in range(start // self.batch_size + 1, start // self.batch_size + 1 + self.prefetch):
            ahead, index = divmod(batch, per_epoch)
            key = (ahead, index * self.batch_size)
            if ahead > 1 or key in self.pending or (ahead == 1 and self.next_perm is None):
                continue
            if ahead == 1 and self.upcoming is None:
                self.upcoming = self.next_perm()
            perm = self.perm_host if ahead == 0 else self.upcoming
            self.pending[key] = self.pool.submit(self.gather, perm, key[1], rows)

    def _drop_pending(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pending.clear()

    def close(self) -> None:
        self._drop_pending()
        self.pool.shutdown(wait=True, cancel_futures=True)


class StreamFeed(HostFeed):
    """The memory-mapped store, read by the background threads: only the batches in flight are in RAM."""

    tier = "stream"

    def __init__(self, dataset: ImageDataset, device: torch.device, batch_size: int, workers: int = 4,
                 prefetch: int = PREFETCH) -> None:
        super().__init__(dataset, device, batch_size, workers, prefetch, resident=False)


def make_feed(dataset: ImageDataset, residency: str, device: torch.device, batch_size: int,
              processes_per_host: int = 1) -> DeviceFeed:
    """The feed for ``residency`` (``auto`` resolved by :func:`choose_residency`)."""
    if residency not in RESIDENCIES:
        raise DataError(f"data.residency must be one of {', '.join(RESIDENCIES)}, got {residency!r}")
    if residency == "auto":
        residency = choose_residency(dataset, device, processes_per_host)
    if residency == "device":
        return DeviceFeed(dataset, device)
    if residency == "host":
        return HostFeed(dataset, device, batch_size)
    return StreamFeed(dataset, device, batch_size)

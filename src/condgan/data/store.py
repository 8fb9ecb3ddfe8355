"""``condgan prepare``: decode, centre-crop and resize a dataset's image files once, into a memory-mappable store.

A store is a folder per (dataset, resolution, resizer, source root), one sub-folder per split::

    <cache>/stores/imagenet-128px-lanczos-<key>/train/images.u8      uint8 [N, 3, R, R], raw (memory-mapped)
                                                 /labels.npy     int64 [N]
                                                 /manifest.json  count, classes, resizer, source and pixel hashes

A split is built in ``<split>.partial/`` in chunks; each chunk's index is appended to ``done.log`` only after
its pixels are flushed, so a rerun after a kill redoes at most the chunks in flight and writes the same
bytes. The manifest is written last and the folder renamed into place: a split folder with a manifest is
complete, and nothing else is ever read as a store.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from condgan.data.base import DataError, ImageDataset
from condgan.data.download import cache_dir
from condgan.data.folder import read_image
from condgan.data.readers import SourceSplit
from condgan.files import LockHeld, take_lock, write_text_atomic

STORE_FORMAT = 1
CHUNK = 256  # images per unit of work and of resumption
# PIL filters by name. LANCZOS is what StudioGAN's documented commands use; the name is part of the store's
# key and manifest because it changes FID.
RESIZERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
DEFAULT_RESIZER = "lanczos"


@dataclass(frozen=True)
class StoreKey:
    """What a store is built from: the dataset, its root folder, the class list (imagenet143) and the output."""

    dataset: str
    root: Path
    resolution: int
    resizer: str
    class_list: Path | None = None

    def folder(self) -> Path:
        """``<cache>/stores/<dataset>-<R>px-<resizer>-<hash of root and class list>``."""
        digest = hashlib.sha1(str(self.root.expanduser().absolute()).encode())
        if self.class_list is not None:
            digest.update(b"|" + _read_bytes(self.class_list))
        return cache_dir() / "stores" / f"{self.dataset}-{self.resolution}px-{self.resizer}-{digest.hexdigest()[:10]}"


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as err:
        raise DataError(f"cannot read class list {path}: {err.strerror or err}") from None


def _decode_chunk(job: tuple[int, list[Path], int, str]) -> tuple[int, np.ndarray]:
    """Worker: (chunk index, files, R, resizer) -> (chunk index, uint8 [n, 3, R, R])."""
    index, files, resolution, resizer = job
    images = np.stack([read_image(f, resolution, RESIZERS[resizer]) for f in files])  # [n, R, R, 3]
    return index, np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def source_hash(source: SourceSplit, root: Path) -> str:
    """sha1 over the files' paths (relative to ``root``), sizes and labels and the class names: a changed,
    added or removed file makes a different store. Contents are not read (ImageNet is 150 GB)."""
    digest = hashlib.sha1("\n".join(source.classes).encode() + b"\0")
    base = str(root.expanduser().absolute())
    for path, label in zip(source.files, source.labels):
        try:
            size = os.stat(path).st_size
        except OSError as err:
            raise DataError(f"cannot read image {path}: {err.strerror or err}") from None
        name = os.path.relpath(path, base)
        digest.update(f"{name}\t{size}\t{label}\n".encode())
    return digest.hexdigest()


def pixel_identity(images: np.ndarray, labels: np.ndarray, num_classes: int, progress: bool = False) -> str:
    """The same 16 hex digits as ``data_identity`` of the loaded tensors, computed chunk by chunk."""
    digest = hashlib.sha1(f"{tuple(images.shape)}|{tuple(labels.shape)}|{num_classes}|".encode())
    step = max(1, (64 << 20) // max(1, images[0].nbytes))
    for start in tqdm(range(0, images.shape[0], step), desc="hashing", unit="chunk", disable=not progress or None):
        digest.update(np.ascontiguousarray(images[start:start + step]).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return digest.hexdigest()[:16]


def read_manifest(split_dir: Path) -> dict | None:
    """The manifest of a complete split folder, or None when there is none (not prepared, or unfinished)."""
    try:
        manifest = json.loads((split_dir / "manifest.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise DataError(f"unreadable store manifest {split_dir / 'manifest.json'}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise DataError(f"{split_dir / 'manifest.json'} is not a condgan store manifest of format {STORE_FORMAT}")
    return manifest


def prepare_split(key: StoreKey, split: str, source: SourceSplit, workers: int = 0, progress: bool = True) -> Path:
    """Build (or finish, or keep) the store of one split; returns its folder.

    An existing complete store from the same source files is kept as is; one from different files is
    rebuilt. ``workers``: decoding processes (0 = every core; 1 = in this process).
    """
    if not source.files:
        raise DataError(f"{key.dataset}: the {split} split under {key.root} has no images")
    with _locked(key.folder()) as lock_fd:
        return _prepare_locked(key, split, source, workers, progress, lock_fd)


@contextmanager
def _locked(folder: Path):
    """Hold ``folder``'s lock: one ``condgan prepare`` writes a store at a time (the OS drops the lock when the
    process ends, however it ends)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = take_lock(folder / ".lock")
    except LockHeld as held:
        raise DataError(f"store {folder} is being written by another condgan prepare"
                        f"{f' (pid {held.pid})' if held.pid else ''}; wait for it to finish") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _prepare_locked(key: StoreKey, split: str, source: SourceSplit, workers: int, progress: bool,
                    lock_fd: int) -> Path:
    final = key.folder() / split
    digest = source_hash(source, key.root)
    manifest = read_manifest(final)
    if manifest is not None and manifest.get("source_hash") == digest:
        shutil.rmtree(final.with_name(final.name + ".stale"), ignore_errors=True)  # a kill's leftover
        return final
    partial = key.folder() / f"{split}.partial"
    plan = {"format": STORE_FORMAT, "source_hash": digest, "count": len(source.files),
            "resolution": key.resolution, "resizer": key.resizer}
    image_bytes = _open_partial(partial, plan, np.asarray(source.labels, dtype=np.int64))
    done = _finished_chunks(partial / "done.log")
    chunks = -(-len(source.files) // CHUNK)
    jobs = [(i, list(source.files[i * CHUNK:(i + 1) * CHUNK]), key.resolution, key.resizer)
            for i in range(chunks) if i not in done]
    total_done = sum(min(CHUNK, len(source.files) - i * CHUNK) for i in done if i < chunks)
    with open(partial / "images.u8", "r+b") as out, open(partial / "done.log", "a") as log, tqdm(
            total=len(source.files), initial=total_done, unit="img", desc=f"{key.dataset} {split}",
            disable=not progress or None) as bar:
        for index, pixels in _decoded(jobs, workers, lock_fd):
            out.seek(index * CHUNK * image_bytes)
            out.write(np.ascontiguousarray(pixels).data)
            out.flush()
            _sync(out.fileno())  # the pixels are on disk before the log says so (a crash, not only a kill)
            log.write(f"{index}\n")
            log.flush()
            os.fsync(log.fileno())
            bar.update(len(pixels))
    _seal(partial, final, source, key, digest, progress)
    return final


def _open_partial(partial: Path, plan: dict, labels: np.ndarray) -> int:
    """Create the unfinished store (image file pre-sized) unless an unfinished build of this plan exists;
    returns the bytes of one image."""
    try:
        same = json.loads((partial / "plan.json").read_text()) == plan
    except (OSError, ValueError):
        same = False
    shape = (plan["count"], 3, plan["resolution"], plan["resolution"])
    if not same:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with open(partial / "images.u8", "wb") as f:
            f.truncate(int(np.prod(shape)))
        np.save(partial / "labels.npy", labels)
        write_text_atomic(partial / "plan.json", json.dumps(plan))  # last: it vouches for the two above
    return int(np.prod(shape[1:]))


def _sync(fd: int) -> None:
    """Flush a file's data to the disk (fdatasync where there is one: macOS and Windows have only fsync)."""
    getattr(os, "fdatasync", os.fsync)(fd)


def _finished_chunks(log: Path) -> set[int]:
    """Chunk indices whose lines in ``done.log`` are complete (a kill can cut the last line short)."""
    try:
        text = log.read_text()
    except FileNotFoundError:
        return set()
    lines = text.split("\n")[:-1]  # the text after the last newline is an unfinished line
    return {int(line) for line in lines if line.isdigit()}


def _decoded(jobs: list, workers: int, lock_fd: int):
    """Decoded chunks in completion order, from a pool of processes (or this one when workers == 1).

    Forked workers close their copy of the store's lock: a lock held by an open file, which a fork shares,
    would otherwise outlive a killed parent until the last orphaned worker exits, refusing the rerun."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) <= 1:
        yield from map(_decode_chunk, jobs)
        return
    # fork: the workers need only PIL and numpy, and start at once (spawn would re-import torch in each)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    closing = (os.close, (lock_fd,)) if method == "fork" else (None, ())  # a spawned worker has no copy
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs)), *closing) as pool:
        yield from pool.imap_unordered(_decode_chunk, jobs)


def _seal(partial: Path, final: Path, source: SourceSplit, key: StoreKey, digest: str, progress: bool) -> None:
    """Write the manifest (with the pixel identity) and move the finished split into place."""
    labels = np.load(partial / "labels.npy")
    side = key.resolution
    images = np.memmap(partial / "images.u8", dtype=np.uint8, mode="r", shape=(len(source.files), 3, side, side))
    manifest = {
        "format": STORE_FORMAT, "dataset": key.dataset, "split": final.name, "count": len(source.files),
        "channels": 3, "resolution": key.resolution, "resizer": key.resizer, "classes": list(source.classes),
        "source_root": str(key.root.expanduser().absolute()), "source_hash": digest,
        "identity": pixel_identity(images, labels, len(source.classes), progress),
    }
    del images
    write_text_atomic(partial / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    stale = final.with_name(final.name + ".stale")
    if final.exists():  # a store of other source files: replaced whole
        shutil.rmtree(stale, ignore_errors=True)
        final.rename(stale)
    partial.rename(final)
    shutil.rmtree(stale, ignore_errors=True)


def open_split(split_dir: Path, resolution: int, name: str) -> ImageDataset:
    """A prepared split as an :class:`ImageDataset` whose images are memory-mapped from the store: pages
    are read on first use, so opening ImageNet costs no RAM until the data is touched."""
    manifest = read_manifest(split_dir)
    if manifest is None:
        raise DataError(f"{split_dir} is not a finished store split (no manifest.json)")
    try:
        count, side, channels = (int(manifest[k]) for k in ("count", "resolution", "channels"))
        classes, identity = [str(c) for c in manifest["classes"]], str(manifest["identity"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"store manifest {split_dir / 'manifest.json'} is damaged ({type(err).__name__}: {err})") \
            from None
    if side != resolution:
        raise DataError(f"store {split_dir} holds {side} px images, data.resolution is {resolution}")
    path, shape = split_dir / "images.u8", (count, channels, side, side)
    size = path.stat().st_size if path.is_file() else -1
    if size != int(np.prod(shape)):
        raise DataError(f"store file {path} has {size} bytes, its manifest says {int(np.prod(shape))}")
    try:
        labels = np.load(split_dir / "labels.npy", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"store file {split_dir / 'labels.npy'} is unreadable: {' '.join(str(err).split())}") from None
    if labels.shape != (count,) or labels.dtype != np.int64 or (count and not 0 <= labels.min() <= labels.max()
                                                                   < len(classes)):
        raise DataError(f"store file {split_dir / 'labels.npy'} is not int64 [{count}] in [0, {len(classes)})")
    # shared=False maps the file privately: nothing a process writes reaches the store
    images = torch.from_file(str(path), shared=False, size=int(np.prod(shape)), dtype=torch.uint8).view(shape)
    return ImageDataset(images, torch.from_numpy(labels), len(classes), name, identity, tuple(classes), mapped=True)

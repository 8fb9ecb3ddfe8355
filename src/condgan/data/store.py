"""``condgan prepare``: decode, centre-crop and resize a dataset's image files once, into a memory-mappable store.

A store is a folder per (dataset, resolution, resizer, source root), one sub-folder per split::

    <cache>/stores/imagenet-128px-lanczos-<key>/train/images.u8      uint8 [N, 3, R, R], raw (memory-mapped)
                                                 /labels.npy     int64 [N]
                                                 /manifest.json  count, classes, resizer, source and pixel hashes,
                                                                 the labels' hash and its own checksum

A split is built in ``<split>.partial/`` in chunks; each chunk's index is appended to ``done.log`` only after
its pixels are flushed, so a rerun after a kill redoes at most the chunks in flight and writes the same
bytes. The manifest is written last and the folder renamed into place: a split folder with a manifest is
complete, and nothing else is ever read as a store. Reading a finished store writes nothing (a read-only cache
serves it); a manifest changed by hand, or one of an older format, is refused when read and rebuilt by prepare.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
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
from condgan.notices import warn

STORE_FORMAT = 2  # 2: the manifest carries its checksum and the labels' hash; the source hash covers mtimes
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


def source_hash(source: SourceSplit, root: Path, times: bool = True) -> str:
    """sha1 over the files' paths (relative to ``root``), sizes, modification times and labels and the class
    names: a changed, added or removed file makes a different store (a file replaced by another of the same
    size too: the replacement has its own time). Contents are not read (ImageNet is 150 GB). ``times=False``:
    the hash of store format 1 (no modification times)."""
    digest = hashlib.sha1("\n".join(source.classes).encode() + b"\0")
    base = str(root.expanduser().absolute())
    for path, label in zip(source.files, source.labels):
        try:
            stat = os.stat(path)
        except OSError as err:
            raise DataError(f"cannot read image {path}: {err.strerror or err}") from None
        name = os.path.relpath(path, base)
        when = f"\t{stat.st_mtime_ns}" if times else ""
        digest.update(f"{name}\t{stat.st_size}{when}\t{label}\n".encode())
    return digest.hexdigest()


def pixel_identity(images: np.ndarray, labels: np.ndarray, num_classes: int, progress: bool = False) -> str:
    """The same 16 hex digits as ``data_identity`` of the loaded tensors, computed chunk by chunk."""
    digest = hashlib.sha1(f"{tuple(images.shape)}|{tuple(labels.shape)}|{num_classes}|".encode())
    step = max(1, (64 << 20) // max(1, images[0].nbytes))
    for start in tqdm(range(0, images.shape[0], step), desc="hashing", unit="chunk", disable=not progress or None):
        digest.update(np.ascontiguousarray(images[start:start + step]).data)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).data)
    return digest.hexdigest()[:16]


class StoreDamaged(DataError):
    """A store split whose manifest cannot be trusted (unreadable, of an older format, changed by hand): reading
    it is refused, ``condgan prepare`` rebuilds it."""


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's content but its ``checksum`` (canonical JSON): any edit changes it."""
    body = {key: value for key, value in manifest.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def labels_hash(labels: np.ndarray) -> str:
    """sha1 of the labels as int64: the manifest vouches for labels.npy with it."""
    return hashlib.sha1(np.ascontiguousarray(labels, dtype=np.int64).data).hexdigest()


def read_manifest(split_dir: Path) -> dict | None:
    """The manifest of a complete split folder, or None when there is none (not prepared, or unfinished);
    StoreDamaged when it is unreadable, of another format or not as condgan prepare wrote it."""
    path = split_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise StoreDamaged(f"unreadable store manifest {path}: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise StoreDamaged(f"{path} is not a condgan store manifest")
    if manifest["format"] != STORE_FORMAT:
        raise StoreDamaged(f"store manifest {path} is of format {manifest['format']}, this condgan reads format "
                           f"{STORE_FORMAT}")
    if manifest.get("checksum") != manifest_checksum(manifest):
        raise StoreDamaged(f"store manifest {path} does not match its checksum: it was changed after condgan "
                           f"prepare wrote it")
    return manifest


def finished_split(split_dir: Path, digest: str) -> bool:
    """Whether ``split_dir`` is a finished store of the source with hash ``digest``, with nothing left to tidy;
    reads only, so a store in a read-only cache needs no lock."""
    try:
        manifest = read_manifest(split_dir)
    except StoreDamaged:
        return False  # prepare rebuilds it, under the lock
    stale = split_dir.with_name(split_dir.name + ".stale")
    return manifest is not None and manifest.get("source_hash") == digest and not stale.exists()


def prepare_split(key: StoreKey, split: str, source: SourceSplit, workers: int = 0, progress: bool = True) -> Path:
    """Build (or finish, or keep) the store of one split; returns its folder.

    An existing complete store from the same source files is kept as is; one from different files is
    rebuilt. ``workers``: decoding processes (0 = every core; 1 = in this process).
    """
    if not source.files:
        raise DataError(f"{key.dataset}: the {split} split under {key.root} has no images")
    digest = source_hash(source, key.root)
    if finished_split(key.folder() / split, digest):
        return key.folder() / split
    try:
        with _locked(key.folder()) as lock_fd:
            return _prepare_locked(key, split, source, digest, workers, progress, lock_fd)
    except OSError as err:
        if err.filename:
            raise  # the command line names the file
        # a write to an open store file (a full disk) names nothing: name the store
        raise DataError(f"{err.strerror or err} while writing store {key.folder()}: free some space (or fix the "
                        f"disk), then rerun the same command to resume") from None


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


def _prepare_locked(key: StoreKey, split: str, source: SourceSplit, digest: str, workers: int, progress: bool,
                    lock_fd: int) -> Path:
    final = key.folder() / split
    try:
        manifest = read_manifest(final)
    except StoreDamaged as damaged:
        if _upgraded(final, source, key, digest, progress):
            return final
        warn(f"{damaged}; rebuilding the store")
        manifest = None
    if manifest is not None and manifest.get("source_hash") == digest:
        shutil.rmtree(final.with_name(final.name + ".stale"), ignore_errors=True)  # a kill's leftover
        return final
    partial = key.folder() / f"{split}.partial"
    plan = {"format": STORE_FORMAT, "source_hash": digest, "count": len(source.files),
            "resolution": key.resolution, "resizer": key.resizer}
    labels = np.asarray(source.labels, dtype=np.int64)
    resumed = _same_plan(partial, plan)
    done = _finished_chunks(partial / "done.log") if resumed else set()
    chunks = -(-len(source.files) // CHUNK)
    total_done = sum(min(CHUNK, len(source.files) - i * CHUNK) for i in done if i < chunks)
    image_bytes = 3 * key.resolution ** 2
    _check_space(key.folder(), (len(source.files) - total_done) * image_bytes + (0 if resumed else labels.nbytes))
    if not resumed:
        _new_partial(partial, plan, labels)
    jobs = [(i, list(source.files[i * CHUNK:(i + 1) * CHUNK]), key.resolution, key.resizer)
            for i in range(chunks) if i not in done]
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


def _same_plan(partial: Path, plan: dict) -> bool:
    """Whether ``partial`` holds an unfinished build of this very plan (a rerun resumes it)."""
    try:
        return json.loads((partial / "plan.json").read_text()) == plan
    except (OSError, ValueError):
        return False


def _new_partial(partial: Path, plan: dict, labels: np.ndarray) -> None:
    """Create the unfinished store: the image file pre-sized (sparse), the labels, then the plan."""
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with open(partial / "images.u8", "wb") as f:
        f.truncate(plan["count"] * 3 * plan["resolution"] ** 2)
    np.save(partial / "labels.npy", labels)
    write_text_atomic(partial / "plan.json", json.dumps(plan))  # last: it vouches for the two above


def _check_space(folder: Path, need: int) -> None:
    """DataError naming ``folder`` unless its disk has ``need`` bytes free: the pre-sized image file is
    sparse, so a full disk would otherwise show only hours later, mid-write."""
    free = shutil.disk_usage(folder).free
    if need > free:
        raise DataError(f"not enough disk space for store {folder}: it needs {_size(need)}, only {_size(free)} "
                        f"are free; free some space, or set CONDGAN_CACHE to a folder on a bigger disk")


def _size(count: float) -> str:
    """A byte count for people: 4.6 kB, 151.3 GB."""
    if count < 1000:
        return f"{int(count)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        count /= 1000
        if count < 1000 or unit == "TB":
            break
    return f"{count:.1f} {unit}"


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


def _worker_start(lock_fd: int) -> None:
    """A decoding worker ignores Ctrl-C, which a terminal sends to every process of the job: the parent alone
    answers it (one line) and ends the pool, where each worker would print its own traceback. A forked worker
    closes its copy of the store's lock (``lock_fd`` >= 0): a lock held by an open file, which a fork shares,
    would otherwise outlive a killed parent until the last orphaned worker exits, refusing the rerun."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if lock_fd >= 0:
        os.close(lock_fd)


def _decoded(jobs: list, workers: int, lock_fd: int):
    """Decoded chunks in completion order, from a pool of processes (or this one when workers == 1)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) <= 1:
        yield from map(_decode_chunk, jobs)
        return
    # fork: the workers need only PIL and numpy, and start at once (spawn would re-import torch in each)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    own_fd = lock_fd if method == "fork" else -1  # a spawned worker has no copy
    with multiprocessing.get_context(method).Pool(min(workers, len(jobs)), _worker_start, (own_fd,)) as pool:
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
        "identity": pixel_identity(images, labels, len(source.classes), progress), "labels_sha1": labels_hash(labels),
    }
    manifest["checksum"] = manifest_checksum(manifest)
    del images
    write_text_atomic(partial / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    stale = final.with_name(final.name + ".stale")
    if final.exists():  # a store of other source files: replaced whole
        shutil.rmtree(stale, ignore_errors=True)
        final.rename(stale)
    partial.rename(final)
    shutil.rmtree(stale, ignore_errors=True)


def _upgraded(final: Path, source: SourceSplit, key: StoreKey, digest: str, progress: bool) -> bool:
    """Bring a format-1 store of these very sources to this format without decoding them again (ImageNet: an
    hour): its old source hash, class list and labels must equal the sources', no source file may be newer than
    its manifest, and its pixels must still hash to the identity it recorded. False when any differs."""
    path = final / "manifest.json"
    try:
        old, built = json.loads(path.read_text()), path.stat().st_mtime_ns
        if not isinstance(old, dict) or old.get("format") != 1 or old.get("classes") != list(source.classes) \
                or old.get("source_hash") != source_hash(source, key.root, times=False) \
                or any(os.stat(f).st_mtime_ns > built for f in source.files):
            return False
        labels = np.load(final / "labels.npy")
        side = key.resolution
        images = np.memmap(final / "images.u8", dtype=np.uint8, mode="r", shape=(len(source.files), 3, side, side))
        if not np.array_equal(labels, np.asarray(source.labels, dtype=np.int64)) or \
                pixel_identity(images, labels, len(source.classes), progress) != old.get("identity"):
            return False
    except (OSError, ValueError):
        return False
    del images
    manifest = {**old, "format": STORE_FORMAT, "source_hash": digest, "labels_sha1": labels_hash(labels)}
    manifest["checksum"] = manifest_checksum(manifest)
    write_text_atomic(path, json.dumps(manifest, indent=1) + "\n")
    warn(f"store {final} was of format 1: checked against its sources and brought to format {STORE_FORMAT} "
         f"(not decoded again)")
    return True


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
    if labels_hash(labels) != manifest.get("labels_sha1"):  # 10 MB for ImageNet: cheap enough to check each time
        raise StoreDamaged(f"store file {split_dir / 'labels.npy'} does not match its manifest (changed after "
                           f"condgan prepare wrote it)")
    # shared=False maps the file privately: nothing a process writes reaches the store
    images = torch.from_file(str(path), shared=False, size=int(np.prod(shape)), dtype=torch.uint8).view(shape)
    return ImageDataset(images, torch.from_numpy(labels), len(classes), name, identity, tuple(classes), mapped=True)

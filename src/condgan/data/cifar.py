"""CIFAR-10 / CIFAR-100 read straight from the official python-pickle ``.tar.gz`` archives.

Members are unpickled while streaming through the archive (no extraction, one pass). Unpickling is
restricted to the few numpy/builtin globals these files use, so a tampered archive cannot run code.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from condgan.data.base import DataError, ImageDataset, fit_resolution, make_dataset
from condgan.data.download import cache_dir, download


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives and how its archive is laid out."""

    name: str
    archive: str
    url: str
    md5: str
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    label_key: bytes
    num_classes: int
    meta_member: str  # the pickled dict naming the classes
    names_key: bytes


CIFAR10 = CifarSpec(
    "cifar10", "cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
    tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)), ("cifar-10-batches-py/test_batch",),
    b"labels", 10, "cifar-10-batches-py/batches.meta", b"label_names")
CIFAR100 = CifarSpec(
    "cifar100", "cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "eb9058c3a382ffc7106e4002c42a8d85",
    ("cifar-100-python/train",), ("cifar-100-python/test",), b"fine_labels", 100, "cifar-100-python/meta",
    b"fine_label_names")
SPECS = {spec.name: spec for spec in (CIFAR10, CIFAR100)}

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle protocol signature
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


def resolve_archive(spec: CifarSpec, root: str) -> Path:
    """``root`` may be the archive itself or its directory; "" means :func:`cache_dir`."""
    if not root:
        return cache_dir() / spec.archive
    path = Path(root).expanduser()
    if path.is_file() or path.name.endswith((".tar.gz", ".tgz")):
        return path
    return path / spec.archive


def ensure_archive(spec: CifarSpec, root: str, allow_download: bool) -> Path:
    """Path of an existing archive, downloading it (md5-verified) when missing and allowed."""
    path = resolve_archive(spec, root)
    if path.is_file():
        return path
    if allow_download:
        try:
            return download(spec.url, path, spec.md5)
        except DataError as err:
            reason = str(err)
    else:
        reason = "downloads disabled (data.download=false)"
    raise DataError(f"{spec.name} archive not found: put {path.name} in {path.parent} (or set data.root); "
                    f"{reason}")


def _read_members(path: Path, wanted: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, dict]:
    """Unpickle the ``wanted`` members (and the ``optional`` ones present) in one streaming pass over the tar.gz."""
    found: dict[str, dict] = {}
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                if (member.name in wanted or member.name in optional) and member.isfile():
                    raw = tar.extractfile(member).read()
                    found[member.name] = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - corrupt gzip/tar/pickle bytes can raise almost anything
        raise DataError(f"{path} is not a readable CIFAR archive: {' '.join(str(err).split())}") from None
    missing = [name for name in wanted if name not in found]
    if missing:
        raise DataError(f"{path} is not a valid CIFAR archive: member {missing[0]} missing")
    return found


def _batch_arrays(batch: object, label_key: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One unpickled batch dict -> uint8 [n, 3, 32, 32] (rows are 1024 R, 1024 G, 1024 B), int64 [n]."""
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{where}: expected a dict with keys b'data' and {label_key!r}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != data.shape[:1]:
        raise DataError(f"{where}: expected b'data' uint8 [n, 3072] and {label_key!r} [n], got "
                        f"{data.dtype} {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar(name: str, split: str, root: str, resolution: int, allow_download: bool,
               resize: bool = False) -> ImageDataset:
    """uint8 [N, 3, R, R] CIFAR images (50k train / 10k test); R != 32 needs ``resize`` (data.resize)."""
    spec = SPECS[name]
    path = ensure_archive(spec, root, allow_download)
    wanted = spec.train_members if split == "train" else spec.test_members
    members = _read_members(path, wanted, optional=(spec.meta_member,))
    parts = [_batch_arrays(members[m], spec.label_key, f"{path}:{m}") for m in wanted]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= spec.num_classes):
        raise DataError(f"{path}: {spec.name} labels outside [0, {spec.num_classes})")
    return make_dataset(fit_resolution(images, resolution, resize, f"{spec.name} ({path})"), labels,
                        spec.num_classes, spec.name,
                        _class_names(members.get(spec.meta_member), spec))


def _class_names(meta: object, spec: CifarSpec) -> tuple[str, ...]:
    """The class names the archive's meta member holds; () when it is absent or not as expected."""
    names = meta.get(spec.names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != spec.num_classes or not all(isinstance(n, bytes) for n in names):
        return ()
    return tuple(n.decode("utf-8", errors="replace") for n in names)

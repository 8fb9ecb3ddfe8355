"""Fabricated data files for tests (no downloads): CIFAR-format python-pickle archives."""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def cifar_batch(n: int, label_key: bytes, offset: int, classes: int) -> dict:
    rng = np.random.default_rng(offset)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[0, 0], data[0, 1024], data[0, 2048 + 32 * 5 + 7] = 11, 22, 33  # R(0,0), G(0,0), B(5,7)
    return {b"data": data, label_key: [(offset + i) % classes for i in range(n)], b"batch_label": b"x"}


def add_member(tar: tarfile.TarFile, name: str, obj: object) -> None:
    # The official files were written by numpy 1.x, whose pickles name numpy.core.multiarray.
    raw = pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def make_cifar_archive(path: Path, hundred: bool = False, n: int = 4) -> Path:
    """Write a tiny cifar-10 (or cifar-100) archive with ``n`` random images per batch file to ``path``."""
    with tarfile.open(path, "w:gz") as tar:
        if hundred:
            add_member(tar, "cifar-100-python/meta", {b"fine_label_names": CIFAR100_NAMES})
            add_member(tar, "cifar-100-python/train", cifar_batch(5 * n, b"fine_labels", 0, 100))
            add_member(tar, "cifar-100-python/test", cifar_batch(n, b"fine_labels", 50, 100))
        else:
            for i in range(1, 6):
                add_member(tar, f"cifar-10-batches-py/data_batch_{i}", cifar_batch(n, b"labels", i, 10))
            add_member(tar, "cifar-10-batches-py/test_batch", cifar_batch(n, b"labels", 9, 10))
            add_member(tar, "cifar-10-batches-py/batches.meta", {b"label_names": CIFAR10_NAMES})
    return path


# the meta members' layout: bytes names, one per class
CIFAR10_NAMES = [n.encode() for n in "airplane automobile bird cat deer dog frog horse ship truck".split()]
CIFAR100_NAMES = [f"class{i:02d}".encode() for i in range(100)]

"""Tests for condgan.data: built-in mnist5k, fabricated CIFAR / folder / npz data, augment, sampler."""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condgan.config import DataConfig
from condgan.data import BatchSampler, DataError, ImageDataset, augment, download, load_dataset, to_float
from condgan.data.mnist5k import split_indices
from fakes import add_member as _add_member, cifar_batch as _cifar_batch, make_cifar_archive as _make_cifar


def _raises(match: str, fn, *args, **kwargs) -> DataError:
    """Assert ``fn`` raises a one-line DataError containing ``match``; return it."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert match in message, message
    return info.value


# ----------------------------------------------------------------------------- mnist5k

@pytest.fixture(scope="module")
def mnist() -> tuple[ImageDataset, ImageDataset]:
    return load_dataset(DataConfig(name="mnist5k"), "train"), load_dataset(DataConfig(name="mnist5k"), "test")


def test_mnist5k_shapes_and_split(mnist):
    train, test = mnist
    assert train.images.shape == (4000, 1, 32, 32) and test.images.shape == (1000, 1, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.num_classes == 10 and train.name == "mnist5k"
    assert torch.equal(train.labels.bincount(), torch.full((10,), 400))
    assert torch.equal(test.labels.bincount(), torch.full((10,), 100))
    # The 2-pixel zero border from padding 28 -> 32.
    assert train.images[..., :2, :].max() == 0 and train.images[..., :, -2:].max() == 0
    assert train.images.max() > 200
    # Disjoint and complete: the split is over row indices of the 5,000-row file.
    train_idx = set(split_indices(torch.arange(5000) // 500, "train").tolist())
    test_idx = set(split_indices(torch.arange(5000) // 500, "test").tolist())
    assert not train_idx & test_idx and len(train_idx | test_idx) == 5000


def test_mnist5k_is_deterministic(mnist):
    train, test = mnist
    again = load_dataset(DataConfig(name="mnist5k"), "train")
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    assert again.identity == train.identity != test.identity
    assert len(train.identity) == 16


def test_mnist5k_resolution(mnist):
    small = load_dataset(DataConfig(name="mnist5k", resolution=16, resize=True), "test")
    assert small.images.shape == (1000, 1, 16, 16) and small.images.dtype == torch.uint8
    assert torch.equal(small.labels, mnist[1].labels)


def test_mnist5k_pairs_are_two_digits_of_their_class(mnist):
    """Class 10a + b: its left half is some digit a and its right half some digit b of the same split, each
    squeezed to half width by averaging column pairs (checked here in numpy, with integer rounding)."""
    for split, digits, per_class in (("train", mnist[0], 50), ("test", mnist[1], 20)):
        pairs = load_dataset(DataConfig(name="mnist5k_pairs"), split)
        assert pairs.images.shape == (100 * per_class, 1, 32, 32) and pairs.num_classes == 100
        assert torch.equal(pairs.labels.bincount(), torch.full((100,), per_class))
        assert pairs.classes[37] == "37" and pairs.name == "mnist5k_pairs"
        d = digits.images[:, 0].numpy().astype(np.int64)
        squeezed = (d[:, :, 0::2] + d[:, :, 1::2] + 1) // 2                # [N, 32, 16]
        halves = {digit: {squeezed[i].tobytes() for i in np.flatnonzero(digits.labels.numpy() == digit)}
                  for digit in range(10)}
        images, labels = pairs.images[:, 0].numpy().astype(np.int64), pairs.labels.numpy()
        for i in range(0, len(labels), 7):
            a, b = divmod(int(labels[i]), 10)
            assert images[i, :, :16].tobytes() in halves[a] and images[i, :, 16:].tobytes() in halves[b]
    first, again = (load_dataset(DataConfig(name="mnist5k_pairs"), "train") for _ in range(2))
    assert torch.equal(first.images, again.images) and first.identity == again.identity != pairs.identity


def test_dataset_to_and_bad_split(mnist):
    moved = mnist[1].to("cpu")
    assert moved is not mnist[1] and torch.equal(moved.images, mnist[1].images)
    _raises("'val'", load_dataset, DataConfig(), "val")
    _raises("resolution", load_dataset, DataConfig(resolution=0))


# ----------------------------------------------------------------------------- cifar

def test_cifar10_from_archive_dir(tmp_path):
    _make_cifar(tmp_path / "cifar-10-python.tar.gz")
    cfg = DataConfig(name="cifar10", root=str(tmp_path), download=False)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.num_classes == 10 and train.labels.tolist()[:5] == [1, 2, 3, 4, 2]
    assert test.images[0, :2, 0, 0].tolist() == [11, 22]
    assert test.images[0, 2, 5, 7].item() == 33
    assert train.images[4, 1, 0, 0].item() == 22  # first row of data_batch_2
    assert train.classes[:3] == ("airplane", "automobile", "bird") and len(test.classes) == 10  # batches.meta


def test_cifar100_from_archive_file(tmp_path):
    archive = _make_cifar(tmp_path / "c100.tar.gz", hundred=True)
    cfg = DataConfig(name="cifar100", root=str(archive), download=False, resolution=16, resize=True)
    train = load_dataset(cfg, "train")
    assert train.images.shape == (20, 3, 16, 16) and train.num_classes == 100
    assert train.labels.tolist() == list(range(20))
    assert load_dataset(cfg, "test").labels.tolist() == [50, 51, 52, 53]
    assert train.classes[0] == "class00" and len(train.classes) == 100  # meta's fine_label_names


def test_cifar_missing_archive(tmp_path):
    cfg = DataConfig(name="cifar10", root=str(tmp_path), download=False)
    err = _raises("cifar-10-python.tar.gz", load_dataset, cfg)
    assert str(tmp_path) in str(err)


def test_cifar_corrupt_archive(tmp_path):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"not a tarball at all" * 10)
    _raises(str(bad), load_dataset, DataConfig(name="cifar10", root=str(tmp_path), download=False))
    with tarfile.open(bad, "w:gz") as tar:  # a valid tar that lacks the test batch
        _add_member(tar, "cifar-10-batches-py/data_batch_1", _cifar_batch(2, b"labels", 0, 10))
    _raises("test_batch", load_dataset, DataConfig(name="cifar10", root=str(bad), download=False), "test")


def test_cifar_refuses_foreign_pickles(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add_member(tar, "cifar-10-batches-py/test_batch", {b"data": Path("x"), b"labels": []})
    _raises("unexpected global", load_dataset, DataConfig(name="cifar10", root=str(archive)), "test")


def test_download_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"condgan" * 1000)
    good = hashlib.md5(src.read_bytes()).hexdigest()
    dest = download(src.as_uri(), tmp_path / "out" / "file.bin", good)
    assert dest.read_bytes() == src.read_bytes()
    bad_dest = tmp_path / "out" / "bad.bin"
    err = _raises("bad.bin", download, src.as_uri(), bad_dest, "0" * 32)
    assert good in str(err) and "0" * 32 in str(err)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file.bin"]  # temp file removed
    _raises("download of", download, (tmp_path / "nope.bin").as_uri(), tmp_path / "x.bin", good)


def test_cifar_download_failure_message(tmp_path, monkeypatch):
    import dataclasses

    import condgan.data.cifar as cifar
    spec = dataclasses.replace(cifar.CIFAR10, url=(tmp_path / "gone").as_uri())
    monkeypatch.setitem(cifar.SPECS, "cifar10", spec)
    err = _raises("download of", load_dataset, DataConfig(name="cifar10", root=str(tmp_path / "d")))
    assert "cifar-10-python.tar.gz" in str(err)


# ----------------------------------------------------------------------------- folder

def _png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (12, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_folder_dataset(tmp_path):
    for i in range(3):
        _png(tmp_path / "cats" / f"{i}.png", (255, 0, 0))
        _png(tmp_path / "dogs" / f"{i}.PNG", (0, 0, 255))
    (tmp_path / "dogs" / "notes.txt").write_text("ignored")
    ds = load_dataset(DataConfig(name="folder", root=str(tmp_path), resolution=8, resize=True))
    assert ds.images.shape == (6, 3, 8, 8) and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1] and ds.classes == ("cats", "dogs")
    assert ds.images[0, :, 4, 4].tolist() == [255, 0, 0] and ds.images[5, :, 4, 4].tolist() == [0, 0, 255]
    assert torch.equal(load_dataset(DataConfig(name="folder", root=str(tmp_path), resolution=8, resize=True),
                                    "test").images,
                       ds.images)


def test_folder_errors(tmp_path):
    _raises(str(tmp_path / "none"), load_dataset, DataConfig(name="folder", root=str(tmp_path / "none")))
    _raises(str(tmp_path), load_dataset, DataConfig(name="folder", root=str(tmp_path)))
    _png(tmp_path / "a" / "ok.png", (1, 2, 3))
    bad = tmp_path / "a" / "x.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes())
    _raises(str(bad), load_dataset, DataConfig(name="folder", root=str(tmp_path), resize=True))


def test_folder_train_test_layout(tmp_path):
    _png(tmp_path / "train" / "a" / "0.png", (9, 9, 9))
    _png(tmp_path / "train" / "b" / "0.png", (9, 9, 9))
    _png(tmp_path / "test" / "b" / "0.jpg", (9, 9, 9))
    test = load_dataset(DataConfig(name="folder", root=str(tmp_path), resolution=4, resize=True), "test")
    assert test.labels.tolist() == [1] and test.num_classes == 2


# ----------------------------------------------------------------------------- npz

def test_npz_dataset(tmp_path):
    path = tmp_path / "d.npz"
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=np.array([0, 1, 2, 0, 1, 2]),
             test_images=images[:2], test_labels=np.array([2, 1]))
    train = load_dataset(DataConfig(name="npz", root=str(path)))
    assert train.images.shape == (6, 3, 32, 32) and train.num_classes == 3
    assert torch.equal(train.images, torch.from_numpy(images).permute(0, 3, 1, 2))
    test = load_dataset(DataConfig(name="npz", root=str(path)), "test")
    assert test.labels.tolist() == [2, 1] and test.num_classes == 3 and test.classes == ()
    for names in (np.array(["a", "b", "c"]), np.array([b"a", b"b", b"c"])):  # str or bytes names
        np.savez(path, images=images, labels=np.array([0, 1, 2, 0, 1, 2]), class_names=names)
        assert load_dataset(DataConfig(name="npz", root=str(path))).classes == ("a", "b", "c")
    np.savez(path, images=images.transpose(0, 3, 1, 2), labels=np.arange(6))
    chw = load_dataset(DataConfig(name="npz", root=str(path), resolution=16, resize=True), "test")
    assert chw.images.shape == (6, 3, 16, 16) and chw.num_classes == 6
    np.savez(path, images=images[..., 0], labels=np.arange(6))  # [N, H, W] -> one channel
    assert load_dataset(DataConfig(name="npz", root=str(path))).images.shape == (6, 1, 32, 32)


def test_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, pixels=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(2, np.int64))
    err = _raises("'images'", load_dataset, DataConfig(name="npz", root=str(path)))
    assert str(path) in str(err)
    np.savez(path, images=np.zeros((2, 8, 8), np.float32), labels=np.zeros(2, np.int64))
    _raises("uint8", load_dataset, DataConfig(name="npz", root=str(path)))
    np.savez(path, images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(3, np.int64))
    _raises("'labels'", load_dataset, DataConfig(name="npz", root=str(path)))
    np.savez(path, images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(2, np.int64),
             test_images=np.zeros((2, 8, 8), np.uint8), test_labels=np.zeros(2, np.int64))
    _raises("channel", load_dataset, DataConfig(name="npz", root=str(path)), "test")
    path.write_bytes(b"garbage")
    _raises(str(path), load_dataset, DataConfig(name="npz", root=str(path)))


# ----------------------------------------------------------------------------- transforms

def _batch(n: int = 8, size: int = 16) -> torch.Tensor:
    return to_float(torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(1),
                                  dtype=torch.uint8))


def test_to_float_range():
    x = to_float(torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2))
    assert x.dtype == torch.float32 and x.flatten().tolist() == [-1.0, 1.0]


def test_augment_off_is_identity():
    x = _batch()
    assert augment(x, DataConfig()) is x
    assert augment(x, DataConfig(crop_scale=1.0)) is x


def test_augment_flip():
    x = _batch(64)
    y = augment(x, DataConfig(hflip=True), torch.Generator().manual_seed(0))
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 64


def test_augment_crop_shape_range_determinism():
    x = _batch(16)
    cfg = DataConfig(hflip=True, crop_scale=0.5)
    y1 = augment(x, cfg, torch.Generator().manual_seed(3))
    y2 = augment(x, cfg, torch.Generator().manual_seed(3))
    assert y1.shape == x.shape and torch.equal(y1, y2)
    assert y1.min() >= -1 and y1.max() <= 1 and not torch.allclose(y1, x)
    torch.manual_seed(0)
    assert augment(x, cfg).shape == x.shape  # global RNG path


def test_augment_crop_of_constant_image_is_constant():
    # A crop of a constant image must stay constant: no zero padding leaks in at the box edges.
    x = torch.full((32, 1, 8, 8), 0.25)
    y = augment(x, DataConfig(crop_scale=0.2), torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-6)


# ----------------------------------------------------------------------------- sampler

def _tiny_dataset(n: int = 10) -> ImageDataset:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageDataset(images, torch.arange(n) % 3, 3, "tiny", "x")


def test_batch_sampler_resume(tmp_path):
    data = _tiny_dataset(10)
    sampler = BatchSampler(data, 3, seed=7)  # 3 batches per epoch, 1 image dropped
    for _ in range(3):
        sampler.next()
    torch.save(sampler.state_dict(), tmp_path / "s.pt")
    expected = [sampler.next() for _ in range(5)]  # crosses into epochs 1 and 2
    resumed = BatchSampler(data, 3, seed=123)
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    for (xi, yi), (xr, yr) in zip(expected, [resumed.next() for _ in range(5)]):
        assert torch.equal(xi, xr) and torch.equal(yi, yr) and xi.shape[0] == 3
    assert sampler.epoch == resumed.epoch == 2


def test_batch_sampler_epoch_covers_distinct_items():
    sampler = BatchSampler(_tiny_dataset(10), 5, seed=0)
    seen = torch.cat([sampler.next()[0][:, 0, 0, 0] for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    _raises("batch_size", BatchSampler, _tiny_dataset(4), 5, 0)

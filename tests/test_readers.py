"""Dataset readers: the files, labels, classes and order of each split of the real on-disk layouts, and a
one-line DataError naming the culprit for every bad layout. Expectations come from tests/layouts.py."""
from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from layouts import (
    FakeSource,
    make_afhq,
    make_cub,
    make_imagenet,
    make_tiny_imagenet,
    write_class_list,
    write_meta,
)
from PIL import Image

from condgan.data.base import DataError
from condgan.data.readers import READERS, SourceSplit, list_source

WNIDS = ("n01530575", "n01440764", "n01443537")


def listed(name: str, fake: FakeSource, split: str, class_list: Path | None = None) -> SourceSplit:
    got = list_source(name, fake.root, split, class_list)
    assert isinstance(got.files, tuple) and isinstance(got.labels, tuple) and isinstance(got.classes, tuple)
    assert all(isinstance(path, Path) and path.is_absolute() for path in got.files)
    return got


def assert_matches(name: str, fake: FakeSource, split: str, class_list: Path | None = None) -> SourceSplit:
    got = listed(name, fake, split, class_list)
    assert list(got.files) == fake.files(split)
    assert list(got.labels) == fake.labels(split)
    assert got.classes == fake.classes
    return got


def fails(call, *culprits: object) -> str:
    """Run ``call``; it must raise DataError with a one-line message naming every culprit."""
    with pytest.raises(DataError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message.strip(), message
    for culprit in culprits:
        assert str(culprit) in message, f"{culprit!s} not in: {message}"
    return message


# --------------------------------------------------------------------------------------------------------------
# The registry and list_source's own checks.

def test_registry() -> None:
    expected = {"tiny_imagenet": (("train", "val"), "val"), "cub200": (("train", "test"), "train"),
                "imagenet": (("train", "val"), "val"), "imagenet143": (("train", "val"), "val"),
                "afhq": (("train", "val"), "train")}
    assert {name: (r.splits, r.reference_split) for name, r in READERS.items()} == expected
    assert all(r.name == name and r.about and "\n" not in r.about for name, r in READERS.items())
    assert [name for name, r in READERS.items() if r.needs_class_list] == ["imagenet143"]


def test_reader_imports() -> None:
    """Readers stay light: stdlib, numpy and condgan.data only at module level; scipy only inside a function."""
    allowed = {"__future__", "collections.abc", "contextlib", "dataclasses", "gc", "os", "pathlib", "re",
               "typing", "numpy", "condgan.data.base", "condgan.data.folder", "condgan.data.readers"}
    src = Path(__file__).resolve().parents[1] / "src" / "condgan" / "data"
    for name in ("readers.py", "imagenet.py"):
        for node in ast.parse((src / name).read_text()).body:
            if isinstance(node, ast.Import):
                assert {alias.name for alias in node.names} <= allowed, (name, ast.dump(node))
            elif isinstance(node, ast.ImportFrom):
                assert node.module in allowed, (name, node.module)


def test_list_source_checks(tmp_path: Path) -> None:
    fake = make_afhq(tmp_path / "afhq", per_class=1, val_per_class=1)
    fails(lambda: list_source("afhqq", fake.root, "train"), "afhqq", "afhq")
    fails(lambda: list_source("afhq", fake.root, "test"), "test", "train, val")
    fails(lambda: list_source("tiny_imagenet", fake.root, "test"), "test")  # Tiny's test split has no labels
    fails(lambda: list_source("afhq", tmp_path / "nowhere", "train"), tmp_path / "nowhere")
    fails(lambda: list_source("afhq", "", "train"), "data.root")
    fails(lambda: list_source("afhq", fake.root, "train", tmp_path / "list.txt"), "takes no class-list")
    fails(lambda: list_source("imagenet143", fake.root, "train"), "class-list")
    fails(lambda: list_source("imagenet143", fake.root, "train", tmp_path / "none.txt"), tmp_path / "none.txt")
    fails(lambda: READERS["cub200"].list_split(fake.root, "val", None), "val")  # called without list_source
    fails(lambda: READERS["imagenet143"].list_split(fake.root, "train", None), "class-list")


# --------------------------------------------------------------------------------------------------------------
# Tiny ImageNet.

def test_tiny_imagenet(tmp_path: Path) -> None:
    fake = make_tiny_imagenet(tmp_path / "tiny")
    assert fake.classes == ("n01000001", "n02000002", "n03000003")  # sorted, though wnids.txt is not
    train = assert_matches("tiny_imagenet", fake, "train")
    assert [p.parent.parent.name for p in train.files] == [train.classes[i] for i in train.labels]
    val = assert_matches("tiny_imagenet", fake, "val")
    assert [p.name for p in val.files] == sorted(p.name for p in val.files)
    assert sorted(val.labels) == [0, 0, 1, 1, 2, 2]
    # Without wnids.txt, the class folders of train/ give the same classes.
    fake.extra["wnids_file"].unlink()
    assert_matches("tiny_imagenet", fake, "train")
    assert_matches("tiny_imagenet", fake, "val")


def test_tiny_imagenet_pixels(tmp_path: Path) -> None:
    fake = make_tiny_imagenet(tmp_path / "tiny", per_class=1, val_per_class=1)
    path = fake.files("val")[0]
    with Image.open(path) as img:
        assert img.size == fake.size
        decoded = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert np.abs(decoded - fake.pixels(path)).mean() < 3  # JPEG at quality 95 of a smooth image


def test_tiny_imagenet_bad_train(tmp_path: Path) -> None:
    fake = make_tiny_imagenet(tmp_path / "tiny")
    images = fake.root / "train" / "n02000002" / "images"
    for path in images.iterdir():
        path.unlink()
    fails(lambda: list_source("tiny_imagenet", fake.root, "train"), images)
    shutil.rmtree(images)
    fails(lambda: list_source("tiny_imagenet", fake.root, "train"), images)
    (fake.root / "train" / "n09999999").mkdir()
    fails(lambda: list_source("tiny_imagenet", fake.root, "train"), fake.root / "train" / "n09999999")
    dup = fake.root / "wnids.txt"
    dup.write_text("n01000001\nn02000002\nn01000001\n")
    fails(lambda: list_source("tiny_imagenet", fake.root, "val"), dup, "line 3", "n01000001")


@pytest.mark.parametrize("case", ["missing", "fields", "wnid", "absent", "duplicate", "unannotated"])
def test_tiny_imagenet_bad_annotations(tmp_path: Path, case: str) -> None:
    fake = make_tiny_imagenet(tmp_path / "tiny")
    notes: Path = fake.extra["annotations"]
    lines = notes.read_text().splitlines(keepends=True)
    culprits: tuple[object, ...]
    if case == "missing":
        notes.unlink()
        culprits = (notes,)
    elif case == "fields":
        lines[2] = lines[2].split("\t")[0] + "\n"
        culprits = (notes, "line 3")
    elif case == "wnid":
        lines[1] = lines[1].replace("\tn0", "\tn7", 1)
        culprits = (notes, "line 2", "'n7")
    elif case == "absent":
        lines.append("val_99.JPEG\tn01000001\t0\t0\t1\t1\n")
        culprits = (notes, f"line {len(lines)}", fake.root / "val" / "images" / "val_99.JPEG")
    elif case == "duplicate":
        lines.append(lines[0])
        culprits = (notes, f"line {len(lines)}", lines[0].split("\t")[0], "line 1")
    else:
        dropped = lines.pop(3).split("\t")[0]
        culprits = (fake.root / "val" / "images" / dropped, notes)
    if case != "missing":
        notes.write_text("".join(lines))
    fails(lambda: list_source("tiny_imagenet", fake.root, "val"), *culprits)
    assert_matches("tiny_imagenet", fake, "train")  # train does not read the val annotations


# --------------------------------------------------------------------------------------------------------------
# CUB-200-2011.

@pytest.mark.parametrize("nested", [True, False])
def test_cub200(tmp_path: Path, nested: bool) -> None:
    fake = make_cub(tmp_path / "cub", nested=nested)
    for split in ("train", "test"):
        got = assert_matches("cub200", fake, split)
        ids = [fake.extra["ids"][path] for path in got.files]
        assert ids == sorted(ids)
    assert fake.classes[0] == "001.Black_footed_Albatross"
    assert sorted(fake.labels("train") + fake.labels("test")) == [0] * 4 + [1] * 4 + [2] * 4
    # The CUB_200_2011 folder itself is accepted as the root too.
    inner = list_source("cub200", fake.extra["base"], "train")
    assert list(inner.files) == fake.files("train")


@pytest.mark.parametrize("name", ["images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt"])
def test_cub200_missing_file(tmp_path: Path, name: str) -> None:
    fake = make_cub(tmp_path / "cub")
    fake.extra[name].unlink()
    fails(lambda: list_source("cub200", fake.root, "train"), fake.extra[name])


def _edit(path: Path, old: str, new: str) -> int:
    """Replace the line starting with ``old`` by ``new`` (deleted when empty); its 1-based line number."""
    lines = path.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.startswith(old))
    lines[number] = new
    path.write_text("".join(lines))
    return number + 1


def test_cub200_bad_metadata(tmp_path: Path) -> None:
    fake = make_cub(tmp_path / "cub")
    labels, split, images = (fake.extra[name] for name in ("image_class_labels.txt", "train_test_split.txt",
                                                           "images.txt"))
    original = labels.read_text()
    _edit(labels, "5 ", "")
    fails(lambda: list_source("cub200", fake.root, "train"), "image id 5", labels)
    labels.write_text(original + "13 1\n")
    fails(lambda: list_source("cub200", fake.root, "train"), "image id 13", labels, "line 13")
    labels.write_text(original)
    number = _edit(labels, "7 ", "7 4\n")
    fails(lambda: list_source("cub200", fake.root, "test"), labels, f"line {number}", "'4'")
    labels.write_text(original)
    number = _edit(split, "2 ", "2 yes\n")
    fails(lambda: list_source("cub200", fake.root, "train"), split, f"line {number}", "'yes'")
    _edit(split, "2 ", "2 1\n")
    number = _edit(images, "9 ", "9\n")
    fails(lambda: list_source("cub200", fake.root, "train"), images, f"line {number}")
    number = _edit(images, "9", "x9 a.jpg\n")
    fails(lambda: list_source("cub200", fake.root, "train"), images, f"line {number}")


def test_cub200_missing_image(tmp_path: Path) -> None:
    fake = make_cub(tmp_path / "cub")
    gone = fake.files("test")[1]
    gone.unlink()
    fails(lambda: list_source("cub200", fake.root, "test"), gone)
    assert_matches("cub200", fake, "train")
    classes = fake.extra["classes.txt"]
    classes.write_text("1 a\n3 c\n")
    fails(lambda: list_source("cub200", fake.root, "train"), classes, "id 2")


# --------------------------------------------------------------------------------------------------------------
# ImageNet.

def test_imagenet_val_layouts_agree(tmp_path: Path) -> None:
    by_name = []
    for layout in ("flat_devkit", "flat_csv", "sorted"):
        fake = make_imagenet(tmp_path / layout, WNIDS, val_layout=layout)
        assert fake.classes == tuple(sorted(WNIDS))
        assert_matches("imagenet", fake, "train")
        val = assert_matches("imagenet", fake, "val")
        by_name.append({path.name: val.classes[label] for path, label in zip(val.files, val.labels)})
    assert by_name[0] == by_name[1] == by_name[2] == fake.extra["val_wnids"]
    ids = fake.extra["ids"]
    assert [ids[w] for w in sorted(WNIDS)] != sorted(ids.values())  # a reader assuming sorted IDs would fail


@pytest.mark.parametrize("devkit", ["devkit/data", "."])
def test_imagenet_devkit_places(tmp_path: Path, devkit: str) -> None:
    fake = make_imagenet(tmp_path / "in", WNIDS, devkit=devkit)
    assert_matches("imagenet", fake, "val")


def test_imagenet_train_any_class_count(tmp_path: Path) -> None:
    fake = make_imagenet(tmp_path / "in", ("n07000001",), per_class=2, val_per_class=1, val_layout="sorted")
    assert_matches("imagenet", fake, "train")
    assert_matches("imagenet", fake, "val")


def test_imagenet_bad_train(tmp_path: Path) -> None:
    fake = make_imagenet(tmp_path / "in", WNIDS, val_layout="sorted")
    folder = fake.root / "train" / WNIDS[1]
    shutil.rmtree(folder)
    folder.mkdir()
    fails(lambda: list_source("imagenet", fake.root, "train"), folder)
    # A val class folder without a train counterpart.
    shutil.rmtree(folder)
    fails(lambda: list_source("imagenet", fake.root, "val"), fake.root / "val" / WNIDS[1])
    shutil.rmtree(fake.root / "train")
    fails(lambda: list_source("imagenet", fake.root, "train"), fake.root / "train")


def test_imagenet_val_layout_errors(tmp_path: Path) -> None:
    fake = make_imagenet(tmp_path / "in", WNIDS, val_layout="sorted")
    stray = fake.root / "val" / "ILSVRC2012_val_00000099.JPEG"
    shutil.copy(fake.files("val")[0], stray)
    fails(lambda: list_source("imagenet", fake.root, "val"), fake.root / "val", "ILSVRC2012_val_00000099.JPEG")
    for folder in (fake.root / "val").iterdir():
        if folder.is_dir():
            shutil.rmtree(folder)
    fails(lambda: list_source("imagenet", fake.root, "val"), fake.root / "val", "LOC_val_solution.csv",
          "ILSVRC2012_validation_ground_truth.txt")
    stray.unlink()
    fails(lambda: list_source("imagenet", fake.root, "val"), fake.root / "val")


def test_imagenet_csv_errors(tmp_path: Path) -> None:
    fake = make_imagenet(tmp_path / "in", WNIDS, val_layout="flat_csv")
    csv: Path = fake.extra["csv"]
    original = csv.read_text()
    number = _edit(csv, "ILSVRC2012_val_00000002", "ILSVRC2012_val_00000002,n09999999 1 2 3 4\n")
    fails(lambda: list_source("imagenet", fake.root, "val"), csv, f"line {number}", "n09999999")
    _edit(csv, "ILSVRC2012_val_00000002", "")
    fails(lambda: list_source("imagenet", fake.root, "val"), fake.root / "val" / "ILSVRC2012_val_00000002.JPEG",
          csv)
    csv.write_text(original + "ILSVRC2012_val_00000003,\n")
    fails(lambda: list_source("imagenet", fake.root, "val"), csv, f"line {len(original.splitlines()) + 1}")
    csv.write_text(original.replace("ImageId,PredictionString", "image,prediction"))
    fails(lambda: list_source("imagenet", fake.root, "val"), csv, "line 1")


def test_imagenet_devkit_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = make_imagenet(tmp_path / "in", WNIDS, val_layout="flat_devkit")
    truth: Path = fake.extra["ground_truth"]
    meta: Path = fake.extra["meta"]
    original = truth.read_text()
    lines = original.splitlines()
    truth.write_text("\n".join(lines[:1] + ["77"] + lines[2:]) + "\n")
    fails(lambda: list_source("imagenet", fake.root, "val"), truth, "line 2", "77")
    truth.write_text("\n".join(original.splitlines()[:-1]) + "\n")
    last = f"ILSVRC2012_val_{len(original.splitlines()):08d}.JPEG"
    fails(lambda: list_source("imagenet", fake.root, "val"), truth, last)
    truth.write_text(original)
    odd = fake.root / "val" / "val_1.JPEG"
    shutil.copy(fake.files("val")[0], odd)
    fails(lambda: list_source("imagenet", fake.root, "val"), odd)
    odd.unlink()
    # meta.mat mapping an ID to a wnid that train does not have.
    write_meta(meta, {**fake.extra["ids"], "n09999999": fake.extra["ids"][WNIDS[0]]} | {WNIDS[0]: 99})
    fails(lambda: list_source("imagenet", fake.root, "val"), "n09999999", meta)
    meta.write_bytes(b"not a mat file")
    fails(lambda: list_source("imagenet", fake.root, "val"), meta)
    meta.unlink()
    fails(lambda: list_source("imagenet", fake.root, "val"), meta)
    write_meta(meta, fake.extra["ids"])
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # as if scipy were not installed
    fails(lambda: list_source("imagenet", fake.root, "val"), meta, "pip install scipy")
    monkeypatch.undo()
    assert_matches("imagenet", fake, "val")


# --------------------------------------------------------------------------------------------------------------
# ImageNet restricted to a class list (imagenet143).

@pytest.mark.parametrize("layout", ["flat_devkit", "sorted"])
def test_imagenet143(tmp_path: Path, layout: str) -> None:
    wnids = ("n02085620", "n01440764", "n02123045", "n01530575", "n02085782")
    fake = make_imagenet(tmp_path / "in", wnids, val_layout=layout)
    listed_wnids = ["n02123045", "n02085620", "n01530575"]  # unsorted on purpose
    class_list = write_class_list(tmp_path / "143.txt", listed_wnids)
    subset = fake.subset(listed_wnids)
    assert subset.classes == ("n01530575", "n02085620", "n02123045")
    for split in ("train", "val"):
        got = assert_matches("imagenet143", subset, split, class_list)
        assert {got.classes[label] for label in got.labels} == set(listed_wnids)
        assert len(got.files) == len(listed_wnids) * (3 if split == "train" else 2)


def test_imagenet143_bad_list(tmp_path: Path) -> None:
    fake = make_imagenet(tmp_path / "in", WNIDS, val_layout="sorted")
    path = write_class_list(tmp_path / "list.txt", [WNIDS[0], "n09999999"])
    fails(lambda: list_source("imagenet143", fake.root, "train", path), path, "line 5", "n09999999")
    write_class_list(path, [WNIDS[0], WNIDS[2], WNIDS[0]], comments=False)
    fails(lambda: list_source("imagenet143", fake.root, "train", path), path, "line 3", WNIDS[0])
    path.write_text("# nothing but comments\n\n")
    fails(lambda: list_source("imagenet143", fake.root, "val", path), path)


# --------------------------------------------------------------------------------------------------------------
# AFHQ.

def test_afhq(tmp_path: Path) -> None:
    fake = make_afhq(tmp_path / "afhq")
    assert fake.classes == ("cat", "dog", "wild")
    for split in ("train", "val"):
        got = assert_matches("afhq", fake, split)
        assert not any(p.name in (".DS_Store", "Thumbs.db") for p in got.files)
    assert any(p.suffix == ".JPG" for p in fake.files("train"))  # upper-case suffixes are listed too
    png = make_afhq(tmp_path / "afhq2", ("wild", "cat"), suffix=".png", junk=False)
    path = png.files("val")[0]
    assert png.classes == ("cat", "wild")
    assert_matches("afhq", png, "val")
    with Image.open(path) as img:
        assert np.array_equal(np.asarray(img.convert("RGB")), png.pixels(path))


def test_afhq_errors(tmp_path: Path) -> None:
    fake = make_afhq(tmp_path / "afhq")
    (fake.root / "val" / "fox").mkdir()
    fails(lambda: list_source("afhq", fake.root, "val"), fake.root / "val" / "fox")
    assert_matches("afhq", fake, "train")
    shutil.rmtree(fake.root / "val")
    fails(lambda: list_source("afhq", fake.root, "val"), fake.root / "val")
    for path in (fake.root / "train" / "dog").iterdir():
        path.unlink()
    fails(lambda: list_source("afhq", fake.root, "train"), fake.root / "train" / "dog")

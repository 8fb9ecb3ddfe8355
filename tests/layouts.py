"""Fabricated copies of downloaded datasets in their real on-disk layouts, with small real images.

Each ``make_*`` writes a tiny dataset under ``root`` and returns a :class:`FakeSource` saying what a reader
should list, worked out here from the layout's rules (not by any reader): the classes and, per split, the
(absolute path, label) pairs in the canonical order. Image content is deterministic: ``FakeSource.pixels``
re-creates the exact array that was saved (JPEG files decode to it only approximately; PNG exactly).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SIZE = (70, 50)  # (width, height): not square, so a later centre crop matters


@dataclass
class FakeSource:
    """What a fabricator wrote.

    root: the folder to give a reader; classes: class names in label order; splits: split -> [(absolute
    path, label)] in the reader's canonical order; seeds: image path -> the seed of its pixels; size: every
    image's (width, height); extra: layout-specific paths and facts (annotation files, meta.mat, ...).
    """

    root: Path
    classes: tuple[str, ...]
    splits: dict[str, list[tuple[Path, int]]]
    seeds: dict[Path, int]
    size: tuple[int, int] = SIZE
    extra: dict[str, Any] = field(default_factory=dict)

    def files(self, split: str) -> list[Path]:
        return [path for path, _ in self.splits[split]]

    def labels(self, split: str) -> list[int]:
        return [label for _, label in self.splits[split]]

    def pixels(self, path: Path) -> np.ndarray:
        """uint8 [H, W, 3]: the array saved to ``path`` (before any JPEG loss)."""
        return image_pixels(self.seeds[path], self.size)

    def subset(self, wnids: Iterable[str]) -> FakeSource:
        """This source restricted to ``wnids``, relabelled in sorted-wnid order (what imagenet143 lists)."""
        keep = sorted(wnids)
        new_label = {self.classes.index(wnid): label for label, wnid in enumerate(keep)}
        splits = {split: [(path, new_label[label]) for path, label in pairs if label in new_label]
                  for split, pairs in self.splits.items()}
        return dataclasses.replace(self, classes=tuple(keep), splits=splits)


def image_pixels(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A smooth (so JPEG keeps it close), seed-determined uint8 [H, W, 3] image with a left-right gradient."""
    rng = np.random.RandomState(seed)
    width, height = size
    base = rng.randint(40, 216, size=3).astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    wave = np.sin(2 * np.pi * (x / width + 0.5 * y / height)[..., None] + phase)
    ramp = (x / max(width - 1, 1) - 0.5)[..., None] * 60.0
    return np.clip(base + 30.0 * wave + ramp, 0, 255).astype(np.uint8)


class _Writer:
    """Writes images with consecutive seeds from ``seed`` and remembers each one's seed."""

    def __init__(self, seed: int, size: tuple[int, int]) -> None:
        self.next_seed, self.size, self.seeds = seed, size, {}

    def __call__(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = image_pixels(self.next_seed, self.size)
        fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
        Image.fromarray(pixels).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        self.seeds[path] = self.next_seed
        self.next_seed += 1
        return path


def _shuffled(items: Sequence, seed: int) -> list:
    return [items[i] for i in np.random.RandomState(seed).permutation(len(items))]


def _val_classes(num_classes: int, per_class: int, seed: int) -> list[int]:
    """The class of val image 1, 2, ...: interleaved, not grouped by class (as in the real sets)."""
    return _shuffled([c for c in range(num_classes) for _ in range(per_class)], seed + 7)


def make_tiny_imagenet(root: Path, wnids: Sequence[str] = ("n02000002", "n01000001", "n03000003"),
                       per_class: int = 3, val_per_class: int = 2, size: tuple[int, int] = SIZE, seed: int = 0,
                       wnids_file: bool = True) -> FakeSource:
    """tiny-imagenet-200: wnids.txt (in the given, unsorted order), train/<wnid>/images/<wnid>_<i>.JPEG plus
    a <wnid>_boxes.txt, val/images/val_<k>.JPEG + val/val_annotations.txt (lines shuffled), test/images/.

    extra: ``annotations`` (the val annotation file), ``wnids_file``.
    """
    root = Path(root).absolute()
    write = _Writer(seed, size)
    classes = tuple(sorted(wnids))
    if wnids_file:
        (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / "wnids.txt").write_text("".join(f"{wnid}\n" for wnid in wnids))
    train = []
    for wnid in wnids:
        folder = root / "train" / wnid
        for i in _shuffled(range(per_class), seed + 1):
            write(folder / "images" / f"{wnid}_{i}.JPEG")
        (folder / f"{wnid}_boxes.txt").write_text(
            "".join(f"{wnid}_{i}.JPEG\t0\t0\t63\t63\n" for i in range(per_class)))
    for label, wnid in enumerate(classes):
        names = sorted(f"{wnid}_{i}.JPEG" for i in range(per_class))
        train += [(root / "train" / wnid / "images" / name, label) for name in names]
    val_labels = _val_classes(len(classes), val_per_class, seed)
    rows = []
    for k, label in enumerate(val_labels):
        write(root / "val" / "images" / f"val_{k}.JPEG")
        rows.append(f"val_{k}.JPEG\t{classes[label]}\t1\t2\t60\t61\n")
    notes = root / "val" / "val_annotations.txt"
    notes.write_text("".join(_shuffled(rows, seed + 2)))
    write(root / "test" / "images" / "test_0.JPEG")
    val = sorted((root / "val" / "images" / f"val_{k}.JPEG", label) for k, label in enumerate(val_labels))
    return FakeSource(root, classes, {"train": train, "val": val}, write.seeds, size,
                      {"annotations": notes, "wnids_file": root / "wnids.txt"})


def make_cub(root: Path, classes: Sequence[str] = ("001.Black_footed_Albatross", "002.Laysan_Albatross",
                                                   "003.Sooty_Albatross"),
             per_class: int = 4, nested: bool = True, size: tuple[int, int] = SIZE, seed: int = 0) -> FakeSource:
    """CUB_200_2011 (under ``root/CUB_200_2011`` when nested): images/<class>/<Name>_<k>.jpg and the four
    metadata files. Image ids are a shuffle of 1..N (so id order is not path order) and the metadata lines
    are written in shuffled order; even k are train. ``root`` of the result is ``root`` as given.

    extra: ``base`` (the CUB_200_2011 folder), ``images.txt`` ... (each metadata file), ``ids`` (path -> id).
    """
    root = Path(root).absolute()
    base = root / "CUB_200_2011" if nested else root
    write = _Writer(seed, size)
    entries = []  # (path, label, is_train)
    for label, name in enumerate(classes):
        for k in range(per_class):
            entries.append((write(base / "images" / name / f"{name.split('.', 1)[-1]}_{k:04d}.jpg"), label,
                            k % 2 == 0))
    ids = [int(i) + 1 for i in np.random.RandomState(seed + 3).permutation(len(entries))]
    lines: dict[str, list[str]] = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": []}
    for ident, (path, label, is_train) in zip(ids, entries):
        lines["images.txt"].append(f"{ident} {path.relative_to(base / 'images').as_posix()}\n")
        lines["image_class_labels.txt"].append(f"{ident} {label + 1}\n")
        lines["train_test_split.txt"].append(f"{ident} {int(is_train)}\n")
    lines["classes.txt"] = [f"{i} {name}\n" for i, name in enumerate(classes, 1)]
    extra: dict[str, Any] = {"base": base, "ids": {entry[0]: ident for ident, entry in zip(ids, entries)}}
    for name, text in lines.items():
        (base / name).write_text("".join(_shuffled(text, seed + 4)))
        extra[name] = base / name
    by_id = sorted(zip(ids, entries))
    splits = {split: [(path, label) for _, (path, label, is_train) in by_id if is_train == (split == "train")]
              for split in ("train", "test")}
    return FakeSource(root, tuple(classes), splits, write.seeds, size, extra)


def make_imagenet(root: Path, wnids: Sequence[str] = ("n01530575", "n01440764", "n01443537"), per_class: int = 3,
                  val_per_class: int = 2, val_layout: str = "flat_devkit",
                  devkit: str = "ILSVRC2012_devkit_t12/data", size: tuple[int, int] = SIZE,
                  seed: int = 0) -> FakeSource:
    """ILSVRC2012: train/<wnid>/<wnid>_<n>.JPEG; val images ILSVRC2012_val_<8 digits>.JPEG numbered 1..V
    with interleaved classes, laid out per ``val_layout``:

    - ``flat_devkit``: flat val/ + ``<devkit>/ILSVRC2012_validation_ground_truth.txt`` and ``meta.mat``
      (``devkit`` relative to root; "." for root itself). Leaf ILSVRC2012_IDs run 1..C in the REVERSE of
      sorted-wnid order, and a non-leaf synset (ID C+1, 2 children) comes first in the struct array;
    - ``flat_csv``: flat val/ + Kaggle's ``LOC_val_solution.csv`` (rows shuffled);
    - ``sorted``: val/<wnid>/ILSVRC2012_val_<...>.JPEG.

    The same arguments give the same val file names and labels in every layout. extra: ``ids`` (wnid ->
    ILSVRC2012_ID), ``val_wnids`` (val file name -> wnid), and ``ground_truth``/``meta``/``csv`` when written.
    """
    if val_layout not in ("flat_devkit", "flat_csv", "sorted"):
        raise ValueError(f"unknown val_layout {val_layout!r}")
    root = Path(root).absolute()
    write = _Writer(seed, size)
    classes = tuple(sorted(wnids))
    train = []
    for label, wnid in enumerate(classes):
        names = sorted(f"{wnid}_{n}.JPEG" for n in (7 + 13 * i for i in range(per_class)))  # "..._20" < "..._7"
        train += [(write(root / "train" / wnid / name), label) for name in _shuffled(names, seed + 5)]
    train.sort(key=lambda pair: (pair[1], pair[0].name))
    val_names = {}
    for number, label in enumerate(_val_classes(len(classes), val_per_class, seed), 1):
        val_names[f"ILSVRC2012_val_{number:08d}.JPEG"] = classes[label]
    ids = {wnid: len(classes) - label for label, wnid in enumerate(classes)}  # not sorted-wnid order
    extra: dict[str, Any] = {"ids": ids, "val_wnids": dict(val_names)}
    if val_layout == "sorted":
        val = [(write(root / "val" / wnid / name), classes.index(wnid)) for name, wnid in val_names.items()]
        val.sort(key=lambda pair: (pair[1], pair[0].name))
    else:
        val = [(write(root / "val" / name), classes.index(wnid)) for name, wnid in sorted(val_names.items())]
    if val_layout == "flat_devkit":
        folder = root / devkit if devkit != "." else root
        folder.mkdir(parents=True, exist_ok=True)
        extra["ground_truth"] = folder / "ILSVRC2012_validation_ground_truth.txt"
        extra["ground_truth"].write_text("".join(f"{ids[wnid]}\n" for wnid in val_names.values()))
        extra["meta"] = write_meta(folder / "meta.mat", ids)
    if val_layout == "flat_csv":
        extra["csv"] = root / "LOC_val_solution.csv"
        rows = [f"{name.rsplit('.', 1)[0]},{wnid} 10 20 30 40 {wnid} 5 6 7 8 \n" for name, wnid in val_names.items()]
        extra["csv"].write_text("ImageId,PredictionString\n" + "".join(_shuffled(rows, seed + 6)))
    return FakeSource(root, classes, {"train": train, "val": val}, write.seeds, size, extra)


def write_meta(path: Path, ids: dict[str, int], parent: str = "n00001740") -> Path:
    """The devkit's meta.mat: struct array ``synsets`` (N x 1) with the real fields; leaves from ``ids``
    (wnid -> ILSVRC2012_ID) and, first in the array, a non-leaf ``parent`` with the next ID."""
    from scipy.io import savemat

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    leaves = sorted(ids.items(), key=lambda item: item[1])
    rows = [(max(ids.values()) + 1, parent, "entity", "that which is perceived", 2,
             np.array([[leaves[0][1], leaves[-1][1]]], dtype=np.float64), 1, 0)]
    rows += [(ident, wnid, f"thing {wnid}", "a leaf", 0, np.zeros((1, 0)), 0, 3) for wnid, ident in leaves]
    synsets = np.zeros((len(rows), 1), dtype=[(name, object) for name in fields])
    for i, row in enumerate(rows):
        for name, value in zip(fields, row):
            synsets[i, 0][name] = np.array([[value]], dtype=np.float64) if isinstance(value, int) else value
    savemat(path, {"synsets": synsets})
    return path


def make_afhq(root: Path, classes: Sequence[str] = ("cat", "dog", "wild"), per_class: int = 3,
              val_per_class: int = 2, suffix: str = ".jpg", junk: bool = True, size: tuple[int, int] = SIZE,
              seed: int = 0) -> FakeSource:
    """AFHQ: train/<class>/flickr_<class>_<6 digits><suffix> and val/<class>/...; the last file of each
    folder has an upper-case suffix, and ``junk`` adds a .DS_Store and a Thumbs.db (not images) per folder."""
    root = Path(root).absolute()
    write = _Writer(seed, size)
    splits: dict[str, list[tuple[Path, int]]] = {}
    numbers = np.random.RandomState(seed + 8).permutation(900000)[:len(classes) * (per_class + val_per_class)]
    taken = iter(int(n) + 100 for n in numbers)
    for split, count in (("train", per_class), ("val", val_per_class)):
        splits[split] = []
        for label, name in enumerate(sorted(classes)):
            folder = root / split / name
            names = [f"flickr_{name}_{next(taken):06d}{suffix}" for _ in range(count)]
            names[-1] = names[-1][:-len(suffix)] + suffix.upper()
            splits[split] += [(write(folder / file), label) for file in names]
            if junk:
                (folder / ".DS_Store").write_bytes(b"\0junk")
                (folder / "Thumbs.db").write_bytes(b"\0junk")
        splits[split].sort(key=lambda pair: (pair[1], pair[0].name))
    return FakeSource(root, tuple(sorted(classes)), splits, write.seeds, size)


def write_class_list(path: Path, wnids: Sequence[str], comments: bool = True) -> Path:
    """A class-list file: one wnid per line (in the given order), each followed by a name; with ``comments``
    a ``#`` header, a blank line and an indented comment line too."""
    path = Path(path)
    head = "# ImageNet subset: one wnid per line\n\n   # dogs and cats\n" if comments else ""
    path.write_text(head + "".join(f"{wnid}\tclass {i}\n" for i, wnid in enumerate(wnids)))
    return path

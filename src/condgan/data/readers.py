"""Readers for the on-disk layouts users download: which image files make each split, and their classes.

A reader only lists files (no decoding); ``condgan prepare`` (data/store.py) decodes, crops and resizes them
into a memory-mappable store. Every reader knows its splits and the split its papers use as the FID
reference (docs/evaluation.md, "Protocol").
"""
from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from condgan.data.base import DataError
from condgan.data.folder import IMAGE_SUFFIXES, link_error


@dataclass(frozen=True)
class SourceSplit:
    """The image files of one split of a dataset on disk.

    files: absolute paths in a fixed, canonical order (the store keeps this order); labels: the class index
    of each file; classes: class names (wnids for the ImageNet family), ``classes[label]``.
    """

    files: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]


# (root, split, class_list_file or None) -> the split's files; raises DataError naming what is missing
ListSplit = Callable[[Path, str, "Path | None"], SourceSplit]


@dataclass(frozen=True)
class Reader:
    """One dataset layout: its splits, its papers' FID reference split and how to list a split."""

    name: str
    splits: tuple[str, ...]
    reference_split: str
    list_split: ListSplit
    needs_class_list: bool = False  # imagenet143: data.classes names the wnid list file
    about: str = ""  # one line for --help and the README


# ---------------------------------------------------------------------------------------------------------------
# Helpers shared with data/imagenet.py.

def data_error(message: str) -> DataError:
    """A DataError whose message is one line, whatever names (read from files or folders) it quotes."""
    return DataError(" ".join(message.splitlines()))


def absolute(path: str | Path) -> Path:
    """``path`` made absolute once, without resolving links (a per-file resolve would cost a stat each)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def need_dir(folder: Path, what: str) -> Path:
    """``folder`` itself, or DataError naming it when it is not a directory."""
    if not folder.is_dir():
        raise data_error(f"{what} not found: {folder}")
    return folder


def check_split(reader: str, split: str, splits: tuple[str, ...]) -> None:
    """DataError unless ``split`` is one of ``splits`` (list functions may be called without list_source)."""
    if split not in splits:
        raise data_error(f"{reader} has no split {split!r}; its splits: {', '.join(splits)}")


def scan_folder(folder: Path) -> tuple[list[str], list[str]]:
    """(visible sub-folder names, visible image file names) of ``folder``, each sorted; not recursive.

    One os.scandir and no stat per file (a DirEntry knows its type from the listing), so listing ImageNet's
    1.28 M files stays fast. Hidden names and files without an image suffix are skipped; a link that leads
    nowhere (dangling, or a loop) is a DataError naming it.
    """
    dirs: list[str] = []
    images: list[str] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if not name.startswith("."):
                    _sort_entry(entry, dirs, images)
    except (FileNotFoundError, NotADirectoryError):
        raise data_error(f"folder not found: {folder}") from None
    except OSError as err:
        raise data_error(f"cannot list {folder}: {err.strerror or err}") from None
    dirs.sort()
    images.sort()
    return dirs, images


def _sort_entry(entry: os.DirEntry, dirs: list[str], images: list[str]) -> None:
    """Add a visible entry's name to ``dirs`` or ``images`` (or neither); a broken link is named, not skipped."""
    name = entry.name
    try:
        if entry.is_dir():
            dirs.append(name)
        # name[rfind:] is splitext's suffix for visible names, at a fraction of the cost per file.
        elif name[name.rfind("."):].lower() in IMAGE_SUFFIXES and entry.is_file():
            images.append(name)
        elif entry.is_symlink() and (broken := link_error(Path(entry.path))) is not None:
            raise broken
    except OSError as err:  # a link looping to itself: the entry, not its folder, is the culprit
        raise data_error(f"cannot read {entry.path}: {err.strerror or err}") from None


def read_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of each non-blank line of a text file; DataError naming it if absent."""
    if not path.is_file():
        raise data_error(f"{what} not found: {path}")
    try:
        # Undecodable bytes become U+FFFD, so a garbled line fails validation naming its line, not a traceback.
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as err:
        raise data_error(f"cannot read {path}: {err.strerror or err}") from None
    return [(number, line.strip()) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: building ImageNet's 1.28 M Paths otherwise triggers collections
    that traverse the growing lists, doubling the listing time. Path objects form no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def class_folders(split_dir: Path, classes: Sequence[str], need_every: bool,
                  inner: str = "") -> tuple[list[Path], list[int]]:
    """Files and labels of ``split_dir/<class>/<inner>/*`` in (class index, file name) order.

    need_every: every class folder must exist and hold an image (a train split); otherwise a missing class
    folder contributes nothing (a val split may hold a subset).
    """
    files: list[Path] = []
    labels: list[int] = []
    with paused_gc():
        for label, name in enumerate(classes):
            folder = split_dir / name / inner if inner else split_dir / name
            if not folder.is_dir():
                if need_every:
                    raise data_error(f"class folder not found: {folder}")
                continue
            names = scan_folder(folder)[1]
            if need_every and not names:
                raise data_error(f"class folder {folder} contains no images")
            files.extend(folder / file for file in names)
            labels.extend([label] * len(names))
    return files, labels


def make_split(files: Sequence[Path], labels: Sequence[int], classes: Sequence[str]) -> SourceSplit:
    return SourceSplit(tuple(files), tuple(labels), tuple(classes))


# ---------------------------------------------------------------------------------------------------------------
# Tiny ImageNet (tiny-imagenet-200).

def tiny_classes(root: Path) -> list[str]:
    """The sorted wnids of ``wnids.txt``; without that file, the sorted class folder names of ``train/``."""
    path = root / "wnids.txt"
    if not path.exists():
        train = root / "train"
        if not train.is_dir():
            raise data_error(f"neither {path} nor {train} found: is {root} a Tiny ImageNet folder?")
        wnids = scan_folder(train)[0]
        if not wnids:
            raise data_error(f"no class folders in {train}")
        return wnids
    seen: dict[str, int] = {}
    for number, line in read_lines(path, "Tiny ImageNet class list"):
        wnid = line.split()[0]
        if wnid in seen:
            raise data_error(f"{path} line {number}: wnid {wnid!r} repeats line {seen[wnid]}")
        seen[wnid] = number
    if not seen:
        raise data_error(f"{path} lists no wnids")
    return sorted(seen)


def list_tiny_imagenet(root: Path, split: str, class_list: Path | None = None) -> SourceSplit:
    """Tiny ImageNet: train in (class, file name) order, val in file name order; class order = sorted wnids
    of ``wnids.txt`` (or, when it is missing, of the class folders under ``train/``). Its test split has no
    labels and is not offered."""
    check_split("tiny_imagenet", split, ("train", "val"))
    root = absolute(root)
    classes = tiny_classes(root)
    if split == "val":
        return tiny_val(root, classes)
    train = need_dir(root / "train", "Tiny ImageNet train folder")
    extra = sorted(set(scan_folder(train)[0]) - set(classes))
    if extra:
        # A folder the class list does not know would otherwise be silently dropped.
        raise data_error(f"class folder {train / extra[0]} is not listed in {root / 'wnids.txt'}")
    files, labels = class_folders(train, classes, need_every=True, inner="images")
    return make_split(files, labels, classes)


def tiny_val(root: Path, classes: list[str]) -> SourceSplit:
    """Val images labelled by ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1``; only the
    first two fields are used), in file name order. Every image must be annotated exactly once."""
    notes = root / "val" / "val_annotations.txt"
    folder = root / "val" / "images"
    lines = read_lines(notes, "Tiny ImageNet val annotation file")
    present = set(scan_folder(need_dir(folder, "Tiny ImageNet val image folder"))[1])
    index = {wnid: label for label, wnid in enumerate(classes)}
    labelled: dict[str, tuple[int, int]] = {}  # file name -> (label, line number)
    for number, line in lines:
        fields = [field.strip() for field in line.split("\t")]
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise data_error(f"{notes} line {number}: too few tab-separated fields "
                             f"(want file, wnid, box), got {line[:80]!r}")
        name, wnid = fields[0], fields[1]
        if wnid not in index:
            raise data_error(f"{notes} line {number}: wnid {wnid!r} is not one of the {len(classes)} classes")
        if name in labelled:
            raise data_error(f"{notes} line {number}: {name!r} is already annotated on line {labelled[name][1]}")
        if name not in present:
            raise data_error(f"{notes} line {number}: image not found: {folder / name}")
        labelled[name] = (index[wnid], number)
    unlabelled = sorted(present - labelled.keys())
    if unlabelled:
        raise data_error(f"image {folder / unlabelled[0]} has no line in {notes}")
    if not labelled:
        raise data_error(f"{notes} annotates no images")
    names = sorted(labelled)
    return make_split([folder / name for name in names], [labelled[name][0] for name in names], classes)


# ---------------------------------------------------------------------------------------------------------------
# CUB-200-2011.

CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")


def id_table(path: Path) -> dict[int, tuple[str, int]]:
    """The ``<id> <value>`` lines of a CUB metadata file -> {id: (value, line number)}."""
    table: dict[int, tuple[str, int]] = {}
    for number, line in read_lines(path, "CUB-200-2011 file"):
        parts = line.split(None, 1)
        if len(parts) < 2 or not parts[0].isascii() or not parts[0].isdigit():
            raise data_error(f"{path} line {number}: expected '<id> <value>', got {line[:80]!r}")
        key = int(parts[0])
        if key in table:
            raise data_error(f"{path} line {number}: id {key} repeats line {table[key][1]}")
        table[key] = (parts[1].strip(), number)
    if not table:
        raise data_error(f"{path} has no lines")
    return table


def cub_classes(path: Path) -> list[str]:
    """Class names (``001.Black_footed_Albatross`` ...) of classes.txt, whose ids must run 1..K."""
    table = id_table(path)
    odd = sorted(set(table) ^ set(range(1, len(table) + 1)))
    if odd:
        raise data_error(f"{path}: class ids must run 1..{len(table)}, but id {odd[0]} "
                         f"{'is missing' if odd[0] <= len(table) else 'is out of range'}")
    named: dict[str, int] = {}
    for name, number in sorted(table.values(), key=lambda entry: entry[1]):
        if name in named:  # two classes of one name: their images would be told apart by nothing a user sees
            raise data_error(f"{path} line {number}: class {name!r} is already named on line {named[name]}")
        named[name] = number
    return [table[key][0] for key in range(1, len(table) + 1)]


def cub_int(path: Path, entry: tuple[str, int], low: int, high: int, what: str) -> int:
    """The integer value of one id_table entry, which must lie in [low, high]."""
    text, number = entry
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise data_error(f"{path} line {number}: {what} must be an integer in {low}..{high}, got {text!r}")
    return int(text)


def list_cub200(root: Path, split: str, class_list: Path | None = None) -> SourceSplit:
    """CUB-200-2011 from its metadata files, in image id order; labels = class id - 1. ``root`` may be the
    CUB_200_2011 folder or the folder holding it. No bounding-box crop."""
    check_split("cub200", split, ("train", "test"))
    root = absolute(root)
    if not (root / "images.txt").exists() and (root / "CUB_200_2011").is_dir():
        root = root / "CUB_200_2011"
    paths = {name: root / name for name in CUB_FILES}
    for path in paths.values():  # name the first missing file before parsing any
        if not path.is_file():
            raise data_error(f"CUB-200-2011 file not found: {path}")
    images = id_table(paths["images.txt"])
    first_line: dict[str, int] = {}
    for name, number in sorted(images.values(), key=lambda entry: entry[1]):
        if name in first_line:  # one file under two ids (and perhaps two labels) would be trained on twice
            raise data_error(f"{paths['images.txt']} line {number}: {name!r} is already listed on line "
                             f"{first_line[name]}")
        first_line[name] = number
    classes = cub_classes(paths["classes.txt"])
    tables = {name: id_table(paths[name]) for name in ("image_class_labels.txt", "train_test_split.txt")}
    for name, table in tables.items():
        missing = sorted(images.keys() - table.keys())
        if missing:
            raise data_error(f"image id {missing[0]} of {paths['images.txt']} has no line in {paths[name]}")
        extra = sorted(table.keys() - images.keys())
        if extra:
            raise data_error(f"{paths[name]} line {table[extra[0]][1]}: image id {extra[0]} is not in "
                             f"{paths['images.txt']}")
    # Every line is checked, not just the split's, so both splits of one copy are valid or neither is.
    labels = {key: cub_int(paths["image_class_labels.txt"], entry, 1, len(classes), "class id") - 1
              for key, entry in tables["image_class_labels.txt"].items()}
    flags = {key: cub_int(paths["train_test_split.txt"], entry, 0, 1, "is_training_image")
             for key, entry in tables["train_test_split.txt"].items()}
    keys = [key for key in sorted(images) if flags[key] == (1 if split == "train" else 0)]
    files = [root / "images" / images[key][0] for key in keys]
    for key, path in zip(keys, files):
        if not path.is_file():  # 11,788 stats at most: cheap, and names the file before decoding starts
            raise data_error(f"image not found: {path} ({paths['images.txt']} line {images[key][1]})")
    if not files:
        raise data_error(f"{paths['train_test_split.txt']} puts no image in the {split} split")
    return make_split(files, [labels[key] for key in keys], classes)


# ---------------------------------------------------------------------------------------------------------------
# AFHQ.

def list_afhq(root: Path, split: str, class_list: Path | None = None) -> SourceSplit:
    """AFHQ: ``root/<split>/<class>/*`` in (class, file name) order; classes = sorted folder names of train/."""
    check_split("afhq", split, ("train", "val"))
    root = absolute(root)
    train = need_dir(root / "train", "AFHQ train folder")
    classes = scan_folder(train)[0]
    if not classes:
        raise data_error(f"no class folders in {train}")
    split_dir = need_dir(root / split, f"AFHQ {split} folder")
    extra = sorted(set(scan_folder(split_dir)[0]) - set(classes))
    if extra:
        raise data_error(f"class folder {split_dir / extra[0]} has no counterpart in {train}")
    files, labels = class_folders(split_dir, classes, need_every=split == "train")
    if not files:
        raise data_error(f"no images in {split_dir}")
    return make_split(files, labels, classes)


# ---------------------------------------------------------------------------------------------------------------
# The registry.

def _list_imagenet(root: Path, split: str, class_list: Path | None = None) -> SourceSplit:
    # Imported here, not at the top: imagenet.py builds on this module's helpers.
    from condgan.data.imagenet import list_imagenet

    return list_imagenet(root, split, class_list)


def _list_imagenet143(root: Path, split: str, class_list: Path | None = None) -> SourceSplit:
    from condgan.data.imagenet import list_imagenet143

    return list_imagenet143(root, split, class_list)


READERS: dict[str, Reader] = {reader.name: reader for reader in (
    Reader("tiny_imagenet", ("train", "val"), "val", list_tiny_imagenet,
           about="Tiny ImageNet (tiny-imagenet-200): wnids.txt, train/<wnid>/images/, val/ + val_annotations.txt"),
    Reader("cub200", ("train", "test"), "train", list_cub200,
           about="CUB-200-2011: images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/"),
    Reader("imagenet", ("train", "val"), "val", _list_imagenet,
           about="ImageNet ILSVRC2012: train/<wnid>/; val/<wnid>/ or flat val/ + devkit or LOC_val_solution.csv"),
    Reader("imagenet143", ("train", "val"), "val", _list_imagenet143, needs_class_list=True,
           about="ImageNet restricted to the wnids of a class-list file (SNGAN's 143 dogs and cats), sorted"),
    Reader("afhq", ("train", "val"), "train", list_afhq,
           about="AFHQ: train/<class>/ and val/<class>/ (cat, dog, wild)"),
)}


def list_source(name: str, root: str | Path, split: str, class_list: str | Path | None = None) -> SourceSplit:
    """The files, labels and classes of split ``split`` of dataset ``name`` stored under ``root``.

    Raises DataError (one line naming the culprit) for an unknown reader or split, a missing root, a missing
    class-list file where the reader needs one (or one given where it takes none) and every bad layout.
    """
    reader = READERS.get(name)
    if reader is None:
        raise data_error(f"unknown dataset {name!r}; readers: {', '.join(READERS)}")
    check_split(name, split, reader.splits)
    if not str(root).strip():
        raise data_error(f"{name} needs the folder of the downloaded dataset (data.root)")
    base = need_dir(absolute(root), f"{name} folder")
    listed = None
    if reader.needs_class_list:
        if class_list is None or not str(class_list).strip():
            raise data_error(f"{name} needs a class-list file (one wnid per line; data.classes)")
        listed = absolute(class_list)
        if not listed.is_file():
            raise data_error(f"class-list file not found: {listed}")
    elif class_list is not None:
        raise data_error(f"{name} takes no class-list file, got {class_list}")
    return reader.list_split(base, split, listed)

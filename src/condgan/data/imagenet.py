"""Readers for ImageNet (ILSVRC2012) and its class subsets (``imagenet143``): they list files, never decode.

Train is ``ROOT/train/<wnid>/*.JPEG``; the classes are the sorted wnid folder names of ``train/``. Val is either
sorted into ``ROOT/val/<wnid>/`` or flat (``ROOT/val/ILSVRC2012_val_00000001.JPEG`` ...) and then labelled by
Kaggle's ``ROOT/LOC_val_solution.csv`` if present, else by the devkit's
``ILSVRC2012_validation_ground_truth.txt`` + ``meta.mat`` (in ``ROOT/ILSVRC2012_devkit_t12/data/``,
``ROOT/devkit/data/`` or ``ROOT/``). Val labels index the train classes.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from condgan.data.readers import (
    SourceSplit,
    absolute,
    check_split,
    class_folders,
    data_error,
    make_split,
    need_dir,
    read_lines,
    scan_folder,
)

GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META = "meta.mat"
DEVKIT_DIRS = ("ILSVRC2012_devkit_t12/data", "devkit/data", ".")
KAGGLE_CSV = "LOC_val_solution.csv"
VAL_NAME = re.compile(r"ILSVRC2012_val_(\d+)\.[A-Za-z]+")  # the devkit numbers val images from 1


def train_wnids(root: Path) -> list[str]:
    """The sorted wnid folder names of ``root/train`` (1000 in the real set; any number >= 1 is accepted)."""
    train = need_dir(root / "train", "ImageNet train folder")
    wnids = scan_folder(train)[0]
    if not wnids:
        raise data_error(f"no class folders in {train}")
    return wnids


def list_imagenet(root: Path, split: str, class_list: Path | None = None) -> SourceSplit:
    """ImageNet: train in (class, file name) order; val in file name order (flat) or (class, file name)."""
    check_split("imagenet", split, ("train", "val"))
    root = absolute(root)
    wnids = train_wnids(root)
    return imagenet_split(root, split, wnids, set(wnids))


def list_imagenet143(root: Path, split: str, class_list: Path | None = None) -> SourceSplit:
    """ImageNet restricted to the wnids of ``class_list``; classes are those wnids SORTED (whatever the file's
    order), so labels agree with a sorted-folder reading of the same subset."""
    check_split("imagenet143", split, ("train", "val"))
    if class_list is None:
        raise data_error("imagenet143 needs a class-list file (one wnid per line; data.classes)")
    root = absolute(root)
    wnids = train_wnids(root)
    classes = read_class_list(absolute(class_list), set(wnids), root / "train")
    return imagenet_split(root, split, classes, set(wnids))


def read_class_list(path: Path, known: set[str], train: Path) -> list[str]:
    """The sorted wnids of a class-list file: the first token of each line; blank lines and ``#`` comments
    are skipped. Each wnid must have a folder in ``train`` and appear once."""
    seen: dict[str, int] = {}
    for number, line in read_lines(path, "class-list file"):
        if line.startswith("#"):
            continue
        wnid = line.split()[0]
        if wnid in seen:
            raise data_error(f"{path} line {number}: wnid {wnid!r} repeats line {seen[wnid]}")
        if wnid not in known:
            raise data_error(f"{path} line {number}: wnid {wnid!r} has no class folder in {train}")
        seen[wnid] = number
    if not seen:
        raise data_error(f"class-list file {path} lists no wnids")
    return sorted(seen)


def imagenet_split(root: Path, split: str, classes: list[str], known: set[str]) -> SourceSplit:
    """One split of ``classes`` (a sorted subset of ``known``, the train wnids)."""
    if split == "train":
        files, labels = class_folders(root / "train", classes, need_every=True)
        return make_split(files, labels, classes)
    val = need_dir(root / "val", "ImageNet val folder")
    folders, flat = scan_folder(val)
    if folders and flat:
        raise data_error(f"{val} holds both class folders ({folders[0]}/) and flat images ({flat[0]}); "
                         f"keep one layout")
    if folders:
        unknown = [name for name in folders if name not in known]
        if unknown:
            raise data_error(f"val class folder {val / unknown[0]} has no counterpart in {root / 'train'}")
        files, labels = class_folders(val, classes, need_every=False)
    elif flat:
        wnid_of = flat_val_wnids(root, val, flat, known)
        index = {wnid: label for label, wnid in enumerate(classes)}
        kept = [name for name in flat if wnid_of[name] in index]  # imagenet143 drops the other classes
        files, labels = [val / name for name in kept], [index[wnid_of[name]] for name in kept]
    else:
        raise data_error(f"no images in {val}")
    if not files:
        raise data_error(f"no val images of the {len(classes)} selected classes in {val}")
    return make_split(files, labels, classes)


def flat_val_wnids(root: Path, val: Path, flat: list[str], known: set[str]) -> dict[str, str]:
    """{file name: wnid} of the flat val images, from Kaggle's CSV when present (no scipy needed), else the
    devkit."""
    csv = root / KAGGLE_CSV
    if csv.is_file():
        return csv_wnids(csv, val, flat, known, root / "train")
    for sub in DEVKIT_DIRS:
        folder = root / sub if sub != "." else root
        if (folder / GROUND_TRUTH).is_file() or (folder / META).is_file():
            return devkit_wnids(folder, val, flat, known, root / "train")
    raise data_error(f"flat images in {val} but no labels: put the devkit's {GROUND_TRUTH} and {META} in "
                     f"{root / DEVKIT_DIRS[0]}, {root / DEVKIT_DIRS[1]} or {root}, or {KAGGLE_CSV} in {root}; "
                     f"or sort val into class folders (val/<wnid>/)")


def csv_wnids(csv: Path, val: Path, flat: list[str], known: set[str], train: Path) -> dict[str, str]:
    """Labels from ``LOC_val_solution.csv``: ``ImageId,PredictionString`` whose first token is the wnid."""
    lines = read_lines(csv, "Kaggle val solution file")
    if not lines or not lines[0][1].startswith("ImageId"):
        raise data_error(f"{csv} line 1: expected the header 'ImageId,PredictionString'")
    rows: dict[str, tuple[str, int]] = {}  # ImageId (file stem) -> (wnid, line number)
    for number, line in lines[1:]:
        image, _, prediction = line.partition(",")
        tokens = prediction.split()
        if not image.strip() or not tokens:
            raise data_error(f"{csv} line {number}: expected 'ImageId,wnid x0 y0 x1 y1 ...', got {line[:80]!r}")
        if image.strip() in rows:
            raise data_error(f"{csv} line {number}: {image.strip()!r} repeats line {rows[image.strip()][1]}")
        rows[image.strip()] = (tokens[0], number)
    wnids: dict[str, str] = {}
    for name in flat:
        row = rows.get(name.rsplit(".", 1)[0])
        if row is None:
            raise data_error(f"val image {val / name} has no row in {csv}")
        if row[0] not in known:
            raise data_error(f"{csv} line {row[1]}: wnid {row[0]!r} has no class folder in {train}")
        wnids[name] = row[0]
    return wnids


def devkit_wnids(folder: Path, val: Path, flat: list[str], known: set[str], train: Path) -> dict[str, str]:
    """Labels from the devkit: line i of the ground truth is the ILSVRC2012_ID of ``ILSVRC2012_val_<i>``;
    meta.mat maps that ID to its wnid (the IDs are NOT in sorted-wnid order)."""
    truth_path = folder / GROUND_TRUTH
    if not truth_path.is_file():
        raise data_error(f"ImageNet devkit file not found: {truth_path}")
    leaves = read_meta(folder / META)
    truth = dict(read_lines(truth_path, "ImageNet val ground truth"))  # line number -> ID text
    wnids: dict[str, str] = {}
    for name in flat:
        match = VAL_NAME.fullmatch(name)
        if match is None:
            raise data_error(f"val image {val / name} is not named ILSVRC2012_val_<number>.JPEG, so {truth_path} "
                             f"cannot label it")
        number = int(match.group(1))
        text = truth.get(number)
        if text is None:
            raise data_error(f"{truth_path} has no line {number} for val image {val / name}")
        if not (text.isascii() and text.isdigit()) or int(text) not in leaves:
            raise data_error(f"{truth_path} line {number}: {text!r} is not the ILSVRC2012_ID of a leaf synset "
                             f"(num_children 0) in {folder / META}")
        wnid = leaves[int(text)]
        if wnid not in known:
            raise data_error(f"{folder / META} maps ILSVRC2012_ID {text} ({truth_path} line {number}) to wnid "
                             f"{wnid!r}, which has no class folder in {train}")
        wnids[name] = wnid
    return wnids


def read_meta(path: Path) -> dict[int, str]:
    """{ILSVRC2012_ID: WNID} of the leaf synsets (num_children == 0) of the devkit's ``meta.mat``."""
    if not path.is_file():
        raise data_error(f"ImageNet devkit file not found: {path}")
    try:
        # Only meta.mat needs scipy, so it stays an optional dependency.
        from scipy.io import loadmat
    except ImportError:
        raise data_error(f"reading {path} needs scipy: pip install scipy, or sort val into class folders "
                         f"(val/<wnid>/*.JPEG)") from None
    try:
        mat = loadmat(str(path), squeeze_me=True)
    except Exception as err:  # noqa: BLE001 - scipy raises many types (MatReadError, ValueError, ...)
        raise data_error(f"cannot read {path}: {err}") from None
    synsets = mat.get("synsets")
    if not isinstance(synsets, np.ndarray) or synsets.dtype.names is None:
        raise data_error(f"{path} holds no struct array 'synsets'")
    for field in ("ILSVRC2012_ID", "WNID", "num_children"):
        if field not in synsets.dtype.names:
            raise data_error(f"{path}: the synsets struct array has no field {field!r}")
    synsets = np.atleast_1d(synsets)
    try:
        rows = [(int(s["ILSVRC2012_ID"]), str(s["WNID"]), int(s["num_children"])) for s in synsets]
    except (TypeError, ValueError) as err:
        raise data_error(f"{path}: unreadable synsets entry ({err})") from None
    leaves = {ident: wnid for ident, wnid, children in rows if children == 0}
    if not leaves:
        raise data_error(f"{path} has no leaf synsets (num_children == 0)")
    return leaves

"""Scoring sets of images that are not a condgan run's samples: a folder or an .npz, against a dataset or another set.

``condgan eval --images DIR|FILE.npz`` scores any model's samples, so numbers can be put beside published ones.
A folder holds image files (any depth); when its top level holds only sub-folders, each sub-folder is a class (the
labels intra-class FID needs), sorted by name as the ``folder`` dataset sorts them. An .npz holds ``images`` (or
``arr_0``, as ADM's and EDM's sample batches) uint8 [N, H, W, C] | [N, C, H, W] | [N, H, W], and optionally
``labels`` (or ``arr_1``). Images keep their own size: the backbones resize each to their input (224 px for DINOv2
and SwAV, 299 for Inception), so a set may mix sizes; every file becomes 8-bit RGB as dgm-eval reads it
(``PIL.Image.convert("RGB")``; 16-bit files are scaled, not clipped). The classifier backbone, ``acc`` and ``cas``
judge a run's generator against its dataset's classes and are not offered here.
"""
from __future__ import annotations

import hashlib
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import DataError, ImageDataset
from ..data.folder import IMAGE_SUFFIXES, list_images, read_any_image
from ..data.npz import to_nchw
from .errors import EvalError
from .evaluate import build_backbones, metric_protocol, score
from .reference import reference_statistics
from .request import EvalRequest
from .suite import METRICS


@dataclass
class ImageSet:
    """Images grouped by size: ``groups`` of uint8 [n_i, C, H_i, W_i]; ``labels`` int64 [N] in group order (-1:
    unlabelled); ``classes`` the sub-folder names (empty when unlabelled); ``identity`` a hash of pixels and
    labels (the reference-statistics cache key)."""
    source: str  # the folder or file
    groups: list[torch.Tensor]
    labels: torch.Tensor
    classes: tuple[str, ...]
    identity: str

    name = "images"  # file-name safe, for the reference-statistics cache

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def images(self) -> "_Batches":
        """The images as batches of one size (what :meth:`Backbone.extract` reads), in label order."""
        return _Batches(self.groups)


class _Batches:
    """A re-iterable of uint8 batches [<= 250, C, H, W], each of one size."""

    def __init__(self, groups: list[torch.Tensor], size: int = 250) -> None:
        self.groups, self.size = groups, size

    def __iter__(self) -> Iterator[torch.Tensor]:
        for group in self.groups:
            yield from (group[i:i + self.size] for i in range(0, group.shape[0], self.size))


def _grouped(images: list[np.ndarray], labels: list[int], classes: tuple[str, ...], source: str) -> ImageSet:
    """uint8 HWC arrays of any sizes -> an ImageSet (groups by size, in first-seen order)."""
    by_size: dict[tuple, list[int]] = defaultdict(list)
    for i, im in enumerate(images):
        by_size[im.shape].append(i)
    order = [i for idx in by_size.values() for i in idx]
    groups = [torch.from_numpy(np.stack([images[i] for i in idx])).permute(0, 3, 1, 2).contiguous()
              for idx in by_size.values()]
    label_tensor = torch.tensor([labels[i] for i in order], dtype=torch.int64)
    digest = hashlib.sha1()
    for g in groups:
        digest.update(f"{tuple(g.shape)}|".encode())
        digest.update(g.numpy().tobytes())
    digest.update(label_tensor.numpy().tobytes())
    return ImageSet(source, groups, label_tensor, classes, digest.hexdigest()[:16])


def read_image_set(path: str | Path, what: str = "--images") -> ImageSet:
    """The images of a folder or an .npz file (see the module docstring); one-line errors naming the culprit."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _read_folder(path, what)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _read_npz(path, what)
    if path.is_file():
        raise EvalError(f"{what} {path}: give a folder of images or an .npz file")
    raise EvalError(f"{what} {path} not found")


def _read_folder(root: Path, what: str) -> ImageSet:
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    class_dirs = [p for p in entries if p.is_dir()]
    labelled = bool(class_dirs) and not any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in entries)
    classes = tuple(p.name for p in class_dirs) if labelled else ()
    files = ([(f, c) for c, d in enumerate(class_dirs) for f in list_images(d)] if labelled
             else [(f, -1) for f in list_images(root)])
    if len(files) < 2:
        raise EvalError(f"{what} {root} holds {'no' if not files else 'one'} image file"
                        f"{'s' if not files else ''} ({', '.join(sorted(IMAGE_SUFFIXES))}); scoring needs at least 2")
    try:
        images = [read_any_image(f) for f, _ in files]
    except DataError as err:
        raise EvalError(f"{what}: {err}") from None
    return _grouped(images, [c for _, c in files], classes, str(root))


def _read_npz(path: Path, what: str) -> ImageSet:
    try:
        with np.load(path, allow_pickle=False) as blob:
            key = next((k for k in ("images", "arr_0") if k in blob.files), None)
            if key is None:
                raise EvalError(f"{what} {path} holds no 'images' (or 'arr_0') array; it has {', '.join(blob.files)}")
            images = to_nchw(blob[key], f"{what} {path}: '{key}'")
            label_key = next((k for k in ("labels", "arr_1") if k in blob.files), None)
            labels = blob[label_key] if label_key else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise EvalError(f"{what} {path} cannot be read as an .npz file ({' '.join(str(err).split())})") from None
    except DataError as err:
        raise EvalError(str(err)) from None
    if images.shape[0] < 2:
        raise EvalError(f"{what} {path}: '{key}' holds {images.shape[0]} image(s); scoring needs at least 2")
    if labels is not None and (labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer)
                               or labels.min() < 0):
        raise EvalError(f"{what} {path}: '{label_key}' must be non-negative integers, one per image; got "
                        f"{labels.dtype} {labels.shape}")
    hwc = images.transpose(0, 2, 3, 1)
    hwc = np.repeat(hwc, 3, axis=3) if hwc.shape[3] == 1 else hwc  # RGB, as every other input
    classes = tuple(str(c) for c in range(int(labels.max()) + 1)) if labels is not None else ()
    return _grouped(list(hwc), labels.tolist() if labels is not None else [-1] * len(hwc), classes, str(path))


def score_image_set(fake: ImageSet, real: ImageSet | ImageDataset, request: EvalRequest, device: torch.device,
                    ref_split: str = "images", progress: bool = True) -> dict:
    """The record of ``fake`` scored against ``real`` in every backbone of ``request`` (whose ``num_samples`` is
    ``len(fake)``: IS splits are checked against it)."""
    request.check()
    wrong = [m for m in request.metrics if METRICS[m].needs_classifier or METRICS[m].needs_images]
    if wrong or "classifier" in request.backbones:
        raise EvalError(f"{(wrong or ['the classifier backbone'])[0]} judges a run's generator with its dataset's "
                        f"classifier: score images with fid, kid, prdc, ifid or is, on inception, dinov2 or swav")
    if "ifid" in request.metrics:
        _check_classes(fake, real)
    t0 = time.perf_counter()
    backbones = build_backbones(request, None, device, progress)
    refs = {name: reference_statistics(real, ref_split, b, progress) for name, b in backbones.items()}
    timing = {"setup_s": time.perf_counter() - t0}
    feats, logits = {}, {}
    for name, b in backbones.items():
        t = time.perf_counter()
        feats[name], logits[name] = b.extract(fake.images, progress=progress, desc=f"{name} features")
        timing[f"features_{name}_s"] = time.perf_counter() - t
    num_classes = max(fake.num_classes, getattr(real, "num_classes", 0))
    values, metric_timing = score(feats, logits, fake.labels, refs, request, num_classes, {})
    ref = next(iter(refs.values()))
    protocol = {"backbone": next(iter(backbones.values())).descriptor, "num_images": len(fake),
                "images": {"source": fake.source, "identity": fake.identity, "labelled": bool(fake.classes)},
                "reference": {**{k: ref.meta[k] for k in ("dataset", "split", "identity", "num_images")},
                              "source": getattr(real, "source", None), "from_cache": ref.from_cache},
                "request": asdict(request), **metric_protocol(request, backbones)}
    if len(backbones) > 1:
        protocol["backbones"] = {name: b.descriptor for name, b in backbones.items()}
    return {"metrics": values, "protocol": protocol,
            "timing": {k: round(v, 3) for k, v in {**timing, **metric_timing}.items()}}


def _check_classes(fake: ImageSet, real: ImageSet | ImageDataset) -> None:
    """Intra-class FID pairs class i of the images with class i of the reference: both labelled, as many classes,
    and the same names where the images' sub-folders are named (not numbered)."""
    if not fake.classes or int(real.labels.min()) < 0:
        raise EvalError("intra-class FID needs labelled images on both sides: class sub-folders (or 'labels' in the "
                        ".npz) in --images and in the reference")
    if fake.num_classes != real.num_classes:
        raise EvalError(f"intra-class FID: --images has {fake.num_classes} classes, the reference "
                        f"{real.num_classes}")
    numbered = list(fake.classes) == [str(i) for i in range(fake.num_classes)]
    if real.classes and not numbered and tuple(fake.classes) != tuple(real.classes):
        first = next(i for i, (a, b) in enumerate(zip(fake.classes, real.classes)) if a != b)
        raise EvalError(f"intra-class FID: class {first} of --images is '{fake.classes[first]}', of the reference "
                        f"'{real.classes[first]}'; name the sub-folders as the reference's classes or 0..C-1")

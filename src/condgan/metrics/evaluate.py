"""One evaluation of a generator: backbone -> reference statistics -> samples -> metrics -> a record.

The record says what produced each number: backbone (and its weights hash), resize method, number of
samples, reference split and its size, IS splits/logits and PRDC k, and the seconds each stage took.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from ..config import Config, DataConfig
from ..data import ImageDataset, load_dataset, to_float
from ..data.classes import check_same_classes, split_label
from ..notices import warn
from .backbones import Backbone, ClassifierBackbone, build_backbone
from .classifier import classifier_caveat, load_or_train_classifier
from .errors import EvalError
from .generate import balanced_labels, generated_batches
from .reference import reference_statistics
from .suite import METRICS, EvalContext, check_metric_names, parse_metrics

DEFAULT_METRICS = ("fid", "is", "prdc", "ifid", "acc")  # condgan eval's list at the classifier's scale
AUTO = "auto"
CLASSIFIER_SCALE = (100, 32)  # (classes, pixels) up to which condgan's own classifier is the default judge


def auto_protocol(data: ImageDataset, eval_command: bool = False) -> tuple[str, list[str]]:
    """(backbone, metrics) that ``auto`` means for a dataset whose train split is ``data``.

    Up to 100 classes at up to 32 px (MNIST, CIFAR) condgan's evaluation classifier is trained on the data
    (minutes) and judges: FID in its feature space and the samples' conditional accuracy. Beyond (Tiny-ImageNet,
    CUB200, ImageNet at 64-128 px, 200-1000 classes) such a classifier would be weak or take hours to train, so
    the papers' Inception network is the backbone, with FID and IS, and no classifier is trained unless a
    metric that needs one (acc, cas) is asked for by name. ``eval_command``: condgan eval's longer list.
    """
    if at_classifier_scale(data):
        return "classifier", list(DEFAULT_METRICS) if eval_command else ["fid", "acc"]
    return "inception", ["fid", "is", "prdc", "ifid"] if eval_command else ["fid", "is"]


def at_classifier_scale(data: ImageDataset) -> bool:
    """Whether condgan trains its own evaluation classifier for ``data`` by default (:data:`CLASSIFIER_SCALE`)."""
    return beyond_classifier_scale(data) is None


def beyond_classifier_scale(data: ImageDataset) -> str | None:
    """Which limit of :data:`CLASSIFIER_SCALE` ``data`` exceeds, in words (None when it is within both)."""
    classes, pixels = CLASSIFIER_SCALE
    over = ([f"{data.num_classes} classes, more than the {classes}"] if data.num_classes > classes else []) + (
        [f"{data.images.shape[-1]} px images, larger than the {pixels} px"] if data.images.shape[-1] > pixels else [])
    return f"{data.name} has {' and '.join(over)} the evaluation classifier is made for" if over else None


def resolve_auto(request: "EvalRequest", data: ImageDataset, eval_command: bool = False) -> "EvalRequest":
    """``request`` with an ``auto`` backbone or metric list replaced by :func:`auto_protocol`'s choice."""
    backbone, metrics = auto_protocol(data, eval_command)
    return replace(request, backbone=backbone if request.backbone == AUTO else request.backbone,
                   metrics=metrics if request.metrics == [AUTO] else request.metrics)


@dataclass
class EvalRequest:
    """What to compute and how; every field is recorded with the scores."""
    metrics: list[str] = field(default_factory=lambda: [AUTO])  # [AUTO]: see auto_protocol
    backbone: str = AUTO
    num_samples: int = 10000
    ref_split: str = "test"
    resize: str = "bilinear"
    batch_size: int = 250
    seed: int = 0
    is_splits: int = 10
    prdc_k: int = 5
    inception_weights: str | None = None
    allow_download: bool = True

    def check(self) -> None:
        if self.metrics != [AUTO]:
            check_metric_names(self.metrics)
        if self.ref_split not in ("train", "test"):
            raise EvalError(f"reference split must be train or test, got '{self.ref_split}'")
        if self.num_samples < 2 or self.batch_size < 1:
            raise EvalError(f"need num_samples >= 2 and batch_size >= 1, got {self.num_samples}, {self.batch_size}")
        if "is" in self.metrics and not 1 <= self.is_splits <= self.num_samples:
            raise EvalError(f"Inception Score splits must be in [1, num_samples={self.num_samples}]; "
                            f"got {self.is_splits}")


def request_from_config(cfg: Config) -> EvalRequest:
    """The periodic-evaluation request described by ``cfg.eval``."""
    e = cfg.eval
    return EvalRequest(metrics=parse_metrics(e.metrics), backbone=e.backbone, num_samples=e.num_samples,
                       ref_split=e.ref, resize=e.resize, seed=cfg.train.seed)


class Evaluator:
    """Holds the backbone, classifier and reference statistics for one dataset, to score many generators."""

    def __init__(self, data_cfg: DataConfig, request: EvalRequest, device: torch.device | str = "cpu",
                 train: ImageDataset | None = None, progress: bool = True, eval_command: bool = False) -> None:
        request.check()
        self.request, self.device, self.progress = request, torch.device(device), progress
        self.timing: dict[str, float] = {}
        t0 = time.perf_counter()
        self.train = train if train is not None else load_dataset(data_cfg, "train")
        self.request = request = resolve_auto(request, self.train, eval_command)
        if request.num_samples < self.train.num_classes:
            raise EvalError(f"{request.num_samples} samples cannot cover the {self.train.num_classes} classes of "
                            f"{self.train.name}: ask for at least {self.train.num_classes}")
        needs = [METRICS[m] for m in request.metrics]
        ref_data = self._load_splits(data_cfg, needs)
        # Then the backbone: a bad split or a missing Inception file fails before any slow or disk-writing work.
        self.backbone: Backbone = build_backbone(
            request.backbone, self.train, self.device, resize=request.resize,
            inception_weights=request.inception_weights, allow_download=request.allow_download, progress=progress)
        self.classifier = None
        if any(m.needs_classifier for m in needs):
            self.classifier = (self.backbone.model if isinstance(self.backbone, ClassifierBackbone)
                               else load_or_train_classifier(self.train, self.device, progress))
        self.keep_images = any(m.needs_images for m in needs)
        self._caveat_said = False
        self.ref = None
        if ref_data is not None:
            if self.ref_is_train and request.ref_split != "train":
                warn(f"the {request.ref_split} split of {self.train.name} is its training images (it has no "
                     f"held-out split): FID and PRDC measure closeness to the images the generator was trained on")
            self.ref = reference_statistics(ref_data, request.ref_split, self.backbone, progress)
        self.timing["setup_s"] = time.perf_counter() - t0

    def _load_splits(self, data_cfg: DataConfig, needs: list) -> ImageDataset | None:
        """Load the test split where a metric needs it (sets ``self.test``) and return the reference split's
        data (None without a reference metric), after checking both list the training split's classes."""
        self.test = (load_dataset(data_cfg, "test")  # real test images score the classifier and CAS
                     if any(m.needs_classifier or m.needs_images for m in needs) else None)
        ref_data = None
        if any(m.needs_reference for m in needs):
            ref_data = (self.train if self.request.ref_split == "train"
                        else self.test if self.test is not None else load_dataset(data_cfg, "test"))
        for other in (self.test, ref_data):  # a label must mean the same class in every split scored
            if other is not None:
                check_same_classes(self.train, other, split_label(data_cfg, "train"), split_label(data_cfg, "test"),
                                   data_cfg)
        # folder / npz without a test split return the training images as "test"
        self.test_held_out = self.test is None or self.test.identity != self.train.identity
        self.ref_is_train = ref_data is not None and ref_data.identity == self.train.identity
        return ref_data

    def _sample(self, G: nn.Module, z_dim: int) -> EvalContext:
        r = self.request
        labels = balanced_labels(r.num_samples, self.train.num_classes, self.device)
        feats, logits, class_logits, images = [], [], [], []
        for x, _y in generated_batches(G, z_dim, labels, r.batch_size, r.seed):
            f, lg = self.backbone(x)
            feats.append(f)
            logits.append(lg)
            if self.classifier is not None:
                class_logits.append(lg if isinstance(self.backbone, ClassifierBackbone)
                                    else self.classifier(to_float(x)))
            if self.keep_images:
                images.append(x)
        return EvalContext(torch.cat(feats), torch.cat(logits), labels, self.train.num_classes, ref=self.ref,
                           class_logits=torch.cat(class_logits) if class_logits else None,
                           images=torch.cat(images) if images else None, test=self.test,
                           classifier=self.classifier,
                           options={"seed": r.seed, "is_splits": r.is_splits, "prdc_k": r.prdc_k})

    @torch.no_grad()
    def __call__(self, G: nn.Module, z_dim: int) -> dict:
        """Score ``G`` (called as ``G(z [B, z_dim], y [B]) -> images in [-1, 1]``); returns the record."""
        t0 = time.perf_counter()
        ctx = self._sample(G, z_dim)
        timing = {**self.timing, "samples_and_features_s": time.perf_counter() - t0}
        values: dict = {}
        for name in self.request.metrics:
            t = time.perf_counter()
            values.update(METRICS[name].fn(ctx))
            timing[f"{name}_s"] = time.perf_counter() - t
        protocol = self.protocol()
        if "real_acc_top1" in values:
            protocol["classifier_caveat"] = self._caveat(values["real_acc_top1"])
        return {"metrics": values, "protocol": protocol, "timing": {k: round(v, 3) for k, v in timing.items()}}

    def _caveat(self, real_accuracy: float) -> str | None:
        """The classifier's caveat (warned once per evaluator, recorded every time)."""
        caveat = classifier_caveat(real_accuracy, self.train.num_classes, self.test_held_out)
        if caveat and not self._caveat_said:
            warn(caveat)
            self._caveat_said = True
        return caveat

    def protocol(self) -> dict:
        r = self.request
        out = {"backbone": self.backbone.descriptor, "num_samples": r.num_samples,
               "labels": "balanced: sample i has class i mod C", "generator": "eval mode",
               "seed": r.seed, "request": asdict(r),
               "test_split": "held out" if self.test_held_out else "the training images (no separate test split)"}
        if self.ref is not None:
            out["reference"] = {k: self.ref.meta[k] for k in ("dataset", "split", "identity", "num_images")}
            out["reference"]["from_cache"] = self.ref.from_cache
            # the reference is the generator's own training data: said in the record, not only in a warning
            out["reference"]["training_images"] = self.ref_is_train
        if "is" in r.metrics:
            out["is"] = {"splits": r.is_splits, "logits": self.backbone.descriptor.get("logits", "class logits")}
        if "prdc" in r.metrics:
            out["prdc"] = {"k": r.prdc_k, "distance": "euclidean, strict <"}
        if "acc" in r.metrics or "cas" in r.metrics:
            out["classifier"] = f"condgan EvalClassifier trained on {self.train.name}-{self.train.identity}"
        return out

"""One evaluation of a generator: backbones -> reference statistics -> samples -> metrics -> a record.

The samples are drawn once; every backbone asked for (``inception,dinov2``) extracts its features from the same
images, and every per-backbone metric (FID, KID, PRDC, intra-class FID, IS where the backbone has logits) is
computed in each space. The record says what produced each number: each backbone (its weights' hash, its resize),
the number of samples, the reference split and its size, IS splits/logits, PRDC k, KID subsets, and the seconds
each stage took.
"""
from __future__ import annotations

import time
from dataclasses import asdict

import torch
from torch import nn

from ..config import DataConfig
from ..data import ImageDataset, load_dataset, to_float
from ..data.classes import check_same_classes, split_label
from ..notices import warn
from .backbones import Backbone, ClassifierBackbone, build_backbone
from .classifier import classifier_caveat, load_or_train_classifier
from .errors import EvalError
from .generate import balanced_labels, generated_batches
from .kid import SEED as KID_SEED
from .reference import Reference, reference_statistics
from .request import (AUTO, CLASSIFIER_SCALE, DEFAULT_METRICS, EvalRequest, at_classifier_scale,  # noqa: F401
                      auto_protocol, beyond_classifier_scale, request_from_config, resolve_auto)
from .suite import METRICS, EvalContext


def build_backbones(request: EvalRequest, train: ImageDataset | None, device: torch.device,
                    progress: bool) -> dict[str, Backbone]:
    """Every backbone of ``request`` (auto resolved), primary first; one that reads logits IS needs."""
    backbones = {name: build_backbone(name, train, device, resize=request.resize_of(name),
                                      weights=request.weights_of(name), allow_download=request.allow_download,
                                      progress=progress)
                 for name in request.backbones}
    if "is" in request.metrics and not any(b.has_logits for b in backbones.values()):
        raise EvalError(f"the Inception Score needs class logits: add the inception backbone (--backbone "
                        f"{request.backbone},inception) or drop 'is' from the metrics")
    return backbones


def score(features: dict[str, torch.Tensor], logits: dict[str, torch.Tensor], labels: torch.Tensor | None,
          refs: dict[str, Reference], request: EvalRequest, num_classes: int, shared: dict) -> tuple[dict, dict]:
    """(values, timing) of every metric of ``request``: the primary backbone's values, then the metrics that are
    not per backbone (acc, cas: ``shared`` holds their EvalContext fields), then ``by_backbone`` (every backbone's
    own values) when there are several backbones."""
    options = {"seed": request.seed, "is_splits": request.is_splits, "prdc_k": request.prdc_k,
               "kid_subsets": request.kid_subsets, "kid_subset_size": request.kid_subset_size}
    by_backbone: dict[str, dict] = {}
    common: dict = {}
    timing: dict[str, float] = {}
    for i, name in enumerate(features):
        ctx = EvalContext(features[name], logits[name], labels, num_classes, ref=refs.get(name), options=options,
                          **shared)
        own: dict = {}
        for metric in request.metrics:
            m = METRICS[metric]
            if (not m.per_backbone and i > 0) or (m.needs_logits and logits[name].shape[1] == 0):
                continue
            t = time.perf_counter()
            (own if m.per_backbone else common).update(m.fn(ctx))
            timing[f"{metric}_s" if i == 0 else f"{metric}_{name}_s"] = time.perf_counter() - t
        by_backbone[name] = own
    values = {**next(iter(by_backbone.values())), **common}
    return ({**values, "by_backbone": by_backbone} if len(by_backbone) > 1 else values), timing


class Evaluator:
    """Holds the backbones, classifier and reference statistics for one dataset, to score many generators."""

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
        # Then the backbones: a bad split or a missing weights file fails before any slow or disk-writing work.
        self.backbones = build_backbones(request, self.train, self.device, progress)
        self.backbone: Backbone = next(iter(self.backbones.values()))
        self.classifier = None
        if any(m.needs_classifier for m in needs):
            own = next((b.model for b in self.backbones.values() if isinstance(b, ClassifierBackbone)), None)
            self.classifier = own if own is not None else load_or_train_classifier(self.train, self.device, progress)
        self.keep_images = any(m.needs_images for m in needs)
        self._caveat_said = False
        self.refs: dict[str, Reference] = {}
        if ref_data is not None:
            if self.ref_is_train and request.ref_split != "train":
                warn(f"the {request.ref_split} split of {self.train.name} is its training images (it has no "
                     f"held-out split): FID and PRDC measure closeness to the images the generator was trained on")
            self.refs = {name: reference_statistics(ref_data, request.ref_split, b, progress)
                         for name, b in self.backbones.items()}
        self.ref = self.refs.get(self.backbone.name)
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

    def _sample(self, G: nn.Module, z_dim: int) -> tuple[dict, dict, torch.Tensor, dict, dict]:
        """(features, logits per backbone, labels, the shared context fields, seconds per backbone)."""
        r = self.request
        labels = balanced_labels(r.num_samples, self.train.num_classes, self.device)
        feats = {name: [] for name in self.backbones}
        logits = {name: [] for name in self.backbones}
        seconds = dict.fromkeys(self.backbones, 0.0)
        class_logits, images = [], []
        for x, _y in generated_batches(G, z_dim, labels, r.batch_size, r.seed):
            for name, backbone in self.backbones.items():
                t = time.perf_counter()
                f, lg = backbone(x)
                seconds[name] += time.perf_counter() - t
                feats[name].append(f)
                logits[name].append(lg)
            if self.classifier is not None:  # the classifier backbone's logits are its class logits already
                class_logits.append(logits["classifier"][-1] if "classifier" in self.backbones
                                    else self.classifier(to_float(x)))
            if self.keep_images:
                images.append(x)
        shared = {"class_logits": torch.cat(class_logits) if class_logits else None,
                  "images": torch.cat(images) if images else None, "test": self.test, "classifier": self.classifier}
        return ({n: torch.cat(v) for n, v in feats.items()}, {n: torch.cat(v) for n, v in logits.items()}, labels,
                shared, seconds)

    @torch.no_grad()
    def __call__(self, G: nn.Module, z_dim: int) -> dict:
        """Score ``G`` (called as ``G(z [B, z_dim], y [B]) -> images in [-1, 1]``); returns the record."""
        t0 = time.perf_counter()
        feats, logits, labels, shared, seconds = self._sample(G, z_dim)
        timing = {**self.timing, "samples_and_features_s": time.perf_counter() - t0}
        if len(self.backbones) > 1:
            timing.update({f"features_{name}_s": s for name, s in seconds.items()})
        values, metric_timing = score(feats, logits, labels, self.refs, self.request, self.train.num_classes, shared)
        timing.update(metric_timing)
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
        if len(self.backbones) > 1:
            out["backbones"] = {name: b.descriptor for name, b in self.backbones.items()}
        if self.ref is not None:
            out["reference"] = {k: self.ref.meta[k] for k in ("dataset", "split", "identity", "num_images")}
            out["reference"]["from_cache"] = self.ref.from_cache
            # the reference is the generator's own training data: said in the record, not only in a warning
            out["reference"]["training_images"] = self.ref_is_train
        out.update(metric_protocol(r, self.backbones))
        if "acc" in r.metrics or "cas" in r.metrics:
            out["classifier"] = f"condgan EvalClassifier trained on {self.train.name}-{self.train.identity}"
        return out


def metric_protocol(r: EvalRequest, backbones: dict[str, Backbone]) -> dict:
    """The settings of IS, PRDC and KID, where asked for."""
    out: dict = {}
    if "is" in r.metrics:
        with_logits = [b for b in backbones.values() if b.has_logits]
        out["is"] = {"splits": r.is_splits, "logits": with_logits[0].descriptor.get("logits", "class logits"),
                     "backbone": with_logits[0].name}
    if "prdc" in r.metrics:
        out["prdc"] = {"k": r.prdc_k, "distance": "euclidean, strict <"}
    if "kid" in r.metrics:
        out["kid"] = {"subsets": r.kid_subsets, "subset_size": r.kid_subset_size, "seed": KID_SEED,
                      "kernel": "(x.y / d + 1)^3", "estimator": "unbiased MMD^2; mean and std (ddof 0) over subsets"}
    return out

"""The metric registry: each metric is a small function of the evaluation context returning named values.

Every metric reads the generated samples' backbone features/logits (already extracted once) and, where
it needs them, the cached reference statistics, the dataset classifier's logits, or the raw samples.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..data import ImageDataset
from .conditional import class_logits, classification_accuracy_score, intra_class_fid, topk_accuracy
from .errors import EvalError
from .fid import feature_statistics, frechet_distance
from .inception_score import inception_score
from .kid import SUBSET_SIZE, SUBSETS, kid
from .prdc import prdc
from .reference import Reference


@dataclass
class EvalContext:
    """fake_*: the N generated samples (features [N, F], backbone logits [N, K], labels [N], classifier
    logits [N, C] or None, uint8 images or None); ref: reference statistics (or None)."""
    fake_features: torch.Tensor
    fake_logits: torch.Tensor
    fake_labels: torch.Tensor
    num_classes: int
    ref: Reference | None = None
    class_logits: torch.Tensor | None = None
    images: torch.Tensor | None = None
    test: ImageDataset | None = None
    classifier: torch.nn.Module | None = None
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    fn: Callable[[EvalContext], dict]
    values: tuple[str, ...]  # the scalar values it returns
    needs_reference: bool = False
    needs_classifier: bool = False
    needs_images: bool = False
    per_backbone: bool = True  # computed in every backbone's feature space (acc and cas are the classifier's)
    needs_logits: bool = False  # a backbone with class logits (Inception, the classifier)


def fid(ctx: EvalContext) -> dict:
    mu, sigma = feature_statistics(ctx.fake_features)
    return {"fid": frechet_distance(mu, sigma, ctx.ref.mu.to(mu.device), ctx.ref.sigma.to(mu.device))}


def inception_score_metric(ctx: EvalContext) -> dict:
    splits = ctx.options.get("is_splits", 10)
    mean, std = inception_score(torch.softmax(ctx.fake_logits.double(), dim=1), splits=splits)
    return {"is_mean": mean, "is_std": std}


def prdc_metric(ctx: EvalContext) -> dict:
    """PRDC against at most N reference features, a seeded subset when the split is larger."""
    real = ctx.ref.features
    n = ctx.fake_features.shape[0]
    if real.shape[0] > n:
        gen = torch.Generator().manual_seed(ctx.options.get("seed", 0))
        real = real[torch.randperm(real.shape[0], generator=gen)[:n]]
    out = prdc(real.to(ctx.fake_features.device), ctx.fake_features, k=ctx.options.get("prdc_k", 5))
    return {**out, "prdc_num_real": int(real.shape[0])}


def _kid(ctx: EvalContext) -> dict:
    o = ctx.options
    return kid(ctx.fake_features, ctx.ref.features, o.get("kid_subsets", SUBSETS), o.get("kid_subset_size", SUBSET_SIZE))


def _intra_class_fid(ctx: EvalContext) -> dict:
    mean, per_class = intra_class_fid(ctx.fake_features, ctx.fake_labels, ctx.ref.features, ctx.ref.labels,
                                      ctx.num_classes)
    return {"ifid": mean, "ifid_per_class": per_class}


def _accuracy(ctx: EvalContext) -> dict:
    """The dataset classifier's top-1/top-5 on the samples w.r.t. the class each was generated for, and
    (for context) its top-1 on the real test images."""
    real = class_logits(ctx.classifier, ctx.test, ctx.class_logits.device)
    return {"acc_top1": topk_accuracy(ctx.class_logits, ctx.fake_labels, 1),
            "acc_top5": topk_accuracy(ctx.class_logits, ctx.fake_labels, 5),
            "real_acc_top1": topk_accuracy(real, ctx.test.labels, 1)}


def _cas(ctx: EvalContext) -> dict:
    out = classification_accuracy_score(ctx.images, ctx.fake_labels, ctx.test, ctx.fake_features.device,
                                        ctx.options.get("seed", 0))
    return {**out, "cas_test_images": len(ctx.test)}


METRICS: dict[str, Metric] = {
    "fid": Metric(fid, ("fid",), needs_reference=True),
    "kid": Metric(_kid, ("kid_mean", "kid_std"), needs_reference=True),
    "is": Metric(inception_score_metric, ("is_mean", "is_std"), needs_logits=True),
    "prdc": Metric(prdc_metric, ("precision", "recall", "density", "coverage"), needs_reference=True),
    "ifid": Metric(_intra_class_fid, ("ifid",), needs_reference=True),
    "acc": Metric(_accuracy, ("acc_top1", "acc_top5", "real_acc_top1"), needs_classifier=True, per_backbone=False),
    "cas": Metric(_cas, ("cas_top1", "cas_top5"), needs_images=True, per_backbone=False),
}
LOWER_IS_BETTER = frozenset({"fid", "ifid", "kid_mean"})


def parse_metrics(text: str) -> list[str]:
    """'fid,is , prdc' -> ['fid', 'is', 'prdc'] (unchecked; see :func:`check_metric_names`)."""
    return [m.strip() for m in text.split(",") if m.strip()]


def check_metric_names(names: list[str]) -> None:
    """Raise a one-line EvalError naming the first unknown metric (or an empty list)."""
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise EvalError(f"unknown metric '{unknown[0] if unknown else ''}'; choose from {', '.join(METRICS)}")

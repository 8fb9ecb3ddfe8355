"""The metric registry: each metric is a small function of the evaluation context returning named values.

Every metric reads the generated samples' backbone features/logits (already extracted once) and, where
it needs them, the cached reference statistics, the dataset classifier's logits, or the raw samples.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..data import ImageDataset, to_float
from ..data.base import make_dataset
from .classifier import train_classifier
from .errors import EvalError
from .fid import feature_statistics, frechet_distance
from .inception_score import inception_score
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


def intra_class_fid(ctx: EvalContext) -> dict:
    """Mean over classes of the FID between class-c samples and class-c reference images."""
    per_class = []
    device = ctx.fake_features.device
    ref_feats, ref_labels = ctx.ref.features.to(device), ctx.ref.labels.to(device)
    for c in range(ctx.num_classes):
        fake_c, real_c = ctx.fake_features[ctx.fake_labels == c], ref_feats[ref_labels == c]
        if fake_c.shape[0] < 2 or real_c.shape[0] < 2:
            raise EvalError(f"intra-class FID needs >= 2 samples and reference images of class {c}; "
                             f"got {fake_c.shape[0]} and {real_c.shape[0]}")
        per_class.append(frechet_distance(*feature_statistics(fake_c), *feature_statistics(real_c)))
    return {"ifid": sum(per_class) / len(per_class), "ifid_per_class": per_class}


def _topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return float(hits.double().mean())


def accuracy_metric(ctx: EvalContext) -> dict:
    """Top-1/top-5 of the dataset classifier on the samples, w.r.t. the class each was generated for,
    and (for context) its top-1 on the real test images."""
    labels = ctx.fake_labels.to(ctx.class_logits.device)
    real_logits = _logits(ctx.classifier, ctx.test, labels.device)
    return {"acc_top1": _topk(ctx.class_logits, labels, 1), "acc_top5": _topk(ctx.class_logits, labels, 5),
            "real_acc_top1": _topk(real_logits, ctx.test.labels.to(labels.device), 1)}


def _logits(model: torch.nn.Module, data: ImageDataset, device: torch.device, batch: int = 500) -> torch.Tensor:
    """Class logits [N, C] of ``model`` on every image of ``data``, batched on ``device``."""
    with torch.no_grad():
        return torch.cat([model(to_float(data.images[i:i + batch].to(device))) for i in range(0, len(data), batch)])


def classification_accuracy_score(ctx: EvalContext) -> dict:
    """CAS: train the evaluation classifier's recipe on the samples alone, test it on real test images."""
    fakes = make_dataset(ctx.images.cpu(), ctx.fake_labels.cpu(), ctx.num_classes, "generated")
    device = ctx.fake_features.device
    model = train_classifier(fakes, device=device, seed=ctx.options.get("seed", 0), progress=False)
    model.eval()
    logits = _logits(model, ctx.test, device)
    labels = ctx.test.labels.to(device)
    return {"cas_top1": _topk(logits, labels, 1), "cas_top5": _topk(logits, labels, 5),
            "cas_test_images": len(ctx.test)}


METRICS: dict[str, Metric] = {
    "fid": Metric(fid, ("fid",), needs_reference=True),
    "is": Metric(inception_score_metric, ("is_mean", "is_std")),
    "prdc": Metric(prdc_metric, ("precision", "recall", "density", "coverage"), needs_reference=True),
    "ifid": Metric(intra_class_fid, ("ifid",), needs_reference=True),
    "acc": Metric(accuracy_metric, ("acc_top1", "acc_top5", "real_acc_top1"), needs_classifier=True),
    "cas": Metric(classification_accuracy_score, ("cas_top1", "cas_top5"), needs_images=True),
}
LOWER_IS_BETTER = frozenset({"fid", "ifid"})


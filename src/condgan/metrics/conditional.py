"""Class-conditional metrics as plain functions: intra-class FID, top-k accuracy, and CAS."""
from __future__ import annotations

import torch

from ..data import ImageDataset, to_float
from ..data.base import make_dataset
from .classifier import train_classifier
from .errors import EvalError
from .fid import frechet_distance_of_features


def intra_class_fid(fake_features: torch.Tensor, fake_labels: torch.Tensor, real_features: torch.Tensor,
                    real_labels: torch.Tensor, num_classes: int) -> tuple[float, list[float]]:
    """(mean, per-class list) of the FID between class-c fakes [Nf, F] and class-c reals [Nr, F].

    Labels are int [Nf] / [Nr]; every class needs at least 2 of each (a covariance needs 2 points). One class's
    statistics at a time, through the low-rank route when a class has fewer images than feature dimensions
    (ImageNet: 50 reference images per class against 2048 features), so 1000 classes need neither 1000
    D x D covariances in memory nor 1000 D x D eigendecompositions.
    """
    device = fake_features.device
    real_features, real_labels = real_features.to(device), real_labels.to(device)
    fake_labels = fake_labels.to(device)
    per_class = []
    for c in range(num_classes):
        fake_c, real_c = fake_features[fake_labels == c], real_features[real_labels == c]
        if fake_c.shape[0] < 2 or real_c.shape[0] < 2:
            raise EvalError(f"intra-class FID needs >= 2 samples and reference images of class {c}; "
                            f"got {fake_c.shape[0]} and {real_c.shape[0]}")
        per_class.append(frechet_distance_of_features(fake_c, real_c))
    return sum(per_class) / len(per_class), per_class


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows of ``logits`` [N, C] whose top-min(k, C) classes contain ``labels`` [N]."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels.to(logits.device)[:, None]).any(dim=1)
    return float(hits.double().mean())


@torch.no_grad()
def class_logits(model: torch.nn.Module, data: ImageDataset, device: torch.device | str,
                 batch: int = 500) -> torch.Tensor:
    """Logits [N, C] of ``model`` on every uint8 image of ``data``, batched on ``device``."""
    return torch.cat([model(to_float(data.images[i:i + batch].to(device))) for i in range(0, len(data), batch)])


def classification_accuracy_score(fake_images: torch.Tensor, fake_labels: torch.Tensor, test: ImageDataset,
                                  device: torch.device | str = "cpu", seed: int = 0) -> dict[str, float]:
    """CAS (Ravuri & Vinyals 2019): train the evaluation classifier's recipe on the uint8 samples
    [N, C, H, W] with their labels [N] alone, then report its top-1/top-5 accuracy on the real ``test``."""
    fakes = make_dataset(fake_images.cpu(), fake_labels.cpu(), test.num_classes, "generated")
    with torch.enable_grad():
        model = train_classifier(fakes, device=device, seed=seed, progress=False)
    logits = class_logits(model.eval(), test, device)
    return {"cas_top1": topk_accuracy(logits, test.labels, 1), "cas_top5": topk_accuracy(logits, test.labels, 5)}

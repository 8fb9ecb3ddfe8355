"""End-of-training report: conditional accuracy of EMA-G samples under the dataset's evaluation classifier."""
from __future__ import annotations

import torch

from ..data import load_dataset, to_float
from ..data.classes import check_same_classes, split_label
from ..notices import warn
from .classifier import accuracy, classifier_caveat, conditional_accuracy, load_or_train_classifier


def final_report(trainer, progress: bool = True) -> dict:
    """Score ``trainer``'s G_ema: the share of samples classified as the class they were generated for,
    with the classifier's own top-1 accuracy on real images for context: the held-out test split, or (for a
    dataset without one) its training images, said so in ``real_images_are`` and with a warning."""
    cfg, device = trainer.cfg, trainer.device
    # the training data, already loaded; with data.subset the judge is trained on the whole training split
    train = load_dataset(cfg.data, "train") if cfg.data.subset else trainer.run.dataset
    test = load_dataset(cfg.data, "test")
    # before the classifier is trained: its labels must mean the same classes in both splits
    check_same_classes(train, test, split_label(cfg.data, "train"), split_label(cfg.data, "test"), cfg.data)
    held_out = test.identity != train.identity  # folder / npz without a test split return the train images
    clf = load_or_train_classifier(train, device=device, progress=progress)
    real_acc = accuracy(clf, to_float(test.images).to(device), test.labels.to(device))
    caveat = classifier_caveat(real_acc, train.num_classes, held_out)
    if caveat:
        warn(caveat)
    G = trainer.run.ema.shadow
    z_gen = torch.Generator(device=device).manual_seed(cfg.train.seed + 2)

    def generate(y: torch.Tensor) -> torch.Tensor:
        z = torch.randn(y.shape[0], cfg.model.z_dim, device=device, generator=z_gen)
        return G(z, y.to(device))

    with torch.no_grad():
        cond_acc = conditional_accuracy(generate, clf, train.num_classes, cfg.eval.num_samples, device=device)
    return {"step": trainer.step, "backbone": "condgan-eval-classifier", "dataset": train.name,
            "dataset_identity": train.identity, "real_images": int(test.labels.numel()),
            "real_images_are": "held-out real test images" if held_out else "real training images (no held-out split)",
            "real_accuracy": float(real_acc), "classifier_caveat": caveat, "num_samples": int(cfg.eval.num_samples),
            "conditional_accuracy": float(cond_acc), "generator": "G_ema (eval mode)"}

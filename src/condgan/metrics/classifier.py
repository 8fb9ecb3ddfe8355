"""A small evaluation CNN: trained once per dataset, cached on disk, used to score generated samples.

Conditional accuracy (the share of samples classified as the class they were generated for) needs a
classifier that is good on real data and robust to small shifts; its penultimate features also serve
a classifier-based FID. The cache key is the training data's identity plus an architecture version,
so a changed dataset or network never loads stale weights.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import ImageDataset, cache_dir, to_float, to_uint8
from ..files import load_verified, save_atomic
from ..notices import warn

# Bump whenever the network, training recipe or stored format changes: old cache files are then ignored.
ARCH_VERSION = "v1"
DEFAULT_EPOCHS = 12
DEFAULT_WIDTH = 16
_BATCH = 64
_LR = 2e-3
_SHIFT = 2  # max translation in pixels used as augmentation


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class EvalClassifier(nn.Module):
    """Small CNN for C-class images in [-1, 1], any channel count, 32x32 or any size >= 16.

    Three resolution stages (full, /2, /4) end in global average pooling, so the feature width
    ``4 * width`` does not depend on the input size.
    """

    def __init__(self, img_channels: int, num_classes: int, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        self.img_channels, self.num_classes, self.width = img_channels, num_classes, width
        self.body = nn.Sequential(
            _conv_bn(img_channels, width), nn.MaxPool2d(2),
            _conv_bn(width, 2 * width), nn.MaxPool2d(2),
            _conv_bn(2 * width, 4 * width), _conv_bn(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * width, num_classes)

    @property
    def feature_dim(self) -> int:
        """F, the width of :meth:`features`."""
        return 4 * self.width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] in [-1, 1] -> penultimate features [N, F]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] in [-1, 1] -> logits [N, num_classes]."""
        return self.head(self.features(x))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of float [B, C, H, W] by an integer offset in [-max_shift, max_shift]^2.

    Edge-replicate padding followed by a per-sample crop, done with one batched gather; offsets are
    drawn on the CPU generator so results do not depend on the device.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b, 1), generator=generator).to(x.device)
    rows = dy + torch.arange(h, device=x.device)  # [B, H]
    cols = dx + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def _fit(model: EvalClassifier, images: torch.Tensor, labels: torch.Tensor, epochs: int,
         generator: torch.Generator, progress: bool) -> None:
    """Adam with a one-cycle LR schedule over uint8 ``images`` [N, C, H, W] and int64 ``labels`` [N]."""
    n = images.shape[0]
    steps_per_epoch = max(1, -(-n // _BATCH))
    opt = torch.optim.Adam(model.parameters(), lr=_LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=_LR, total_steps=epochs * steps_per_epoch)
    model.train()
    bar = tqdm(total=epochs * steps_per_epoch, disable=not progress, desc="eval classifier", leave=False)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, _BATCH):
            idx = order[start:start + _BATCH]
            x = random_shift(to_float(images[idx]), _SHIFT, generator)
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if progress:  # .item() syncs a GPU every step; only pay for it when someone is watching
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()


def train_classifier(train: ImageDataset, device: torch.device | str = "cpu", epochs: int = DEFAULT_EPOCHS,
                     seed: int = 0, progress: bool = True, width: int = DEFAULT_WIDTH) -> EvalClassifier:
    """Train an :class:`EvalClassifier` on ``train`` (uint8 images [N, C, H, W]); returned in eval mode.

    Deterministic for a given ``seed`` on the CPU: initialisation runs under a forked, seeded global RNG
    (leaving the caller's RNG state untouched) and shuffling / augmentation use a private generator.
    On the CPU it trains single-threaded (see :func:`_single_thread`).
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EvalClassifier(train.images.shape[1], train.num_classes, width).to(device)
    with _single_thread(device.type == "cpu"):
        _fit(model, train.images.to(device), train.labels.to(device), epochs, gen, progress)
    return model


@contextlib.contextmanager
def _single_thread(active: bool) -> Iterator[None]:
    """Run the body with one intra-op thread, restoring the caller's setting after.

    Measured on a 2-core CPU: this network's small convolutions gain only ~12% from a second thread on
    an idle machine (34 vs 38 ms per step), but when other processes compete for the cores two OpenMP
    threads were ~10x slower (500 vs 48 ms). One thread keeps first-run training time predictable.
    """
    before = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cache_path(train: ImageDataset) -> Path:
    """``cache_dir()/classifiers/<name>-<identity>-<ARCH_VERSION>.pt``."""
    return cache_dir() / "classifiers" / f"{train.name}-{train.identity}-{ARCH_VERSION}.pt"


def _save(model: EvalClassifier, path: Path) -> None:
    """Write state_dict + metadata atomically: a crash mid-write never leaves a half file at ``path``."""
    meta = {"img_channels": model.img_channels, "num_classes": model.num_classes, "width": model.width,
            "arch_version": ARCH_VERSION}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_atomic({"meta": meta, "state_dict": state}, path)


def _load(path: Path, train: ImageDataset, device: torch.device) -> EvalClassifier:
    """Rebuild the model stored at ``path``; raises on any mismatch with ``train``."""
    blob = load_verified(path)
    if not isinstance(blob, dict) or not isinstance(blob.get("meta"), dict):
        raise ValueError("not a classifier cache file")
    meta = blob["meta"]
    if (meta["arch_version"], meta["img_channels"], meta["num_classes"]) != (
            ARCH_VERSION, train.images.shape[1], train.num_classes):
        raise ValueError(f"metadata {meta} does not match the dataset")
    model = EvalClassifier(meta["img_channels"], meta["num_classes"], meta["width"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()


def load_or_train_classifier(train: ImageDataset, device: torch.device | str = "cpu",
                             progress: bool = True) -> EvalClassifier:
    """The cached classifier for ``train`` if one is stored, else train it (seed 0) and cache it.

    An unreadable or mismatched cache file is warned about and overwritten by a fresh training.
    """
    device = torch.device(device)
    path = cache_path(train)
    if path.exists():
        try:
            return _load(path, train, device)
        except Exception as err:  # noqa: BLE001 - any corruption (pickle, zip, key, shape): retrain
            warn(f"ignoring unreadable classifier cache {path} ({err}); retraining")
    model = train_classifier(train, device=device, progress=progress)
    _save(model, path)
    return model


def _as_float(images: torch.Tensor) -> torch.Tensor:
    return to_float(images) if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def predict(model: EvalClassifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Images float [N, C, H, W] in [-1, 1] (or uint8, converted) -> int64 class predictions [N]."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds = [model(_as_float(images[i:i + batch_size].to(device))).argmax(1)
             for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    if not preds:
        return torch.empty(0, dtype=torch.int64, device=device)
    return torch.cat(preds)


def accuracy(model: EvalClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on images [N, C, H, W] (float in [-1, 1] or uint8) with labels [N]."""
    preds = predict(model, images, batch_size)
    return float((preds == labels.to(preds.device)).float().mean())


def classifier_caveat(real_accuracy: float, num_classes: int, held_out: bool) -> str | None:
    """Why scores from this evaluation classifier may mean little, or None when they can be trusted as far as
    its real-image accuracy tells: it was measured on its own training images (no held-out split), or it is
    less than halfway from chance to perfect on held-out ones."""
    chance = 1.0 / num_classes
    if not held_out:
        return (f"the dataset has no held-out split, so the evaluation classifier was scored on its own training "
                f"images ({real_accuracy:.4f}), which says little about how well it judges samples; give the "
                f"dataset a test split (folder: train/ and test/ sub-folders; npz: test_images and test_labels)")
    if real_accuracy < chance + 0.5 * (1.0 - chance):
        return (f"the evaluation classifier reaches only {real_accuracy:.4f} on held-out real images (chance "
                f"{chance:.4f}): too weak for its scores of samples (conditional accuracy, acc, classifier FID) to "
                f"mean much; use more images per class, or the Inception backbone")
    return None


@torch.no_grad()
def conditional_accuracy(generator_fn: Callable[[torch.Tensor], torch.Tensor], model: EvalClassifier,
                         num_classes: int, num_samples: int, batch_size: int = 500,
                         device: torch.device | str = "cpu", seed: int = 0) -> float:
    """Fraction of generated samples that ``model`` classifies as the class they were generated for.

    ``generator_fn(y)`` maps int64 labels [B] to float images [B, C, H, W] in [-1, 1]. Labels cycle
    over the classes (``num_samples`` rounded up to a multiple of ``num_classes``, so every class is
    equally represented). Samples are quantised to uint8 first so scores match saved images. ``seed``
    seeds the global RNG (restored afterwards) for generators that draw from it.
    """
    total = -(-num_samples // num_classes) * num_classes
    labels = torch.arange(total, device=device) % num_classes
    correct = 0
    dev = torch.device(device)
    # Fork the RNG of the device the generator draws on too, so the caller's stream is left untouched.
    forked = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed)
        for start in range(0, total, batch_size):
            y = labels[start:start + batch_size]
            preds = predict(model, to_uint8(generator_fn(y)), batch_size)
            correct += int((preds == y.to(preds.device)).sum())
    return correct / max(total, 1)

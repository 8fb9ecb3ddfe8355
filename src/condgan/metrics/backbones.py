"""Feature backbones for FID / KID / PRDC / IS: the FID Inception, the per-dataset evaluation classifier, and
(:mod:`.ssl_backbones`) DINOv2 and SwAV.

A backbone maps uint8 images to (features, logits), batched, on its device, under ``no_grad``. Its
``descriptor`` is recorded with every score, and its ``cache_key`` names cached reference statistics:
it changes whenever the network's weights or input pipeline change.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

import torch
from tqdm import tqdm

from ..data import ImageDataset, to_float
from .classifier import ARCH_VERSION, EvalClassifier, load_or_train_classifier
from .errors import EvalError
from .inception_weights import find_inception_weights, load_inception
from .resize import resize_function


def _state_hash(module: torch.nn.Module) -> str:
    """First 12 hex digits of sha1 over a module's state dict bytes (names, shapes, values)."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Plain fp32 convolutions and matmuls on CUDA (TF32 would shift features by ~1e-3 relative)."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


class Backbone(ABC):
    """uint8 images [B, C, H, W] -> (features float32 [B, F], logits float32 [B, K])."""

    name: str
    batch_size: int = 250
    has_logits: bool = True  # False: the logits are [B, 0] (no classifier head: DINOv2, SwAV)

    @abstractmethod
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch; ``images`` on any device (moved to the backbone's)."""

    @property
    @abstractmethod
    def descriptor(self) -> dict:
        """What produced the scores, recorded beside them."""

    @property
    @abstractmethod
    def cache_key(self) -> str:
        """A file-name-safe key that changes with the weights and the input pipeline."""

    @torch.no_grad()
    def extract(self, images: torch.Tensor | Iterable[torch.Tensor], progress: bool = False,
                desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
        """All of uint8 ``images`` [N, C, H, W] (a tensor, or an iterable of batches) -> ([N, F], [N, K])."""
        if isinstance(images, torch.Tensor):
            total, data = images.shape[0], images
            batches: Iterable[torch.Tensor] = (data[i:i + self.batch_size] for i in range(0, total, self.batch_size))
        else:
            total, batches = None, images
        feats, logits = [], []
        with tqdm(total=total, disable=not progress, desc=desc, unit="img", leave=False) as bar:
            for batch in batches:
                f, lg = self(batch)
                feats.append(f)
                logits.append(lg)
                bar.update(batch.shape[0])
        if not feats:
            raise EvalError("no images to extract features from")
        return torch.cat(feats), torch.cat(logits)


class InceptionBackbone(Backbone):
    """The FID Inception: 2048-d pool features, and 1008 logits (with or without the fc bias)."""

    name = "inception"

    def __init__(self, device: torch.device | str = "cpu", resize: str = "bilinear",
                 weights: str | os.PathLike | None = None, allow_download: bool = True,
                 logits_bias: bool = False, batch_size: int = 100) -> None:
        self._to_input = resize_function(resize)  # checked before the (slower) weights lookup
        self.device = torch.device(device)
        self.resize, self.logits_bias, self.batch_size = resize, logits_bias, batch_size
        self.weights_path = find_inception_weights(weights, allow_download)
        self.model = load_inception(self.weights_path, self.device, allow_download=False)
        self._hash = _state_hash(self.model)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._to_input(images.to(self.device))
        with no_tf32():
            pool = self.model.features(x)
            logits = self.model.fc(pool) if self.logits_bias else self.model.logits_without_bias(pool)
        return pool.float(), logits.float()

    @property
    def descriptor(self) -> dict:
        return {"name": self.name, "network": "pytorch-fid TF Inception-v3 (2015-12-05)",
                "weights": self.weights_path.name, "weights_hash": self._hash, "feature_dim": 2048,
                "resize": self.resize, "input": "uint8 (PNG-quantised) -> 299x299 -> [-1, 1]",
                "precision": "fp32 (no TF32)",
                "logits": "fc with bias" if self.logits_bias else "pool @ W, no bias (original TF IS code)"}

    @property
    def cache_key(self) -> str:
        return f"inception-{self._hash}-{self.resize}"


class ClassifierBackbone(Backbone):
    """The dataset's evaluation classifier: its penultimate features and its class logits."""

    name = "classifier"

    def __init__(self, train: ImageDataset, device: torch.device | str = "cpu", progress: bool = True,
                 batch_size: int = 500) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model: EvalClassifier = load_or_train_classifier(train, device=self.device, progress=progress)
        self.trained_on = f"{train.name}-{train.identity}"
        self._hash = _state_hash(self.model)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.features(to_float(images.to(self.device)))
        return feats, self.model.head(feats)

    @property
    def descriptor(self) -> dict:
        return {"name": self.name, "network": f"condgan EvalClassifier {ARCH_VERSION}",
                "trained_on": self.trained_on, "weights_hash": self._hash,
                "feature_dim": self.model.feature_dim, "resize": "none",
                "input": "uint8 (PNG-quantised) at the dataset resolution -> [-1, 1]"}

    @property
    def cache_key(self) -> str:
        return f"classifier-{ARCH_VERSION}-{self._hash}"


BACKBONES = ("inception", "classifier", "dinov2", "swav")
DEFAULT_RESIZE = {"inception": "bilinear", "classifier": "none", "dinov2": "pil", "swav": "bilinear"}


def build_backbone(name: str, train: ImageDataset, device: torch.device | str = "cpu", *,
                   resize: str | None = None, weights: str | os.PathLike | None = None,
                   allow_download: bool = True, progress: bool = True) -> Backbone:
    """The backbone called ``name`` (one of :data:`BACKBONES`) for a dataset whose train split is ``train``;
    ``resize`` None: the backbone's default (:data:`DEFAULT_RESIZE`); ``weights``: its file (None: looked up)."""
    from .ssl_backbones import DINOv2Backbone, SwAVBackbone  # they build on Backbone, defined here

    if name == "inception":
        return InceptionBackbone(device, resize or DEFAULT_RESIZE[name], weights, allow_download)
    if name == "classifier":
        if resize not in (None, "none"):
            raise EvalError(f"the classifier backbone reads images at the dataset's size: no resize ('{resize}')")
        return ClassifierBackbone(train, device, progress)
    if name in ("dinov2", "swav"):
        kind = DINOv2Backbone if name == "dinov2" else SwAVBackbone
        return kind(device, resize, weights, allow_download)
    raise EvalError(f"unknown backbone '{name}'; choose one of {', '.join(BACKBONES)}")

"""What an evaluation computes and how: the request recorded with every score, and what ``auto`` means.

A request names one or more backbones (``"inception,dinov2"``): the samples are generated (or read) once and every
backbone extracts its own features, so FID and FD_DINOv2 come from the same images. The first backbone listed is
the primary: its values are the record's ``metrics`` (what picks ``best.pt``, what tables show); every backbone's
values are also under ``by_backbone`` when there are several.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config import Config
from ..data import ImageDataset
from .backbones import BACKBONES, DEFAULT_RESIZE
from .errors import EvalError
from .kid import SUBSET_SIZE, SUBSETS
from .suite import check_metric_names, parse_metrics

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


def parse_pairs(text: str, what: str) -> tuple[str | None, dict[str, str]]:
    """``"clean,dinov2=torch"`` -> ("clean", {"dinov2": "torch"}): a bare value and BACKBONE=VALUE entries."""
    bare, pairs = None, {}
    for item in (s.strip() for s in text.split(",") if s.strip()):
        name, sep, value = item.partition("=")
        if not sep:
            if bare is not None:
                raise EvalError(f"{what}: give one bare value at most (it is the Inception's); got '{text}'")
            bare = item
            continue
        if name.strip() not in BACKBONES or name.strip() == "classifier" or not value.strip():
            raise EvalError(f"{what}: '{item}' is not BACKBONE=VALUE with a backbone among "
                            f"{', '.join(b for b in BACKBONES if b != 'classifier')}")
        pairs[name.strip()] = value.strip()
    return bare, pairs


@dataclass
class EvalRequest:
    """What to compute and how; every field is recorded with the scores."""
    metrics: list[str] = field(default_factory=lambda: [AUTO])  # [AUTO]: see auto_protocol
    backbone: str = AUTO  # one backbone, or a comma list (the first is the primary)
    num_samples: int = 10000
    ref_split: str = "test"
    resize: str = "bilinear"  # the Inception's resize, and/or BACKBONE=METHOD entries (dinov2=torch)
    batch_size: int = 250
    seed: int = 0
    is_splits: int = 10
    prdc_k: int = 5
    kid_subsets: int = SUBSETS
    kid_subset_size: int = SUBSET_SIZE
    inception_weights: str | None = None
    weights: dict[str, str] = field(default_factory=dict)  # backbone -> weights file (None: looked up)
    allow_download: bool = True

    @property
    def backbones(self) -> list[str]:
        """The backbones, primary first (``auto`` unresolved)."""
        return [b.strip() for b in self.backbone.split(",") if b.strip()]

    def resize_of(self, backbone: str) -> str | None:
        """The resize ``backbone`` reads with (None: its default)."""
        bare, pairs = parse_pairs(self.resize, "resize")
        return pairs.get(backbone, bare if backbone == "inception" else None)

    def weights_of(self, backbone: str) -> str | None:
        return self.inception_weights if backbone == "inception" and self.inception_weights else \
            self.weights.get(backbone)

    def check(self) -> None:
        if self.metrics != [AUTO]:
            check_metric_names(self.metrics)
        names = self.backbones
        bad = next((b for b in names if b not in (AUTO, *BACKBONES)), None)
        if bad is not None or not names or (AUTO in names and len(names) > 1) or len(set(names)) < len(names):
            raise EvalError(f"backbone must be auto, or one or more (comma list, no repeats) of "
                            f"{', '.join(BACKBONES)}; got '{self.backbone}'")
        _, pairs = parse_pairs(self.resize, "resize")
        for name in [*pairs, *self.weights]:
            if name not in names:
                raise EvalError(f"a resize or weights file is given for the {name} backbone, which is not among "
                                f"the backbones asked for ({self.backbone}); add it to --backbone")
        if self.ref_split not in ("train", "test"):
            raise EvalError(f"reference split must be train or test, got '{self.ref_split}'")
        if self.num_samples < 2 or self.batch_size < 1:
            raise EvalError(f"need num_samples >= 2 and batch_size >= 1, got {self.num_samples}, {self.batch_size}")
        if "is" in self.metrics and not 1 <= self.is_splits <= self.num_samples:
            raise EvalError(f"Inception Score splits must be in [1, num_samples={self.num_samples}]; "
                            f"got {self.is_splits}")
        if self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise EvalError(f"KID needs at least 1 subset of at least 2 images; got {self.kid_subsets} subsets of "
                            f"{self.kid_subset_size}")


def request_from_config(cfg: Config) -> EvalRequest:
    """The periodic-evaluation request described by ``cfg.eval`` (``eval.resize`` is the Inception's)."""
    e = cfg.eval
    return EvalRequest(metrics=parse_metrics(e.metrics), backbone=e.backbone, num_samples=e.num_samples,
                       ref_split=e.ref, resize=e.resize, seed=cfg.train.seed)


def resize_choices() -> str:
    """Every backbone's resize methods, for help texts: ``dinov2: pil (default), torch, clean; ...``."""
    from .preprocess import RESIZES
    from .resize import RESIZE_METHODS
    tables = {"inception": list(RESIZE_METHODS), **{b: list(t) for b, t in RESIZES.items()}}
    return "; ".join(f"{b}: " + ", ".join(m + (" (default)" if m == DEFAULT_RESIZE[b] else "") for m in methods)
                     for b, methods in tables.items())

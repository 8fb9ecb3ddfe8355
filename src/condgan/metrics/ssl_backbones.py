"""The self-supervised feature spaces researchers report beside Inception: DINOv2 ViT-L/14 and SwAV ResNet-50.

FD_DINOv2 (Stein et al. 2023; dgm-eval, EDM2) reads DINOv2's class token after its final LayerNorm (1024-d) from
images resized to 224 px (:mod:`.preprocess`); StudioGAN's SwAV FD reads the 2048-d pooled features of SwAV's
ResNet-50 the same way. Both networks are built here in plain torch (:mod:`.vit`, :mod:`.resnet50`) and load the
official files, found offline first (:mod:`.weights`); none publishes a hash, so the file's sha256 is recorded
beside every score and in the reference-statistics cache key.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..train.checkpoint import CheckpointError, load_module_state
from .backbones import DEFAULT_RESIZE, Backbone, no_tf32
from .errors import EvalError
from .preprocess import imagenet_input, resize_for
from .resnet50 import ResNet50Trunk
from .vit import VIT_SPECS, DinoViT, ViTSpec, spec_of_state
from .weights import WeightsFile, file_sha256, find_weights, foreign, read_state

DINOV2_WEIGHTS = WeightsFile(
    "dinov2_vitl14_pretrain.pth", "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
    "--weights dinov2=", "CONDGAN_DINOV2_WEIGHTS", "DINOv2 ViT-L/14")
SWAV_WEIGHTS = WeightsFile(
    "swav_800ep_pretrain.pth.tar", "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar",
    "--weights swav=", "CONDGAN_SWAV_WEIGHTS", "SwAV ResNet-50")
INPUT_SIZE = 224


class ImageNetBackbone(Backbone):
    """A network reading ImageNet-normalised 224 px images: uint8 [B, C, H, W] -> (features [B, F], no logits)."""

    weights_spec: WeightsFile
    has_logits = False

    def __init__(self, device: torch.device | str = "cpu", resize: str | None = None,
                 weights: str | os.PathLike | None = None, allow_download: bool = True, batch_size: int = 64,
                 dtype: torch.dtype = torch.float32) -> None:
        self.resize = resize or DEFAULT_RESIZE[self.name]
        self._resize = resize_for(self.name, self.resize)  # checked before the (slower) weights lookup
        self.device, self.batch_size, self.dtype = torch.device(device), batch_size, dtype
        spec = self.weights_spec
        built: list[nn.Module] = []  # a downloaded file is built once, to check it before it is kept
        self.weights_path = find_weights(spec, weights, allow_download,
                                         check=lambda p: built.append(self._build(p, weights)))
        model = built[0] if built else self._build(self.weights_path, weights)
        self.model = model.to(self.device, dtype).eval().requires_grad_(False)
        self.sha256 = file_sha256(self.weights_path)

    def _build(self, found: Path, named: str | os.PathLike | None) -> nn.Module:
        """The network holding the weights in ``found``; a one-line error for a file that does not fit."""
        spec = self.weights_spec
        model, state = self._network(read_state(spec, found, named), found, named)
        try:
            load_module_state(model, state, spec.what, found)
        except CheckpointError as err:
            raise foreign(spec, found, named, str(err).split(": ", 1)[-1]) from None
        return model

    def _network(self, state: dict, found: Path, named: str | os.PathLike | None) -> tuple[nn.Module, dict]:
        """(an untrained network of the file's architecture, the state to load into it)."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = imagenet_input(images.to(self.device), self._resize, INPUT_SIZE, self.name).to(self.dtype)
        with no_tf32():
            feats = self.model(x)
        if not bool(torch.isfinite(feats).all()):
            raise EvalError(f"the {self.name} backbone's features hold NaN or infinity: its weights "
                            f"{self.weights_path} are not the published ones (or are damaged)")
        out = torch.float64 if self.dtype == torch.float64 else torch.float32
        return feats.to(out), feats.new_zeros(feats.shape[0], 0, dtype=out)

    @property
    def descriptor(self) -> dict:
        return {"name": self.name, "network": self.network, "weights": self.weights_path.name,
                "weights_sha256": self.sha256, "feature_dim": self.feature_dim, "resize": self.resize,
                "input": f"uint8 (PNG-quantised) -> {self._resize.describes} to {INPUT_SIZE}x{INPUT_SIZE} "
                         f"-> /255, ImageNet mean/std", "precision": f"{str(self.dtype)[6:]} (no TF32)"}

    @property
    def cache_key(self) -> str:
        return f"{self.name}-{self.sha256[:12]}-{self.resize}"


class DINOv2Backbone(ImageNetBackbone):
    """FD_DINOv2's feature: DINOv2 ViT-L/14's class token after the final LayerNorm, 1024-d."""

    name = "dinov2"
    weights_spec = DINOV2_WEIGHTS

    def __init__(self, *args, spec: ViTSpec | None = None, **kwargs) -> None:
        self.spec = spec = spec or VIT_SPECS["ViT-L/14"]  # FD_DINOv2 is ViT-L/14; tests use tiny sizes
        super().__init__(*args, **kwargs)
        self.network = f"DINOv2 {spec.name} (facebookresearch/dinov2, no registers), CLS token after the final norm"
        self.feature_dim = spec.dim

    def _network(self, state: dict, found: Path, named: str | os.PathLike | None) -> tuple[nn.Module, dict]:
        held = spec_of_state(state)
        if held is not None and held != self.spec:
            raise foreign(self.weights_spec, found, named,
                          f"it holds a DINOv2 {held.describe()}; FD_DINOv2 uses {self.spec.describe()}")
        return DinoViT(self.spec), state


class SwAVBackbone(ImageNetBackbone):
    """StudioGAN's SwAV feature: SwAV's ResNet-50 trunk, the 2048-d input of fc."""

    name = "swav"
    weights_spec = SWAV_WEIGHTS
    network = "SwAV ResNet-50 (facebookresearch/swav, torchvision layout), pooled input of fc"
    feature_dim = 2048

    def _network(self, state: dict, found: Path, named: str | os.PathLike | None) -> tuple[nn.Module, dict]:
        # The released file was saved from DDP ("module." prefixes) and also holds SwAV's projection head and
        # prototypes; the reference loads it non-strictly into torchvision's resnet50. Here every trunk tensor must
        # be there (a missing one would silently stay random there), and only the head's are left out.
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model = ResNet50Trunk()
        own = model.state_dict()
        trunk = {k: v for k, v in state.items() if k in own or not k.startswith(("projection_head.", "prototypes.",
                                                                                   "fc."))}
        for key, value in own.items():
            if key.endswith("num_batches_tracked"):
                trunk.setdefault(key, value)
        return model, trunk

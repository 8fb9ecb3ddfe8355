"""Input pipelines of the ImageNet-normalised backbones (DINOv2, SwAV): uint8 images -> the network's input.

Every pipeline resizes uint8 [N, 1|3, H, W] images (greyscale repeated to RGB, as ``PIL.Image.convert("RGB")``
does) to a square side in the 0-255 range, then scales as the reference code does: ``/ 255``, minus the ImageNet
mean, over the ImageNet std, in float32. The resize is what differs between the references, and what moves the
scores (clean-fid's lesson), so each is named, recorded with the scores and in the reference-statistics cache key:

DINOv2 (FD_DINOv2)
  ``pil``    dgm-eval's default: the uint8 RGB image resized by PIL's bicubic filter (which antialiases when it
             shrinks), result rounded to uint8; no crop (the image is squashed to a square).
  ``torch``  EDM2's: ``F.interpolate(bicubic, antialias=True)`` on the float image, no rounding, no clipping.
  ``clean``  dgm-eval's ``clean_resize``: each channel as a float32 PIL image resized bicubic, clipped to [0, 255].
SwAV (StudioGAN ``SwAV_torch``)
  ``bilinear``  StudioGAN's default ("legacy"): ``F.interpolate(bilinear, align_corners=False)``, clipped.
  ``clean``     each channel as a float32 PIL image resized bicubic (not clipped, as StudioGAN does it).
  ``friendly``  the same with PIL's bilinear filter.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import EvalError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def rgb_uint8(images: torch.Tensor, who: str) -> torch.Tensor:
    """uint8 [N, 1|3, H, W] -> [N, 3, H, W] (greyscale repeated); a one-line error for anything else."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise EvalError(f"{who} input must be uint8 [N, 1|3, H, W], got {images.dtype} {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def _pil_uint8(images: torch.Tensor, size: int, resample: int) -> torch.Tensor:
    """Each RGB image through PIL (uint8 in, uint8 out) -> float32 [N, 3, size, size]."""
    hwc = images.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample)) for im in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(images.device, torch.float32)


def _pil_float(images: torch.Tensor, size: int, resample: int, clip: bool) -> torch.Tensor:
    """Each channel as a float32 PIL image (2-D float32 arrays make mode F) -> float32 [N, 3, size, size], optionally clipped."""
    x = images.cpu().numpy().astype(np.float32)
    out = np.empty((x.shape[0], 3, size, size), dtype=np.float32)
    for i in range(x.shape[0]):
        for c in range(3):
            out[i, c] = np.asarray(Image.fromarray(x[i, c]).resize((size, size), resample=resample))
    if clip:
        np.clip(out, 0.0, 255.0, out=out)
    return torch.from_numpy(out).to(images.device)


def _torch_bicubic_antialias(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images.float(), size=(size, size), mode="bicubic", antialias=True)


def _torch_bilinear_clipped(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 255)


@dataclass(frozen=True)
class Resize:
    """A named resize: uint8 RGB [N, 3, H, W] -> float32 [N, 3, size, size] in the 0-255 range."""
    fn: Callable[[torch.Tensor, int], torch.Tensor]
    describes: str


RESIZES: dict[str, dict[str, Resize]] = {
    "dinov2": {
        "pil": Resize(lambda x, s: _pil_uint8(x, s, Image.BICUBIC), "PIL bicubic on the uint8 image (dgm-eval)"),
        "torch": Resize(_torch_bicubic_antialias, "torch bicubic, antialiased, on floats (EDM2)"),
        "clean": Resize(lambda x, s: _pil_float(x, s, Image.BICUBIC, clip=True),
                        "PIL bicubic per float channel, clipped (dgm-eval clean_resize)"),
    },
    "swav": {
        "bilinear": Resize(_torch_bilinear_clipped, "torch bilinear, no antialias, clipped (StudioGAN legacy)"),
        "clean": Resize(lambda x, s: _pil_float(x, s, Image.BICUBIC, clip=False),
                        "PIL bicubic per float channel (StudioGAN clean)"),
        "friendly": Resize(lambda x, s: _pil_float(x, s, Image.BILINEAR, clip=False),
                           "PIL bilinear per float channel (StudioGAN friendly)"),
    },
}


def resize_for(backbone: str, method: str) -> Resize:
    """The resize ``method`` of ``backbone``; a one-line error naming the choices."""
    table = RESIZES[backbone]
    if method not in table:
        raise EvalError(f"unknown resize '{method}' for the {backbone} backbone; choose one of {', '.join(table)}")
    return table[method]


def imagenet_input(images: torch.Tensor, resize: Resize, size: int = 224, who: str = "backbone") -> torch.Tensor:
    """uint8 [N, 1|3, H, W] -> float32 [N, 3, size, size]: resized, ``/ 255``, ImageNet mean and std."""
    x = resize.fn(rgb_uint8(images, who), size) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std

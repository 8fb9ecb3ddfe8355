"""Inception input pipelines: uint8 images -> float [N, 3, 299, 299] in [-1, 1], by a named method.

Both methods start from uint8 pixels, so generated images are scored exactly as if saved as PNG first.

* ``bilinear`` (pytorch-fid): ``F.interpolate`` of the [0, 1] image, bilinear, ``align_corners=False``,
  no antialiasing; runs on the images' device.
* ``clean`` (clean-fid's resize): each channel as a float32 PIL image (mode ``F``) resized with PIL's
  bicubic filter (which antialiases when shrinking), clipped to [0, 255]. Runs on the CPU (PIL).

Either way the result is scaled as pytorch-fid scales its input (``2 * x / 255 - 1``); clean-fid's own
TorchScript network normalises with ``(x - 128) / 128`` instead, a difference of < 0.4% in scale.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import EvalError
from .inception import INPUT_SIZE


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise EvalError(f"Inception input must be uint8 [N, 1|3, H, W], got {images.dtype} {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def resize_bilinear(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 [N, 3, size, size] in [-1, 1], as pytorch-fid resizes."""
    x = _three_channels(images).to(torch.float32) / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0


def resize_clean(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 [N, 3, size, size] in [-1, 1], per-channel PIL bicubic on floats."""
    x = _three_channels(images).cpu().numpy().astype(np.float32)
    out = np.empty((x.shape[0], 3, size, size), dtype=np.float32)
    for i in range(x.shape[0]):
        for c in range(3):
            plane = Image.fromarray(x[i, c])  # float32 2-D -> mode "F"
            plane = plane.resize((size, size), resample=Image.BICUBIC)
            out[i, c] = np.asarray(plane)
    np.clip(out, 0.0, 255.0, out=out)
    return torch.from_numpy(out).to(images.device).mul_(2.0 / 255.0).sub_(1.0)


RESIZE_METHODS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "bilinear": resize_bilinear,
    "clean": resize_clean,
}


def resize_function(method: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The pipeline ``method``: uint8 [N, C, H, W] -> the Inception's float input [N, 3, 299, 299]."""
    if method not in RESIZE_METHODS:
        raise EvalError(f"unknown resize method '{method}'; choose one of {', '.join(RESIZE_METHODS)}")
    return RESIZE_METHODS[method]

"""Sample grids: one row per class, one column per fixed latent, written as PNG with Pillow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from .data import to_uint8
from .files import PendingFile


def save_grid(images: torch.Tensor, nrow: int, path: Path, padding: int = 2) -> None:
    """Tile images [N, C, H, W] (C = 1 or 3, in [-1, 1]) into rows of ``nrow`` and save a PNG."""
    n, c, h, w = images.shape
    rows = -(-n // nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding, dtype=torch.uint8)
    pixels = to_uint8(images.detach().cpu())
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = pixels[i]
    array = grid.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if c == 1 else np.ascontiguousarray(array))
    path.parent.mkdir(parents=True, exist_ok=True)
    with PendingFile(path) as pending:  # atomic, and a planted link is never followed
        pending.commit(lambda f: image.save(f, format="PNG"))


def fixed_latents(z_dim: int, columns: int, seed: int) -> torch.Tensor:
    """The grid's latents [columns, z_dim], the same every call for a seed (own generator, global RNG untouched)."""
    return torch.randn(columns, z_dim, generator=torch.Generator().manual_seed(seed))


GRID_MAX_CLASSES = 10


def grid_classes(spec: str, num_classes: int) -> list[int]:
    """The classes of the grid's rows: ``spec`` a comma list of indices, or "" for every class when there are
    at most 10, else 10 spread evenly from the first to the last (a fixed subset: 1000 rows would be unreadable).
    A ValueError names an index outside [0, num_classes)."""
    if not spec:
        if num_classes <= GRID_MAX_CLASSES:
            return list(range(num_classes))
        return [round(i * (num_classes - 1) / (GRID_MAX_CLASSES - 1)) for i in range(GRID_MAX_CLASSES)]
    classes = [int(part) for part in spec.split(",")]
    outside = [c for c in classes if not 0 <= c < num_classes]
    if outside:
        raise ValueError(f"class {outside[0]} is not one of the dataset's {num_classes} classes (0..{num_classes - 1})")
    return classes


@torch.no_grad()
def class_grid(generator: nn.Module, z: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Images [len(classes) * len(z), C, H, W] in [-1, 1]: row r holds G(z_j, classes[r]) for every fixed latent
    z_j, so each row should show its class (write it with ``save_grid(images, len(z), path)``)."""
    device = next(generator.parameters()).device
    cols = z.shape[0]
    y = torch.tensor(classes, device=device).repeat_interleave(cols)
    return torch.cat([generator(z_chunk, y_chunk) for z_chunk, y_chunk in
                      zip(z.to(device).repeat(len(classes), 1).split(500), y.split(500))])

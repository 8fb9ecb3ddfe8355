"""Sample grids (one row per class, one column per fixed latent; the rows' class names at their start) written as
PNG with Pillow, and the interpolations a grid row can show: lerp / slerp between latents, and for StyleGAN2 a
lerp between two latents' ws or style mixing (:mod:`condgan.style_sampling`). Also what ``condgan sample`` needs
to write safely: :class:`PendingFolder` (a folder created whole, never over another) and the memory a request
needs, judged before it is allocated (:func:`available_memory`, :func:`forward_bytes`)."""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .data import to_uint8
from .files import PendingFile
from .style_sampling import StyleSampler, mixed_ws, synthesize


def save_grid(images: torch.Tensor, nrow: int, path: Path, padding: int = 2,
              row_labels: list[str] | None = None) -> None:
    """Tile images [N, C, H, W] (C = 1 or 3, in [-1, 1]) into rows of ``nrow`` and save a PNG; ``row_labels``
    (one per row) are written in a margin at the start of the rows."""
    image = grid_image(images, nrow, padding, row_labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    with PendingFile(path) as pending:  # atomic, and a planted link is never followed
        pending.commit(lambda f: image.save(f, format="PNG"))


def grid_image(images: torch.Tensor, nrow: int, padding: int = 2,
               row_labels: list[str] | None = None) -> Image.Image:
    """The picture :func:`save_grid` writes, as a Pillow image."""
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
    return _with_row_labels(image, row_labels, h, padding) if row_labels else image


def _with_row_labels(grid: Image.Image, labels: list[str], cell: int, padding: int) -> Image.Image:
    """``grid`` with a left margin holding ``labels[r]`` beside row r (Pillow's built-in font, white on black)."""
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(grid)
    width = max(measure.textbbox((0, 0), text, font=font)[2] for text in labels) + 2 * padding
    out = Image.new(grid.mode, (grid.width + width, grid.height))
    out.paste(grid, (width, 0))
    draw = ImageDraw.Draw(out)
    white = 255 if grid.mode == "L" else (255, 255, 255)
    for r, text in enumerate(labels):
        top, bottom = measure.textbbox((0, 0), text, font=font)[1::2]
        y = padding + r * (cell + padding) + (cell - (bottom - top)) // 2 - top
        draw.text((padding, y), text, fill=white, font=font)
    return out


def row_names(classes: list[int], names: tuple[str, ...]) -> list[str]:
    """A grid row's label per class: its name where the dataset gives one, else its index."""
    return [names[c] if names else str(c) for c in classes]


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b for each t [T] of a and b [D] -> [T, D]; exactly a at t = 0 and b at t = 1."""
    t = t[:, None].to(a.dtype)
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of a and b [D] (BigGAN / Shoemake): sin((1 - t) theta) / sin theta a +
    sin(t theta) / sin theta b, theta the angle between them -> [T, D]; exactly a at t = 0 and b at t = 1;
    lerp when a and b are parallel."""
    cos = (a @ b) / (a.norm() * b.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if float(theta.sin().abs()) < 1e-6:
        return lerp(a, b, t)
    t = t[:, None].to(a.dtype)
    weight_a, weight_b = torch.sin((1 - t) * theta) / torch.sin(theta), torch.sin(t * theta) / torch.sin(theta)
    return weight_a * a + weight_b * b


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
def class_grid(generator: nn.Module, z: torch.Tensor, classes: list[int],
               forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Images [len(classes) * len(z), C, H, W] in [-1, 1]: row r holds G(z_j, classes[r]) for every fixed latent
    z_j, so each row should show its class (write it with ``save_grid(images, len(z), path)``). ``forward``
    (z, y) -> images replaces ``generator(z, y)`` (e.g. a truncated StyleGAN2 sampler)."""
    device = next(generator.parameters()).device
    cols = z.shape[0]
    y = torch.tensor(classes, device=device).repeat_interleave(cols)
    return in_chunks(forward or generator, z.to(device).repeat(len(classes), 1), y)


CHUNK = 500  # images a picture's generator forward makes at a time


def in_chunks(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z: torch.Tensor, y: torch.Tensor,
              size: int = CHUNK) -> torch.Tensor:
    """forward(z, y) of latents z [N, ...] and labels y [N, ...], ``size`` samples at a time."""
    return torch.cat([forward(z_chunk, y_chunk) for z_chunk, y_chunk in zip(z.split(size), y.split(size))])


@torch.no_grad()
def w_walk(sampler: StyleSampler, z: torch.Tensor, classes: list[int], t: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's w-space interpolation: images [len(classes) * T, C, H, W], row r the lerp at each t [T] from
    latent z[2r]'s ws to z[2r + 1]'s (z [2 * rows, z_dim]; both of class classes[r], truncated as ``sampler``
    is), so a row starts and ends at the images of its two latents."""
    device = sampler.G.mapping.w_avg.device
    ws = sampler.ws(z.to(device), torch.tensor(classes, device=device).repeat_interleave(2))
    rows = [lerp(a.flatten(), b.flatten(), t.to(device)).view(-1, *a.shape) for a, b in zip(ws[0::2], ws[1::2])]
    return in_ws_chunks(sampler, torch.cat(rows))


@torch.no_grad()
def mix_rows(sampler: StyleSampler, z: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Style mixing: images [len(classes) * (L + 1), C, H, W], L = num_ws; column j of row r keeps latent
    z[2r]'s ws on layers 0..L-j-1 and takes z[2r + 1]'s from layer L - j on: pure z[2r] (j = 0) to pure
    z[2r + 1] (j = L), one layer more from the second latent per column."""
    device = sampler.G.mapping.w_avg.device
    ws = sampler.ws(z.to(device), torch.tensor(classes, device=device).repeat_interleave(2))
    num_ws = ws.shape[1]
    k = torch.arange(num_ws, -1, -1, device=device)  # the first layer taken from the second latent
    rows = [mixed_ws(a.expand(num_ws + 1, -1, -1), b.expand(num_ws + 1, -1, -1), k)
            for a, b in zip(ws[0::2], ws[1::2])]
    return in_ws_chunks(sampler, torch.cat(rows))


def in_ws_chunks(sampler: StyleSampler, ws: torch.Tensor, size: int = CHUNK) -> torch.Tensor:
    """Images of ws [N, num_ws, w_dim] with the sampler's noise mode, ``size`` at a time."""
    return torch.cat([synthesize(sampler.G, chunk, sampler.noise_mode) for chunk in ws.split(size)])


class PendingFolder:
    """A hidden folder made beside ``path`` now (an unwritable destination fails before any slow work), filled by
    the caller, and given the name ``path`` by :meth:`commit` only if nothing has that name then: another
    process's file, folder or link is never replaced. Leaving the block without a commit removes it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self._make()
        self._live = True

    def _make(self) -> Path:
        for _ in range(100):
            tmp = self.path.parent / f".{self.path.name}.{secrets.token_hex(4)}.tmp"
            try:
                os.mkdir(tmp)  # a plain mkdir's permissions (mkdtemp's 0700 would hide the samples from the group)
                return tmp
            except FileExistsError:
                continue
            except OSError as e:
                raise type(e)(e.errno, e.strerror, str(self.path)) from None
        raise FileExistsError(errno.EEXIST, "no free temporary name beside it", str(self.path))

    def commit(self) -> Path:
        """Give the filled folder the name ``path``; FileExistsError naming ``path`` when something has it."""
        taken = FileExistsError(errno.EEXIST, "File exists", str(self.path))
        if os.name != "nt":  # POSIX rename replaces an empty folder silently: claim the name exclusively first
            try:
                os.mkdir(self.path)
            except FileExistsError:
                raise taken from None
        try:
            os.rename(self.tmp, self.path)  # over the empty folder just made: atomic
        except OSError as e:
            if os.name != "nt":
                try:
                    os.rmdir(self.path)  # ours, if still empty (what another process put there stays)
                except OSError:
                    pass
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise taken from None
            raise type(e)(e.errno, e.strerror, str(self.path)) from None
        self._live = False
        return self.path

    def __enter__(self) -> "PendingFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live = False
            shutil.rmtree(self.tmp, ignore_errors=True)


def _kib(path: str, key: str) -> int:
    """The ``key: N kB`` (or ``key N``) value of a /proc or cgroup file, in bytes."""
    for line in Path(path).read_text().splitlines():
        name, _, rest = line.replace(":", " ", 1).partition(" ")
        if name == key:
            return int(rest.split()[0]) * (1024 if rest.strip().endswith("kB") else 1)
    raise KeyError(key)


def available_memory(device: torch.device | str) -> int | None:
    """Bytes still free for new tensors on ``device``: CUDA's free memory; for the CPU the kernel's MemAvailable
    plus free swap, within a cgroup v2 limit (its page cache counted as free); None where unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        free = _kib("/proc/meminfo", "MemAvailable") + _kib("/proc/meminfo", "SwapFree")
    except (OSError, KeyError, ValueError, IndexError):
        return None
    try:  # a container's limit, which MemAvailable does not see
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text()) - _kib("/sys/fs/cgroup/memory.stat", "file")
            free = min(free, int(limit) - used)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    return max(free, 0)


def size_text(size: float) -> str:
    """Bytes as MiB below a GiB, else GiB."""
    return f"{size / 2**20:.1f} MiB" if size < 2**30 else f"{size / 2**30:,.1f} GiB"


class _LiveBytes(TorchDispatchMode):
    """The bytes of the tensors the ops run under it create, while they live, and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0

    def _free(self, size: int) -> None:
        self.live -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's protocol)
        out = func(*args, **(kwargs or {}))
        given = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in given:  # new, not a view
                size = t.untyped_storage().nbytes()
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, size)
        return out


@torch.no_grad()
def forward_bytes(G: nn.Module, z_dim: int) -> int:
    """Bytes per sample that the tensors of a forward of ``G`` take at their peak (weights aside), from forwards
    of 2 and 4 samples (the difference leaves out what does not grow with the batch). Kernels' own workspaces
    and the allocator's slack are not seen: CPU convolutions take about twice as much again. The random
    streams are left as they were."""
    device = next(G.parameters()).device
    peaks = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for n in (2, 4):
            z, y = torch.zeros(n, z_dim, device=device), torch.zeros(n, dtype=torch.int64, device=device)
            with _LiveBytes() as tracked:
                G(z, y)
            peaks.append(tracked.peak)
    return max(peaks[1] - peaks[0], 0) // 2

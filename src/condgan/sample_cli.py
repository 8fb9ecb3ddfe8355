"""``condgan sample RUN_OR_CHECKPOINT --out DIR``: G_ema's samples as class folders of PNGs or one .npz; with
``--grid`` or ``--interpolate`` one labelled PNG picture instead.

Sample i has class ``classes[i mod K]`` and the i-th latent of the ``--seed`` stream, drawn in ``--batch-size``
batches: with every class and the same seed and batch size these are the very images ``condgan eval --num N``
scores, so an external FID tool run on the folders sees what condgan measured. The folder (or file) is written
under a temporary name and renamed when complete; an existing one is never overwritten.
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .files import PendingFile
from .generator import GeneratorInfo, load_generator, standing_statistics
from .metrics.errors import EvalError
from .metrics.generate import generated_batches, truncated_normal
from .sample import class_grid, grid_classes, lerp, row_names, save_grid, slerp

FORMATS = ("png", "npz")
INTERPOLATIONS = ("latent", "class")


def parse_classes(text: str | None, num_classes: int) -> list[int]:
    """``--classes`` ("3,0,7"; None: every class) as distinct indices in [0, num_classes)."""
    if text is None:
        return list(range(num_classes))
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise EvalError(f"--classes must be a comma list of distinct class indices; got {text!r}")
    try:
        return grid_classes(",".join(parts), num_classes)  # the training grid's parser checks the range
    except ValueError as e:
        raise EvalError(f"--classes: {e}") from None


def class_folder(index: int, names: tuple[str, ...]) -> str:
    """A class's folder name: its index, then its name where the checkpoint has one (made file-name safe)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", names[index]).strip("._") if names else ""
    return f"{index:04d}" + (f"_{name}" if name else "")


def draw(G: torch.nn.Module, info: GeneratorInfo, classes: list[int], per_class: int, seed: int, batch_size: int,
         progress: bool, truncation: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W, C] and int64 labels [N], N = per_class x len(classes), sample i of class
    classes[i mod len(classes)]; latents truncated at ``truncation`` if given."""
    device = next(G.parameters()).device
    labels = torch.tensor(classes, device=device).repeat(per_class)
    images, got = [], []
    with tqdm(total=labels.shape[0], disable=not progress, desc="sample", unit="img") as bar:
        for x, y in generated_batches(G, info.z_dim, labels, batch_size, seed, truncation):
            images.append(x.permute(0, 2, 3, 1).cpu().numpy())
            got.append(y.cpu().numpy())
            bar.update(y.shape[0])
    return np.concatenate(images), np.concatenate(got).astype(np.int64)


def write_folders(out: Path, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> int:
    """PNGs in one folder per class under ``out`` (written under a temporary name, then renamed)."""
    partial = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    counts: dict[int, int] = {}
    try:  # an error or Ctrl-C mid-way leaves no half-written folder behind
        for image, label in zip(images, labels.tolist()):
            folder = partial / class_folder(label, names)
            folder.mkdir(parents=True, exist_ok=True)
            k = counts[label] = counts.get(label, -1) + 1
            Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(folder / f"{k:06d}.png")
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return len(labels)


def write_npz(out: Path, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> int:
    """One .npz in the layout ``data.name=npz`` reads: images uint8 [N, H, W, C], labels, class_names."""
    extra = {"class_names": np.array(names)} if names else {}
    with PendingFile(out) as pending:
        pending.commit(lambda f: np.savez(f, images=images, labels=labels, **extra))
    return len(labels)


@torch.no_grad()
def picture(G: torch.nn.Module, info: GeneratorInfo, args: argparse.Namespace) -> tuple[torch.Tensor, int, list[str]]:
    """(images [R * K, C, H, W] in [-1, 1], K per row, R row labels) of ``--grid`` or ``--interpolate``.

    grid: row r is class r with the same ``--per-class`` latents in every row. latent: row r walks class r from
    one latent to another in ``--steps`` (lerp, or slerp with ``--slerp``). class: row r keeps one latent and
    walks the class weights from the first ``--classes`` class to the second; ``--per-class`` rows.
    """
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(args.seed)
    draw_z = (lambda n: torch.randn(n, info.z_dim, generator=gen) if args.truncation is None
              else truncated_normal((n, info.z_dim), args.truncation, gen))
    t = torch.linspace(0.0, 1.0, args.steps)
    if args.interpolate == "class":
        classes = parse_classes(args.classes, info.num_classes)
        if len(classes) != 2:
            raise EvalError(f"--interpolate class walks from one class to another: give --classes A,B; got {classes}")
        eye = torch.eye(info.num_classes)
        weights = lerp(eye[classes[0]], eye[classes[1]], t)  # [steps, C]
        z = draw_z(args.per_class).repeat_interleave(args.steps, dim=0)
        images = G(z.to(device), weights.repeat(args.per_class, 1).to(device))
        names = row_names(classes, info.class_names)
        return images, args.steps, [f"{names[0]}>{names[1]}"] * args.per_class
    classes = (grid_classes("", info.num_classes) if args.classes is None
               else parse_classes(args.classes, info.num_classes))
    if args.interpolate == "latent":
        path = slerp if args.slerp else lerp
        z = torch.cat([path(*draw_z(2), t) for _ in classes])
        y = torch.tensor(classes).repeat_interleave(args.steps)
        images = torch.cat([G(zc.to(device), yc.to(device)) for zc, yc in zip(z.split(500), y.split(500))])
        return images, args.steps, row_names(classes, info.class_names)
    return class_grid(G, draw_z(args.per_class), classes), args.per_class, row_names(classes, info.class_names)


def run_sample(args: argparse.Namespace) -> int:
    from .devices import parse_device

    out = Path(args.out)
    if args.per_class < 1 or args.batch_size < 1 or not 0 <= args.seed < 2**63:
        raise EvalError(f"--per-class and --batch-size must be at least 1 and --seed in [0, 2^63); got "
                        f"{args.per_class}, {args.batch_size}, {args.seed}")
    if args.truncation is not None and not args.truncation > 0:
        raise EvalError(f"--truncation must be a positive threshold; got {args.truncation}")
    pictured = args.grid or args.interpolate
    if pictured and (out.suffix != ".png" or args.format != "png"):
        raise EvalError(f"--out {out}: --grid and --interpolate write one PNG; name it *.png (and no --format)")
    if args.steps < 2:
        raise EvalError(f"--steps must be at least 2 (the two ends); got {args.steps}")
    check_standing_stats(args.standing_stats)
    if args.format == "npz" and out.suffix != ".npz":
        raise EvalError(f"--out {out}: --format npz writes one .npz file; name it *.npz")
    if out.exists() or out.is_symlink():
        raise EvalError(f"--out {out} exists; condgan sample never overwrites (choose a new path)")
    if not out.parent.is_dir():
        raise EvalError(f"--out {out}: the folder {out.parent} does not exist")
    G, info = load_generator(args.target, parse_device(args.device))
    if args.standing_stats:
        standing_statistics(G, info.z_dim, info.num_classes, args.standing_stats, info.config.train.batch_size)
    if pictured:
        images, per_row, labels = picture(G, info, args)
        if not bool(torch.isfinite(images).all()):
            raise EvalError("the generator's samples hold NaN or infinity; nothing written")
        save_grid(images.cpu(), per_row, out, row_labels=labels)
        print(f"wrote {out}: {len(labels)} rows of {per_row} from {info.checkpoint} (step {info.step})")
        return 0
    classes = parse_classes(args.classes, info.num_classes)
    images, labels = draw(G, info, classes, args.per_class, args.seed, args.batch_size, not args.no_progress,
                          args.truncation)
    write = write_npz if args.format == "npz" else write_folders
    count = write(out, images, labels, info.class_names)
    print(f"wrote {count} samples of {len(classes)} classes from {info.checkpoint} (step {info.step}) to {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sample", help="write G_ema's samples: a PNG folder per class, or one .npz")
    s.add_argument("target", help="run directory (its newest checkpoint) or checkpoint file")
    s.add_argument("--out", required=True, help="a new folder (png) or .npz file (npz)")
    s.add_argument("--per-class", type=int, default=10, help="samples per class (default 10)")
    s.add_argument("--classes", help="comma list of class indices (default: every class)")
    s.add_argument("--format", default="png", choices=FORMATS, help="png: one folder per class; npz: one file")
    s.add_argument("--seed", type=int, default=0, help="latent seed, as condgan eval's (default 0)")
    s.add_argument("--batch-size", type=int, default=250, help="images per generator batch (default 250)")
    s.add_argument("--grid", action="store_true",
                   help="one PNG: a row per class (--classes; default up to 10) of --per-class samples, named")
    s.add_argument("--interpolate", choices=INTERPOLATIONS,
                   help="one PNG: latent: a row per class from one latent to another; class: --per-class rows from "
                        "the first --classes class to the second, the latent fixed")
    s.add_argument("--steps", type=int, default=8, help="images per interpolation row (default 8)")
    s.add_argument("--slerp", action="store_true", help="--interpolate latent along the sphere (default: lerp)")
    s.add_argument("--truncation", type=float, metavar="T",
                   help="BigGAN's truncation: latents drawn from N(0, 1) with values beyond T drawn again")
    add_standing_stats_argument(s)
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=run_sample)


def check_standing_stats(batches: int) -> None:
    """``--standing-stats K``: 0 (off) or a number of batches, else a one-line EvalError."""
    if batches < 0:
        raise EvalError(f"--standing-stats must be 0 (off) or a number of batches; got {batches}")


def add_standing_stats_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--standing-stats", type=int, default=0, metavar="K",
                        help="BigGAN's standing statistics: re-estimate G's BatchNorm statistics over K batches "
                             "(of the run's train.batch_size) of random samples first (default 0: off)")

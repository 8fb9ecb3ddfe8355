"""``condgan sample RUN_OR_CHECKPOINT --out DIR``: G_ema's samples as class folders of PNGs or one .npz; with
``--grid`` or ``--interpolate`` one labelled PNG picture instead.

Sample i has class ``classes[i mod K]`` and the i-th latent of the ``--seed`` stream, drawn in ``--batch-size``
batches: with every class and the same seed and batch size these are the very images ``condgan eval --num N``
scores, so an external FID tool run on the folders sees what condgan measured. The folder (or file) is reserved
under a hidden name before the generator is loaded (an unwritable destination fails at once; an error or Ctrl-C
leaves nothing) and takes its name when complete only if nothing has it then: an existing output, or one that
another process writes meanwhile, is never replaced. A request that cannot fit in memory (the samples, the
picture, a batch, StyleGAN2's class centers) is a one-line error naming its flag before it is allocated.

For a StyleGAN2 checkpoint ``--truncation PSI`` is NVIDIA's truncation_psi in w space (w <- lerp(center, w, psi),
the latents as untruncated), with ``--truncation-cutoff K`` (layers 0..K-1 only), ``--truncation-center
global|class`` (w_avg, or the class's mean w over ``--center-samples`` latents) and ``--noise``; ``--interpolate
w`` and ``mix`` walk in w space (:mod:`condgan.style_sampling`). For the others ``--truncation T`` is BigGAN's
threshold on the latents, and the StyleGAN2 flags are one-line errors.
"""
from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..files import PendingFile
from ..generator import GeneratorInfo, load_generator, standing_statistics
from ..metrics.errors import EvalError
from ..metrics.generate import MIN_TRUNCATION, generated_batches, truncated_normal
from ..notices import progress_bar_wanted
from ..sample import (CHUNK, PendingFolder, available_memory, class_grid, grid_classes, grid_image, in_chunks,
                      forward_bytes, lerp, mix_rows, row_names, size_text, slerp, w_walk)
from ..style_sampling import CENTER_SAMPLES, CENTERS, NOISE_MODES, StyleSampler, is_stylegan2

FORMATS = ("png", "npz")
INTERPOLATIONS = ("latent", "class", "w", "mix")
STYLE_INTERPOLATIONS = ("w", "mix")  # StyleGAN2 only
DEFAULT_STEPS = 8


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
         progress: bool, truncation: float | None = None,
         sampler: StyleSampler | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W, C] and int64 labels [N], N = per_class x len(classes), sample i of class
    classes[i mod len(classes)]; latents truncated at ``truncation`` if given (BigGAN's threshold), or, for a
    StyleGAN2 ``sampler``, its truncation in w space on the same N(0, 1) latents as the plain samples."""
    device = next(G.parameters()).device
    labels = torch.tensor(classes, device=device).repeat(per_class)
    images, got = [], []
    with tqdm(total=labels.shape[0], disable=not progress, desc="sample", unit="img") as bar:
        for x, y in generated_batches(G, info.z_dim, labels, batch_size, seed, truncation, forward=sampler):
            images.append(x.permute(0, 2, 3, 1).cpu().numpy())
            got.append(y.cpu().numpy())
            bar.update(y.shape[0])
    return np.concatenate(images), np.concatenate(got).astype(np.int64)


def write_folders(pending: PendingFolder, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> int:
    """PNGs in one folder per class, written into the reserved folder, which then takes its name."""
    counts: dict[int, int] = {}
    for image, label in zip(images, labels.tolist()):
        folder = pending.tmp / class_folder(label, names)
        folder.mkdir(exist_ok=True)
        k = counts[label] = counts.get(label, -1) + 1
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(folder / f"{k:06d}.png")
    pending.commit()
    return len(labels)


def write_npz(pending: PendingFile, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> int:
    """One .npz in the layout ``data.name=npz`` reads: images uint8 [N, H, W, C], labels, class_names."""
    extra = {"class_names": np.array(names)} if names else {}
    pending.commit(lambda f: np.savez(f, images=images, labels=labels, **extra), replace=False)
    return len(labels)


@contextmanager
def claimed(out: Path) -> Iterator[None]:
    """The output takes its name only if nothing has it: what another process wrote meanwhile is kept."""
    try:
        yield
    except FileExistsError:
        raise EvalError(f"--out {out} appeared while sampling (another process wrote it): it is left as it is and "
                        f"these samples were not written; choose a new path") from None


_OOM = re.compile(r"can't allocate memory|out of memory", re.IGNORECASE)


@contextmanager
def out_of_memory_names(flags: str, advice: str) -> Iterator[None]:
    """An allocation that fails although the request passed :func:`check_memory` (its estimates are lower
    bounds) as a one-line error naming ``flags``."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)) and not _OOM.search(str(e)):
            raise
        tried = re.search(r"tried to allocate ([\d.]+) ?(bytes|[KMGT]iB)", str(e), re.IGNORECASE)
        size = ("" if tried is None else f" (an allocation of {size_text(float(tried[1]))} failed)"
                if tried[2] == "bytes" else f" (an allocation of {tried[1]} {tried[2]} failed)")
        raise EvalError(f"{flags}: out of memory while generating{size}: {advice}") from None


@torch.no_grad()
def picture(G: torch.nn.Module, info: GeneratorInfo, args: argparse.Namespace,
            sampler: StyleSampler | None = None) -> tuple[torch.Tensor, int, list[str]]:
    """(images [R * K, C, H, W] in [-1, 1], K per row, R row labels) of ``--grid`` or ``--interpolate``.

    grid: row r is class r with the same ``--per-class`` latents in every row. latent: row r walks class r from
    one latent to another in ``--steps`` (lerp, or slerp with ``--slerp``). class: row r keeps one latent and
    walks the class weights from the first ``--classes`` class to the second; ``--per-class`` rows. StyleGAN2
    (``sampler``: its truncation in w space and noise; latents from N(0, 1)): w walks row r from one latent's ws
    to another's; mix keeps the first latent's coarse layers and takes the second's from layer k on, k = num_ws
    (column 0) down to 0 (the last of num_ws + 1 columns).
    """
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(args.seed)
    threshold = None if sampler is not None else args.truncation
    draw_z = (lambda n: torch.randn(n, info.z_dim, generator=gen) if threshold is None
              else truncated_normal((n, info.z_dim), threshold, gen))
    forward = sampler or G
    steps = args.steps or DEFAULT_STEPS
    t = torch.linspace(0.0, 1.0, steps)
    if args.interpolate == "class":
        classes = parse_classes(args.classes, info.num_classes)
        if len(classes) != 2:
            raise EvalError(f"--interpolate class walks from one class to another: give --classes A,B; got {classes}")
        eye = torch.eye(info.num_classes)
        weights = lerp(eye[classes[0]], eye[classes[1]], t)  # [steps, C]
        z = draw_z(args.per_class).repeat_interleave(steps, dim=0)
        images = in_chunks(forward, z.to(device), weights.repeat(args.per_class, 1).to(device))
        names = row_names(classes, info.class_names)
        return images, steps, [f"{names[0]}>{names[1]}"] * args.per_class
    classes = (grid_classes("", info.num_classes) if args.classes is None
               else parse_classes(args.classes, info.num_classes))
    labels = row_names(classes, info.class_names)
    if args.interpolate in STYLE_INTERPOLATIONS:
        if sampler is None:
            raise EvalError(f"--interpolate {args.interpolate} works in StyleGAN2's w space; this generator is "
                            f"{info.arch}")
        z = torch.cat([draw_z(2) for _ in classes])
        if args.interpolate == "w":
            return w_walk(sampler, z, classes, t), steps, labels
        return mix_rows(sampler, z, classes), G.num_ws + 1, labels
    if args.interpolate == "latent":
        path = slerp if args.slerp else lerp
        z = torch.cat([path(*draw_z(2), t) for _ in classes])
        y = torch.tensor(classes).repeat_interleave(steps)
        return in_chunks(forward, z.to(device), y.to(device)), steps, labels
    return class_grid(G, draw_z(args.per_class), classes, forward=sampler), args.per_class, labels


def run_sample(args: argparse.Namespace) -> int:
    from ..devices import parse_device

    out = Path(args.out)
    pictured = bool(args.grid or args.interpolate)
    check_request_flags(args, out, pictured)
    folders = not pictured and args.format == "png"
    # reserved before the slow work: an unwritable destination fails now, and an error or Ctrl-C leaves nothing
    with PendingFolder(out) if folders else PendingFile(out) as pending:
        G, info = load_generator(args.target, parse_device(args.device))
        sampler = style_sampler(G, info, args, pictured)
        check_memory(G, info, args, pictured)
        if args.standing_stats:
            standing_statistics(G, info.z_dim, info.num_classes, args.standing_stats, info.config.train.batch_size)
        if pictured:
            return write_picture(G, info, args, sampler, pending)
        classes = parse_classes(args.classes, info.num_classes)
        with out_of_memory_names(f"--batch-size {args.batch_size}", "give a smaller --batch-size"):
            images, labels = draw(G, info, classes, args.per_class, args.seed, args.batch_size,
                                  progress_bar_wanted(args.no_progress), None if sampler else args.truncation, sampler)
        with claimed(out):
            write = write_folders if folders else write_npz
            count = write(pending, images, labels, info.class_names)
    print(f"wrote {count} samples of {len(classes)} classes from {info.checkpoint} (step {info.step}) to {out}")
    return 0


def write_picture(G: torch.nn.Module, info: GeneratorInfo, args: argparse.Namespace, sampler: StyleSampler | None,
                  pending: PendingFile) -> int:
    """The --grid / --interpolate PNG, into the reserved file."""
    device = next(G.parameters()).device
    with out_of_memory_names(picture_size(G, info, args)[2], "ask for a smaller picture"), \
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(args.seed)  # StyleGAN2's --noise random in a picture: seeded, the caller's RNG kept
        images, per_row, labels = picture(G, info, args, sampler)
    if not bool(torch.isfinite(images).all()):
        raise EvalError("the generator's samples hold NaN or infinity; nothing written")
    image = grid_image(images.cpu(), per_row, row_labels=labels)
    with claimed(pending.path):
        pending.commit(lambda f: image.save(f, format="PNG"), replace=False)
    mix = args.interpolate == "mix"
    columns = f"; column j (0..{G.num_ws}) has the second latent's ws on layers >= {G.num_ws}-j" if mix else ""
    print(f"wrote {pending.path}: {len(labels)} rows of {per_row} from {info.checkpoint} (step {info.step}){columns}")
    return 0


def check_request_flags(args: argparse.Namespace, out: Path, pictured: bool) -> None:
    """One-line errors for the flags and the output that need no checkpoint to judge."""
    if args.per_class < 1 or args.batch_size < 1 or not 0 <= args.seed < 2**63:
        raise EvalError(f"--per-class and --batch-size must be at least 1 and --seed in [0, 2^63); got "
                        f"{args.per_class}, {args.batch_size}, {args.seed}")
    check_truncation_flags(args)
    if pictured and (out.suffix != ".png" or args.format != "png"):
        raise EvalError(f"--out {out}: --grid and --interpolate write one PNG; name it *.png (and no --format)")
    if args.steps is not None and args.steps < 2:
        raise EvalError(f"--steps must be at least 2 (the two ends); got {args.steps}")
    check_standing_stats(args.standing_stats)
    if args.format == "npz" and out.suffix != ".npz":
        raise EvalError(f"--out {out}: --format npz writes one .npz file; name it *.npz")
    if out.exists() or out.is_symlink():
        raise EvalError(f"--out {out} exists; condgan sample never overwrites (choose a new path)")
    if not out.parent.is_dir():
        raise EvalError(f"--out {out}: the folder {out.parent} does not exist")


def picture_size(G: torch.nn.Module, info: GeneratorInfo, args: argparse.Namespace) -> tuple[int, int, str]:
    """(rows, columns, the flags that set them) of the --grid / --interpolate picture."""
    steps = args.steps or DEFAULT_STEPS
    if args.interpolate == "class":
        return args.per_class, steps, f"--per-class {args.per_class} and --steps {steps}"
    rows = len(grid_classes("", info.num_classes) if args.classes is None
               else parse_classes(args.classes, info.num_classes))
    if args.interpolate == "mix":
        return rows, G.num_ws + 1, "--classes"
    if args.interpolate:
        return rows, steps, f"--steps {steps}"
    return rows, args.per_class, f"--per-class {args.per_class}"


# A batch's tensors (forward_bytes) times this: kernels' workspaces, the allocator's slack and the images'
# conversion to bytes, with a margin (a whole `sample` batch peaked at about 3x on the CPU)
WORKSPACE = 4


def check_memory(G: torch.nn.Module, info: GeneratorInfo, args: argparse.Namespace, pictured: bool) -> None:
    """One-line errors for a request that cannot fit in memory, judged before any of it is allocated: the
    samples (kept in memory, then written) or the picture, a batch through G, StyleGAN2's class-center latents."""
    device = next(G.parameters()).device
    values = info.img_channels * info.resolution ** 2  # per image
    shape = f"{info.resolution}x{info.resolution}x{info.img_channels}"
    if pictured:
        rows, columns, flags = picture_size(G, info, args)
        count, batch, advice = rows * columns, min(rows * columns, CHUNK), "ask for a smaller picture"
        # float images on the device, their copy, bytes and the PNG's pixels on the CPU; the latents
        kept = count * (16 * values + 8 * info.z_dim)
        fits(kept, "cpu", flags, f"a picture of {rows} x {columns} images of {shape} needs", advice)
        fits(count * 8 * values, device, flags, f"a picture of {rows} x {columns} images needs", advice)
    else:
        count = args.per_class * len(parse_classes(args.classes, info.num_classes))
        batch, advice = min(args.batch_size, count), "ask for fewer samples"
        kept = count * (2 * values + 24)  # every sample stays in memory until written: uint8 batches, labels
        fits(kept, "cpu", f"--per-class {args.per_class}", f"{count:,} samples of {shape} need", advice)
        flags, advice = f"--batch-size {args.batch_size}", "give a smaller --batch-size"
    forward = int(WORKSPACE * batch * forward_bytes(G, info.z_dim))
    fits(forward + (kept if device.type == "cpu" else 0), device, flags,
         f"a batch of {batch} through the generator needs about", advice)
    if is_stylegan2(G) and args.truncation_center == "class":
        n = args.center_samples or CENTER_SAMPLES
        fits(2 * n * 4 * info.z_dim, "cpu", f"--center-samples {n}", "the class centers' latents need",
             "give fewer --center-samples")


def fits(size: int, device: torch.device | str, flags: str, what: str, advice: str) -> None:
    """A one-line EvalError naming ``flags`` when ``size`` bytes are more than ``device`` has free."""
    free = available_memory(device)
    if free is not None and size > free:
        where = "" if torch.device(device).type == "cpu" else f" on {device}"
        raise EvalError(f"{flags}: {what} {size_text(size)} of memory{where}, and {size_text(free)} is free: "
                        f"{advice}")


def check_truncation_flags(args: argparse.Namespace) -> None:
    """One-line errors for the truncation, noise and --steps flags that need no checkpoint to judge."""
    if args.truncation is not None and not math.isfinite(args.truncation):
        raise EvalError(f"--truncation must be a finite number; got {args.truncation}")
    where = (("--truncation-cutoff", args.truncation_cutoff), ("--truncation-center", args.truncation_center))
    for flag, value in where:
        if value is not None and args.truncation is None:
            raise EvalError(f"{flag} needs --truncation PSI (it says where to truncate, not how much)")
    if args.truncation_cutoff is not None and args.truncation_cutoff < 1:
        raise EvalError(f"--truncation-cutoff must be a layer count of at least 1 (layers 0..K-1 are truncated); "
                        f"got {args.truncation_cutoff}")
    if args.center_samples is not None and args.truncation_center != "class":
        raise EvalError("--center-samples sets the latents of each class center: it needs --truncation-center class")
    if args.center_samples is not None and args.center_samples < 1:
        raise EvalError(f"--center-samples must be at least 1; got {args.center_samples}")
    if args.interpolate == "mix" and args.steps is not None:
        raise EvalError("--steps: --interpolate mix has one column per layer count (num_ws + 1 of them); drop --steps")
    if args.interpolate in STYLE_INTERPOLATIONS and args.slerp:
        raise EvalError(f"--slerp is for --interpolate latent; --interpolate {args.interpolate} works in w space")


def style_sampler(G: torch.nn.Module, info: GeneratorInfo, args: argparse.Namespace,
                  pictured: bool) -> StyleSampler | None:
    """A StyleGAN2 checkpoint's sampler (--truncation as psi in w space, --truncation-cutoff / -center,
    --noise: default const for pictures, random for samples); None for the other architectures, after a
    one-line error for any StyleGAN2-only flag (and --truncation not a positive threshold)."""
    style_flags = (("--truncation-cutoff", args.truncation_cutoff), ("--truncation-center", args.truncation_center),
                   ("--center-samples", args.center_samples), ("--noise", args.noise),
                   (f"--interpolate {args.interpolate}", args.interpolate in STYLE_INTERPOLATIONS or None))
    if not is_stylegan2(G):
        given = [flag for flag, value in style_flags if value is not None]
        if given:
            raise EvalError(f"{given[0]} is for StyleGAN2 checkpoints (it works in w space); this one is {info.arch}")
        if args.truncation is not None and not args.truncation >= MIN_TRUNCATION:
            raise EvalError(f"--truncation must be a positive threshold of at least {MIN_TRUNCATION} (latent values "
                            f"beyond it are drawn again); got {args.truncation}")
        return None
    psi = 1.0 if args.truncation is None else args.truncation
    if not 0 <= psi <= 1:
        raise EvalError(f"--truncation is StyleGAN2's psi in w space, in [0, 1] (1: none, 0: the center); got {psi}")
    if args.truncation_cutoff is not None and args.truncation_cutoff > G.num_ws:
        raise EvalError(f"--truncation-cutoff {args.truncation_cutoff}: this generator has {G.num_ws} w layers "
                        f"(give 1..{G.num_ws})")
    if args.truncation_center == "class" and not G.conditional:
        raise EvalError("--truncation-center class: this generator is unconditional (it has no class centers)")
    noise = args.noise or ("const" if pictured else "random")
    return StyleSampler(G, psi, args.truncation_cutoff, args.truncation_center or "global", noise,
                        args.center_samples or CENTER_SAMPLES)


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
                        "the first --classes class to the second, the latent fixed; StyleGAN2 only: w: a row per "
                        "class from one latent's w to another's; mix: a row per class from latent A to B, column "
                        "j taking B's styles on layers num_ws-j.. (num_ws + 1 columns)")
    s.add_argument("--steps", type=int, default=None,
                   help=f"images per interpolation row (default {DEFAULT_STEPS}; not for mix)")
    s.add_argument("--slerp", action="store_true", help="--interpolate latent along the sphere (default: lerp)")
    s.add_argument("--truncation", type=float, metavar="T|PSI",
                   help="BigGAN's truncation: latents drawn from N(0, 1) with values beyond T drawn again; for "
                        "StyleGAN2, psi in [0, 1]: w <- lerp(center, w, psi) (the same latents as untruncated)")
    s.add_argument("--truncation-cutoff", type=int, metavar="K",
                   help="StyleGAN2: truncate only the w layers 0..K-1 (1 <= K <= num_ws; default all)")
    s.add_argument("--truncation-center", choices=CENTERS,
                   help="StyleGAN2: truncate toward the global mean w (w_avg, default) or the sample's class's mean w")
    s.add_argument("--center-samples", type=int, metavar="N",
                   help=f"StyleGAN2, --truncation-center class: latents (seed 0) whose mean w is a class's center "
                        f"(default {CENTER_SAMPLES})")
    s.add_argument("--noise", choices=NOISE_MODES,
                   help="StyleGAN2's per-pixel noise: random, const (each layer's fixed map) or none (default: "
                        "random for samples, as condgan eval; const for --grid / --interpolate)")
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

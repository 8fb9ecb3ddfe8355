"""condgan's DINOv2 / SwAV features, their FD, and KID against the reference code, on the same image files.

    python benchmarks/feature_refs.py --dgm-eval DIR --dinov2 DIR --studiogan DIR --swav DIR [--torch-fidelity [DIR]]
        [--images 48] [--f64-images 4] [--parts dinov2,swav,kid] [--quick] [--break bilinear|size]
    python benchmarks/feature_refs.py --dgm-eval DIR --dinov2 DIR --studiogan DIR --swav DIR --write-goldens PATH

Run it where torchvision imports (the references need it; condgan does not): the checkouts are imported as they
are, never copied, by benchmarks/feature_ref_code.py (the reference side). Only what they import and do not use is
stubbed (dgm-eval's package ``__init__`` files, which pull in every encoder; StudioGAN's timm / seaborn /
matplotlib / pkg_resources imports), ``torch.hub.load`` is pointed at the local checkouts (``source="local"``) and
the weight downloads return random weights instead.

Fabricated PNGs (32x32 RGB, some 48 wide x 40 high, two greyscale "L" files) are written to a temporary folder
in two sets, ``a`` and ``b``. Both sides read those files: dgm-eval through its own folder loader
(``get_dataloader`` -> ``get_representations``), StudioGAN on the files' RGB pixels through ``LoadEvalModel``,
condgan on the pixels PIL gives (greyscale files as one channel), one call per image size.

DINOv2: a random ViT-L/14 built by the dinov2 hub's own ``dinov2_vitl14`` (every tensor random, not its init),
saved as ``dinov2_vitl14_pretrain.pth``; dgm-eval's ``DINOv2Encoder`` (PIL bicubic, and ``clean_resize``) against
condgan's ``DINOv2Backbone`` ("pil", "clean"). SwAV: a random torchvision ResNet-50 saved like the official file
(``module.`` prefixes, projection head and prototypes); StudioGAN's ``SwAV_torch`` with post-resizers legacy /
clean / friendly against condgan's ``SwAVBackbone`` (bilinear / clean / friendly). Each row compares the
features (float32, then float64 on a few images, model and preprocessed input cast to double) and the FD of the
two sets: the reference's FD code on its features against condgan's ``frechet_distance`` on condgan's. A second
row per backbone passes the same (reference) features through both FD codes. KID: condgan's ``kid`` against
torch-fidelity's ``kid_features_to_metric`` on the same float64 features.

FD with fewer images than feature dimensions (48 images against 1024 / 2048 dimensions here; ViT-L/14 on a CPU
allows no more): both covariances are rank-deficient. condgan's FD is eigh-based; the references take scipy's
``sqrtm`` of the singular, non-symmetric product S1 S2, whose square roots of rounding-level eigenvalues put a
relative error of a few 1e-6 in their FD (measured: 2.5e-6 to 7.7e-6 at 24 images a set, growing with the count).
So each FD is also computed exactly in plain numpy (the singular values of the N1 x N2 cross matrix, neither
side's code), and an FD row passes when condgan's FD is within 1e-6 of that exact value on condgan's features and
on the reference's, and within 1e-6 plus the reference FD's own measured error of the reference FD. The "FD code"
rows put identical synthetic features with more samples than dimensions through both FD codes, where sqrtm is
accurate, and gate them at 1e-6 alone.

``--break bilinear`` swaps condgan's dinov2 "pil" resize for PIL bilinear; ``--break size`` makes condgan's
position-embedding resize ask ``interpolate`` for ``size=`` instead of ``scale_factor=``: the DINOv2 rows must
then FAIL and the script exit 1. ``--write-goldens PATH`` writes tests/data/feature_goldens.pt from the reference
code only (see ``feature_ref_code.write_goldens``); tests/test_feature_goldens.py checks condgan against it
without torchvision.
Exit 0 only when every row passes.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src"), str(Path(__file__).resolve().parent)]

from condgan.metrics import preprocess as cg_preprocess  # noqa: E402
from condgan.metrics import vit as cg_vit  # noqa: E402
from condgan.metrics.fid import feature_statistics, frechet_distance  # noqa: E402
from condgan.metrics.kid import kid as cg_kid  # noqa: E402
from condgan.metrics.ssl_backbones import DINOv2Backbone, SwAVBackbone  # noqa: E402
from feature_ref_code import (DINOV2_URL, SWAV_LINEAR_URL, SWAV_RESIZES, SWAV_URL, dgm_eval_encoder,  # noqa: E402
                              dgm_eval_reps, fabricate, hub_redirect, import_dgm_eval, import_studiogan,
                              import_torch_fidelity, per_shape, random_state, save_png, spread, studiogan_fd,
                              studiogan_features, studiogan_swav, swav_file_state, to_chw, write_goldens)

F32_TOL, F64_TOL, FD_REL, KID_REL = 1e-5, 1e-10, 1e-6, 1e-9

# ----------------------------------------------------------------------------------------------------------------
# Image files

@dataclass
class ImageSet:
    """PNG files of one set and their pixels as condgan reads them (greyscale files as [1, H, W])."""
    folder: Path
    files: list[Path]

    def condgan_pixels(self) -> list[torch.Tensor]:
        return [to_chw(np.asarray(Image.open(f))) for f in self.files]

    def rgb_pixels(self) -> list[torch.Tensor]:
        """As the references read a file: PIL ``convert("RGB")``."""
        return [to_chw(np.asarray(Image.open(f).convert("RGB"))) for f in self.files]


def write_sets(root: Path, n: int, n_f64: int, seed: int = 0) -> dict[str, ImageSet]:
    """Sets a and b (n // 2 each, b noisier and brighter), and f64: a few of those files, one per kind."""
    sets = {}
    half = n // 2
    for s, count in (("a", half), ("b", n - half)):
        folder = root / s
        folder.mkdir(parents=True)
        files = []
        for i in range(count):
            shape = (1 if i == 2 else 3, 40, 48) if i % 6 == 5 else (1 if i == 2 else 3, 32, 32)
            files.append(folder / f"{i:03d}.png")
            save_png(fabricate(shape, seed + (0 if s == "a" else 10_000) + i, noisy=s == "b"), files[-1])
        sets[s] = ImageSet(folder, files)
    pick = [sets["a"].files[i] for i in (0, 2, 5) if i < half] + [sets["b"].files[0]]
    folder = root / "f64"
    folder.mkdir()
    files = []
    for j, f in enumerate((pick * n_f64)[:n_f64]):
        files.append(folder / f"{j:03d}.png")
        shutil.copyfile(f, files[-1])
    sets["f64"] = ImageSet(folder, files)
    return sets


def condgan_features(backbone, images: list[torch.Tensor]) -> torch.Tensor:
    return per_shape(images, lambda x: backbone(x)[0])


# ----------------------------------------------------------------------------------------------------------------
# Rows

@dataclass
class Row:
    name: str
    feat_diff: float | None
    ours: float | None
    ref: float | None
    feat_tol: float | None
    value_tol: float | None
    seconds: float
    note: str = ""
    extra_ok: bool = True  # a further condition (condgan's FD against the exact value)

    @property
    def rel(self) -> float | None:
        if self.ours is None or self.ref is None:
            return None
        return abs(self.ours - self.ref) / max(abs(self.ref), 1e-300)

    @property
    def ok(self) -> bool:
        feats = self.feat_diff is None or (math.isfinite(self.feat_diff) and self.feat_diff <= self.feat_tol)
        value = self.rel is None or (math.isfinite(self.rel) and self.rel <= self.value_tol)
        return feats and value and self.extra_ok


def max_diff(a, b) -> float:
    a, b = torch.as_tensor(np.asarray(a), dtype=torch.float64), torch.as_tensor(np.asarray(b), dtype=torch.float64)
    if a.shape != b.shape:
        return math.inf
    return float((a - b).abs().max())


def our_fd(a, b) -> float:
    """condgan's FD: feature_statistics and the eigh-based frechet_distance."""
    return frechet_distance(*feature_statistics(torch.as_tensor(np.asarray(a))),
                            *feature_statistics(torch.as_tensor(np.asarray(b))))


def exact_fd(a, b) -> float:
    """FD in plain numpy without a D x D square root (neither side's code): with centred features A, B scaled by
    1/sqrt(n - 1), S1 S2 = A^T A B^T B has the nonzero eigenvalues of (A B^T)(A B^T)^T, so Tr (S1 S2)^(1/2) is the
    sum of the singular values of the N1 x N2 matrix A B^T."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ac, bc = (a - a.mean(0)) / np.sqrt(len(a) - 1), (b - b.mean(0)) / np.sqrt(len(b) - 1)
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + (ac * ac).sum() + (bc * bc).sum() - 2 * np.linalg.svd(ac @ bc.T, compute_uv=False).sum())


def fd_row(name: str, feat_diff: float, feat_tol: float, ours: dict, ref: dict, fd_ref: float, started: float,
           notes: list[str], note: str = "") -> Row:
    """A features + FD row. FD tolerance against the reference's FD: FD_REL, widened by that FD's own error
    against exact_fd on its features (scipy's sqrtm of a singular product when N < D). Also gated at FD_REL:
    condgan's FD against exact_fd on condgan's features, and against exact_fd on the reference's features."""
    fd_ours = our_fd(ours["a"], ours["b"])
    exact_ref, exact_ours = exact_fd(ref["a"], ref["b"]), exact_fd(ours["a"], ours["b"])
    ref_err, ours_err = abs(fd_ref - exact_ref) / abs(exact_ref), abs(fd_ours - exact_ours) / abs(exact_ours)
    same_feats = our_fd(ref["a"], ref["b"])
    notes.append(f"{name}: exact FD (numpy SVD) of the reference's features {exact_ref:.10g}, of condgan's "
                 f"{exact_ours:.10g}; reference FD err {ref_err:.1e}, condgan FD err {ours_err:.1e}; the reference's "
                 f"features through condgan's FD {same_feats:.10g} (rel diff to the reference FD "
                 f"{abs(same_feats - fd_ref) / abs(fd_ref):.1e})")
    tol = FD_REL + ref_err
    if ref_err > FD_REL / 10:
        note = (note + "; " if note else "") + f"FD tol {tol:.1e} = 1e-6 + ref sqrtm err"
    to_exact_ref = abs(fd_ours - exact_ref) / abs(exact_ref)
    return Row(name, feat_diff, fd_ours, fd_ref, feat_tol, tol, time.perf_counter() - started, note,
               extra_ok=ours_err <= FD_REL and to_exact_ref <= FD_REL)


def fd_code_row(label: str, dim: int, reference: Callable, seed: int) -> Row:
    """Both FD codes on the same synthetic features with more samples than dimensions (where scipy's sqrtm is
    accurate): anisotropic Gaussians (decaying spectrum), the second set scaled and shifted."""
    started = time.perf_counter()
    n = dim + 64
    gen = torch.Generator().manual_seed(seed)
    decay = torch.exp(-torch.arange(dim, dtype=torch.float64) / (dim / 4)).view(-1, 1)
    mix = torch.randn(dim, dim, generator=gen, dtype=torch.float64) * decay
    a = (torch.randn(n, dim, generator=gen, dtype=torch.float64) @ mix).numpy()
    b = (torch.randn(n, dim, generator=gen, dtype=torch.float64) @ mix * 1.05 + 0.02).numpy()
    ours, ref, exact = our_fd(a, b), float(reference(a, b)), exact_fd(a, b)
    return Row(f"{label} FD code ({n}/set, D={dim})", None, ours, ref, None, FD_REL, time.perf_counter() - started,
               f"exact err ours {abs(ours - exact) / exact:.1e}, ref {abs(ref - exact) / exact:.1e}")


def dinov2_rows(args, sets: dict[str, ImageSet], work: Path, rows: list[Row], notes: list[str]) -> None:
    dgm = import_dgm_eval(Path(args.dgm_eval))
    if not (Path(args.dinov2) / "hubconf.py").is_file():
        raise SystemExit(f"--dinov2 {args.dinov2}: not a dinov2 checkout (no hubconf.py)")
    t = time.perf_counter()
    weights = work / "dinov2_vitl14_pretrain.pth"
    model = torch.hub.load(str(args.dinov2), "dinov2_vitl14", source="local", pretrained=False)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    del model
    torch.save(random_state(shapes, args.seed), weights)
    print(f"random ViT-L/14 ({len(shapes)} tensors) written to {weights.name} in {time.perf_counter() - t:.0f} s",
          flush=True)
    hub = hub_redirect({"facebookresearch/dinov2": Path(args.dinov2)},
                       {DINOV2_URL: lambda: torch.load(weights, map_location="cpu", weights_only=True)})
    pixels = {s: sets[s].condgan_pixels() for s in ("a", "b", "f64")}
    with hub:
        for resize, clean in (("pil", False), ("clean", True)):
            t = time.perf_counter()
            encoder, transform = dgm_eval_encoder(dgm, clean, torch.float32)
            ref = {s: dgm_eval_reps(dgm, encoder, transform, sets[s].folder, args.batch) for s in "ab"}
            del encoder, transform
            ours_net = DINOv2Backbone(resize=resize, weights=weights, allow_download=False)
            ours = {s: condgan_features(ours_net, pixels[s]).numpy() for s in "ab"}
            del ours_net
            diff = max(max_diff(ours[s], ref[s]) for s in "ab")
            fd_ref = float(dgm.compute_FD_with_reps(ref["a"], ref["b"]))
            n = len(ref["a"]) + len(ref["b"])
            notes.append(f"dinov2 {resize} features: {spread(ref['a'])}")
            rows.append(fd_row(f"dinov2 {resize} fp32 ({n} img)", diff, F32_TOL, ours, ref, fd_ref, t, notes,
                               "dgm-eval clean_resize" if clean else "dgm-eval default"))
        rows.append(fd_code_row("dinov2", 1024, dgm.compute_FD_with_reps, args.seed + 5))
        for resize, clean in (("pil", False), ("clean", True)):
            t = time.perf_counter()
            encoder, transform = dgm_eval_encoder(dgm, clean, torch.float64)
            ref = dgm_eval_reps(dgm, encoder, transform, sets["f64"].folder, args.batch)
            del encoder, transform
            ours_net = DINOv2Backbone(resize=resize, weights=weights, allow_download=False, dtype=torch.float64)
            ours = condgan_features(ours_net, pixels["f64"])
            del ours_net
            diff = max_diff(ours, ref) if ours.dtype == torch.float64 else math.inf
            rows.append(Row(f"dinov2 {resize} fp64 ({len(ref)} img)", diff, None, None, F64_TOL, None,
                            time.perf_counter() - t, f"condgan dtype {str(ours.dtype)[6:]}"))


def swav_rows(args, sets: dict[str, ImageSet], work: Path, rows: list[Row], notes: list[str]) -> None:
    sg = import_studiogan(Path(args.studiogan))
    if not (Path(args.swav) / "hubconf.py").is_file():
        raise SystemExit(f"--swav {args.swav}: not a swav checkout (no hubconf.py)")
    from torchvision.models import resnet50
    shapes = {k: tuple(v.shape) for k, v in resnet50().state_dict().items()}
    trunk = random_state(shapes, args.seed + 1)
    weights = work / "swav_800ep_pretrain.pth.tar"
    torch.save(swav_file_state(trunk, args.seed + 1), weights)
    gen = torch.Generator().manual_seed(args.seed + 2)
    linear = {"state_dict": {"module.linear.weight": torch.randn(1000, 2048, generator=gen) * 0.02,
                             "module.linear.bias": torch.zeros(1000)}}

    def classifier(url, *_args, **_kwargs):
        if url != SWAV_LINEAR_URL:
            raise RuntimeError(f"unexpected download {url}")
        return linear

    sg.preparation.load_state_dict_from_url = classifier
    hub = hub_redirect({"facebookresearch/swav": Path(args.swav)},
                       {SWAV_URL: lambda: torch.load(weights, map_location="cpu", weights_only=True)})
    pixels = {s: (sets[s].rgb_pixels(), sets[s].condgan_pixels()) for s in ("a", "b", "f64")}
    with hub:
        for sg_name, name in SWAV_RESIZES.items():
            t = time.perf_counter()
            eval_model = studiogan_swav(sg, sg_name, torch.float32)
            loaded = eval_model.model.state_dict()  # it loads non-strictly: make sure every trunk tensor did load
            bad = [k for k, v in trunk.items() if not torch.equal(loaded[k], v)]
            if bad:
                raise SystemExit(f"the SwAV hub model did not load the random trunk ({bad[0]} differs)")
            ref = {s: studiogan_features(eval_model, pixels[s][0]).numpy() for s in "ab"}
            ours_net = SwAVBackbone(resize=name, weights=weights, allow_download=False)
            ours = {s: condgan_features(ours_net, pixels[s][1]).numpy() for s in "ab"}
            diff = max(max_diff(ours[s], ref[s]) for s in "ab")
            fd_ref = studiogan_fd(sg, ref["a"], ref["b"])
            n = len(ref["a"]) + len(ref["b"])
            notes.append(f"swav {name} features: {spread(ref['a'])}")
            rows.append(fd_row(f"swav {name} fp32 ({n} img)", diff, F32_TOL, ours, ref, fd_ref, t, notes,
                               f"StudioGAN {sg_name}"))
            t = time.perf_counter()
            eval_model = studiogan_swav(sg, sg_name, torch.float64)
            ref64 = studiogan_features(eval_model, pixels["f64"][0])
            ours_net = SwAVBackbone(resize=name, weights=weights, allow_download=False, dtype=torch.float64)
            ours64 = condgan_features(ours_net, pixels["f64"][1])
            diff = max_diff(ours64, ref64) if ours64.dtype == ref64.dtype == torch.float64 else math.inf
            rows.append(Row(f"swav {name} fp64 ({len(ref64)} img)", diff, None, None, F64_TOL, None,
                            time.perf_counter() - t, f"dtypes {str(ref64.dtype)[6:]}/{str(ours64.dtype)[6:]}"))
        rows.append(fd_code_row("swav", 2048, lambda a, b: studiogan_fd(sg, a, b), args.seed + 6))


def kid_rows(args, rows: list[Row], notes: list[str]) -> None:
    try:
        kid_features_to_metric = import_torch_fidelity(args.torch_fidelity)
    except ImportError as err:
        if args.torch_fidelity is None:
            notes.append(f"KID skipped: torch_fidelity does not import ({err})")
            return
        raise
    n = 300 if args.quick else 1200
    gen = torch.Generator().manual_seed(args.seed + 3)
    fake = torch.randn(n, 64, generator=gen, dtype=torch.float64)
    real = torch.randn(n - n // 12, 64, generator=gen, dtype=torch.float64) * 1.1 + 0.15
    cases = [("100 x 1000", {}, {}), ("50 x 100", {"subsets": 50, "subset_size": 100},
                                       {"kid_subsets": 50, "kid_subset_size": 100})]
    if args.quick:
        cases[0] = ("100 x 250", {"subset_size": 250}, {"kid_subset_size": 250})
    for label, ours_kw, ref_kw in cases:
        t = time.perf_counter()
        ours = cg_kid(fake, real, **ours_kw)
        ref = kid_features_to_metric(fake, real, verbose=False, **ref_kw)
        seconds = time.perf_counter() - t
        shape = f"{len(fake)}/{len(real)}x64"
        rows.append(Row(f"kid mean {label} ({shape})", None, ours["kid_mean"], ref["kernel_inception_distance_mean"],
                        None, KID_REL, seconds, f"subset size used {ours['kid_subset_size']}"))
        rows.append(Row(f"kid std {label}", None, ours["kid_std"], ref["kernel_inception_distance_std"], None,
                        KID_REL, 0.0))
        notes.append(f"KID {label}: condgan {ours['kid_mean']!r} +- {ours['kid_std']!r}; torch-fidelity "
                     f"{ref['kernel_inception_distance_mean']!r} +- {ref['kernel_inception_distance_std']!r}")


HEADER = (f"{'row':34s} {'max|d feat|':>11s} {'FD/KID ours':>17s} {'reference':>17s} {'rel diff':>9s}  "
          f"{'result':6s} {'s':>6s}  note")


def format_row(r: Row) -> str:
    def num(x: float | None, fmt: str) -> str:
        width = int(fmt.split(".")[0])
        return f"{'-':>{width}s}" if x is None else format(x, fmt)

    return (f"{r.name:34s} {num(r.feat_diff, '11.2e')} {num(r.ours, '17.10g')} {num(r.ref, '17.10g')} "
            f"{num(r.rel, '9.2e')}  {'PASS' if r.ok else 'FAIL':6s} {r.seconds:6.1f}  {r.note}")


class Rows(list):
    """The table's rows; each is printed as it is added (a long run shows its progress)."""

    def append(self, row: Row) -> None:
        super().append(row)
        print("  row: " + format_row(row), flush=True)


def print_table(rows: list[Row]) -> None:
    print("\n" + HEADER)
    for r in rows:
        print(format_row(r))


# ----------------------------------------------------------------------------------------------------------------
# Breaks (the checks must catch them)

def pil_bilinear(images: torch.Tensor, size: int) -> torch.Tensor:
    hwc = images.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(images.device, torch.float32)


class SizeNotScale:
    """torch.nn.functional, except that interpolate(scale_factor=s) asks for size=floor(in * s) instead."""

    def __getattr__(self, name: str):
        return getattr(F, name)

    @staticmethod
    def interpolate(x, *args, scale_factor=None, **kwargs):
        if scale_factor is None:
            return F.interpolate(x, *args, **kwargs)
        size = tuple(int(math.floor(n * s)) for n, s in zip(x.shape[2:], scale_factor))
        return F.interpolate(x, *args, size=size, **kwargs)


def apply_break(which: str | None) -> None:
    if which == "bilinear":
        table = cg_preprocess.RESIZES["dinov2"]
        table["pil"] = replace(table["pil"], fn=pil_bilinear, describes="BROKEN: PIL bilinear")
    elif which == "size":
        cg_vit.F = SizeNotScale()


# ----------------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dgm-eval", help="layer6ai-labs/dgm-eval checkout")
    parser.add_argument("--dinov2", help="facebookresearch/dinov2 checkout (its hubconf.py)")
    parser.add_argument("--studiogan", help="POSTECH-CVLab/PyTorch-StudioGAN checkout")
    parser.add_argument("--swav", help="facebookresearch/swav checkout (its hubconf.py)")
    parser.add_argument("--torch-fidelity", nargs="?", const="", default=None, metavar="DIR",
                        help="compare KID with torch-fidelity (a checkout DIR, or the installed package); without "
                             "the flag KID is compared when torch_fidelity imports, else skipped")
    parser.add_argument("--images", type=int, default=48, help="images in sets a + b (float32 rows)")
    parser.add_argument("--f64-images", type=int, default=4, help="images of the float64 rows")
    parser.add_argument("--batch", type=int, default=16, help="dgm-eval's loader batch size")
    parser.add_argument("--parts", default="dinov2,swav,kid", help="comma-separated: dinov2, swav, kid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny counts (8 images, 2 in float64, small KID)")
    parser.add_argument("--break", dest="breaks", choices=("bilinear", "size"),
                        help="break condgan on purpose: the DINOv2 rows must FAIL")
    parser.add_argument("--write-goldens", metavar="PATH", help="write the test goldens from the reference code")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    needed = {"dgm_eval": "dinov2" in parts, "dinov2": "dinov2" in parts, "studiogan": "swav" in parts,
              "swav": "swav" in parts}
    if args.write_goldens:
        needed = dict.fromkeys(needed, True)
    absent = [f"--{k.replace('_', '-')}" for k, need in needed.items() if need and not getattr(args, k)]
    if absent:
        parser.error(f"{', '.join(absent)} required")
    warnings.filterwarnings("ignore")
    if args.write_goldens:
        write_goldens(args, Path(args.write_goldens))
        return
    if args.quick:
        args.images, args.f64_images = min(args.images, 8), min(args.f64_images, 2)
    apply_break(args.breaks)
    rows: list[Row] = Rows()
    notes: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="feature_refs_") as tmp:
        work = Path(tmp)
        sets = write_sets(work / "images", args.images, args.f64_images, args.seed)
        print(f"{args.images} images in sets a/b ({len(sets['a'].files)}/{len(sets['b'].files)}), "
              f"{args.f64_images} in float64; break: {args.breaks or 'none'}", flush=True)
        if "dinov2" in parts:
            dinov2_rows(args, sets, work, rows, notes)
        if "swav" in parts:
            swav_rows(args, sets, work, rows, notes)
    if "kid" in parts:
        kid_rows(args, rows, notes)
    print_table(rows)
    for note in notes:
        print("  " + note)
    failed = [r.name for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} rows pass in {time.perf_counter() - start:.0f} s"
          + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed or not rows else 0)


if __name__ == "__main__":
    main()

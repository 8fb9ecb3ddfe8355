"""The reference side of benchmarks/feature_refs.py: dgm-eval's, dinov2's, StudioGAN's, swav's and torch-fidelity's
code imported from their checkouts and driven as they are, and tests/data/feature_goldens.pt written from it alone.

Only what the references import and do not use is stubbed (dgm-eval's package ``__init__`` files, which pull in
every encoder; StudioGAN's timm / seaborn / matplotlib / pkg_resources imports); ``torch.hub.load`` is pointed at
the local checkouts (``source="local"``) and the weight downloads return random weights instead. torchvision and
the references are imported inside functions only: at import this module needs torch, numpy and PIL, so that
tests/test_feature_goldens.py (condgan's venv, no torchvision) draws the goldens' images and weights again with
the very functions the writer used (:func:`golden_images`, :func:`random_state`, :func:`tiny_vit_state`,
:func:`swav_file_state`). Nothing of condgan is imported here.
"""
from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import types
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
SWAV_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar"
SWAV_LINEAR_URL = "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_eval_linear.pth.tar"
SWAV_RESIZES = {"legacy": "bilinear", "clean": "clean", "friendly": "friendly"}  # StudioGAN name -> condgan name

# Goldens (tests/data/feature_goldens.pt): images, tiny ViT, ResNet-50 weights are all drawn from these seeds.
GOLDEN_IMAGE_SEED, GOLDEN_VIT_SEED, GOLDEN_RESNET_SEED, GOLDEN_PIXELS = 1234, 2345, 3456, 48
GOLDEN_SHAPES = ((3, 32, 32), (3, 32, 32), (3, 32, 32), (3, 40, 48), (1, 32, 32))  # [C, H, W]; index 4 greyscale
GOLDEN_SWAV_IMAGES = (0, 3, 4)
TINY_DIM, TINY_DEPTH, TINY_HEADS = 32, 2, 2  # the goldens' DINOv2 ViT (patch 14, 518 px grid, as ViT-L/14)


# ----------------------------------------------------------------------------------------------------------------
# Fabricated images and random weights (torch only: the test regenerates them in condgan's venv)

def fabricate(shape: tuple[int, int, int], seed: int, noisy: bool = False) -> torch.Tensor:
    """A uint8 [C, H, W] image from integer arithmetic only: 8x8 colour blocks, a ramp, noise (H, W multiples of 8)."""
    c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (c, h // 8, w // 8), generator=gen).repeat_interleave(8, 1).repeat_interleave(8, 2)
    slope = torch.randint(-3, 4, (2,), generator=gen)
    ramp = torch.arange(h).view(1, h, 1) * slope[0] + torch.arange(w).view(1, 1, w) * slope[1]
    amp = 60 if noisy else 12
    noise = torch.randint(-amp, amp + 1, (c, h, w), generator=gen)
    base = blocks // 2 + 40 if noisy else blocks * 3 // 4
    return (base + ramp + noise).clamp(0, 255).to(torch.uint8)


def golden_images() -> list[torch.Tensor]:
    """The goldens' five images (index 3 is 48 wide x 40 high, index 4 greyscale [1, 32, 32])."""
    return [fabricate(shape, GOLDEN_IMAGE_SEED + i, noisy=i % 2 == 1) for i, shape in enumerate(GOLDEN_SHAPES)]


def random_tensor(key: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """A random float32 value for state-dict entry ``key`` (by its name and rank), drawn from ``gen``.

    Nothing is left at an init constant: norm gains ~ N(1, 0.25), biases and BN means ~ N(0, .), BN variances
    U(0.5, 2), LayerScale gammas N(0, 0.3), tokens and position embeddings N(0, 1) / N(0, 0.5); linear weights
    and convolution weights std 1/sqrt(fan_in): activations neither vanish nor explode.
    """
    leaf = key.rsplit(".", 1)[-1]
    t = torch.empty(shape)
    if leaf == "running_var":
        return t.uniform_(0.5, 2.0, generator=gen)
    if leaf == "running_mean":
        return t.normal_(0, 0.3, generator=gen)
    if leaf == "gamma":
        return t.normal_(0, 0.3, generator=gen)
    if leaf in ("cls_token", "mask_token"):
        return t.normal_(0, 1.0, generator=gen)
    if leaf == "pos_embed":
        return t.normal_(0, 0.5, generator=gen)
    if leaf == "bias":
        return t.normal_(0, 0.1, generator=gen)
    if leaf == "weight" and len(shape) == 1:
        return t.normal_(1, 0.25, generator=gen)
    if leaf == "weight":
        return t.normal_(0, 1 / math.prod(shape[1:]) ** 0.5, generator=gen)
    raise ValueError(f"no random rule for '{key}'")


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Random values for every float entry of ``shapes``, drawn in sorted key order from one seeded generator
    (num_batches_tracked and fc.* are not drawn: torchvision's fc would sit in the middle of the order)."""
    gen = torch.Generator().manual_seed(seed)
    return {k: random_tensor(k, tuple(shapes[k]), gen) for k in sorted(shapes)
            if not k.endswith("num_batches_tracked") and not k.startswith("fc.")}


def tiny_vit_state(shapes: dict[str, tuple[int, ...]], seed: int = GOLDEN_VIT_SEED) -> dict[str, torch.Tensor]:
    """The goldens' tiny ViT weights: random_state(shapes, seed) rounded to float16 values (kept in float32)."""
    return {k: v.half().float() for k, v in random_state(shapes, seed).items()}


def swav_file_state(trunk: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """The official SwAV file's layout: the trunk with DDP's ``module.`` prefix, num_batches_tracked, and the
    projection head and prototypes the reference loads non-strictly past (random, official shapes)."""
    gen = torch.Generator().manual_seed(seed + 1)
    state = {f"module.{k}": v for k, v in trunk.items()}
    for k in trunk:
        if k.endswith("running_var"):
            state[f"module.{k[:-len('running_var')]}num_batches_tracked"] = torch.tensor(1000, dtype=torch.long)
    state["module.projection_head.0.weight"] = torch.randn(2048, 2048, generator=gen) / 2048 ** 0.5
    state["module.projection_head.0.bias"] = torch.randn(2048, generator=gen) * 0.1
    state["module.projection_head.3.weight"] = torch.randn(128, 2048, generator=gen) / 2048 ** 0.5
    state["module.projection_head.3.bias"] = torch.randn(128, generator=gen) * 0.1
    state["module.prototypes.weight"] = torch.randn(3000, 128, generator=gen) / 128 ** 0.5
    return state


# ----------------------------------------------------------------------------------------------------------------
# Image files

def to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a[:, :, None] if a.ndim == 2 else a)).permute(2, 0, 1).contiguous()


def save_png(image: torch.Tensor, path: Path) -> None:
    hwc = image.permute(1, 2, 0).numpy()
    Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc, "L" if hwc.shape[2] == 1 else "RGB").save(path)


def per_shape(images: list[torch.Tensor], fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """fn on each group of equally shaped images (one batch per shape), rows back in the images' order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(images)
    for idx in groups.values():
        feats = fn(torch.stack([images[i] for i in idx]))
        for i, f in zip(idx, feats):
            out[i] = f
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------------------------
# Reference imports: stubs for what they import and do not use, hub redirection

def stub_module(name: str, *, package_dir: Path | None = None, **attrs) -> None:
    """Put a stand-in module in sys.modules (a package whose __init__ is skipped when ``package_dir`` is given)."""
    module = types.ModuleType(name)
    if package_dir is not None:
        module.__path__ = [str(package_dir)]
    module.__dict__.update(attrs)
    sys.modules[name] = module


def missing(name: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def import_dgm_eval(checkout: Path) -> types.SimpleNamespace:
    """dgm-eval's DINOv2 encoder, folder loader, representations and FD, imported from ``checkout``.

    Its ``dgm_eval.models`` and ``dgm_eval.metrics`` __init__ files import every encoder and metric (open_clip,
    timm, transformers, ...); they are skipped, the modules used are imported from their files as they are.
    """
    if not (checkout / "dgm_eval" / "models" / "dinov2.py").is_file():
        raise SystemExit(f"--dgm-eval {checkout}: not a dgm-eval checkout (no dgm_eval/models/dinov2.py)")
    sys.path.insert(0, str(checkout))
    import dgm_eval  # noqa: F401  (its __init__ holds only the version)
    for sub in ("models", "metrics"):
        if f"dgm_eval.{sub}" not in sys.modules:
            stub_module(f"dgm_eval.{sub}", package_dir=checkout / "dgm_eval" / sub)
    if missing("sklearn"):  # fd.py imports LinearRegression for FD-infinity only
        stub_module("sklearn", package_dir=Path("/nonexistent"))
        stub_module("sklearn.linear_model", LinearRegression=None)
    from dgm_eval.dataloaders import get_dataloader
    from dgm_eval.metrics.fd import compute_FD_with_reps
    from dgm_eval.models.dinov2 import DINOv2Encoder
    from dgm_eval.representations import get_representations
    return types.SimpleNamespace(DINOv2Encoder=DINOv2Encoder, get_dataloader=get_dataloader,
                                 get_representations=get_representations, compute_FD_with_reps=compute_FD_with_reps)


def parse_version(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def import_studiogan(checkout: Path) -> types.SimpleNamespace:
    """StudioGAN's metrics.preparation (LoadEvalModel), metrics.fid, utils.resize and utils.ops."""
    src = checkout / "src"
    if not (src / "metrics" / "preparation.py").is_file():
        raise SystemExit(f"--studiogan {checkout}: not a PyTorch-StudioGAN checkout (no src/metrics/preparation.py)")

    def unavailable(*_args, **_kwargs):
        raise RuntimeError("a placeholder for a module missing here was called")

    if missing("timm"):  # its Swin backbone only
        stub_module("timm", package_dir=Path("/nonexistent"))
        stub_module("timm.models", package_dir=Path("/nonexistent"))
        stub_module("timm.models.layers", DropPath=unavailable, to_2tuple=unavailable, trunc_normal_=unavailable)
    if missing("pkg_resources"):  # its StyleGAN ops test torch's version at import time
        stub_module("pkg_resources", parse_version=parse_version)
    for name in ("seaborn", "matplotlib", "matplotlib.pyplot"):
        if missing(name):
            stub_module(name)
    if missing("sklearn"):
        stub_module("sklearn", package_dir=Path("/nonexistent"))
        stub_module("sklearn.metrics", top_k_accuracy_score=unavailable)
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    import metrics.fid as fid
    import metrics.preparation as preparation
    import utils.ops as ops
    import utils.resize as resize
    return types.SimpleNamespace(preparation=preparation, fid=fid, ops=ops, resize=resize)


def import_torch_fidelity(checkout: str | None) -> Callable:
    """torch-fidelity's kid_features_to_metric, from ``checkout`` when given (else the installed package)."""
    if checkout:
        sys.path.insert(0, str(checkout))
    from torch_fidelity.metric_kid import kid_features_to_metric
    return kid_features_to_metric


@contextlib.contextmanager
def hub_redirect(repos: dict[str, object], urls: dict[str, Callable[[], object]]) -> Iterator[None]:
    """``torch.hub.load("owner/name[:ref]", ...)`` -> the local checkout ``repos[owner/name]`` (source="local"), or
    a callable standing for it; ``torch.hub.load_state_dict_from_url(url)`` -> ``urls[url]()``."""
    original_load, original_url = torch.hub.load, torch.hub.load_state_dict_from_url

    def load(repo_or_dir, model, *args, **kwargs):
        target = repos[str(repo_or_dir).split(":")[0]]
        for key in ("source", "trust_repo", "force_reload", "skip_validation"):
            kwargs.pop(key, None)
        if callable(target):
            return target(model, *args, **kwargs)
        return original_load(str(target), model, *args, source="local", **kwargs)

    def from_url(url, *args, **kwargs):
        if url not in urls:
            raise RuntimeError(f"unexpected download {url}")
        return urls[url]()

    torch.hub.load, torch.hub.load_state_dict_from_url = load, from_url
    try:
        yield
    finally:
        torch.hub.load, torch.hub.load_state_dict_from_url = original_load, original_url


def cast_input(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """The model in ``dtype``, its (reference-preprocessed, float32) input cast to it on the way in."""
    model.to(dtype)
    model.register_forward_pre_hook(lambda _m, args: (args[0].to(dtype),) + tuple(args[1:]))


# ----------------------------------------------------------------------------------------------------------------
# The reference pipelines of each backbone (condgan's side is in feature_refs.py)

def dgm_eval_encoder(dgm, clean: bool, dtype: torch.dtype):
    """(dgm-eval's DINOv2 encoder as its load_encoder builds it, its transform); in float64 the model and the
    transform's output are cast to double."""
    encoder = dgm.DINOv2Encoder(arch=None, clean_resize=clean).to("cpu")
    if dtype == torch.float64:
        encoder.double()
        return encoder, lambda image: encoder.transform(image).double()
    return encoder, encoder.transform


def dgm_eval_reps(dgm, encoder, transform, folder: Path, batch: int) -> np.ndarray:
    """dgm-eval's representations of the image files in ``folder``: its folder loader, its extraction loop."""
    loader = dgm.get_dataloader(str(folder), nsample=-1, batch_size=batch, num_workers=0,
                                transform=lambda image: transform(image))
    return dgm.get_representations(encoder, loader, "cpu", normalized=False)


def studiogan_swav(sg, resizer: str, dtype: torch.dtype):
    eval_model = sg.preparation.LoadEvalModel("SwAV_torch", resizer, world_size=1, distributed_data_parallel=False,
                                              device="cpu")
    if dtype == torch.float64:
        cast_input(eval_model.model, dtype)
    eval_model.eval()
    return eval_model


def studiogan_features(eval_model, images: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return per_shape(images, lambda x: eval_model.get_outputs(x, quantize=False)[0])


def studiogan_fd(sg, a, b) -> float:
    """StudioGAN's FD: its moments (the float64 path of its calculate_moments) and frechet_inception_distance."""
    moments = [sg.fid.calculate_moments(data_loader=None, eval_model=None, num_generate=len(x), batch_size=None,
                                        quantize=False, world_size=1, DDP=False, disable_tqdm=True,
                                        fake_feats=torch.as_tensor(np.asarray(x)).double()) for x in (a, b)]
    return float(sg.fid.frechet_inception_distance(moments[0][0], moments[0][1], moments[1][0], moments[1][1]))


def spread(feats) -> str:
    """How much the features vary across images (a constant feature would make the comparison vacuous)."""
    f = torch.as_tensor(np.asarray(feats)).double()
    return f"|f| {f.abs().mean():.3g}, across-image std {f.std(0).mean():.3g}"


# ----------------------------------------------------------------------------------------------------------------
# Goldens

def reference_summary(tensors: list[torch.Tensor], positions: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image channel sums and sums of squares (float64) and the values at ``positions`` [K, 3] (c, y, x)."""
    x = torch.stack([t.reshape(3, 224, 224) for t in tensors]).float()
    return {"sum": x.double().sum((2, 3)), "sumsq": x.double().square().sum((2, 3)),
            "pixels": x[:, positions[:, 0], positions[:, 1], positions[:, 2]].clone()}


def tiny_reference_vit(dinov2_checkout: Path, state: dict[str, torch.Tensor] | None):
    """A DINOv2 ViT of the goldens' tiny size (TINY_DIM, TINY_DEPTH, TINY_HEADS) built with the reference's class,
    as vit_large builds its blocks."""
    from functools import partial
    if str(dinov2_checkout) not in sys.path:
        sys.path.insert(0, str(dinov2_checkout))
    from dinov2.layers import MemEffAttention, NestedTensorBlock
    from dinov2.models.vision_transformer import DinoVisionTransformer
    model = DinoVisionTransformer(img_size=518, patch_size=14, embed_dim=TINY_DIM, depth=TINY_DEPTH,
                                  num_heads=TINY_HEADS, mlp_ratio=4,
                                  block_fn=partial(NestedTensorBlock, attn_class=MemEffAttention), init_values=1.0,
                                  ffn_layer="mlp", block_chunks=0, num_register_tokens=0, interpolate_antialias=False,
                                  interpolate_offset=0.1)
    if state is not None:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model


def write_goldens(args, path: Path) -> None:
    """Golden values from the reference code only (condgan computes nothing here):

    images: five fabricated uint8 images (golden_images(); the test regenerates them in condgan's venv).
    preprocess: for dgm-eval's DINOv2 transform (PIL bicubic; clean_resize) and StudioGAN's SwAV resizers
      (legacy, clean, friendly) with its normalisation: per-image channel sums, sums of squares, 48 pixels.
    dinov2_tiny: a DINOv2 ViT (width 32, 2 blocks, 2 heads, 518 px grid, LayerScale, MemEffAttention) built with
      the reference's class, with the weights tiny_vit_state() draws from GOLDEN_VIT_SEED (not stored: the test
      draws them again): its float64 features of the five images through dgm-eval's encoder, loader and
      extraction ("pil" and "clean").
    swav: float64 features of images 0, 3, 4 through StudioGAN's SwAV_torch (legacy) with a torchvision ResNet-50
      whose weights random_state() draws from GOLDEN_RESNET_SEED (not stored: the test draws them again).
    """
    dgm = import_dgm_eval(Path(args.dgm_eval))
    sg = import_studiogan(Path(args.studiogan))
    from torchvision.models import resnet50
    images = golden_images()
    gen = torch.Generator().manual_seed(GOLDEN_IMAGE_SEED + 99)
    positions = torch.stack([torch.randint(0, 3, (GOLDEN_PIXELS,), generator=gen),
                             torch.randint(0, 224, (GOLDEN_PIXELS,), generator=gen),
                             torch.randint(0, 224, (GOLDEN_PIXELS,), generator=gen)], 1)
    positions[:4] = torch.tensor([[0, 0, 0], [1, 0, 223], [2, 223, 0], [0, 223, 223]])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "golden"
        folder.mkdir()
        for i, im in enumerate(images):
            save_png(im, folder / f"{i:03d}.png")
        rgb = [to_chw(np.asarray(Image.open(folder / f"{i:03d}.png").convert("RGB"))) for i in range(len(images))]
        shapes = {k: tuple(v.shape) for k, v in tiny_reference_vit(Path(args.dinov2), None).state_dict().items()}
        state = tiny_vit_state(shapes, GOLDEN_VIT_SEED)
        preprocess, tiny_features = {}, {}
        for resize, clean in (("pil", False), ("clean", True)):
            with hub_redirect({"facebookresearch/dinov2": lambda *_a, **_k: tiny_reference_vit(Path(args.dinov2),
                                                                                                state)}, {}):
                encoder = dgm.DINOv2Encoder(arch=None, clean_resize=clean)
                preprocess[f"dinov2/{resize}"] = reference_summary(
                    [encoder.transform(Image.open(folder / f"{i:03d}.png").convert("RGB")) for i in
                     range(len(images))], positions)
                encoder, transform = dgm_eval_encoder(dgm, clean, torch.float64)
                tiny_features[resize] = dgm_eval_reps(dgm, encoder, transform, folder, 8)
        # StudioGAN: each post-resizer's LoadEvalModel, its inputs as get_outputs makes them (resize_images with
        # the model's own resizer, ToTensor, mean and std), and the legacy model's float64 features.
        rshapes = {k: tuple(v.shape) for k, v in resnet50().state_dict().items()}
        file_state = swav_file_state(random_state(rshapes, GOLDEN_RESNET_SEED), GOLDEN_RESNET_SEED)
        sg.preparation.load_state_dict_from_url = lambda url, *a, **k: {"state_dict": {
            "module.linear.weight": torch.zeros(1000, 2048), "module.linear.bias": torch.zeros(1000)}}
        for sg_name, name in SWAV_RESIZES.items():
            with hub_redirect({"facebookresearch/swav": Path(args.swav)}, {SWAV_URL: lambda: file_state}):
                eval_model = studiogan_swav(sg, sg_name, torch.float64)
            preprocess[f"swav/{name}"] = reference_summary(
                [sg.ops.resize_images(im[None].numpy(), eval_model.resizer, eval_model.totensor, eval_model.mean,
                                      eval_model.std, device="cpu")[0] for im in rgb], positions)
            if sg_name == "legacy":
                swav_features = studiogan_features(eval_model, [rgb[i] for i in GOLDEN_SWAV_IMAGES])
    goldens = {
        "about": "written by benchmarks/feature_refs.py --write-goldens from dgm-eval, dinov2, StudioGAN and swav "
                 "reference code only",
        "images": images, "positions": positions, "preprocess": preprocess,
        "dinov2_tiny": {"dim": TINY_DIM, "depth": TINY_DEPTH, "heads": TINY_HEADS, "seed": GOLDEN_VIT_SEED,
                        "features": {k: torch.from_numpy(v) for k, v in tiny_features.items()}},
        "swav": {"seed": GOLDEN_RESNET_SEED, "images": list(GOLDEN_SWAV_IMAGES), "resize": "bilinear",
                 "features": swav_features.double()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(goldens, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): {len(images)} images, "
          f"{len(preprocess)} preprocessings, tiny ViT {sum(v.numel() for v in state.values())} parameters "
          f"(features {spread(goldens['dinov2_tiny']['features']['pil'])}), "
          f"SwAV features {tuple(swav_features.shape)} ({spread(swav_features)})")


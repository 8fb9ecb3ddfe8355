"""condgan's DINOv2 and SwAV pipelines against goldens computed by the reference code, and the official layouts.

tests/data/feature_goldens.pt is written by ``benchmarks/feature_refs.py --write-goldens`` (run where torchvision
imports) from the reference code only (benchmarks/feature_ref_code.py): dgm-eval's DINOv2 transforms and extraction
loop with a tiny ViT built by dinov2's own ``DinoVisionTransformer``, StudioGAN's ``SwAV_torch`` resizers and
features with torchvision's ResNet-50. Here, without torchvision or a network: the same images and weights are
drawn again by the same functions (no weights are stored), condgan's preprocessing is compared with the
reference's (channel sums, sums of squares, 48 pixels per image), its tiny DINOv2 backbone and its SwAV backbone
with the goldens' features in float64, and its state-dict layouts with the official ones written out by hand (not
read from condgan's modules).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from condgan.metrics.preprocess import imagenet_input, resize_for
from condgan.metrics.resnet50 import ResNet50Trunk
from condgan.metrics.ssl_backbones import DINOv2Backbone, SwAVBackbone
from condgan.metrics.vit import VIT_SPECS, DinoViT, ViTSpec

ROOT = Path(__file__).resolve().parents[1]
GOLDENS = ROOT / "tests" / "data" / "feature_goldens.pt"
F64_TOL = 1e-10


def _feature_ref_code():
    """benchmarks/feature_ref_code.py: the image formula and the seeded weight draws the goldens were made with
    (it imports torch, numpy and PIL only; the references and torchvision inside its functions)."""
    name = "_feature_ref_code_for_tests"
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "feature_ref_code.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would (dataclasses, pickling look their module up there)
    spec.loader.exec_module(module)
    return module


refs = _feature_ref_code()


@pytest.fixture(scope="module")
def goldens() -> dict:
    if not GOLDENS.is_file():
        pytest.fail(f"{GOLDENS} is missing: write it where torchvision imports with benchmarks/feature_refs.py "
                    "--dgm-eval DIR --dinov2 DIR --studiogan DIR --swav DIR --write-goldens PATH")
    return torch.load(GOLDENS, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------------------------
# The official layouts, by hand

def vit_layout(d: int = 1024, depth: int = 24) -> dict[str, tuple[int, ...]]:
    """dinov2_vitl14_pretrain.pth: DinoVisionTransformer(embed_dim 1024, depth 24, patch 14, img_size 518,
    LayerScale, no registers, block_chunks 0); at another width and depth, the goldens' tiny ViT's layout."""
    grid = 518 // 14
    layout = {"cls_token": (1, 1, d), "pos_embed": (1, grid * grid + 1, d), "mask_token": (1, d),
              "patch_embed.proj.weight": (d, 3, 14, 14), "patch_embed.proj.bias": (d,)}
    for i in range(depth):
        b = f"blocks.{i}."
        layout.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,),
                       b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                       b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,), b + "ls1.gamma": (d,),
                       b + "norm2.weight": (d,), b + "norm2.bias": (d,),
                       b + "mlp.fc1.weight": (4 * d, d), b + "mlp.fc1.bias": (4 * d,),
                       b + "mlp.fc2.weight": (d, 4 * d), b + "mlp.fc2.bias": (d,), b + "ls2.gamma": (d,)})
    layout.update({"norm.weight": (d,), "norm.bias": (d,)})
    return layout


def resnet50_layout() -> dict[str, tuple[int, ...]]:
    """torchvision's resnet50().state_dict() without fc: Bottleneck v1.5 (stride on conv2), expansion 4,
    a downsample (1x1 conv + BN) on the first block of every stage."""
    def bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    layout = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    c_in = 64
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for j in range(blocks):
            p = f"layer{stage}.{j}."
            first_in = c_in if j == 0 else 4 * width
            layout.update({p + "conv1.weight": (width, first_in, 1, 1), **bn(p + "bn1", width),
                           p + "conv2.weight": (width, width, 3, 3), **bn(p + "bn2", width),
                           p + "conv3.weight": (4 * width, width, 1, 1), **bn(p + "bn3", 4 * width)})
            if j == 0:
                layout.update({p + "downsample.0.weight": (4 * width, c_in, 1, 1), **bn(p + "downsample.1", 4 * width)})
        c_in = 4 * width
    return layout


def test_vit_l14_has_the_official_state_dict_layout():
    expected = vit_layout()
    assert len(expected) == 343
    assert sum(torch.Size(s).numel() for s in expected.values()) == 304_368_640
    with torch.device("meta"):
        model = DinoViT(VIT_SPECS["ViT-L/14"])
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(got) ^ set(expected)) == []
    assert {k: s for k, s in got.items() if expected[k] != s} == {}
    assert sum(p.numel() for p in model.parameters()) == 304_368_640
    assert got["blocks.23.ls2.gamma"] == (1024,) and got["pos_embed"] == (1, 1370, 1024)
    assert got["mask_token"] == (1, 1024)


def test_resnet50_trunk_has_torchvisions_layout_without_fc():
    expected = resnet50_layout()
    assert len(expected) == 318  # torchvision's 320 entries less fc.weight, fc.bias
    params = sum(torch.Size(s).numel() for k, s in expected.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 25_557_032 - (2048 * 1000 + 1000)  # torchvision's resnet50 less its fc
    with torch.device("meta"):
        model = ResNet50Trunk()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(got) ^ set(expected)) == []
    assert {k: s for k, s in got.items() if expected[k] != s} == {}
    assert sum(p.numel() for p in model.parameters()) == params


# ---------------------------------------------------------------------------------------------------------------
# Against the reference's numbers

def test_golden_images_are_drawn_again_identically(goldens):
    drawn = refs.golden_images()
    assert len(drawn) == len(goldens["images"]) == 5
    for ours, stored in zip(drawn, goldens["images"]):
        assert ours.dtype == stored.dtype == torch.uint8
        assert torch.equal(ours, stored)
    assert [tuple(im.shape) for im in drawn] == [(3, 32, 32)] * 3 + [(3, 40, 48), (1, 32, 32)]


@pytest.mark.parametrize("key", ["dinov2/pil", "dinov2/clean", "swav/bilinear", "swav/clean", "swav/friendly"])
def test_preprocessing_equals_the_references(goldens, key):
    """dgm-eval's DINOv2 transforms (PIL bicubic on uint8; clean_resize) and StudioGAN's SwAV post-resizers
    (legacy, clean, friendly), each with its /255 and ImageNet normalisation, image by image."""
    backbone, method = key.split("/")
    resize = resize_for(backbone, method)
    pos = goldens["positions"]
    want = goldens["preprocess"][key]
    for i, image in enumerate(goldens["images"]):
        x = imagenet_input(image[None], resize, 224)[0]
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        torch.testing.assert_close(x[pos[:, 0], pos[:, 1], pos[:, 2]], want["pixels"][i], rtol=0, atol=1e-6,
                                   msg=lambda m: f"{key} image {i} pixels: {m}")
        torch.testing.assert_close(x.double().sum((1, 2)), want["sum"][i], rtol=1e-9, atol=1e-6,
                                   msg=lambda m: f"{key} image {i} channel sums: {m}")
        torch.testing.assert_close(x.double().square().sum((1, 2)), want["sumsq"][i], rtol=1e-9, atol=1e-6,
                                   msg=lambda m: f"{key} image {i} channel sums of squares: {m}")


@pytest.mark.parametrize("resize", ["pil", "clean"])
def test_tiny_dinov2_features_equal_dgm_evals(goldens, resize, tmp_path):
    """A tiny DINOv2 (width 32, 2 blocks, 37x37 position grid resized to 16x16), the reference's random weights
    (drawn again on the official layout by hand, as the writer drew them on the reference model's), float64:
    condgan's DINOv2Backbone against dgm-eval's encoder on the same five images."""
    tiny = goldens["dinov2_tiny"]
    spec = ViTSpec("tiny", tiny["dim"], tiny["depth"], tiny["heads"])
    path = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save(refs.tiny_vit_state(vit_layout(tiny["dim"], tiny["depth"]), tiny["seed"]), path)
    net = DINOv2Backbone(resize=resize, weights=path, allow_download=False, dtype=torch.float64, spec=spec)
    ours = torch.cat([net(image[None])[0] for image in goldens["images"]])
    want = tiny["features"][resize]
    assert ours.dtype == want.dtype == torch.float64 and ours.shape == want.shape == (5, 32)
    assert want.std(0).mean() > 0.05  # the features vary with the image: the comparison is not vacuous
    assert (ours - want).abs().max() <= F64_TOL, (ours - want).abs().max()


def test_swav_features_equal_studiogans(goldens, tmp_path):
    """torchvision-layout ResNet-50 with seeded random weights, saved as the official file (module. prefixes,
    projection head, prototypes), float64: condgan's SwAVBackbone (bilinear) against StudioGAN's SwAV_torch
    (legacy) on images 0, 3 (48 x 40) and 4 (greyscale)."""
    swav = goldens["swav"]
    trunk = refs.random_state(resnet50_layout(), swav["seed"])
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(refs.swav_file_state(trunk, swav["seed"]), path)
    net = SwAVBackbone(resize=swav["resize"], weights=path, allow_download=False, dtype=torch.float64)
    ours = torch.cat([net(goldens["images"][i][None])[0] for i in swav["images"]])
    want = swav["features"]
    assert ours.dtype == want.dtype == torch.float64 and ours.shape == want.shape == (3, 2048)
    assert want.std(0).mean() > 0.01
    assert (ours - want).abs().max() <= F64_TOL, (ours - want).abs().max()

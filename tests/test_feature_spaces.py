"""The newer feature spaces: KID against an independent estimator, weights found and refused, image sets scored,
several backbones from one set of samples, the cache keyed by the input pipeline. Tiny DINOv2 (width 32, 2 blocks,
the official grid and patch) stands in for ViT-L/14; the reference-code comparisons are benchmarks/feature_refs.py
and tests/test_feature_goldens.py."""
from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condgan.data import load_dataset
from condgan.metrics import vit
from condgan.metrics.errors import EvalError
from condgan.metrics.image_sets import read_image_set
from condgan.metrics.kid import kid
from condgan.metrics.request import EvalRequest
from condgan.metrics.ssl_backbones import DINOV2_WEIGHTS, DINOv2Backbone
from condgan.train.trainer import Trainer
from conftest import one_line_error, run_main, tiny_cfg

TINY = vit.ViTSpec("ViT-L/14", 32, 2, 2)  # named as the real one: the CLI builds "ViT-L/14"


@pytest.fixture(autouse=True)
def private_cache(quick_private_cache):
    """Reference statistics (and the evaluation classifier) in this test's own cache."""


@pytest.fixture
def tiny_dinov2(tmp_path, monkeypatch) -> Path:
    """A tiny DINOv2 in the official layout (non-trivial weights), standing in for ViT-L/14; offline hub dir."""
    monkeypatch.setitem(vit.VIT_SPECS, "ViT-L/14", TINY)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("CONDGAN_DINOV2_WEIGHTS", raising=False)
    torch.manual_seed(0)
    net = vit.DinoViT(TINY)
    for p in net.parameters():
        torch.nn.init.normal_(p, mean=1.0 if p.dim() == 1 and p.shape[0] == TINY.dim else 0.0, std=0.3)
    path = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save(net.state_dict(), path)
    return path


# ------------------------------------------------------------------------------------------------------------ KID
def _numpy_kid(x: np.ndarray, y: np.ndarray, subsets: int, size: int, seed: int = 2020) -> tuple[float, float]:
    """KID by the definition, pair by pair in float64: unbiased MMD^2 under (a.b/d + 1)^3 over subsets drawn as
    torch-fidelity documents (RandomState(seed).choice without replacement, the generated set first)."""
    rng = np.random.RandomState(seed)
    d, values = x.shape[1], []
    for _ in range(subsets):
        a, b = x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)]
        k = lambda u, v: (float(u @ v) / d + 1) ** 3  # noqa: E731
        same = sum(k(a[i], a[j]) + k(b[i], b[j]) for i, j in itertools.permutations(range(size), 2))
        cross = sum(k(a[i], b[j]) for i in range(size) for j in range(size))
        values.append(same / (size * (size - 1)) - 2 * cross / size ** 2)
    return float(np.mean(values)), float(np.std(values))


def test_kid_equals_the_unbiased_estimator_on_the_same_subsets():
    g = torch.Generator().manual_seed(1)
    fake, real = torch.randn(40, 6, generator=g, dtype=torch.float64), torch.randn(50, 6, generator=g,
                                                                                   dtype=torch.float64) + 0.3
    got = kid(fake, real, subsets=4, subset_size=12)
    mean, std = _numpy_kid(fake.numpy(), real.numpy(), 4, 12)
    assert got["kid_mean"] == pytest.approx(mean, rel=1e-12) and got["kid_std"] == pytest.approx(std, rel=1e-10)
    assert got["kid_subset_size"] == 12 and got["kid_mean"] > 0
    assert kid(fake, real, subsets=4, subset_size=12, seed=7)["kid_mean"] != got["kid_mean"]  # the seed matters


def test_kid_with_fewer_images_than_a_subset_uses_the_smaller_set_and_says_so():
    g = torch.Generator().manual_seed(2)
    fake, real = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(30, 5, generator=g,
                                                                                  dtype=torch.float64)
    got = kid(fake, real, subsets=3)  # the default subset of 1000 cannot be drawn from 7
    assert got["kid_subset_size"] == 7
    assert got["kid_mean"] == pytest.approx(_numpy_kid(fake.numpy(), real.numpy(), 3, 7)[0], rel=1e-12)
    with pytest.raises(EvalError, match="at least 2 generated and 2 real"):
        kid(fake[:1], real)


# -------------------------------------------------------------------------------------------------------- weights
def test_dinov2_offline_without_weights_is_one_line_naming_the_url_and_the_flag(tiny_dinov2):
    with pytest.raises(EvalError) as err:
        DINOv2Backbone(allow_download=False)
    message = str(err.value)
    assert "\n" not in message and DINOV2_WEIGHTS.url in message and "--weights dinov2=" in message
    assert "CONDGAN_DINOV2_WEIGHTS" in message and str(DINOV2_WEIGHTS.cached()) in message


def test_a_download_is_checked_before_it_is_cached_and_its_hash_recorded(tiny_dinov2, tmp_path, monkeypatch):
    import hashlib

    from condgan.metrics import ssl_backbones

    monkeypatch.setitem(vit.VIT_SPECS, "ViT-L/14", vit.ViTSpec("ViT-L/14", 1024, 24, 16))
    bad, spec = _vit_b_like(tmp_path / "bad.pth"), DINOV2_WEIGHTS
    monkeypatch.setattr(ssl_backbones.DINOv2Backbone, "weights_spec", spec.__class__(
        spec.name, bad.as_uri(), spec.flag, spec.env_var, spec.what))
    with pytest.raises(EvalError, match="ViT-B/14") as err:
        DINOv2Backbone()
    assert "could not be downloaded" in str(err.value) and not spec.cached().exists()  # nothing cached wrong
    assert not list(spec.cached().parent.glob("*"))
    monkeypatch.setitem(vit.VIT_SPECS, "ViT-L/14", TINY)
    monkeypatch.setattr(ssl_backbones.DINOv2Backbone, "weights_spec", spec.__class__(
        spec.name, tiny_dinov2.as_uri(), spec.flag, spec.env_var, spec.what))
    backbone = DINOv2Backbone()
    assert backbone.weights_path == spec.cached() and spec.cached().read_bytes() == tiny_dinov2.read_bytes()
    assert backbone.descriptor["weights_sha256"] == hashlib.sha256(tiny_dinov2.read_bytes()).hexdigest()


def _vit_b_like(path: Path) -> Path:
    """The shapes that say ViT-B/14 (width 768, 12 blocks), without its 86M parameters."""
    torch.save({"pos_embed": torch.zeros(1, 1370, 768), "cls_token": torch.zeros(1, 1, 768),
                **{f"blocks.{i}.norm1.weight": torch.ones(768) for i in range(12)}}, path)
    return path


@pytest.mark.parametrize("kind", ["truncated", "foreign", "vit_b", "non_finite", "missing_key", "empty"])
def test_a_bad_dinov2_file_is_one_line_naming_it(kind, tiny_dinov2, tmp_path, capsys):
    path = tmp_path / f"{kind}.pth"
    if kind == "truncated":
        path.write_bytes(tiny_dinov2.read_bytes()[: tiny_dinov2.stat().st_size // 2])
    elif kind == "foreign":
        torch.save({"model": "not tensors", "epoch": 3}, path)
    elif kind == "vit_b":
        vit.VIT_SPECS["ViT-L/14"] = vit.ViTSpec("ViT-L/14", 1024, 24, 16)  # the real spec (monkeypatch restores TINY's)
        _vit_b_like(path)
    elif kind == "non_finite":
        state = torch.load(tiny_dinov2)
        state["blocks.1.mlp.fc2.weight"][0, 0] = float("nan")
        torch.save(state, path)
    elif kind == "missing_key":
        state = torch.load(tiny_dinov2)
        del state["blocks.1.ls2.gamma"]
        torch.save(state, path)
    else:
        path.write_bytes(b"")
    why = {"truncated": "truncated", "foreign": "not a state dict of tensors", "vit_b": "ViT-B/14 (width 768, 12 "
           "blocks); FD_DINOv2 uses ViT-L/14", "non_finite": "'blocks.1.mlp.fc2.weight' holds non-finite values",
           "missing_key": "'blocks.1.ls2.gamma' is missing", "empty": "empty"}[kind]
    with pytest.raises(EvalError) as err:
        DINOv2Backbone(weights=path)
    assert "\n" not in str(err.value) and str(path) in str(err.value) and why in str(err.value), str(err.value)


def test_a_file_of_another_network_given_as_swav_weights_is_one_line(tiny_dinov2):
    from condgan.metrics.ssl_backbones import SwAVBackbone

    with pytest.raises(EvalError) as err:
        SwAVBackbone(weights=tiny_dinov2)
    message = str(err.value)
    assert "\n" not in message and str(tiny_dinov2) in message and "SwAV ResNet-50" in message
    assert "'conv1.weight' is missing" in message


# ----------------------------------------------------------------------------------------------------- image sets
def _image_folder(root: Path, shift: int = 0, labelled: bool = True) -> Path:
    """12 PNGs: 32x32 RGB, 48x40 RGB and two greyscale, in class folders cat/dog (or flat)."""
    rng = np.random.default_rng(shift)
    for i in range(12):
        size = (40, 48) if i % 4 == 1 else (32, 32)
        image = Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8) // 2 + shift)
        image = image.convert("L") if i in (2, 7) else image
        folder = root / ("cat" if i % 2 else "dog") if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:02d}.png")
    return root


def test_an_image_folder_of_mixed_sizes_and_greyscale_is_read_as_rgb_at_its_own_sizes(tmp_path, tiny_dinov2):
    images = read_image_set(_image_folder(tmp_path / "fake"))
    assert len(images) == 12 and images.classes == ("cat", "dog") and images.num_classes == 2
    assert sorted(tuple(g.shape[2:]) for g in images.groups) == [(32, 32), (40, 48)]
    assert all(g.shape[1] == 3 and g.dtype == torch.uint8 for g in images.groups)
    files = sorted((tmp_path / "fake").rglob("*.png"))
    grey = np.array(Image.open(files[[f.name for f in files].index("02.png")]))
    assert any(bool((g == torch.from_numpy(grey)).all(dim=(1, 2, 3)).any()) for g in images.groups
               if g.shape[2:] == grey.shape)  # greyscale repeated to RGB, as PIL's convert("RGB")
    backbone = DINOv2Backbone(weights=tiny_dinov2)
    feats, _ = backbone.extract(images.images)
    one_by_one = torch.cat([backbone(g[i:i + 1])[0] for g in images.groups for i in range(g.shape[0])])
    torch.testing.assert_close(feats, one_by_one, rtol=0, atol=1e-5)


def test_an_npz_of_samples_reads_images_or_arr_0_and_its_labels(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "adm.npz", arr_0=rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8),
             arr_1=np.array([0, 1, 2, 0, 1, 2]))
    images = read_image_set(tmp_path / "adm.npz")
    assert len(images) == 6 and images.num_classes == 3 and images.groups[0].shape == (6, 3, 16, 16)
    np.savez(tmp_path / "grey.npz", images=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8))
    grey = read_image_set(tmp_path / "grey.npz")
    assert grey.groups[0].shape == (4, 3, 8, 8) and not grey.classes and int(grey.labels.max()) == -1


@pytest.mark.parametrize("case", ["empty_folder", "broken_png", "npz_without_images", "not_npz", "missing",
                                  "negative_labels"])
def test_a_bad_image_set_is_one_line_naming_it(case, tmp_path, capsys, tiny_dinov2):
    real = _image_folder(tmp_path / "real")
    target = tmp_path / "fake"
    if case == "empty_folder":
        target.mkdir()
        culprit = "holds no image files"
    elif case == "broken_png":
        _image_folder(target)
        (target / "cat" / "03.png").write_bytes((target / "cat" / "03.png").read_bytes()[:60])
        culprit = "03.png"
    elif case == "npz_without_images":
        target = tmp_path / "x.npz"
        np.savez(target, pixels=np.zeros((2, 4, 4, 3), np.uint8))
        culprit = "no 'images' (or 'arr_0') array"
    elif case == "not_npz":
        target = tmp_path / "x.npz"
        target.write_bytes(b"hello")
        culprit = "cannot be read as an .npz"
    elif case == "missing":
        culprit = "not found"
    else:
        target = tmp_path / "x.npz"
        np.savez(target, images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, -1]))
        culprit = "non-negative integers"
    code, _, err = run_main(capsys, "eval", "--images", str(target), "--ref-images", str(real), "--backbone",
                            "dinov2", "--weights", f"dinov2={tiny_dinov2}", "--no-progress")
    assert code == 2
    one_line_error(err, culprit)


def test_eval_images_scores_every_backbone_against_a_folder_and_keeps_history(tmp_path, capsys, tiny_dinov2):
    fake, real = _image_folder(tmp_path / "fake"), _image_folder(tmp_path / "real", shift=60)
    args = ["eval", "--images", str(fake), "--ref-images", str(real), "--weights", f"dinov2={tiny_dinov2}",
            "--metrics", "fid,kid,prdc,ifid", "--kid-subsets", "5", "--no-progress"]
    code, out, _ = run_main(capsys, *args, "--backbone", "dinov2")
    assert code == 0 and "kid_mean" in out
    alone = json.loads((fake / "eval.json").read_text())
    assert alone["protocol"]["backbone"]["resize"] == "pil" and alone["metrics"]["kid_subset_size"] == 12
    assert alone["protocol"]["reference"]["source"] == str(real) and alone["metrics"]["fid"] > 0
    code, out, _ = run_main(capsys, *args, "--backbone", "dinov2,dinov2")
    assert code == 2
    code, out, _ = run_main(capsys, *args, "--backbone", "dinov2", "--resize", "dinov2=torch")
    record = json.loads((fake / "eval.json").read_text())
    assert len(record["history"]) == 2 and record["protocol"]["backbone"]["resize"] == "torch"
    assert record["metrics"]["fid"] != alone["metrics"]["fid"]  # another resize: other features
    assert record["protocol"]["reference"]["from_cache"] is False  # ... and other reference statistics


def test_several_backbones_score_one_set_of_samples(tmp_path, tiny_dinov2, monkeypatch):
    """A run scored in the classifier's and DINOv2's spaces at once: G draws the samples once, and each space's
    values equal those of an evaluation in that space alone."""
    from condgan.metrics.evaluate import Evaluator

    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(3), 8)
    np.savez(tmp_path / "d.npz", images=rng.randint(0, 256, (24, 32, 32, 3), dtype=np.uint8), labels=labels)
    cfg = tiny_cfg("train.steps=1", "train.ckpt_every=1", "data.name=npz", f"data.root={tmp_path / 'd.npz'}",
                   "train.batch_size=8")
    with Trainer(cfg, tmp_path / "run", progress=False) as t:
        t.train()
        G = t.run.ema.shadow
    calls = []
    forward = G.forward
    monkeypatch.setattr(G, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    request = dict(metrics=["fid", "kid", "prdc"], num_samples=12, batch_size=4, ref_split="train",
                   weights={"dinov2": str(tiny_dinov2)}, kid_subsets=3)
    both = Evaluator(cfg.data, EvalRequest(backbone="classifier,dinov2", **request))(G, cfg.model.z_dim)
    assert len(calls) == 3  # 12 samples in batches of 4, once for both spaces
    alone = {b: Evaluator(cfg.data, EvalRequest(backbone=b, **{**request, "weights": request["weights"]
                                                               if b == "dinov2" else {}}))(G, cfg.model.z_dim)
             for b in ("classifier", "dinov2")}
    for b, record in alone.items():
        assert both["metrics"]["by_backbone"][b] == record["metrics"], b
    assert {k: v for k, v in both["metrics"].items() if k != "by_backbone"} == alone["classifier"]["metrics"]
    assert set(both["protocol"]["backbones"]) == {"classifier", "dinov2"}


@pytest.mark.parametrize("argv, culprit", [
    (["--weights", "dinov2"], "BACKBONE=PATH"),
    (["--resize", "dinov2=bilinear"], "unknown resize 'bilinear' for the dinov2 backbone"),
    (["--resize", "swav=clean"], "not among the backbones asked for"),
    (["--backbone", "dinov2,inception", "--metrics", "acc"], "acc judges a run's generator"),
    (["--backbone", "dinov2", "--metrics", "is"], "needs class logits"),
    (["--kid-subset-size", "1"], "--kid-subset-size"),
])
def test_bad_feature_space_flags_are_one_line(argv, culprit, tmp_path, capsys, tiny_dinov2):
    fake, real = _image_folder(tmp_path / "fake"), _image_folder(tmp_path / "real")
    base = ["eval", "--images", str(fake), "--ref-images", str(real), "--no-progress"]
    extra = [] if "--weights" in argv else ["--weights", f"dinov2={tiny_dinov2}"]
    backbone = [] if "--backbone" in argv else ["--backbone", "dinov2"]
    code, _, err = run_main(capsys, *base, *backbone, *extra, *argv)
    assert code == 2
    one_line_error(err, culprit)
    assert not (fake / "eval.json").exists()


def test_eval_images_against_a_dataset_split(tmp_path, capsys, tiny_dinov2):
    """--data names the reference: here the built-in digits' test split (greyscale 32 px) against a folder."""
    fake = _image_folder(tmp_path / "fake", labelled=False)
    code, out, _ = run_main(capsys, "eval", "--images", str(fake), "--data", "mnist5k", "--backbone", "dinov2",
                            "--weights", f"dinov2={tiny_dinov2}", "--metrics", "fid", "--no-progress")
    assert code == 0
    record = json.loads((fake / "eval.json").read_text())
    test = load_dataset(tiny_cfg("data.name=mnist5k").data, "test")
    assert record["protocol"]["reference"]["num_images"] == len(test) and record["protocol"]["num_images"] == 12
    shutil.rmtree(fake)

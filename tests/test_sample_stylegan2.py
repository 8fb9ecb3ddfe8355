"""StyleGAN2 sampling: truncation in w space (global or class centers, a layer cutoff), style mixing and w walks,
seeded noise, and one-line errors for every flag that does not fit the checkpoint."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from conftest import STYLEGAN2, run_main, tiny_cfg, tiny_train_args
import condgan
from condgan.cli import main
from condgan.data import to_uint8
from condgan.metrics.generate import NOISE_STREAM, generated_batches
from condgan.nets.stylegan2 import StyleGAN2Generator
from condgan.cli.sample import picture
from condgan.style_sampling import StyleSampler, class_centers, mixed_ws, synthesize, truncated_ws
from condgan.train.trainer import Trainer

CELL = 32 + 2  # a 32 px image and the grid's padding


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sg2") / "run"
    assert main(tiny_train_args(out, *STYLEGAN2, "train.steps=2", "train.ckpt_every=2")) == 0
    return out


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcgan") / "run"
    Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=2"), out, progress=False).train()
    return out


@pytest.fixture(scope="module")
def loaded(run):
    G, info = condgan.load_generator(run)
    assert isinstance(G, StyleGAN2Generator) and G.num_ws == 8  # 4, 8, 16, 32 px: 1 + 3 x 2 convs + 1 ToRGB
    return G, info


def _latents(n: int, z_dim: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)), torch.arange(n) % 10


# ---------------------------------------------------------------------------- the Python API
def test_truncation_lerps_the_cut_layers_toward_w_avg_and_leaves_the_rest(loaded):
    G, info = loaded
    z, y = _latents(6, info.z_dim)
    with torch.no_grad():
        plain = G.mapping(z, F.one_hot(y, 10).float())  # [6, w_dim], the untruncated w of every layer
    w_avg = G.mapping.w_avg
    assert w_avg.abs().sum() > 0  # training tracked it: a center that is not the origin
    for psi in (0.0, 0.3, 0.75):
        for cutoff in (None, 1, 3, 8):
            ws = truncated_ws(G, z, y, psi, cutoff)
            cut = cutoff or 8
            hand = w_avg.double() + psi * (plain.double() - w_avg.double())  # (1 - psi) center + psi w
            assert ws.shape == (6, 8, w_avg.shape[0])
            assert torch.allclose(ws[:, :cut].double(), hand[:, None].expand(-1, cut, -1), rtol=0, atol=1e-6)
            assert torch.equal(ws[:, cut:], plain[:, None].expand(-1, 8 - cut, -1))  # later layers untouched
    assert torch.equal(truncated_ws(G, z, y, 0.0), w_avg.expand(6, 8, -1))  # psi 0: the center itself
    for center in ("global", "class"):  # psi 1: the plain ws, bitwise, whatever the cutoff or center
        assert torch.equal(truncated_ws(G, z, y, 1.0, 3, center), plain[:, None].expand(-1, 8, -1))
    for bad, culprit in (((1.5, None), r"psi must be in \[0, 1\]"), ((float("nan"), None), r"psi must be in \[0, 1\]"),
                         ((0.5, 0), r"cutoff must be a layer count in \[1, 8\]"), ((0.5, 9), "in \\[1, 8\\]")):
        with pytest.raises(ValueError, match=culprit):
            truncated_ws(G, z, y, *bad)


def test_class_centers_are_the_mean_w_of_the_seeded_latents(loaded):
    G, info = loaded
    centers = class_centers(G, [3, 0], n=300, seed=5, batch_size=128)
    z = torch.randn(300, info.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for row, c in enumerate((3, 0)):  # the mean over all 300 latents at once, in float64
            hand = G.mapping(z, F.one_hot(torch.full((300,), c), 10).float()).double().mean(dim=0)
            assert torch.allclose(centers[row].double(), hand, rtol=0, atol=1e-6)
    assert not torch.allclose(centers[0], centers[1])  # each class its own center
    assert torch.equal(class_centers(G, [0], n=300, seed=5, batch_size=128)[0], centers[1])  # whatever else is asked
    # psi 0 toward the class center: every sample's every layer is its class's center
    z, y = _latents(6, info.z_dim)
    y = torch.tensor([3, 0, 3, 0, 0, 3])
    ws = truncated_ws(G, z, y, 0.0, center="class", center_samples=300, center_seed=5)
    assert torch.equal(ws, centers[(y == 0).long()][:, None].expand(-1, 8, -1))
    with pytest.raises(ValueError, match="class 10 is not one of"):
        class_centers(G, [10])


def test_an_unconditional_generator_has_no_class_centers():
    G = StyleGAN2Generator(z_dim=8, num_classes=3, w_dim=8, resolution=32, img_channels=1, mapping_layers=1,
                           channel_base=64, channel_max=8, conditional=False).eval()
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    assert truncated_ws(G, z, torch.zeros(2, dtype=torch.int64), 0.0).shape == (2, G.num_ws, 8)
    for call in (lambda: truncated_ws(G, z, torch.zeros(2, dtype=torch.int64), 0.5, center="class"),
                 lambda: class_centers(G, [0])):
        with pytest.raises(ValueError, match="unconditional generator has no class centers"):
            call()


def test_mixed_ws_takes_the_second_latents_layers_from_k_on():
    a, b = torch.zeros(3, 5, 2), torch.ones(3, 5, 2)
    mixed = mixed_ws(a, b, torch.tensor([5, 2, 0]))
    assert mixed[:, :, 0].tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert torch.equal(mixed_ws(a, b, 3)[:, :, 1], torch.tensor([[0.0, 0, 0, 1, 1]] * 3))


def test_eval_samples_draw_seeded_noise_and_leave_the_global_rng_alone(loaded):
    G, info = loaded
    labels = torch.arange(12) % 10
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = [x for x, _ in generated_batches(G, info.z_dim, labels, 5, seed=3)]
    assert torch.equal(torch.get_rng_state(), state)  # no draw from the global generator
    torch.manual_seed(999)
    again = [x for x, _ in generated_batches(G, info.z_dim, labels, 5, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    # the same images by hand: latents from the seed, noise maps from seed + NOISE_STREAM, batch by batch
    gen, noise_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3 + NOISE_STREAM)
    with torch.no_grad():
        for batch, y in zip(first, labels.split(5)):
            z = torch.randn(y.shape[0], info.z_dim, generator=gen)
            noise = [torch.randn(y.shape[0], 1, r, r, generator=noise_gen) for r in G.synthesis.noise_resolutions()]
            assert torch.equal(batch, to_uint8(G(z, y, noise=noise)))


def test_cli_eval_scores_a_stylegan2_run_reproducibly(run, capsys):
    """condgan eval on a StyleGAN2 run: its noise maps come from the seed, so two evaluations give one FID."""
    args = ["eval", str(run), "--metrics", "fid", "--num", "40", "--no-progress"]
    fids = []
    for _ in range(2):
        code, _, err = run_main(capsys, *args)
        assert code == 0, err
        fids.append(json.loads((run / "eval.json").read_text())["metrics"]["fid"])
    assert fids[0] == fids[1] and np.isfinite(fids[0])


# ---------------------------------------------------------------------------- condgan sample
def _npz(capsys, run, path, *extra: str) -> np.ndarray:
    code, _, err = run_main(capsys, "sample", str(run), "--per-class", "2", "--format", "npz", "--no-progress",
                            "--seed", "7", "--out", str(path), *extra)
    assert code == 0, err
    return np.load(path)["images"]


def test_sample_truncates_in_w_space_on_the_plain_samples_latents(run, loaded, tmp_path, capsys):
    G, info = loaded
    plain = _npz(capsys, run, tmp_path / "plain.npz")
    assert np.array_equal(_npz(capsys, run, tmp_path / "plain2.npz"), plain)  # seeded noise: reproducible
    for i, extra in enumerate((["--truncation", "1"], ["--truncation", "1", "--truncation-cutoff", "2",
                                                       "--truncation-center", "class", "--center-samples", "50"])):
        assert np.array_equal(_npz(capsys, run, tmp_path / f"one{i}.npz", *extra), plain)  # psi 1: bitwise
    half = _npz(capsys, run, tmp_path / "half.npz", "--truncation", "0.5", "--truncation-cutoff", "3")
    # sample i: latent i of --seed 7's stream (one batch of 20), noise from its own stream, w truncated
    z = torch.randn(20, info.z_dim, generator=torch.Generator().manual_seed(7))
    noise_gen = torch.Generator().manual_seed(7 + NOISE_STREAM)
    noise = [torch.randn(20, 1, r, r, generator=noise_gen) for r in G.synthesis.noise_resolutions()]
    with torch.no_grad():
        hand = G(z, torch.arange(20) % 10, truncation=0.5, truncation_cutoff=3, noise=noise)
    assert np.array_equal(half, to_uint8(hand).permute(0, 2, 3, 1).numpy()) and not np.array_equal(half, plain)


def test_psi_zero_gives_every_sample_its_centers_image(run, tmp_path, capsys):
    images = _npz(capsys, run, tmp_path / "g.npz", "--truncation", "0", "--noise", "const")
    assert all(np.array_equal(image, images[0]) for image in images)  # every class: w = w_avg
    images = _npz(capsys, run, tmp_path / "c.npz", "--truncation", "0", "--truncation-center", "class",
                  "--center-samples", "100", "--noise", "const")
    labels = np.arange(20) % 10
    for c in range(10):  # both samples of a class: that class's center
        assert np.array_equal(images[labels == c][0], images[labels == c][1])


def _args(**kw) -> argparse.Namespace:
    base = dict(classes="2,5", per_class=3, seed=4, truncation=None, steps=5, slerp=False, interpolate=None,
                grid=False)
    return argparse.Namespace(**{**base, **kw})


def _ends(G, info, sampler, seed, classes):
    """Each row's two latents' plain images (as the sampler makes them), row by row."""
    gen = torch.Generator().manual_seed(seed)
    z = [torch.randn(2, info.z_dim, generator=gen) for _ in classes]
    return [sampler(zc, torch.tensor([c, c])) for zc, c in zip(z, classes)], z


def test_w_walks_and_style_mixing_end_at_the_two_latents_images(loaded):
    G, info = loaded
    sampler = StyleSampler(G, psi=0.7, center="class", noise_mode="const", center_samples=100)
    same = lambda a, b: torch.allclose(a, b, rtol=0, atol=1e-5)  # noqa: E731 (batches of 2 and of 10)
    with torch.no_grad():
        ends, z = _ends(G, info, sampler, 4, (2, 5))
        images, per_row, labels = picture(G, info, _args(interpolate="w"), sampler)
        assert images.shape == (10, 1, 32, 32) and per_row == 5 and labels == ["2", "5"]
        for row, (pair, zc, c) in enumerate(zip(ends, z, (2, 5))):
            walk = images[row * 5:(row + 1) * 5]
            assert same(walk[0], pair[0]) and same(walk[-1], pair[1]) and not same(pair[0], pair[1])
            ws = sampler.ws(zc, torch.tensor([c, c]))
            assert same(walk[2], synthesize(G, ((ws[0] + ws[1]) / 2)[None]))  # t = 1/2: the mean of the ws
        images, per_row, labels = picture(G, info, _args(interpolate="mix", steps=None), sampler)
        assert images.shape == (18, 1, 32, 32) and per_row == 9
        for row, (pair, zc, c) in enumerate(zip(ends, z, (2, 5))):
            mix = images[row * 9:(row + 1) * 9]
            assert same(mix[0], pair[0]) and same(mix[-1], pair[1])
            ws = sampler.ws(zc, torch.tensor([c, c]))
            for j in (1, 3, 6):  # column j: A's ws on layers 0..7-j, B's from layer 8 - j on
                hand = torch.cat([ws[0, :8 - j], ws[1, 8 - j:]])[None]
                assert same(mix[j], synthesize(G, hand))


def _png(path) -> np.ndarray:
    return np.array(Image.open(path))


def test_pictures_are_pngs_of_the_right_size(run, tmp_path, capsys):
    for name, extra, cols in (("w", ["--interpolate", "w", "--steps", "5"], 5), ("mix", ["--interpolate", "mix"], 9),
                              ("grid", ["--grid", "--per-class", "4"], 4), ("latent", ["--interpolate", "latent"], 8),
                              ("noisy", ["--interpolate", "w", "--noise", "random", "--truncation", "0.5"], 8)):
        code, out, err = run_main(capsys, "sample", str(run), "--classes", "1,4", "--out",
                                  str(tmp_path / f"{name}.png"), *extra)
        assert code == 0, err
        image = _png(tmp_path / f"{name}.png")
        margin = image.shape[1] - (cols * CELL + 2)
        assert image.shape[0] == 2 * CELL + 2 and 0 < margin < 40, (name, image.shape)  # 2 rows, cols, a label
    assert "column j (0..8) has the second latent's ws on layers >= 8-j" in run_main(
        capsys, "sample", str(run), "--interpolate", "mix", "--out", str(tmp_path / "m2.png"))[1]
    code, _, err = run_main(capsys, "sample", str(run), "--interpolate", "class", "--classes", "1,4", "--per-class",
                            "2", "--truncation", "0.5", "--truncation-center", "class", "--center-samples", "20",
                            "--out", str(tmp_path / "class.png"))
    assert code == 0 and _png(tmp_path / "class.png").shape[0] == 2 * CELL + 2, err
    # --noise random in a picture is drawn from --seed: the same picture twice
    run_main(capsys, "sample", str(run), "--classes", "1,4", "--interpolate", "w", "--noise", "random",
             "--truncation", "0.5", "--out", str(tmp_path / "noisy2.png"))
    assert np.array_equal(_png(tmp_path / "noisy.png"), _png(tmp_path / "noisy2.png"))


# ---------------------------------------------------------------------------- one-line errors, nothing written
STYLE_ERRORS = [
    (["--truncation", "1.5"], "--truncation is StyleGAN2's psi in w space, in [0, 1]"),
    (["--truncation", "-0.1"], "--truncation is StyleGAN2's psi"),
    (["--truncation", "nan"], "--truncation must be a finite number"),
    (["--truncation", "inf"], "--truncation must be a finite number"),
    (["--truncation=-inf"], "--truncation must be a finite number"),
    (["--truncation-cutoff", "2"], "--truncation-cutoff needs --truncation"),
    (["--truncation", "0.5", "--truncation-cutoff", "0"], "--truncation-cutoff must be a layer count of at least 1"),
    (["--truncation", "0.5", "--truncation-cutoff", "9"], "--truncation-cutoff 9: this generator has 8 w layers"),
    (["--truncation-center", "class"], "--truncation-center needs --truncation"),
    (["--truncation-center", "global"], "--truncation-center needs --truncation"),
    (["--truncation", "0.5", "--center-samples", "10"], "--center-samples sets the latents"),
    (["--truncation", "0.5", "--truncation-center", "class", "--center-samples", "0"], "--center-samples must be"),
    (["--interpolate", "mix", "--steps", "4"], "--steps: --interpolate mix has one column per layer count"),
    (["--interpolate", "w", "--slerp"], "--slerp is for --interpolate latent"),
]
OTHER_ARCH_ERRORS = [
    (["--truncation", "0.5", "--truncation-cutoff", "2"], "--truncation-cutoff is for StyleGAN2 checkpoints"),
    (["--truncation", "0.5", "--truncation-center", "class"], "--truncation-center is for StyleGAN2 checkpoints"),
    (["--noise", "const"], "--noise is for StyleGAN2 checkpoints"),
    (["--interpolate", "w"], "--interpolate w is for StyleGAN2 checkpoints"),
    (["--interpolate", "mix"], "--interpolate mix is for StyleGAN2 checkpoints"),
    (["--truncation", "0"], "--truncation must be a positive threshold"),  # BigGAN's T keeps its meaning
]


def _assert_refused(capsys, target, tmp_path, args, culprit):
    out = tmp_path / ("p.png" if "--interpolate" in args else "s")
    code, _, err = run_main(capsys, "sample", str(target), "--out", str(out), "--no-progress", *args)
    assert code == 2 and culprit in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, culprit", STYLE_ERRORS)
def test_bad_stylegan2_flags_are_one_line_errors_that_write_nothing(run, tmp_path, capsys, args, culprit):
    _assert_refused(capsys, run, tmp_path, args, culprit)


@pytest.mark.parametrize("args, culprit", OTHER_ARCH_ERRORS)
def test_stylegan2_flags_on_other_checkpoints_are_one_line_errors(dcgan_run, tmp_path, capsys, args, culprit):
    _assert_refused(capsys, dcgan_run, tmp_path, args, culprit)

"""condgan sample: class folders of PNGs (or one .npz) holding the very images condgan eval scores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_main, tiny_cfg
from condgan.config import DataConfig
from condgan.data.registry import load_dataset
from condgan.metrics.backbones import build_backbone
from condgan.metrics.fid import feature_statistics, frechet_distance
from condgan.metrics.reference import reference_statistics
from condgan.train.trainer import Trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=2"), out, progress=False).train()
    return out


def test_png_folders_hold_the_images_condgan_eval_scores(run, tmp_path, capsys):
    code, out, err = run_main(capsys, "sample", str(run), "--per-class", "4", "--out", str(tmp_path / "s"),
                              "--no-progress")
    assert code == 0, err
    folders = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert folders == [f"{c:04d}_{c}" for c in range(10)]  # index, then the class name (mnist5k: the digit)
    assert sorted(p.name for p in (tmp_path / "s" / "0003_3").iterdir()) == [f"{k:06d}.png" for k in range(4)]
    # sample i is class i mod 10, the (i // 10)-th of its class: eval's order, latents and batches
    images = torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / "s" / f"{i % 10:04d}_{i % 10}" /
                                                               f"{i // 10:06d}.png")))[None] for i in range(40)])
    assert run_main(capsys, "eval", str(run), "--metrics", "fid", "--num", "40", "--no-progress")[0] == 0
    fid = json.loads((run / "eval.json").read_text())["metrics"]["fid"]
    # the same FID from the PNGs through condgan's metric API: backbone features vs the reference statistics
    train = load_dataset(DataConfig(), "train")
    backbone = build_backbone("classifier", train, progress=False)
    ref = reference_statistics(load_dataset(DataConfig(), "test"), "test", backbone, progress=False)
    mu, sigma = feature_statistics(backbone.extract(images)[0])
    assert frechet_distance(mu, sigma, ref.mu, ref.sigma) == fid


def test_npz_and_chosen_classes(run, tmp_path, capsys):
    path = tmp_path / "s.npz"
    code, _, err = run_main(capsys, "sample", str(run), "--per-class", "3", "--classes", "7,2", "--format", "npz",
                            "--out", str(path), "--seed", "5", "--no-progress")
    assert code == 0, err
    data = np.load(path)
    assert data["images"].shape == (6, 32, 32, 1) and data["images"].dtype == np.uint8
    assert data["labels"].tolist() == [7, 2] * 3 and data["class_names"].tolist() == list("0123456789")
    again = tmp_path / "again.npz"
    run_main(capsys, "sample", str(run), "--per-class", "3", "--classes", "7,2", "--format", "npz", "--out",
             str(again), "--seed", "5", "--no-progress")
    assert np.array_equal(np.load(again)["images"], data["images"])  # seeded


@pytest.mark.parametrize("args, culprit", [
    (["--classes", "3,12"], "--classes: class 12 is not one of the dataset's 10 classes (0..9)"),
    (["--classes", "3,3"], "distinct class indices"),
    (["--per-class", "0"], "--per-class and --batch-size must be at least 1"),
    (["--format", "npz"], "name it *.npz"),
])
def test_bad_requests_are_one_line_errors_that_write_nothing(run, tmp_path, capsys, args, culprit):
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--no-progress", *args)
    assert code == 2 and culprit in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_nothing_behind(run, tmp_path, capsys, monkeypatch):
    import PIL.Image

    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)
    real = PIL.Image.Image.save
    monkeypatch.setattr(PIL.Image.Image, "save", interrupted)
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--no-progress")
    assert code == 130 and list(tmp_path.iterdir()) == []  # no folder, no hidden temporary one


def test_an_existing_output_is_never_overwritten(run, tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "mine.txt").write_text("keep")
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--no-progress")
    assert code == 2 and "exists; condgan sample never overwrites" in err
    assert (tmp_path / "s" / "mine.txt").read_text() == "keep"


# ---------------------------------------------------------------------------- truncation and standing statistics
def test_truncated_normal_bounds_resampling_and_distribution():
    from scipy import stats

    from condgan.metrics.generate import truncated_normal

    z = truncated_normal((20000,), 0.5, torch.Generator().manual_seed(0))
    plain = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    assert z.abs().max() <= 0.5
    within = plain.abs() <= 0.5
    assert torch.equal(z[within], plain[within]) and 0 < int(within.sum()) < 20000  # only the others redrawn
    assert stats.kstest(z.numpy(), stats.truncnorm(-0.5, 0.5).cdf).pvalue > 0.01  # N(0, 1) given |z| <= 0.5
    with pytest.raises(Exception, match="threshold must be positive"):
        truncated_normal((3,), 0.0, torch.Generator())


def test_standing_statistics_are_the_plain_average_of_the_batch_statistics(run):
    import condgan
    from condgan.generator import standing_statistics

    G, info = condgan.load_generator(run)
    norms = [m for m in G.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    seen: dict[int, list] = {i: [] for i in range(len(norms))}
    hooks = [m.register_forward_hook(lambda _m, inp, _out, i=i: seen[i].append(inp[0].detach().double()))
             for i, m in enumerate(norms)]
    others = {k: v.clone() for k, v in G.state_dict().items() if "running" not in k and "num_batches" not in k}
    momenta = [m.momentum for m in norms]
    standing_statistics(G, info.z_dim, info.num_classes, batches=3, batch_size=8, seed=1)
    for h in hooks:
        h.remove()
    assert norms and not G.training and all(len(batches) == 3 for batches in seen.values())
    for i, m in enumerate(norms):  # the direct average over the 3 batches of each channel's mean and variance
        means = torch.stack([x.mean(dim=(0, 2, 3)) for x in seen[i]])
        variances = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for x in seen[i]])
        assert torch.allclose(m.running_mean.double(), means.mean(0), rtol=1e-5, atol=1e-6)
        assert torch.allclose(m.running_var.double(), variances.mean(0), rtol=1e-5, atol=1e-6)
    assert [m.momentum for m in norms] == momenta and None not in momenta  # the momenta are given back
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in others.items())  # weights, SN vectors untouched


def test_sample_and_eval_take_truncation_and_standing_stats(run, tmp_path, capsys, monkeypatch):
    import condgan.metrics.generate as generate

    thresholds = []
    real = generate.truncated_normal
    monkeypatch.setattr(generate, "truncated_normal", lambda *a, **k: thresholds.append(a[1]) or real(*a, **k))
    args = ["sample", str(run), "--per-class", "2", "--format", "npz", "--no-progress"]
    for name, extra in (("trunc", ["--truncation", "0.5"]), ("stand", ["--standing-stats", "2"])):
        assert run_main(capsys, *args, "--out", str(tmp_path / f"{name}.npz"), *extra)[0] == 0
    assert thresholds == [0.5]  # the 20 samples' latents in one batch, truncated at 0.5
    for bad, culprit in ((["--truncation", "-1"], "--truncation must be a positive"),
                         (["--standing-stats", "-2"], "--standing-stats must be 0 (off)")):
        code, _, err = run_main(capsys, *args, "--out", str(tmp_path / "bad.npz"), *bad)
        assert code == 2 and culprit in err
    code, _, err = run_main(capsys, "eval", str(run), "--metrics", "fid", "--num", "20", "--standing-stats", "2",
                            "--out", str(tmp_path / "e.json"), "--no-progress")
    assert code == 0, err
    assert "standing statistics over 2 batches" in json.loads((tmp_path / "e.json").read_text())["generator"]


# ---------------------------------------------------------------------------- grids and interpolations
def test_lerp_and_slerp_end_exactly_at_their_endpoints_and_slerp_follows_the_great_circle():
    from condgan.sample import lerp, slerp

    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 7)
    for dtype in (torch.float32, torch.float64):
        a, b = torch.randn(16, generator=g).to(dtype), torch.randn(16, generator=g).to(dtype)
        for path in (lerp, slerp):
            walk = path(a, b, t.to(dtype))
            assert torch.equal(walk[0], a) and torch.equal(walk[-1], b)
    a, b = torch.randn(16, generator=g).double(), torch.randn(16, generator=g).double()
    a, b = a / a.norm(), b / b.norm()
    theta = torch.arccos(a @ b)
    walk = slerp(a, b, t.double())
    assert torch.allclose(walk.norm(dim=1), torch.ones(7, dtype=torch.float64))  # stays on the unit sphere
    assert torch.allclose(torch.arccos((walk @ a).clamp(-1, 1)), t.double() * theta)  # at angle t theta from a
    assert torch.allclose(lerp(a, b, t.double())[3], (a + b) / 2)


def _args(**kw):
    import argparse

    base = dict(classes=None, per_class=3, seed=4, truncation=None, steps=5, slerp=False, interpolate=None, grid=True)
    return argparse.Namespace(**{**base, **kw})


def test_interpolation_rows_start_and_end_at_the_plain_samples(run):
    import condgan
    from condgan.cli.sample import picture

    G, info = condgan.load_generator(run)
    # the end latents / class weights are exactly the plain ones (test above); the images agree to float32
    # rounding (a batch of 10 and a batch of 2 may take different convolution kernels)
    same = lambda a, b: torch.allclose(a, b, rtol=0, atol=1e-6)  # noqa: E731
    with torch.no_grad():
        for slerp in (False, True):
            images, per_row, labels = picture(G, info, _args(interpolate="latent", classes="2,5", slerp=slerp))
            gen = torch.Generator().manual_seed(4)
            for row, c in enumerate((2, 5)):
                z = torch.randn(2, info.z_dim, generator=gen)
                ends = G(z, torch.tensor([c, c]))
                assert same(images[row * per_row], ends[0]) and same(images[(row + 1) * per_row - 1], ends[1])
                assert not same(ends[0], ends[1])  # the tolerance tells the two ends apart
            assert per_row == 5 and labels == ["2", "5"]  # mnist5k's class names are its digits
        images, per_row, labels = picture(G, info, _args(interpolate="class", classes="2,5", per_class=2))
        z = torch.randn(2, info.z_dim, generator=torch.Generator().manual_seed(4))
        for row in range(2):
            ends = G(z[row].expand(2, -1), torch.tensor([2, 5]))
            assert same(images[row * 5], ends[0]) and same(images[row * 5 + 4], ends[1])
        assert labels == ["2>5", "2>5"]


def test_grid_png_has_a_labelled_row_per_class(run, tmp_path, capsys):
    code, out, err = run_main(capsys, "sample", str(run), "--grid", "--classes", "3,1", "--per-class", "4", "--out",
                              str(tmp_path / "g.png"), "--no-progress")
    assert code == 0, err
    image = np.array(Image.open(tmp_path / "g.png"))
    assert image.shape[0] == 2 * (32 + 2) + 2 and image.shape[1] > 4 * (32 + 2) + 2  # 2 rows, 4 columns, a margin
    margin = image.shape[1] - (4 * (32 + 2) + 2)
    assert image[:, :margin].max() > 200  # the class names, in white (anti-aliased)
    for bad, culprit in ((["--out", str(tmp_path / "g.npz")], "write one PNG"), (["--steps", "1"], "--steps")):
        code, _, err = run_main(capsys, "sample", str(run), "--grid", "--out", str(tmp_path / "h.png"), *bad)
        assert code == 2 and culprit in err

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
    (["--classes", "3,12"], "class 12 does not exist (the generator has 10 classes)"),
    (["--classes", "3,3"], "distinct class indices"),
    (["--per-class", "0"], "--per-class and --batch-size must be at least 1"),
    (["--format", "npz"], "name it *.npz"),
])
def test_bad_requests_are_one_line_errors_that_write_nothing(run, tmp_path, capsys, args, culprit):
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--no-progress", *args)
    assert code == 2 and culprit in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_never_overwritten(run, tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "mine.txt").write_text("keep")
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--no-progress")
    assert code == 2 and "exists; condgan sample never overwrites" in err
    assert (tmp_path / "s" / "mine.txt").read_text() == "keep"

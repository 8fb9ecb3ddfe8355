"""What changes at 200-1000 classes and 64-128 px: the sample grid's rows, the default evaluation protocol,
intra-class FID without per-class D x D statistics."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from condgan.config import ConfigError
from condgan.data.base import make_dataset
from condgan.metrics.conditional import intra_class_fid
from condgan.metrics.evaluate import EvalRequest, auto_protocol, resolve_auto
from condgan.sample import grid_classes
from condgan.train.trainer import Trainer
from conftest import run_main, tiny_cfg, tiny_train_args


def fake_data(classes: int, side: int, per_class: int = 1):
    n = classes * per_class
    return make_dataset(torch.zeros(n, 3, side, side, dtype=torch.uint8), torch.arange(n) % classes, classes, "fake")


def test_grid_rows_default_to_at_most_ten_classes_spread_evenly():
    assert grid_classes("", 10) == list(range(10)) and grid_classes("", 3) == [0, 1, 2]
    assert grid_classes("", 1000) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    assert grid_classes("", 200) == [0, 22, 44, 66, 88, 111, 133, 155, 177, 199]
    assert grid_classes("7,3,150", 200) == [7, 3, 150]
    with pytest.raises(ValueError, match=r"class 200 is not one of the dataset's 200 classes \(0..199\)"):
        grid_classes("5,200", 200)


@pytest.mark.parametrize("bad", ["a", "1,,2", "3,3", "-1", "1.5"])
def test_grid_classes_syntax_is_a_config_error(bad):
    message = r"'train.grid_classes' (must be a comma list of distinct class indices|expects str)"
    with pytest.raises(ConfigError, match=message):
        tiny_cfg(f"train.grid_classes={bad}")


def test_grid_of_a_run_shows_the_chosen_classes(tmp_path, capsys):
    t = Trainer(tiny_cfg("train.steps=1", "train.grid_classes=2,7,9"), tmp_path, progress=False)
    path = t.save_samples()
    rows = (Image.open(path).size[1] - 2) // (32 + 2)
    assert rows == 3
    t.close()
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "bad", "train.grid_classes=3,10"))
    assert code == 2 and err.count("\n") == 1 and "'train.grid_classes': class 10 is not one of" in err


@pytest.mark.parametrize("classes,side,backbone,metrics", [(10, 32, "classifier", ["fid", "acc"]),
                                                           (100, 32, "classifier", ["fid", "acc"]),
                                                           (200, 64, "inception", ["fid", "is"]),
                                                           (1000, 128, "inception", ["fid", "is"]),
                                                           (10, 64, "inception", ["fid", "is"])])
def test_auto_protocol_trains_no_classifier_beyond_cifar_scale(classes, side, backbone, metrics):
    data = fake_data(classes, side)
    assert auto_protocol(data) == (backbone, metrics)
    resolved = resolve_auto(EvalRequest(), data)
    assert (resolved.backbone, resolved.metrics) == (backbone, metrics)
    explicit = resolve_auto(EvalRequest(metrics=["acc"], backbone="classifier"), data)  # asked for by name
    assert (explicit.backbone, explicit.metrics) == ("classifier", ["acc"])
    assert auto_protocol(data, eval_command=True)[1][:2] == (["fid", "is"] if backbone == "classifier" else metrics)


def test_intra_fid_at_1000_classes_against_scipy():
    """1000 classes x 5 images x 256 features: each class's FID through the low-rank route, checked against
    numpy covariances and scipy's sqrtm on a few classes."""
    rng = np.random.default_rng(0)
    classes, per, dim = 1000, 5, 256
    labels = torch.arange(classes * per) % classes
    fake = torch.from_numpy(rng.standard_normal((classes * per, dim)))
    real = torch.from_numpy(rng.standard_normal((classes * per, dim)) * 1.1 + 0.2)
    mean, per_class = intra_class_fid(fake, labels, real, labels, classes)
    assert len(per_class) == classes and mean == pytest.approx(np.mean(per_class), rel=1e-12)
    for c in (0, 517, 999):
        f, r = fake[labels == c].numpy(), real[labels == c].numpy()
        s1, s2 = np.cov(f, rowvar=False), np.cov(r, rowvar=False)
        diff = f.mean(0) - r.mean(0)
        ref = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
        assert per_class[c] == pytest.approx(ref, rel=1e-6)


def test_end_of_training_report_trains_no_classifier_beyond_cifar_scale(tmp_path, capsys):
    rng = np.random.default_rng(0)
    npz = tmp_path / "many.npz"
    np.savez(npz, images=rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8), labels=np.arange(400) % 200)
    args = [a for a in tiny_train_args(tmp_path / "run", "data.name=npz", f"data.root={npz}", "train.steps=1")
            if a != "--no-eval"]
    code, out, _ = run_main(capsys, *args)
    assert code == 0 and "report skipped: npz has 200 classes, more than the 100 the evaluation classifier" in out
    assert f"condgan eval {tmp_path / 'run'}" in out and not (tmp_path / "run" / "final_eval.json").exists()

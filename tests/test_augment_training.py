"""Augmentation in training: ADA's p controller against the reference procedure, exact resume with ADA and
DiffAugment on, the config keys (hostile values included) and data.subset."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import run_main, straight_and_resumed, tiny_cfg, tiny_train_args
from condgan.augment.training import AdaptiveAugmentation, build_augmentation
from condgan.config import AugConfig, ConfigError
from condgan.data import load_dataset
from condgan.data.base import first_per_class
from condgan.train.trainer import Trainer


def reference_p_trajectory(outputs: list[np.ndarray], p0: float, target: float, interval: int,
                           kimg: float) -> list[float]:
    """stylegan2-ada-pytorch's controller, written from its training loop: after every ``interval``-th
    minibatch, p <- max(0, p + sign(mean of sign(D(x_real)) over the interval - target) * batch * interval
    / (kimg * 1000)). Returns p after every minibatch."""
    p, signs, trajectory = p0, [], []
    for i, out in enumerate(outputs, 1):
        signs.extend(np.sign(out))
        if i % interval == 0:
            adjust = np.sign(np.mean(signs) - target) * (len(out) * interval) / (kimg * 1000)
            p = max(p + adjust, 0.0)
            signs = []
        trajectory.append(p)
    return trajectory


def scripted_outputs(n_steps: int, batch: int) -> list[np.ndarray]:
    """D outputs that drift from mostly negative to mostly positive and back, with exact zeros and ties."""
    rng = np.random.default_rng(0)
    out = []
    for t in range(n_steps):
        bias = np.sin(t / 6.0) * 2
        o = rng.normal(bias, 1.0, batch)
        o[rng.random(batch) < 0.1] = 0.0  # sign 0 counts in the mean's denominator
        out.append(o)
    out[8] = out[9] = out[10] = out[11] = np.array([1.0, -1.0] * (batch // 2))  # mean 0: p stays (target 0)
    return out


@pytest.mark.parametrize("target,p0", [(0.6, 0.0), (0.0, 0.05), (-0.3, 0.5)])
def test_ada_controller_follows_the_reference_trajectory(target, p0):
    batch, interval, kimg = 8, 4, 1
    outputs = scripted_outputs(60, batch)
    expected = reference_p_trajectory(outputs, p0, target, interval, kimg)
    ada = AdaptiveAugmentation(AugConfig(ada="bgc", ada_p=p0, ada_target=target, ada_interval=interval,
                                         ada_kimg=kimg), torch.device("cpu"))
    got = []
    for out in outputs:
        ada.observe_real(torch.tensor(out, dtype=torch.float32))
        got.append(float(ada.p))
    assert np.allclose(got, expected, atol=1e-6), (got, expected)
    assert min(expected) == 0.0 or target == -0.3  # the clamp at 0 was exercised
    assert len(set(np.round(expected, 6))) > 3  # p moved both ways


def test_ada_fixed_p_and_state_round_trip():
    fixed = AdaptiveAugmentation(AugConfig(ada="bgc", ada_p=0.3, ada_target=None), torch.device("cpu"))
    for _ in range(9):
        fixed.observe_real(torch.ones(4))
    assert float(fixed.p) == pytest.approx(0.3) and "aug_rt" not in fixed.log_values()

    outputs = scripted_outputs(30, 8)
    cfg = AugConfig(ada="bgc", ada_target=0.6, ada_kimg=1)
    straight, first = (AdaptiveAugmentation(cfg, torch.device("cpu")) for _ in range(2))
    for out in outputs:
        straight.observe_real(torch.tensor(out))
    for out in outputs[:13]:  # stop mid-interval: the accumulators are state too
        first.observe_real(torch.tensor(out))
    second = AdaptiveAugmentation(cfg, torch.device("cpu"))
    second.load_state_dict(first.state_dict())
    for out in outputs[13:]:
        second.observe_real(torch.tensor(out))
    assert torch.equal(straight.p, second.p) and torch.equal(straight.signs, second.signs)


def test_build_augmentation_picks_the_configured_kind():
    assert type(build_augmentation(AugConfig(), torch.device("cpu"))).__name__ == "Augmentation"
    assert type(build_augmentation(AugConfig(diffaug="translation"), torch.device("cpu"))).__name__ == \
        "DiffAugmentation"
    assert type(build_augmentation(AugConfig(ada="bgc"), torch.device("cpu"))).__name__ == "AdaptiveAugmentation"


@pytest.mark.parametrize("aug", [["aug.diffaug=color,translation,cutout"],
                                 ["aug.ada=bgc", "aug.ada_p=0.5", "aug.ada_kimg=1", "aug.ada_interval=2"]])
def test_resume_is_bitwise_exact_with_augmentation(tmp_path, aug):
    cfg = tiny_cfg("train.steps=6", "train.ckpt_every=3", "train.n_dis=2", *aug)
    straight, second = straight_and_resumed(cfg, tmp_path, 3)
    for a, b in ((straight.run.ema.shadow, second.run.ema.shadow), (straight.run.models.D, second.run.models.D)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    sa, sb = straight.run.strategy.state_dict()["augmentation"], second.run.strategy.state_dict()["augmentation"]
    assert sa.keys() == sb.keys() and all(torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])) for k in sa)
    if "aug.ada=bgc" in aug:
        assert float(sa["p"]) != 0.5  # p moved (and resumed to the same value)


def test_augmentation_changes_training_and_logs_p(tmp_path):
    plain = Trainer(tiny_cfg("train.steps=2"), tmp_path / "plain", progress=False)
    plain.train()
    ada = Trainer(tiny_cfg("train.steps=2", "aug.ada=bgc", "aug.ada_p=1.0"), tmp_path / "ada", progress=False)
    ada.train()
    sa, sb = plain.run.models.D.state_dict(), ada.run.models.D.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)
    assert '"aug_p": 1.0' in (tmp_path / "ada/metrics.jsonl").read_text()


@pytest.mark.parametrize("override,culprit", [
    ("aug.diffaug=color,zoom", "zoom"), ("aug.ada=xyz", "aug.ada"), ("aug.ada_p=1.5", "aug.ada_p"),
    ("aug.ada_p=nan", "aug.ada_p"), ("aug.ada_target=2", "aug.ada_target"), ("aug.ada_kimg=0", "aug.ada_kimg"),
    ("aug.ada_interval=-1", "aug.ada_interval"), ("data.subset=-3", "data.subset")])
def test_bad_augmentation_keys_are_one_line_errors(override, culprit):
    with pytest.raises(ConfigError, match=culprit) as err:
        tiny_cfg(override)
    assert "\n" not in str(err.value)


def test_two_augmentations_at_once_is_an_error(capsys, tmp_path):
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "aug.ada=bgc", "aug.diffaug=translation"))
    assert code == 2 and "aug.diffaug" in err and "aug.ada" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_subset_keeps_the_first_k_of_each_class_whatever_the_seed():
    full = load_dataset(tiny_cfg().data, "train")
    sub = first_per_class(full, 7)
    assert torch.bincount(sub.labels, minlength=10).tolist() == [7] * 10
    assert sub.identity == first_per_class(full, 7).identity != full.identity  # fixed shuffle
    # every kept image is one of the dataset's, with its own label
    index = {bytes(img.numpy().tobytes()): int(lab) for img, lab in zip(full.images, full.labels)}
    assert all(index[bytes(img.numpy().tobytes())] == int(lab) for img, lab in zip(sub.images, sub.labels))
    assert len(first_per_class(full, 10**6)) == len(full)  # k beyond a class's size keeps all of it


def test_training_on_a_subset_uses_only_the_subset(tmp_path):
    t = Trainer(tiny_cfg("train.steps=1", "data.subset=4"), tmp_path, progress=False)
    assert len(t.run.dataset) == 40 and t.run.dataset.name.endswith("first4")


def test_subset_smaller_than_the_batch_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "data.subset=1"))
    assert code == 2 and "data.subset=1 keeps 10 images" in err and err.count("\n") == 1


@pytest.mark.parametrize("sets", [
    ["model.arch=fastgan", "loss.cond=ac", "loss.fake_kl_weight=1.0", "train.strategy=free_adversarial",
     "robust.epsilon=0.05", "robust.step_size=0.05", "model.init=xavier", "aug.diffaug=color,translation,cutout"],
    ["train.strategy=pgd", "robust.epsilon=0.05", "robust.step_size=0.02", "aug.ada=bgc", "aug.ada_p=0.5"],
    ["reg.r1=1.0", "reg.gp=1.0", "reg.cr=1.0", "reg.zcr_d=1.0", "reg.lecam=0.1", "reg.lecam_start=0",
     "reg.topk=true", "loss.fm_weight=1.0", "aug.ada=bgc", "aug.ada_p=0.5"],
    ["speed.precision=bf16", "aug.diffaug=translation,cutout"]])
def test_augmentation_with_every_strategy_and_regulariser(tmp_path, sets):
    """Two steps train with finite losses, and FastGAN's delta still gets its ascent through the augmentation."""
    t = Trainer(tiny_cfg("train.steps=2", *sets), tmp_path, progress=False)
    t.train()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    if "train.strategy=free_adversarial" in sets:
        assert records[-1]["d_delta_abs"] > 0

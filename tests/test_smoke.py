"""``condgan train --smoke``: every shipped preset trains on fabricated images of its shape, with no dataset."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import one_line_error, run_main
from condgan.presets import list_presets, load_preset

# Presets at full width, a batch a CPU steps through in seconds (the batch is the one thing changed: memory at the
# preset's own batch is what a GPU check measures, and is a GPU's question)
SMALL_BATCH = ["--set", "train.batch_size=8"]
CI_SAMPLE = ["mnist5k-reacgan", "mnist5k-fastgan", "cifar10-fastgan"]


def smoke(capsys, tmp_path, preset: str, *extra: str) -> tuple[int, str, str]:
    return run_main(capsys, "train", "--preset", preset, "--smoke", "1", "--out", str(tmp_path / "run"), *extra)


def check_smoke_run(tmp_path, preset: str, code: int, out: str, err: str) -> None:
    assert code == 0, err
    assert "training done: 1 steps" in out and "smoke run: the set-up works" in out
    run = tmp_path / "run"
    assert (run / "checkpoints" / "ckpt_00000001.pt").exists() and list((run / "samples").glob("*.png"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["name"] == "npz" and saved["eval"]["every"] == 0
    with np.load(saved["data"]["root"]) as data:  # the preset's shape
        assert data["images"].shape[1:3] == (saved["data"]["resolution"],) * 2
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["step"] == 1


@pytest.mark.parametrize("preset", CI_SAMPLE)
def test_smoke_trains_a_sample_of_presets(preset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    assert preset in list_presets()
    check_smoke_run(tmp_path, preset, *smoke(capsys, tmp_path, preset, *SMALL_BATCH))


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the slow test: presets of one shape share their fabricated images."""
    return tmp_path_factory.mktemp("smoke-cache")


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(list_presets()))
def test_smoke_trains_every_preset(preset, tmp_path, capsys, monkeypatch, shared_cache):
    monkeypatch.setenv("CONDGAN_CACHE", str(shared_cache))
    # 512 px: a batch of 2 (ADA's warp works on 6x the image side; a batch of 8 takes minutes per step on a CPU)
    batch = ["--set", "train.batch_size=2"] if load_preset(preset)["data"].get("resolution") == 512 else SMALL_BATCH
    check_smoke_run(tmp_path, preset, *smoke(capsys, tmp_path, preset, *batch))
    shutil.rmtree(tmp_path / "run")  # a full-width ImageNet checkpoint is a gigabyte: 160 of them fill a disk


def test_smoke_needs_no_dataset_and_leaves_a_run_that_samples(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    code, out, err = run_main(capsys, "train", "--preset", "imagenet128-reacgan", "--smoke", "1", "--out",
                              str(tmp_path / "run"), "--set", "train.batch_size=4", "--set", "model.g_width=8",
                              "--set", "model.d_width=8")
    assert code == 0, err  # no ImageNet store anywhere: the data is fabricated
    code, out, err = run_main(capsys, "sample", str(tmp_path / "run"), "--per-class", "1", "--classes", "0,999",
                              "--out", str(tmp_path / "s.npz"), "--format", "npz")
    assert code == 0, err
    assert np.load(tmp_path / "s.npz")["images"].shape == (2, 128, 128, 3)


def test_smoke_bad_inputs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    code, _, err = smoke(capsys, tmp_path, "imagenet128-reacgan", "--set", "model.g_width=4", "--set",
                         "model.d_width=4", *SMALL_BATCH)
    assert code == 2  # too narrow for self-attention: found while building, said as a config error
    one_line_error(err, "model.d_width=4", "SelfAttention needs at least 8 channels")
    code, _, err = smoke(capsys, tmp_path, "mnist5k-reacgan", "--smoke", "0")
    assert code == 2
    one_line_error(err, "--smoke", "got 0")
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as stopped:
        run_main(capsys, "train", "--smoke", "x", "--out", str(tmp_path / "run"))
    assert stopped.value.code == 2 and "--smoke" in one_line_error(capsys.readouterr().err)
    code, _, err = run_main(capsys, "train", "--smoke", "1", "--out", str(tmp_path / "run"), "--set", "data.name=npz",
                            "--set", f"data.root={tmp_path / 'none.npz'}")
    assert code == 2
    one_line_error(err, "--smoke", "data.name=npz", "none.npz")
    code, out, err = smoke(capsys, tmp_path, "mnist5k-reacgan", *SMALL_BATCH)
    assert code == 0, err
    # the smoke run is not the preset's: training it for real in the same dir is refused, naming a difference
    code, _, err = run_main(capsys, "train", "--preset", "mnist5k-reacgan", "--out", str(tmp_path / "run"),
                            "--no-eval")
    assert code == 2 and "data.name" in one_line_error(err)


def test_smoke_keeps_a_linear_decay_at_its_share_of_the_schedule(tmp_path, monkeypatch):
    from condgan.cli.train import resolve_config
    from condgan.train.smoke import smoke_config

    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    cfg = resolve_config("imagenet143-64-sngan", None, [])  # decay from 200k of 300k steps
    assert (cfg.optim.lr_decay, cfg.optim.lr_decay_start, cfg.train.steps) == ("linear", 200000, 300000)
    smoke = smoke_config(cfg, 6)
    assert (smoke.optim.lr_decay_start, smoke.train.steps) == (4, 6)  # a start beyond the end would be invalid

"""log.tensorboard: the run's scalars, sample grids and evaluations as TensorBoard events, read back."""
from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import run_main, tiny_cfg, tiny_train_args
from condgan.config import ConfigError
from condgan.train.trainer import Trainer


def test_events_hold_the_logged_scalars_the_grids_and_the_evaluations(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tiny_cfg("train.steps=4", "train.log_every=2", "train.sample_every=2", "train.ckpt_every=2",
                   "eval.every=4", "eval.num_samples=20", "eval.metrics=fid", "log.tensorboard=true")
    with Trainer(cfg, tmp_path / "run", progress=False) as trainer:
        trainer.train()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"d_loss", "g_loss", "lr_g", "lr_d", "d_feat_norm", "it_per_s", "eval/fid"} <= set(tags["scalars"])
    assert "time" not in tags["scalars"]
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    d_loss = [(r["step"], r["d_loss"]) for r in log if "d_loss" in r]
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("d_loss")] == d_loss  # the same values
    fid = [(r["step"], r["eval"]["fid"]) for r in log if "eval" in r]
    assert [(e.step, e.value) for e in events.Scalars("eval/fid")] == [(s, pytest.approx(v)) for s, v in fid]
    assert [e.step for e in events.Images("samples")] == [2, 4]


def test_resuming_may_turn_it_on_and_a_missing_package_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert run_main(capsys, *tiny_train_args(run, "train.steps=2", "train.ckpt_every=2"))[0] == 0
    code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=4", "train.ckpt_every=2",
                                                     "log.tensorboard=true"))
    assert code == 0, err
    assert any((run / "tensorboard").iterdir())
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match="'log.tensorboard' needs the tensorboard package"):
        Trainer(tiny_cfg("log.tensorboard=true"), tmp_path / "other", progress=False)
    assert not (tmp_path / "other").exists()

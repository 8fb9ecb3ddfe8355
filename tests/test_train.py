"""Training loop: exact resume, crash safety (SIGKILL), divergence stop, foreign checkpoints."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import straight_and_resumed, tiny_cfg, tiny_train_args

from condgan.config import ConfigError
from condgan.train import checkpoint as ckpt
from condgan.train.trainer import Trainer, TrainingDiverged


def ema_state(trainer: Trainer) -> dict:
    return {k: v.clone() for k, v in trainer.run.ema.shadow.state_dict().items()}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


BIGGAN64 = ["model.arch=biggan", "data.resolution=64", "data.resize=true", "model.z_dim=20",
            "model.shared_dim=8"]


@pytest.mark.parametrize("n_dis,sets", [(1, []), (2, []), (2, BIGGAN64),
                                        (1, ["train.accumulate=2", "speed.precision=bf16"])],
                         ids=["dcgan-1", "dcgan-2", "biggan64-2", "accumulate-bf16"])
def test_resume_is_bitwise_exact(tmp_path, n_dis, sets):
    n = 3
    cfg = tiny_cfg(f"train.steps={2 * n}", f"train.ckpt_every={n}", f"train.n_dis={n_dis}", "data.hflip=true", *sets)
    straight, second = straight_and_resumed(cfg, tmp_path, n)
    assert second.step == 2 * n
    assert_bitwise_equal(ema_state(straight), ema_state(second))
    assert_bitwise_equal(straight.run.models.D.state_dict(), second.run.models.D.state_dict())
    logged = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 2 * n + 1))


def test_checkpoint_is_complete_and_weights_only(tmp_path):
    cfg = tiny_cfg("train.steps=4", "train.ckpt_every=2", "train.keep_ckpts=1")
    t = Trainer(cfg, tmp_path, progress=False)
    t.train()
    files = ckpt.list_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in files] == ["ckpt_00000004.pt"]  # last K kept
    state = torch.load(files[0], weights_only=True)
    for key in ["G", "D", "G_ema", "opt_g", "opt_d", "sched_g", "sched_d", "step", "rng", "sampler", "config"]:
        assert key in state
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert state["step"] == 4 and state["config"]["train"]["steps"] == 4
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "samples" / "step_00000004.png").exists()


def test_changed_config_on_resume_names_keys(tmp_path):
    Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=2"), tmp_path, progress=False).train()
    with pytest.raises(ConfigError) as e:
        Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=2", "loss.m_p=0.9", "train.n_dis=2"), tmp_path,
                progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "loss.m_p" in msg and "train.n_dis" in msg and "train.steps" not in msg


def test_checkpoint_of_another_architecture_is_named(tmp_path):
    Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=2"), tmp_path / "a", progress=False).train()
    wider = tiny_cfg("train.steps=2", "train.ckpt_every=2", "model.g_width=12")
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    foreign = tmp_path / "b" / "checkpoints" / "ckpt_00000002.pt"
    shutil.copy(tmp_path / "a" / "checkpoints" / "ckpt_00000002.pt", foreign)
    with pytest.raises(ConfigError) as e:  # the checkpoint's own config tells first
        Trainer(wider, tmp_path / "b", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and str(foreign) in msg and "model.g_width (8 -> 12)" in msg
    state = torch.load(foreign, weights_only=True)
    state["config"]["model"]["g_width"] = 12  # a config that agrees, with weights that do not
    torch.save(state, foreign)
    with pytest.raises(ckpt.CheckpointError) as e:
        Trainer(wider, tmp_path / "b", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and str(foreign) in msg and "shape" in msg and "generator" in msg


def test_nonfinite_loss_stops_and_keeps_good_checkpoint(tmp_path):
    t = Trainer(tiny_cfg("train.steps=8", "train.ckpt_every=2", "train.log_every=3"), tmp_path, progress=False)
    real_step = t.run.strategy.step

    def poisoned(device, step):
        losses = real_step(device, step)
        if t.step + 1 >= 5:  # the step being taken is number 5
            losses["d_loss"] = losses["d_loss"] * float("nan")
        return losses

    t.run.strategy.step = poisoned
    with pytest.raises(TrainingDiverged) as e:
        t.train()
    assert "step 5" in str(e.value) and "\n" not in str(e.value)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")]
    assert names[-1] == "ckpt_00000004.pt"
    good = torch.load(tmp_path / "checkpoints" / names[-1], weights_only=True)
    assert all(torch.isfinite(v).all() for v in good["G_ema"].values() if v.is_floating_point())


def test_sigkill_mid_run_then_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "condgan", *tiny_train_args(out, "train.steps=60", "train.ckpt_every=5",
                                                             "train.log_every=2")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while len(ckpt.list_checkpoints(out / "checkpoints")) < 2 and time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = ckpt.list_checkpoints(out / "checkpoints")
    for p in saved:  # every checkpoint on disk is whole
        torch.load(p, weights_only=True)
    last_step = torch.load(saved[-1], weights_only=True)["step"]

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # the same command
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming from {out / 'checkpoints'}" in rerun.stdout
    assert f"(step {last_step}/60)" in rerun.stdout
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(2, 61, 2))
    assert not list((out / "checkpoints").glob(".ckpt_*.tmp"))


def test_final_report_scores_ema_generator(tmp_path, monkeypatch):
    import condgan.metrics.classifier as clf_mod
    from condgan.metrics.report import final_report

    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    quick = clf_mod.train_classifier
    monkeypatch.setattr(clf_mod, "train_classifier", lambda train, **kw: quick(train, epochs=1, **kw))
    t = Trainer(tiny_cfg("train.steps=1", "train.ckpt_every=1"), tmp_path / "run", progress=False)
    t.train()
    report = final_report(t, progress=False)
    assert report["step"] == 1 and report["real_images"] == 1000 and report["num_samples"] == 20
    assert report["real_images_are"] == "held-out real test images"
    assert report["real_accuracy"] > 0.8  # one epoch already separates real digits
    assert 0.0 <= report["conditional_accuracy"] <= 1.0
    assert report["dataset_identity"] == t.run.dataset.identity
    assert list((tmp_path / "cache" / "classifiers").glob("mnist5k-*.pt"))  # cached via the atomic writer


def test_no_progress_prints_a_plain_line_per_log_record(tmp_path, capsys):
    from conftest import run_main
    from condgan.train.runlog import progress_line

    code, out, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "train.steps=4", "train.log_every=2"))
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]
    records = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines == [progress_line(r, 4) for r in records]
    record = {"step": 100, "d_loss": 1.234567, "g_loss": 0.5, "it_per_s": 2.0}
    assert progress_line(record, 7300) == "step 100/7300  d_loss 1.2346  g_loss 0.5000  2.00 it/s  eta 1:00:00"
    assert progress_line({**record, "it_per_s": 0.0}, 7300).endswith("eta ?")

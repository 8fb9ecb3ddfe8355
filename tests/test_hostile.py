"""Runs a user can trust (DESIGN.md section 9): what a hostile-but-realistic user did to condgan, and what it must do.

Nothing silently wrong (non-finite models are neither saved nor scored), nothing lost (no silent restart, no
pruning of the newest checkpoint, one owner per run dir, no followed temp-file links), a config that must
agree with its checkpoint, and every bad input a one-line error with exit 2.
"""
from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import one_line_error, run_main, run_process, tiny_cfg, tiny_train_args
from PIL import Image

from condgan.config import Config, ConfigError, DataConfig, build_config, diff
from condgan.data import DataError, load_dataset
from condgan.metrics.errors import EvalError
from condgan.metrics.generate import generated_batches
from condgan.notices import CondganWarning
from condgan.train import checkpoint as ckpt
from condgan.train.trainer import Trainer, TrainingDiverged


@pytest.fixture(autouse=True)
def private_cache(quick_private_cache):
    """Every test: a private cache and a 1-epoch evaluation classifier (conftest)."""




def snapshot(run) -> dict[str, bytes]:
    """Every file of a run dir (but the lock) by relative path, with its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()
            and p.name != ".lock"}


def finished_run(tmp_path, *overrides: str, name: str = "run"):
    """A tiny run trained to its end (4 steps, checkpoints at 2 and 4)."""
    out = tmp_path / name
    with Trainer(tiny_cfg("train.steps=4", "train.ckpt_every=2", *overrides), out, progress=False) as t:
        t.train()
    return out


# -- non-finite model state -------------------------------------------------------------------------------

def test_exploding_learning_rate_stops_the_run_before_a_nonfinite_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_main(capsys, *tiny_train_args(out, "train.steps=6", "train.ckpt_every=2", "optim.g_lr=1e6"))
    assert code == 3
    one_line_error(err, "non-finite model state at step 2", "running_var", "no checkpoint was written")
    assert ckpt.list_checkpoints(out / "checkpoints") == []


def test_nonfinite_buffer_is_named_and_the_last_good_checkpoint_kept(tmp_path):
    t = Trainer(tiny_cfg("train.steps=6", "train.ckpt_every=2"), tmp_path, progress=False)
    t.train(until=2)
    ema = t.run.ema.shadow.state_dict()  # G_ema plays no part in the losses: only the state check can see it
    key = next(k for k in ema if k.endswith("running_var"))
    ema[key][0] = float("inf")
    with pytest.raises(TrainingDiverged) as e:
        t.train()
    assert f"non-finite model state at step 4: G_ema.{key}" in str(e.value) and "ckpt_00000002.pt" in str(e.value)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "checkpoints")] == ["ckpt_00000002.pt"]


def test_eval_refuses_a_generator_with_nonfinite_weights(tmp_path, capsys, monkeypatch):
    run = finished_run(tmp_path)
    path = run / "checkpoints" / "ckpt_00000004.pt"
    state = torch.load(path, weights_only=True)
    key = next(k for k in state["G_ema"] if k.endswith("running_var"))
    state["G_ema"][key][0] = float("inf")
    torch.save(state, path)
    monkeypatch.setattr("condgan.cli.eval.Evaluator", lambda *a, **k: pytest.fail("computed before refusing"))
    code, _, err = run_main(capsys, "eval", str(run), "--no-progress", "--metrics", "fid")
    assert code == 2
    one_line_error(err, f"G_ema.{key}", "NaN or infinity")
    assert not (run / "eval.json").exists()


def test_nonfinite_samples_are_not_scored():
    class NaNGenerator(torch.nn.Module):
        def forward(self, z, y):
            return torch.full((z.shape[0], 1, 8, 8), float("nan"))

    with pytest.raises(EvalError, match="NaN or infinity"):
        list(generated_batches(NaNGenerator(), 4, torch.arange(6), 3))


# -- no silent restart, no lost checkpoint --------------------------------------------------------------------

def test_all_checkpoints_unreadable_stops_and_changes_nothing(tmp_path, capsys):
    run = finished_run(tmp_path)
    for p in ckpt.list_checkpoints(run / "checkpoints"):
        p.write_bytes(p.read_bytes()[:100])  # truncated
    before = snapshot(run)
    code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=4", "train.ckpt_every=2"))
    assert code == 2
    one_line_error(err, "ckpt_00000002.pt", "ckpt_00000004.pt", "nothing was changed")
    assert snapshot(run) == before


def test_prune_keeps_the_new_checkpoint_and_does_not_count_unreadable_ones(tmp_path, capsys):
    run = finished_run(tmp_path, "train.steps=8", "train.keep_ckpts=5", "train.sample_every=1000")
    # keep step 2 readable, make step 8 unreadable, remove the rest: the run resumes from step 2
    for p in ckpt.list_checkpoints(run / "checkpoints"):
        if p.name in ("ckpt_00000004.pt", "ckpt_00000006.pt"):
            p.unlink()
    torn = run / "checkpoints" / "ckpt_00000008.pt"
    torn.write_bytes(b"torn")
    with pytest.warns(CondganWarning, match="ckpt_00000008.pt cannot be read"):
        t = Trainer(tiny_cfg("train.steps=8", "train.ckpt_every=2", "train.keep_ckpts=1"), run, progress=False)
    with t:
        assert t.step == 2
        t.train(until=4)
    names = [p.name for p in ckpt.list_checkpoints(run / "checkpoints")]
    assert names == ["ckpt_00000004.pt", "ckpt_00000008.pt"]  # the new one kept, the unreadable one untouched
    assert torn.read_bytes() == b"torn"


def test_skipped_unreadable_checkpoint_is_warned_on_stderr(tmp_path, capsys):
    run = finished_run(tmp_path)
    newest = run / "checkpoints" / "ckpt_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:200])
    code, out, err = run_main(capsys, *tiny_train_args(run, "train.steps=4", "train.ckpt_every=2"))
    assert code == 0 and "resuming from" in out and "ckpt_00000002.pt" in out
    assert "warning" not in out
    assert "condgan: warning:" in err and "ckpt_00000004.pt" in err


@pytest.mark.parametrize("content, culprit", [
    (torch.zeros(3), "holds a Tensor"),
    ([1, 2], "holds a list"),
    ({"format": 2, "step": 2, "config": {}, "G": {}, "D": {}, "G_ema": {}}, "no 'opt_g'"),
])
def test_foreign_checkpoint_files_are_refused(tmp_path, capsys, content, culprit):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save(content, tmp_path / "run" / "checkpoints" / "ckpt_00000002.pt")
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "train.steps=4"))
    assert code == 2
    one_line_error(err, "ckpt_00000002.pt", culprit)
    code, _, err = run_main(capsys, "eval", str(tmp_path / "run"), "--no-progress")
    assert code == 2
    one_line_error(err, "ckpt_00000002.pt")


# -- one owner per run dir ----------------------------------------------------------------------------------

def test_second_trainer_on_a_run_dir_fails_at_once_and_eval_may_read_it(tmp_path, capsys):
    run = finished_run(tmp_path)
    with Trainer(tiny_cfg("train.steps=6", "train.ckpt_every=2"), run, progress=False):
        before = snapshot(run)
        code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=6", "train.ckpt_every=2"))
        assert code == 2
        one_line_error(err, str(run), "in use", f"pid {os.getpid()}")
        assert snapshot(run) == before
        code, _, _ = run_main(capsys, "eval", str(run), "--no-progress", "--metrics", "acc", "--out",
                              str(tmp_path / "eval.json"))
        assert code == 0 and (tmp_path / "eval.json").exists()
    code, _, _ = run_main(capsys, *tiny_train_args(run, "train.steps=6", "train.ckpt_every=2"))  # released
    assert code == 0


# -- the checkpoint's config is the truth -------------------------------------------------------------------

def test_edited_config_yaml_is_refused_not_ignored(tmp_path, capsys):
    run = finished_run(tmp_path)
    edited = (run / "config.yaml").read_text().replace("g_lr: 0.0002", "g_lr: 0.001")
    (tmp_path / "edited.yaml").write_text(edited)
    code, _, err = run_main(capsys, "train", "--config", str(tmp_path / "edited.yaml"), "--out", str(run),
                            "--no-progress", "--no-eval")
    assert code == 2
    one_line_error(err, "optim.g_lr (0.0002 -> 0.001)", "ckpt_00000004.pt")


def test_deleted_config_yaml_does_not_hide_a_changed_config(tmp_path, capsys):
    run = finished_run(tmp_path)
    (run / "config.yaml").unlink()
    code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=4", "train.ckpt_every=2", "optim.d_lr=1e-3"))
    assert code == 2
    one_line_error(err, "optim.d_lr")
    assert not (run / "config.yaml").exists()  # written only after the config agreed


def test_checkpoint_beyond_train_steps_is_refused(tmp_path, capsys):
    run = finished_run(tmp_path)
    code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=3", "train.ckpt_every=1"))
    assert code == 2
    one_line_error(err, "ckpt_00000004.pt", "step 4", "train.steps=3")


def test_description_may_change_and_a_finished_run_may_be_extended(tmp_path, capsys):
    over = ("train.ckpt_every=2", "optim.lr_decay=linear", "train.log_every=2", "optim.d_lr=4e-4")
    run = finished_run(tmp_path, *over)
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["lr_g"] == 0.0  # decayed to 0 at 4
    code, out, err = run_main(capsys, *tiny_train_args(run, "train.steps=8", "description=longer", *over))
    assert code == 0, err
    assert "(step 4/8)" in out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # the lr follows the new curve from the resumed step: 2e-4 * (1 - t/8) after t = 6 steps
    assert records[-2]["step"] == 6 and records[-2]["lr_g"] == pytest.approx(2e-4 * (1 - 6 / 8))
    assert records[-2]["lr_d"] == pytest.approx(4e-4 * (1 - 6 / 8))  # D's own schedule, logged beside G's
    assert "steps: 8" in (run / "config.yaml").read_text()


def test_other_changes_on_resume_name_every_key(tmp_path, capsys):
    run = finished_run(tmp_path)
    code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=4", "train.ckpt_every=2",
                                                     "train.batch_size=8", "loss.m_p=0.9"))
    assert code == 2
    one_line_error(err, "train.batch_size (16 -> 8)", "loss.m_p (0.98 -> 0.9)")


def test_nan_config_values_are_refused_and_configs_compare_nan_safely(tmp_path, capsys):
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "loss.m_p=.nan"))
    assert code == 2
    one_line_error(err, "loss.m_p", "finite")
    assert not (tmp_path / "run").exists()
    a, b = Config(), Config()
    a.loss.cond_weight = b.loss.cond_weight = float("nan")  # e.g. a config read back from an old checkpoint
    assert diff(a, b) == []


# -- temp files --------------------------------------------------------------------------------------------

def test_planted_temp_links_are_not_followed_and_files_get_umask_permissions(tmp_path, capsys):
    run = finished_run(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("metrics.jsonl.tmp", "config.yaml.tmp", "eval.json.tmp"):
        (run / name).symlink_to(victim)
    assert run_main(capsys, *tiny_train_args(run, "train.steps=6", "train.ckpt_every=2"))[0] == 0
    assert run_main(capsys, "eval", str(run), "--no-progress", "--metrics", "acc")[0] == 0
    assert victim.read_text() == "precious"
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (run / "checkpoints" / "ckpt_00000006.pt", run / "eval.json", run / "config.yaml"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_another_process_temp_file_is_not_removed_by_pruning(tmp_path):
    out = tmp_path / "run"
    with Trainer(tiny_cfg("train.steps=4", "train.ckpt_every=1", "train.keep_ckpts=1"), out, progress=False) as t:
        theirs = out / "checkpoints" / ".ckpt_00000009.pt.abcdef.tmp"
        t.train(until=1)
        theirs.write_bytes(b"someone else's")
        t.train()
    assert theirs.read_bytes() == b"someone else's"


# -- one-line errors --------------------------------------------------------------------------------------

def test_disk_full_while_writing_a_checkpoint_is_one_line(tmp_path):
    def small_files() -> None:  # a file-size limit stands in for a full disk: writes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    run = tmp_path / "run"
    proc = run_process(*tiny_train_args(run, "train.steps=2", "train.ckpt_every=2", "model.g_width=32"),
                       preexec_fn=small_files)
    assert proc.returncode == 2, proc.stderr
    one_line_error(proc.stderr, "File too large", str(run / "checkpoints" / "ckpt_00000002.pt"))
    assert not list((run / "checkpoints").glob(".ckpt_*.tmp"))


@pytest.mark.parametrize("where", ["train", "resume", "eval"])
def test_read_only_run_dir_is_one_line(tmp_path, capsys, monkeypatch, where):
    run = finished_run(tmp_path) if where != "train" else tmp_path / "run"
    real_mkstemp = __import__("tempfile").mkstemp

    def read_only(*args, dir=None, **kwargs):  # noqa: A002 - mkstemp's own name
        if str(dir).startswith(str(run)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    if where == "eval":
        monkeypatch.setattr("condgan.cli.eval.Evaluator", lambda *a, **k: pytest.fail("computed before failing"))
        code, _, err = run_main(capsys, "eval", str(run), "--no-progress")
        one_line_error(err, "Read-only file system", str(run / "eval.json"))
    else:
        code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=6", "train.ckpt_every=2"))
        one_line_error(err, "Read-only file system", str(run))
    assert code == 2


def test_bad_config_files_are_one_line(tmp_path, capsys):
    binary, broken = tmp_path / "binary.yaml", tmp_path / "broken.yaml"
    binary.write_bytes(bytes(range(256)))
    broken.write_text("train: [unclosed\n")
    for path, culprit in ((binary, "not a UTF-8 text file"), (broken, "not valid YAML")):
        code, _, err = run_main(capsys, "train", "--config", str(path), "--out", str(tmp_path / "x"))
        assert code == 2
        one_line_error(err, str(path), culprit)
    run = tmp_path / "killed"  # a run killed before its first checkpoint, with a damaged config.yaml
    run.mkdir()
    (run / "config.yaml").write_bytes(bytes(range(256)))
    code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=2"))
    assert code == 2
    one_line_error(err, str(run / "config.yaml"), "remove it")


@pytest.mark.parametrize("args, culprit", [
    (["--device", "bogus"], "'bogus' is not a device"),
    (["--device", "mps"], "mps"),
    (["--device", "cuda:7"], "cuda:7"),
])
def test_bad_device_is_one_line(tmp_path, capsys, args, culprit):
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run"), *args)
    assert code == 2
    one_line_error(err, culprit)
    code, _, err = run_main(capsys, "eval", str(tmp_path), *args)
    assert code == 2
    one_line_error(err, culprit)


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "afile"))
    assert code == 2
    one_line_error(err, str(tmp_path / "afile"), "existing file")


@pytest.mark.parametrize("override, culprit", [
    ("optim.g_lr=0", "'optim.g_lr' must be positive"),
    ("optim.d_lr=-1e-4", "'optim.d_lr' must be positive"),
    ("optim.g_lr=.inf", "'optim.g_lr' must be a finite number"),
    ("optim.beta1=1.0", "'optim.beta1' must be in [0, 1)"),
    ("optim.beta2=-0.1", "'optim.beta2' must be in [0, 1)"),
    ("train.seed=-1", "'train.seed' must be in [0, 4294967295]"),
    ("train.seed=4294967296", "'train.seed' must be in [0, 4294967295]"),
    ("loss.m_p=-1", "'loss.m_p' must be in (-1, 1]"),
    ("loss.m_p=1.01", "'loss.m_p' must be in (-1, 1]"),
    ("train.ema_start=-1", "'train.ema_start' must be in [0, inf)"),
])
def test_out_of_range_values_name_the_key(override, culprit):
    with pytest.raises(ConfigError) as e:
        build_config(None, [override])
    assert culprit in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("args, culprit", [
    (["--num", "0"], "--num must be at least 2"),
    (["--num", "5", "--metrics", "acc"], "5 samples cannot cover the 10 classes"),
    (["--is-splits", "0"], "--is-splits must be at least 1"),
    (["--num", "12", "--is-splits", "13", "--metrics", "is"], "splits must be in [1, num_samples=12]"),
    (["--out", "/nonexistent/folder/eval.json"], "/nonexistent/folder does not exist"),
])
def test_bad_eval_arguments_are_one_line(tmp_path, capsys, monkeypatch, args, culprit):
    run = finished_run(tmp_path)
    monkeypatch.setattr("condgan.metrics.evaluate.build_backbone", lambda *a, **k: pytest.fail("computed"))
    code, _, err = run_main(capsys, "eval", str(run), "--no-progress", *args)
    assert code == 2
    one_line_error(err, culprit)


def test_presets_into_a_closed_pipe_prints_no_traceback():
    reader, writer = os.pipe()
    os.close(reader)  # the reader (as `head`) is already gone
    proc = subprocess.run([sys.executable, "-m", "condgan", "presets"], stdout=writer, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(writer)
    assert proc.stderr == "" and proc.returncode != 0


# -- labels -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, names, culprit", [
    (np.where(np.arange(60) == 7, 100000, np.arange(60) % 3), None, "imply 100001 classes"),
    (np.arange(60) % 3 * 2, None, "class label 1 has no training images"),
    (np.arange(60) % 3, ["cat", "dog"], "label 2 is outside the 2 classes"),
    (np.arange(60) % 3, ["cat", "dog", "owl", "emu"], "class 'emu' (label 3) has no training images"),
])
def test_npz_labels_must_name_classes_with_images(tmp_path, capsys, labels, names, culprit):
    path = tmp_path / "d.npz"
    extra = {} if names is None else {"class_names": np.array(names)}
    np.savez(path, images=np.zeros((60, 32, 32, 3), np.uint8), labels=labels, **extra)
    with pytest.raises(DataError, match=re.escape(culprit)):
        load_dataset(DataConfig(name="npz", root=str(path)))
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "data.name=npz", f"data.root={path}"))
    assert code == 2
    one_line_error(err, culprit)


def test_npz_class_names_set_the_class_count(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((6, 32, 32, 3), np.uint8), labels=np.arange(6) % 3,
             class_names=np.array(["cat", "dog", "owl"]))
    assert load_dataset(DataConfig(name="npz", root=str(path))).num_classes == 3


# -- the evaluation classifier on small data -------------------------------------------------------------

def test_classifier_score_without_held_out_split_is_not_called_held_out(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for c in range(3):  # 24 images in 3 classes, no train/ and test/ split
        (tmp_path / "imgs" / f"class{c}").mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / f"class{c}" / f"{i}.png")
    args = tiny_train_args(tmp_path / "run", "data.name=folder", f"data.root={tmp_path / 'imgs'}", "train.steps=1",
                           "train.batch_size=8", "eval.num_samples=6")
    code, out, err = run_main(capsys, *[a for a in args if a != "--no-eval"])
    assert code == 0, err
    assert "24 real training images (no held-out split)" in out and "held-out real" not in out
    assert "condgan: warning: the dataset has no held-out split" in err
    report = json.loads((tmp_path / "run" / "final_eval.json").read_text())
    assert report["real_images_are"] == "real training images (no held-out split)" and report["classifier_caveat"]


# -- found by the second hostile pass -------------------------------------------------------------------------

def test_closed_stdout_is_no_traceback(tmp_path):
    proc = subprocess.run(f"{sys.executable} -m condgan presets >&-", shell=True, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""


def test_steps_beyond_eight_digits_are_checkpoints_too(tmp_path):
    d = tmp_path / "checkpoints"
    d.mkdir()
    for step in (99_999_999, 100_000_000, 100_000_001):
        ckpt.checkpoint_path(d, step).write_bytes(b"x")
    assert [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(d)] == [99_999_999, 100_000_000, 100_000_001]
    ckpt.prune(d, 2, ckpt.checkpoint_path(d, 100_000_001))
    assert [p.name for p in ckpt.list_checkpoints(d)] == ["ckpt_100000000.pt", "ckpt_100000001.pt"]


def test_planted_link_at_a_sample_grid_is_not_followed(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "run" / "samples").mkdir(parents=True)
    (tmp_path / "run" / "samples" / "step_00000002.png").symlink_to(victim)
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "train.steps=2", "train.ckpt_every=2"))
    assert code == 0, err
    assert victim.read_text() == "precious"
    assert Image.open(tmp_path / "run" / "samples" / "step_00000002.png").size[0] > 0


def test_eval_out_never_overwrites_what_is_not_an_eval_record(tmp_path, capsys):
    run = finished_run(tmp_path)
    for target in (run / "checkpoints" / "ckpt_00000004.pt", run / "config.yaml"):
        before = target.read_bytes()
        code, _, err = run_main(capsys, "eval", str(run), "--no-progress", "--metrics", "acc", "--out", str(target))
        assert code == 2
        one_line_error(err, str(target), "not an eval record")
        assert target.read_bytes() == before
    assert run_main(capsys, "eval", str(run), "--no-progress", "--metrics", "acc")[0] == 0
    assert run_main(capsys, "eval", str(run), "--no-progress", "--metrics", "acc")[0] == 0  # its own record: fine


def test_flipped_bytes_in_a_checkpoint_are_found(tmp_path, capsys):
    run = finished_run(tmp_path)
    path = run / "checkpoints" / "ckpt_00000004.pt"
    tensor = max(torch.load(path, weights_only=True)["G_ema"].values(), key=lambda t: t.numel())
    raw = bytearray(path.read_bytes())
    at = raw.find(tensor.numpy().tobytes()) + tensor.numel() * 2
    raw[at:at + 8] = bytes(b ^ 0x40 for b in raw[at:at + 8])  # same length: the zip still opens
    path.write_bytes(bytes(raw))
    code, _, err = run_main(capsys, "eval", str(path), "--no-progress", "--metrics", "acc")
    assert code == 2
    one_line_error(err, str(path), "damaged", "checksum")


def test_resume_on_other_data_of_the_same_shape_is_refused(tmp_path, capsys):
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    np.savez(data, images=images, labels=np.arange(60) % 3)
    args = ("data.name=npz", f"data.root={data}", "train.ckpt_every=2")
    assert run_main(capsys, *tiny_train_args(tmp_path / "run", "train.steps=2", *args))[0] == 0
    np.savez(data, images=255 - images, labels=np.arange(60) % 3)
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "train.steps=4", *args))
    assert code == 2
    one_line_error(err, "training data", "changed since checkpoint", "ckpt_00000002.pt")


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    from condgan.data.folder import read_image

    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    row = read_image(tmp_path / "ramp.png", 32)[16, :, 0]
    assert row[0] == 0 and row[-1] == 255 and 120 <= row[16] <= 135 and np.all(np.diff(row.astype(int)) > 0)


@pytest.mark.parametrize("value", ["010", "0x10", "12:30", "1e3"])
def test_yaml_1_1_numbers_are_not_silently_reinterpreted(value):
    with pytest.raises(ConfigError, match="'train.steps' expects int"):
        build_config(None, [f"train.steps={value}"])


def test_garbled_log_backups_are_never_overwritten(tmp_path, capsys):
    run = finished_run(tmp_path, "train.steps=8")
    log = run / "metrics.jsonl"
    for n, steps in ((1, 10), (2, 12)):
        lines = log.read_text().splitlines()
        log.write_text("\n".join(lines[:1] + [f"garbage {n}", '{"step": 1.5}'] + lines[1:]) + "\n")
        with pytest.warns(CondganWarning, match="2 line"):
            Trainer(tiny_cfg(f"train.steps={steps}", "train.ckpt_every=2"), run, progress=False).close()
    assert "garbage 1" in (run / "metrics.jsonl.1.bak").read_text()
    assert "garbage 2" in (run / "metrics.jsonl.2.bak").read_text()


def test_run_dir_parts_that_are_not_folders_fail_before_anything_is_changed(tmp_path, capsys):
    run = finished_run(tmp_path)
    for part in ("checkpoints", "samples"):
        moved = tmp_path / f"{part}.moved"
        (run / part).rename(moved)
        (run / part).write_text("not a folder")
        before = snapshot(run)
        code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=6", "train.ckpt_every=2"))
        assert code == 2
        one_line_error(err, str(run / part), "not a folder")
        assert snapshot(run) == before
        (run / part).unlink()
        moved.rename(run / part)


def test_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        run_main(capsys, "eval", "x", "--num", "abc")
    assert e.value.code == 2
    one_line_error(capsys.readouterr().err, "--num", "invalid int value")

"""Issue 28, the scoring side: what a hostile-but-realistic user did to ``condgan eval``, ``plot`` and
``reproduce`` (DESIGN.md section 9: nothing lost, nothing silently wrong, one-line errors naming the culprit).

Splits of one dataset with different class lists are refused wherever two meet; concurrent evals keep every
record; a damaged reproduce record is set aside, not lost; plot never replaces a file it did not write and
plots what is finite; scoring against the training images says so; a foreign Inception weights file is a
one-line error.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY, one_line_error, run_main, tiny_cfg, tiny_train_args
from layouts import make_afhq
from PIL import Image

import condgan.cli.eval as eval_cli
import condgan.metrics.inception_weights as iw
from condgan.cli import main
from condgan.cli.train import _final_report
from condgan.data.base import make_dataset
from condgan.metrics.errors import EvalError
from condgan.metrics.inception_weights import load_inception
from condgan.notices import CondganWarning
from condgan.reproduce import Protocol, ReproduceError, Row, Table, harness, jobs
from condgan.train.trainer import Trainer


@pytest.fixture(autouse=True)
def private_cache(quick_private_cache):
    """Every test: a private cache and a 1-epoch evaluation classifier (conftest)."""




# -- finding 1: splits of one dataset with different class lists ----------------------------------------------

def _add_class(root, name: str) -> None:
    """A new class folder with two images in both of AFHQ's splits."""
    for split in ("train", "val"):
        folder = root / split / name
        folder.mkdir()
        for i in range(2):
            Image.fromarray(np.full((50, 70, 3), 40 * i + 30, np.uint8)).save(folder / f"flickr_{name}_{i:06d}.png")


def test_splits_prepared_from_different_class_lists_are_refused_by_train_and_eval(tmp_path, capsys):
    fake = make_afhq(tmp_path / "src", per_class=2, val_per_class=1)
    prep = ["prepare", "--data", "afhq", "--root", str(fake.root), "--resolution", "32", "--no-progress",
            "--workers", "1"]
    assert run_main(capsys, *prep, "--split", "train")[0] == 0
    _add_class(fake.root, "bear")  # sorts first: every later class index shifts in the val store
    assert run_main(capsys, *prep, "--split", "val")[0] == 0
    sets = ["data.name=afhq", f"data.root={fake.root}", "data.resolution=32", "train.steps=1",
            "train.ckpt_every=1", "train.batch_size=4", "eval.num_samples=6"]
    periodic = ["eval.every=1", "eval.metrics=fid", "eval.backbone=classifier", "eval.ref=test"]
    code, out, err = run_main(capsys, *tiny_train_args(tmp_path / "run", *sets, *periodic))  # in-training eval
    assert code == 2
    one_line_error(err, "afhq train store", "afhq val store", "3 and 4 classes", "'bear'")
    args = [a for a in tiny_train_args(tmp_path / "run", *sets) if a != "--no-eval"]  # with the final report
    code, out, err = run_main(capsys, *args)
    assert code == 2 and "training done: 1 steps" in out
    one_line_error(err, "afhq train store", "afhq val store", "3 and 4 classes", "class 0 is 'cat' in the first, "
                   "'bear' in the second", "condgan prepare --data afhq")
    assert not (tmp_path / "run" / "final_eval.json").exists()
    for metrics in ("cas", "fid"):  # the samples' labels against the held-out split, and FID's reference
        code, _, err = run_main(capsys, "eval", str(tmp_path / "run"), "--metrics", metrics, "--backbone",
                                "classifier", "--ref", "test", "--num", "6", "--no-progress")
        assert code == 2
        one_line_error(err, "afhq train", "afhq val", "'bear'")
        assert not (tmp_path / "run" / "eval.json").exists()
    # the stores agree again, but a class was renamed since the run was trained: its labels are not theirs
    for split in ("train", "val"):
        shutil.rmtree(fake.root / split / "bear")
        (fake.root / split / "wild").rename(fake.root / split / "zebra")
    assert run_main(capsys, *prep)[0] == 0
    code, _, err = run_main(capsys, "eval", str(tmp_path / "run"), "--metrics", "fid", "--backbone", "classifier",
                            "--num", "6", "--no-progress")
    assert code == 2
    one_line_error(err, "the run's generator (checkpoint", "afhq train store", "class 2 is 'wild' in the first, "
                   "'zebra' in the second")
    assert not (tmp_path / "run" / "eval.json").exists()


# -- finding 3: two evals of one run at once -----------------------------------------------------------------

def _npz(path: Path, classes: int = 4, per_class: int = 6) -> Path:
    """An npz dataset without test arrays (its test split is its training images), 32 px RGB."""
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(classes), per_class)
    np.savez(path, images=rng.randint(0, 256, (labels.size, 32, 32, 3), dtype=np.uint8), labels=labels)
    return path


@pytest.fixture(scope="module")
def npz_run(tmp_path_factory) -> Path:
    """A tiny run trained for one step (a checkpoint at 1) on a 24-image npz dataset; tests copy it."""
    folder = tmp_path_factory.mktemp("npz_run")
    cfg = tiny_cfg("train.steps=1", "train.ckpt_every=1", "data.name=npz", f"data.root={_npz(folder / 'data.npz')}",
                   "train.batch_size=8", "eval.num_samples=8")
    with Trainer(cfg, folder / "run", progress=False) as t:
        t.train()
    return folder / "run"


def finished_run(npz_run: Path, tmp_path: Path) -> Path:
    """This test's own copy of the module's finished run."""
    return Path(shutil.copytree(npz_run, tmp_path / "run"))


def test_two_evals_writing_one_record_at_once_keep_both(npz_run, tmp_path, capsys, monkeypatch):
    run = finished_run(npz_run, tmp_path)
    base = ["eval", str(run), "--metrics", "fid", "--backbone", "classifier", "--num", "8", "--no-progress"]
    assert run_main(capsys, *base, "--seed", "1")[0] == 0  # an earlier record; the caches are warm now
    real_history, real_flock = eval_cli._history, fcntl.flock
    second: dict = {}
    blocked = threading.Event()

    def flock(fd, operation):  # the second eval waiting for a lock the first holds
        if threading.current_thread() is second.get("thread") and operation == fcntl.LOCK_EX:
            blocked.set()
        return real_flock(fd, operation)

    def racing_history(path):
        """The first eval, between reading the record's history and replacing the file, lets a second
        eval of the same run run to its end (or until it waits for the first)."""
        seen = real_history(path)
        if "thread" not in second:
            second["thread"] = threading.Thread(target=lambda: second.update(code=main([*base, "--seed", "3"])))
            second["thread"].start()
            while second["thread"].is_alive() and not blocked.wait(0.05):
                pass
        return seen

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(eval_cli, "_history", racing_history)
    code, out, err = run_main(capsys, *base, "--seed", "2")
    second["thread"].join(60)
    assert code == 0 and second["code"] == 0, err
    record = json.loads((run / "eval.json").read_text())
    seeds = [r["protocol"]["seed"] for r in record["history"]]
    assert sorted(seeds) == [1, 2, 3], seeds  # no record lost
    assert record["protocol"]["seed"] == seeds[-1]


# -- finding 8: a damaged reproduce record; two reproduces at once ---------------------------------------------

def _table() -> Table:
    return Table("small", "a test table", ("acc", "FID"), Protocol("fid,acc", 20, backbone="classifier", ref="test"),
                 (Row("D2D-CE", "mnist5k-reacgan", {"FID": 27.1}),), sets=(*TINY, "train.steps=2"))


@pytest.fixture
def fake_commands(monkeypatch):
    """The harness's child commands faked: train does nothing, eval writes a record; returns the calls."""
    calls = []

    def runner(command, log):
        calls.append(command[1])
        if command[1] == "eval":
            out = Path(command[command.index("--out") + 1])
            out.write_text(json.dumps({"checkpoint": "ckpt", "step": 2, "protocol": {"seed": 0},
                                       "metrics": {"fid": 12.5, "acc_top1": 0.75}}))
        return 0, ""
    monkeypatch.setattr(harness, "_run_logged", runner)
    return calls


@pytest.mark.parametrize("damage", [b"", b'{"foo": 1}', b"\xff\x00torn", b'{"metrics": 5, "protocol": {}}', b"[]"])
def test_a_damaged_reproduce_record_is_kept_aside_and_the_row_evaluated_again(damage, fake_commands, tmp_path):
    out = tmp_path / "out"
    harness.run(_table(), [0], out, echo=lambda _: None)
    record = jobs(_table(), [0], out)[0].record
    record.write_bytes(damage)
    fake_commands.clear()
    with pytest.warns(CondganWarning, match=rf"{record} .*kept as {record}\.damaged.*evaluating .* again"):
        md = harness.run(_table(), [0], out, echo=lambda _: None).read_text()
    assert fake_commands == ["train", "eval"]  # unfinished: trained (resumes, done) and evaluated again
    assert (record.parent / f"{record.name}.damaged").read_bytes() == damage  # nothing lost
    assert json.loads(record.read_text())["metrics"]["fid"] == 12.5
    assert "| 1/1 |" in next(line for line in md.splitlines() if line.startswith("| D2D-CE |"))


def test_damaged_side_files_of_a_finished_row_do_not_stop_the_table(fake_commands, tmp_path):
    out = tmp_path / "out"
    harness.run(_table(), [0], out, echo=lambda _: None)
    run_dir = jobs(_table(), [0], out)[0].run_dir
    (run_dir / "reproduce_times.json").write_text('{"train": "soon"')
    with pytest.warns(CondganWarning, match="reproduce_times.json"):
        md = harness.run(_table(), [0], out, echo=lambda _: None).read_text()
    assert "| 1/1 | — |" in md
    (run_dir / "reproduce_times.json").write_text('{"train": 60}')
    _log(run_dir, [{"step": 1, "d_feat_norm": "big"}, {"step": 2, "d_feat_norm": 1.5}, {"step": 3, "eval": 7},
                   {"step": 4, "eval": {"fid": "nan"}}, {"step": 5, "eval": {"fid": 3.0}}])
    md = harness.run(_table(), [0], out, echo=lambda _: None).read_text()  # damaged log values: left out
    diagnostics = md.split("Training diagnostics", 1)[1]
    assert "1.5 → 1.5 → 1.5" in diagnostics and "3 / 3 (best 3)" in diagnostics


def test_a_second_reproduce_into_one_folder_is_refused_while_the_first_runs(fake_commands, monkeypatch, tmp_path):
    out, seen = tmp_path / "out", []
    real = harness._run_logged

    def nested(command, log):  # while the first reproduce trains, the user starts another on the same --out
        if not seen:
            seen.append(1)
            with pytest.raises(ReproduceError, match=rf"another condgan reproduce \(pid {os.getpid()}\) .*{out}"):
                harness.run(_table(), [0], out, echo=lambda _: None)
        return real(command, log)
    monkeypatch.setattr(harness, "_run_logged", nested)
    harness.run(_table(), [0], out, echo=lambda _: None)
    assert seen and fake_commands == ["train", "eval"]


# -- finding 9: plot's own files only, and only what can be drawn ----------------------------------------------

def _log(run, records: list) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return run


def test_plot_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    run = _log(tmp_path / "run", [{"step": s, "d_loss": 1.0 / s, "lr_g": 2e-4} for s in (1, 2, 3)])
    mine = tmp_path / "figures"
    mine.mkdir()
    (mine / "losses.png").write_bytes(b"the user's own figure")
    code, _, err = run_main(capsys, "plot", str(run), "--out", str(mine))
    assert code == 2
    one_line_error(err, str(mine / "losses.png"), "not a plot condgan plot wrote")
    assert (mine / "losses.png").read_bytes() == b"the user's own figure"
    assert not (mine / "learning_rates.png").exists()  # refused before anything was written
    (mine / "losses.png").unlink()
    assert run_main(capsys, "plot", str(run), "--out", str(mine))[0] == 0
    first = (mine / "losses.png").read_bytes()
    _log(run, [{"step": s, "d_loss": 2.0 / s, "lr_g": 2e-4} for s in (1, 2, 3, 4)])
    code, out, err = run_main(capsys, "plot", str(run), "--out", str(mine))  # its own figures: replaced
    assert code == 0, err
    assert (mine / "losses.png").read_bytes() != first and "wrote" in out


def test_plot_replaces_an_older_condgans_figures_in_the_run_but_a_matplotlib_png_elsewhere_is_kept(tmp_path, capsys):
    """Figures an older plot wrote (matplotlib's own Software text, no stamp) in RUN/plots are plot's to replace;
    the same kind of PNG in a folder the user gave is theirs."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    run = _log(tmp_path / "run", [{"step": s, "d_loss": 1.0 / s, "lr_g": 2e-4} for s in (1, 2, 3)])
    for folder in (run / "plots", tmp_path / "mine"):
        folder.mkdir()
        plt.figure().savefig(folder / "losses.png")  # matplotlib's default metadata: Software "Matplotlib version..."
    plt.close("all")
    mine = (tmp_path / "mine" / "losses.png").read_bytes()
    assert run_main(capsys, "plot", str(run))[0] == 0
    code, _, err = run_main(capsys, "plot", str(run), "--out", str(tmp_path / "mine"))
    assert code == 2 and (tmp_path / "mine" / "losses.png").read_bytes() == mine
    one_line_error(err, "not a plot condgan plot wrote")


def test_plot_draws_what_is_finite_and_says_what_it_left_out(tmp_path, capsys):
    records = [{"step": 1, "d_loss": 1.0, "g_loss": 1e308}, {"step": 2, "d_loss": -1e308, "g_loss": 2.0},
               {"step": 3, "d_loss": 0.5, "g_loss": 1.5}, '{"step": 4, "d_loss": Infinity, "g_loss": NaN}',
               '{"step": 5, "d_loss": 1' + "0" * 400 + ', "g_loss": 1.0}', "torn {",
               {"step": 6, "eval": {"fid": 1e308}}]
    run = _log(tmp_path / "run", records)
    code, out, err = run_main(capsys, "plot", str(run))
    assert code == 0, err
    assert "Traceback" not in err and sorted(p.name for p in (run / "plots").iterdir()) == ["losses.png"]
    warning = next(line for line in err.splitlines() if "left out" in line)
    assert warning.startswith("condgan: warning: ") and "d_loss: 3" in warning and "g_loss: 2" in warning
    assert "fid: 1" in warning and str(run / "metrics.jsonl") in warning
    assert any("skipped 1 line that is not a JSON record" in line for line in err.splitlines())


@pytest.mark.parametrize("content", ["", "\n\n", "garbage\n\x00\x01", '{"no_step": 1}\n[1, 2]\n'])
def test_plot_of_an_empty_or_garbled_log_is_a_one_line_error(content, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text(content)
    code, _, err = run_main(capsys, "plot", str(tmp_path / "run"))
    assert code == 2
    one_line_error("\n".join(line for line in err.splitlines() if "warning" not in line),
                   str(tmp_path / "run" / "metrics.jsonl"), "no training or evaluation record")


# -- finding 12 (part): a file given as --inception-weights that is not one --------------------------------------

class _Opaque:  # a pickled object torch.load(weights_only=True) refuses
    pass


def _foreign_weights(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.pth"
    if kind == "random":
        path.write_bytes(np.random.RandomState(0).bytes(5000))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickled_object":
        torch.save({"net": _Opaque()}, path)
    elif kind == "truncated":
        torch.save({"w": torch.ones(2000)}, path)
        path.write_bytes(path.read_bytes()[:1500])
    elif kind == "a_list":
        torch.save([torch.ones(2)], path)
    elif kind == "other_net":
        torch.save({"conv.weight": torch.zeros(3)}, path)
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["random", "empty", "pickled_object", "truncated", "a_list", "other_net",
                                  "directory"])
def test_a_foreign_inception_weights_file_is_one_line_naming_it(kind, tmp_path):
    path = _foreign_weights(kind, tmp_path)
    with pytest.raises(EvalError) as e:
        load_inception(path)
    message = str(e.value)
    assert "\n" not in message and f"--inception-weights {path}" in message
    assert "weights_only" not in message and "\x1b" not in message and "trust" not in message
    if kind == "directory":
        assert "is a directory" in message
    else:
        assert "is not a weights file condgan can read for the FID Inception" in message and iw.WEIGHTS_NAME in message


def test_eval_with_random_bytes_as_inception_weights_is_one_line(npz_run, tmp_path, capsys):
    run = finished_run(npz_run, tmp_path)
    path = _foreign_weights("random", tmp_path)
    code, _, err = run_main(capsys, "eval", str(run), "--backbone", "inception", "--metrics", "fid",
                            "--inception-weights", str(path), "--no-progress")
    assert code == 2
    one_line_error(err, f"--inception-weights {path}", "is not a weights file condgan can read for the FID Inception")
    assert "weights_only" not in err and not (run / "eval.json").exists()


# -- finding 15: scoring against the training images; the final report's limit ------------------------------------

def test_eval_against_the_training_images_says_so(npz_run, tmp_path, capsys):
    run = finished_run(npz_run, tmp_path)
    code, out, err = run_main(capsys, "eval", str(run), "--backbone", "classifier", "--metrics", "fid", "--num", "8",
                              "--ref", "test", "--no-progress")
    assert code == 0, err
    assert "vs npz/test (24 images: the training images)" in out
    assert "condgan: warning: the test split of npz is its training images" in err
    record = json.loads((run / "eval.json").read_text())
    assert record["protocol"]["reference"]["training_images"] is True
    code, out, err = run_main(capsys, "eval", str(run), "--backbone", "classifier", "--metrics", "fid", "--num", "8",
                              "--ref", "train", "--no-progress")  # asked for: said in the line and record, no warning
    assert code == 0 and "vs npz/train (24 images: the training images)" in out and "warning" not in err
    assert json.loads((run / "eval.json").read_text())["protocol"]["reference"]["training_images"] is True


@pytest.mark.parametrize("classes, pixels, said", [
    (5, 64, "64 px images, larger than the 32 px"), (200, 32, "200 classes, more than the 100"),
    (200, 64, "200 classes, more than the 100 and 64 px images, larger than the 32 px")])
def test_the_skipped_final_report_names_the_limit_that_tripped(classes, pixels, said, capsys):
    data = make_dataset(torch.zeros(classes, 3, pixels, pixels, dtype=torch.uint8), torch.arange(classes), classes,
                        "npz")
    trainer = SimpleNamespace(run=SimpleNamespace(dataset=data))
    _final_report(trainer, SimpleNamespace(out="runs/x", no_progress=True))
    out = capsys.readouterr().out
    assert f"npz has {said} the evaluation classifier is made for" in out and "condgan eval runs/x" in out
    assert "beyond the evaluation classifier's 100 classes" not in out


def test_plot_says_why_nothing_can_be_drawn_and_refuses_a_file_as_out(tmp_path, capsys):
    run = _log(tmp_path / "run", [{"step": 1, "d_loss": 1e308}, '{"step": 2, "d_loss": NaN}'])
    code, _, err = run_main(capsys, "plot", str(run))
    assert code == 2
    one_line_error(err, str(run / "metrics.jsonl"), "no value that can be drawn", "d_loss: 2")
    code, _, err = run_main(capsys, "plot", str(run), "--out", str(run / "metrics.jsonl"))
    assert code == 2
    one_line_error(err, f"--out {run / 'metrics.jsonl'} is a file, not a folder")


def test_two_plots_of_a_run_at_once_both_succeed(tmp_path, capsys, monkeypatch):
    """The other plot's figure appears between the check and the write: it is plot's own, so it is replaced; a
    user's file appearing there is kept, and the error says so."""
    import condgan.cli.plot as plot_cli

    run = _log(tmp_path / "run", [{"step": s, "d_loss": 1.0 / s} for s in (1, 2, 3)])
    assert run_main(capsys, "plot", str(run), "--out", str(tmp_path / "first"))[0] == 0
    theirs = (tmp_path / "first" / "losses.png").read_bytes()
    real_draw = plot_cli.draw

    def racing_draw(name, panels, path, title, replace=False):
        path.write_bytes(theirs if "second" in str(path) else b"the user's own")  # lands after the check
        return real_draw(name, panels, path, title, replace)

    monkeypatch.setattr(plot_cli, "draw", racing_draw)
    code, out, err = run_main(capsys, "plot", str(run), "--out", str(tmp_path / "second"))
    assert code == 0 and "wrote" in out, err
    code, _, err = run_main(capsys, "plot", str(run), "--out", str(tmp_path / "third"))
    assert code == 2 and (tmp_path / "third" / "losses.png").read_bytes() == b"the user's own"
    one_line_error(err, "appeared while plotting")


def test_a_folder_given_as_config_file_is_named_as_a_folder(tmp_path, capsys):
    code, _, err = run_main(capsys, "train", "--config", str(tmp_path), "--out", str(tmp_path / "run"))
    assert code == 2
    one_line_error(err, f"config file {tmp_path} is a folder")

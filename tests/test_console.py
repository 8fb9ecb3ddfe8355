"""What a user sees on the console: progress lines without a terminal, periodic evaluations, the closing line,
the end-of-training accuracy that `condgan eval` repeats, preset search, and plot panels named by feature space."""
from __future__ import annotations

import json
import re

from conftest import one_line_error, run_main, tiny_train_args
from condgan.cli.presets import TABLE_COLUMNS
from condgan.notices import progress_bar_wanted
from condgan.presets import list_presets


def train_args(out, *sets: str) -> list[str]:
    """``condgan train`` of the tiny demo preset without --no-progress (stdout and stderr are not terminals here)."""
    return [a for a in tiny_train_args(out, *sets) if a != "--no-progress"]


def test_without_a_terminal_training_prints_plain_lines_and_the_elapsed_time(tmp_path, capsys):
    assert not progress_bar_wanted(False)  # pytest's captured stderr is no terminal
    code, out, err = run_main(capsys, *train_args(tmp_path / "run", "train.steps=4", "train.log_every=2"))
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["2/4", "4/4"]
    assert re.fullmatch(rf"training done: 4 steps in {re.escape(str(tmp_path / 'run'))} \(0:00:\d\d\)", lines[-1])
    assert "\r" not in out + err  # no bar redrawn into a log file


def test_a_terminal_gets_the_bar(monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: type("S", (), {"columns": 80})())
    assert progress_bar_wanted(False) and not progress_bar_wanted(True)
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: type("S", (), {"columns": 0})())
    assert not progress_bar_wanted(False)  # a zero-width terminal would show nothing


def test_periodic_evaluations_reach_the_console_with_their_feature_space(tmp_path, capsys, quick_private_cache):
    code, out, err = run_main(capsys, *train_args(tmp_path / "run", "train.steps=4", "train.ckpt_every=2",
                                                  "eval.every=2", "eval.metrics=fid,acc", "eval.num_samples=20"))
    assert code == 0, err
    evals = [line for line in out.splitlines() if line.startswith("eval at step")]
    logged = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in logged if "eval" in r]
    assert len(evals) == 2 and [r["backbone"] for r in logged] == ["classifier", "classifier"]
    for line, record in zip(evals, logged):
        assert line.startswith(f"eval at step {record['step']} (classifier): fid {record['eval']['fid']:.4f}")
    assert evals[0].endswith("(new best)")
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert evals[1].endswith("(new best)") == (best["step"] == 4)


def test_the_end_of_training_accuracy_is_what_condgan_eval_prints(tmp_path, capsys, quick_private_cache):
    args = [a for a in train_args(tmp_path / "run", "train.steps=3", "eval.num_samples=30") if a != "--no-eval"]
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "final_eval.json").read_text())
    assert f"condgan eval {tmp_path / 'run'} --metrics acc --num 30" in out
    code, _, err = run_main(capsys, "eval", str(tmp_path / "run"), "--metrics", "acc", "--no-progress")
    assert code == 0, err
    scored = json.loads((tmp_path / "run" / "eval.json").read_text())["metrics"]
    assert scored["acc_top1"] == report["conditional_accuracy"] and scored["acc_top5"] == report[
        "conditional_accuracy_top5"]
    assert scored["real_acc_top1"] == report["real_accuracy"] and report["seed"] == 0


def test_presets_are_found_by_pattern_and_shown_as_a_table(capsys):
    every = list_presets()
    code, out, _ = run_main(capsys, "presets", "CIFAR10-STYLEGAN2")
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert code == 0 and names == [n for n in every if "cifar10-stylegan2" in n] and names
    code, out, _ = run_main(capsys, "presets", "Table 5")  # the paper row, not the name
    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == [n for n, (row, desc) in every.items() if "table 5" in f"{row} {desc}".lower()]
    assert "afhq512-stylegan2-ada" in names and "cifar10-reacgan" not in names
    code, out, _ = run_main(capsys, "presets", "mnist5k-*pd", "--table")
    lines = out.splitlines()
    assert lines[0].split() == list(TABLE_COLUMNS)
    assert [line.split()[:6] for line in lines[1:]] == [["mnist5k-pd", "mnist5k", "32", "dcgan", "pd", "standard"]]


def test_a_pattern_matching_nothing_is_a_one_line_error(capsys):
    code, _, err = run_main(capsys, "presets", "nosuchthing")
    assert code == 2
    one_line_error(err, "'nosuchthing'", str(len(list_presets())))


def test_plot_titles_evaluation_panels_with_their_feature_space():
    from condgan.cli.plot import families

    evals = [{"step": 2, "eval": {"fid": 9.5, "acc_top1": 0.5}, "backbone": "classifier"},
             {"step": 4, "eval": {"fid": 90.0, "kid_mean": 0.1}, "backbone": "inception"},  # eval.backbone changed
             {"step": 6, "eval": {"fid": 8.0}}]  # a run older than the backbone record
    panels = families([], evals)["eval"]
    assert panels == {"acc_top1": ([2], [0.5]), "fid": ([6], [8.0]), "fid (classifier)": ([2], [9.5]),
                      "fid (inception)": ([4], [90.0]), "kid_mean (inception)": ([4], [0.1])}


"""`condgan reproduce`: every table's rows are real presets and valid commands; --run trains, evaluates, skips
what is finished, records divergence, stops on bad input, and writes paper vs condgan as markdown."""
import json
import shlex
import statistics

import pytest
from conftest import TINY, run_main

import condgan.metrics.classifier as clf_mod
from condgan.cli import make_parser
from condgan.config import build_config
from condgan.presets import list_presets, load_preset
from condgan.reproduce import TABLES, Protocol, ReproduceError, Row, Table, describe, harness, jobs
from condgan.reproduce.tables import CONDGAN_KEYS


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_row_is_a_preset_and_its_commands_are_valid(name, tmp_path):
    table = TABLES[name]
    presets = list_presets()
    assert len({r.label for r in table.rows}) == len(table.rows)
    for job in jobs(table, [0, 3], tmp_path, sets=["train.steps=900000"]):
        assert job.preset in presets, job.preset
        args = make_parser().parse_args(job.train[1:])  # the exact argv `condgan` would parse
        cfg = build_config(load_preset(args.preset), args.set)
        assert cfg.train.seed == job.seed and cfg.train.steps == 900000 and args.out == str(job.run_dir)
        evaluate = make_parser().parse_args(job.eval[1:])
        assert evaluate.target == str(job.run_dir) and evaluate.num == table.protocol.num_samples
    for row in table.rows:
        assert set(row.paper) <= set(table.columns) and all(c in CONDGAN_KEYS for c in table.columns)
        # the preset names the same figure as the table (no second, diverging copy of the paper's numbers)
        reproduces = presets[row.preset][0]
        if row.paper.get("FID") and not name.startswith("mnist5k"):
            assert f"{row.paper['FID']:g}" in reproduces, (row.preset, reproduces)


def test_describe_prints_rows_figures_protocol_and_commands(tmp_path):
    text = describe(TABLES["mnist5k-t3"], [0, 1], tmp_path)
    assert "protocol: condgan eval --metrics fid,acc --num 2000 --backbone classifier --ref test" in text
    assert "AC  [mnist5k-acgan]  paper: FID 96.04" in text
    train = [line.strip() for line in text.splitlines() if line.strip().startswith("condgan train")]
    assert len(train) == 12 and all(shlex.split(c)[0] == "condgan" for c in train)


def test_mean_std_is_the_sample_standard_deviation():
    values = [3.0, 4.5, 10.25]
    mean, std = harness.mean_std(values).split(" ± ")
    assert float(mean) == pytest.approx(statistics.mean(values), rel=1e-3)
    assert float(std) == pytest.approx(statistics.stdev(values), rel=1e-2)
    assert harness.mean_std([2.5]) == "2.5" and harness.mean_std([]) == "—"


@pytest.fixture
def in_process(monkeypatch, tmp_path, capsys):
    """Run the harness's commands in this process (1-epoch evaluation classifier, private caches)."""
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    quick = clf_mod.train_classifier
    monkeypatch.setattr(clf_mod, "train_classifier", lambda train, **kw: quick(train, **{**kw, "epochs": 1}))
    calls = []

    def runner(command, log):
        calls.append(command)
        code, out, err = run_main(capsys, *command[1:])
        log.open("a").write(out + err)
        return code, (err or out).strip().splitlines()[-1] if (err or out).strip() else ""
    monkeypatch.setattr(harness, "_run_logged", runner)
    return calls


def _small_table(*rows: Row) -> Table:
    return Table("small", "a test table", ("acc", "FID"), Protocol("fid,acc", 20, backbone="classifier", ref="test"),
                 rows, sets=(*TINY, "train.steps=4", "train.ckpt_every=2", "eval.every=2"))


def test_run_trains_evaluates_skips_finished_and_writes_markdown(in_process, tmp_path):
    table = _small_table(Row("D2D-CE", "mnist5k-reacgan", {"FID": 27.1}), Row("AC", "mnist5k-acgan", {"FID": 96.04}))
    lines = []
    path = harness.run(table, [0, 1], tmp_path / "out", echo=lines.append)
    assert len(in_process) == 8 and [c[1] for c in in_process] == ["train", "eval"] * 4
    md = path.read_text()
    records = {(j.label, j.seed): json.loads(j.record.read_text())["metrics"] for j in jobs(table, [0, 1],
                                                                                           tmp_path / "out")}
    for label in ("D2D-CE", "AC"):
        accs = [records[(label, s)]["acc_top1"] for s in (0, 1)]
        row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
        assert harness.mean_std(accs) in row and "| 2/2 |" in row
    assert "Training diagnostics (ReACGAN Fig. 2)" in md and "→" in md  # the logged norms and probabilities
    for block in md.split("\n\n"):  # every markdown table row has its header's number of cells
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({line.count("|") for line in rows}) <= 1, rows
    in_process.clear()
    harness.run(table, [0, 1], tmp_path / "out", echo=lines.append)
    assert in_process == [] and sum("finished before, skipped" in line for line in lines) == 4
    assert path.read_text().split("\n", 3)[3] == md.split("\n", 3)[3]  # same table (the header has the date)


def test_diagnostics_give_the_first_peak_and_last_tenth_averaged_over_seeds():
    rise_and_fall = [0.0] * 10 + [10.0] * 2 + [1.0] * 8  # tenths of 2 steps: 0 x5, 10, 1 x4
    assert harness._first_peak_last([rise_and_fall, [2.0] * 20]) == "1 → 6 → 1.5"
    assert harness._first_peak_last([[4.0, 8.0]]) == "4 → 8 → 8"  # fewer steps than tenths


def test_a_diverged_row_is_recorded_and_a_bad_input_stops_the_table(in_process, tmp_path, monkeypatch):
    table = _small_table(Row("D2D-CE", "mnist5k-reacgan"), Row("AC", "mnist5k-acgan"))
    real = harness._run_logged

    def diverge_ac(command, log):
        if "mnist5k-acgan" in command and command[1] == "train":
            return 3, "condgan: error: non-finite loss at step 3"
        return real(command, log)
    monkeypatch.setattr(harness, "_run_logged", diverge_ac)
    md = harness.run(table, [0], tmp_path / "out", echo=lambda _: None).read_text()
    assert "| 0/1, seed 0 diverged |" in next(line for line in md.splitlines() if line.startswith("| AC |"))
    assert "| 1/1 |" in next(line for line in md.splitlines() if line.startswith("| D2D-CE |"))

    monkeypatch.setattr(harness, "_run_logged", lambda command, log: (2, "condgan: error: no such file: /nope"))
    with pytest.raises(ReproduceError, match=r"row 'D2D-CE' seed 1: .* failed \(exit 2\): condgan: error: no such"):
        harness.run(table, [1], tmp_path / "out", echo=lambda _: None)


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "reacgan-t1-tinny"], "unknown table 'reacgan-t1-tinny' (did you mean 'reacgan-t1-tiny'?)"),
    (["reproduce", "mnist5k-t3", "--seeds", "0,x"], "--seeds must be a comma list of integers"),
    (["reproduce", "mnist5k-t3", "--seeds", "1,1"], "--seeds must be distinct integers >= 0"),
    (["reproduce", "mnist5k-t3", "--nproc", "0"], "--nproc must be at least 1"),
])
def test_hostile_reproduce_arguments_are_one_line_errors(argv, message, capsys):
    code, out, err = run_main(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_listing_names_every_table(capsys):
    code, out, _ = run_main(capsys, "reproduce")
    assert code == 0 and all(name in out for name in TABLES)

"""Stopping a plain ``condgan train`` with a signal, and the pieces every rank's stop rests on: the signal record,
the exit codes, dist.timeout, and the start-up checks that keep a many-node run whole."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (TESTS, assert_same_state, load, one_line_error, run_main, tiny_train_args, torchrun_env,
                      wait_for_step)

from condgan.cli.main import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_RANK_FAILED
from condgan.config import ConfigError, build_config, diff
from condgan.config.keys import resume_conflicts
from condgan.presets import load_preset
from condgan.train.stopping import Interrupted, StopRequests, StopVote, Stopped, exit_code

STEPS = 40
SETS = [f"train.steps={STEPS}", "train.ckpt_every=25"]


def start(out: Path) -> subprocess.Popen:
    """``condgan train`` (tiny) in a child that handles SIGINT as a terminal's foreground process does."""
    return subprocess.Popen([sys.executable, "-m", "condgan", *tiny_train_args(out, *SETS)], env=torchrun_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("straight") / "run"
    proc = start(out)
    assert proc.wait(300) == 0, proc.stderr.read()
    return load(out / f"checkpoints/ckpt_{STEPS:08d}.pt")


def test_ctrl_c_checkpoints_the_step_it_stops_at_and_the_rerun_is_bitwise(tmp_path, straight):
    """Ctrl-C followed by a burst of 20 more while the step ends and the checkpoint is written: one checkpoint of the
    stop step, exit 130, one line; the rerun ends bitwise as the straight run. (SIGTERM and SIGUSR1 take the same
    path: tests/test_cluster.py sends them to torchrun, a rank and a SLURM job.)"""
    sig = signal.SIGINT
    out = tmp_path / "run"
    proc = start(out)
    wait_for_step(out, 3, proc)
    for _ in range(21):
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    m = re.fullmatch(rf"condgan: stopped by {sig.name} at step (\d+) \(checkpoint (\S+) written\): rerun the same "
                     r"command to continue\n", err)
    assert m, err
    step = int(m[1])
    assert Path(m[2]) == out / f"checkpoints/ckpt_{step:08d}.pt" and load(Path(m[2]))["step"] == step
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == step
    assert not list((out / "checkpoints").glob("*.tmp*")) and step < STEPS
    rerun = start(out)
    assert rerun.wait(300) == 0, rerun.stderr.read()
    assert_same_state(load(out / f"checkpoints/ckpt_{STEPS:08d}.pt"), straight)


def test_deferred_signals_are_noted_once_and_raise_only_outside_training():
    requests = StopRequests()
    with pytest.raises(Interrupted) as raised:
        requests._handle(signal.SIGTERM, None)
    assert raised.value.signum == signal.SIGTERM and isinstance(raised.value, KeyboardInterrupt)
    requests = StopRequests()
    with pytest.raises(Interrupted):  # a signal noted during training stops the command when training is left
        with requests.deferred():
            requests._handle(signal.SIGUSR1, None)
            requests._handle(signal.SIGINT, None)  # a second one changes nothing
            assert requests.signum == signal.SIGUSR1
    assert StopVote(requests).now() == StopVote(requests).poll() == signal.SIGUSR1  # one process: its own


def test_an_ignored_sigint_stays_ignored():
    """A background job's SIGINT is ignored on purpose (Ctrl-C in its terminal is not meant for it)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = StopRequests()
    try:
        requests.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == requests._handle
    finally:
        requests.restore()
        signal.signal(signal.SIGINT, previous)
    assert signal.getsignal(signal.SIGTERM) is not requests._handle


def test_the_manual_lists_every_exit_code():
    page = (TESTS.parent / "docs" / "commands.md").read_text()
    table = page[page.index("| exit code | meaning |"):].split("\n\n")[0]
    codes = dict(re.findall(r"^\| (\S+(?: \+ n)?) \| (.+) \|$", table, re.M))
    assert {"0", str(EXIT_BAD_INPUT), str(EXIT_DIVERGED), str(EXIT_RANK_FAILED), "128 + n"} <= codes.keys()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        assert f"{sig.name} {exit_code(sig)}" in codes["128 + n"]
    assert str(Stopped(signal.SIGTERM, 7, None)) == ("stopped by SIGTERM at step 7 (before its first step, with "
                                                    "nothing new to save): rerun the same command to continue")


@pytest.mark.parametrize("value, says", [("0", "must be positive"), ("-5", "must be positive"),
                                         ("soon", "dist.timeout"), ("1e400", "dist.timeout")])
def test_a_bad_dist_timeout_is_one_line(capsys, tmp_path, value, says):
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", f"dist.timeout={value}"))
    assert code == 2
    one_line_error(err, "dist.timeout", says)
    assert not (tmp_path / "run").exists()


def test_dist_timeout_may_change_when_a_run_resumes():
    saved = build_config(load_preset("mnist5k-reacgan"), [])
    longer = build_config(load_preset("mnist5k-reacgan"), ["dist.timeout=7200"])
    assert diff(saved, longer) == ["dist.timeout"] and resume_conflicts(saved, longer) == []


def test_a_run_dir_that_other_nodes_see_differently_is_refused():
    from condgan.train.resume import check_run_dir_shared

    check_run_dir_shared(Path("runs/x"), 20, [("a", 20), ("b", 20), ("c", None)])  # rank 2 sees none: its own disk
    check_run_dir_shared(Path("runs/x"), 10, [("a", 20), ("b", 20)])  # rank 0 skipped an unreadable newest one
    for seen in ([("a", None), ("b", 20)], [("a", 10), ("b", 20)]):
        with pytest.raises(ConfigError, match=r"rank 1 \(host b\) sees checkpoints up to step 20 in runs/x that rank "
                                              r"0 \(host a\) does not: .* filesystem every node shares"):
            check_run_dir_shared(Path("runs/x"), 0, seen)

"""Beyond one machine: two torchrun "nodes", and the faults a cluster deals out (preemption signals, a rank killed,
a rank that stops answering), each launched as users launch them: torchrun subprocesses on CPU (gloo)."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (DDP_TINY, ONE_NODE, TESTS, assert_same_state, load, max_gap, torchrun_env, train_args,
                      train_ranks, wait_for_step)

STEPS = 40
FAULTS = DDP_TINY + [f"train.steps={STEPS}", "train.ckpt_every=10"]


def launch(tmp: Path, sets: list[str], *torchrun_opts: str, name: str = "run") -> subprocess.Popen:
    """torchrun (2 ranks, one node) training into tmp/name, each rank's exit code kept in tmp/codes/<rank>; its
    output goes to tmp/launcher.out and tmp/launcher.err (read with :func:`output`)."""
    (tmp / "codes").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *torchrun_opts,
           str(TESTS / "record_exit.py"), *train_args(tmp / name, sets)[2:]]
    env = {**torchrun_env(), "CONDGAN_TEST_CODES": str(tmp / "codes"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, cwd=tmp, env=env, stdout=open(tmp / "launcher.out", "w"),
                            stderr=open(tmp / "launcher.err", "w"), start_new_session=True)


def output(tmp: Path) -> tuple[str, str]:
    return (tmp / "launcher.out").read_text(), (tmp / "launcher.err").read_text()


def codes(tmp: Path) -> dict[int, int]:
    return {int(p.name): int(p.read_text()) for p in (tmp / "codes").iterdir()}


def worker_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of the torchrun worker with global rank ``rank``."""
    children = descendants(launcher.pid)
    for pid in children:
        if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return int(pid)
    raise AssertionError(f"no worker of rank {rank} among {children}")


def descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for c in children for d in descendants(c)]


def finish(proc: subprocess.Popen, timeout: float = 180) -> int:
    """The launcher's exit code; on a timeout, the launcher and its workers (each in a session of its own) killed."""
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            for pid in [proc.pid, *descendants(proc.pid)]:
                os.kill(pid, signal.SIGKILL)
            proc.wait()


def no_condgan_traceback(err: str) -> None:
    assert not re.search(r'File ".*condgan', err), err[-3000:]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The final checkpoint of FAULTS trained by 2 ranks without interruption."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    train_ranks(tmp / "run", FAULTS, ranks=2)
    return load(tmp / f"run/checkpoints/ckpt_{STEPS:08d}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_multinode_line(port: int, sets: list[str], restarts: int | None = None) -> list[str]:
    """The manual's multi-node torchrun line, as written, at this machine's scale: one process per node, the
    rendezvous on 127.0.0.1:``port``, CPU, the tiny demo preset into ./run with ``sets`` (and ``restarts``
    instead of the line's --max-restarts: an error in the input repeats on every restart)."""
    page = (TESTS.parent / "docs" / "multi-gpu-and-clusters.md").read_text()
    section = page[page.index("## Several nodes, preemption and failures"):]
    block = section[section.index("```bash\n") + 8:]
    argv = shlex.split(block[:block.index("```")].replace("\\\n", " "))
    assert argv[0] == "torchrun" and "--nnodes=2" in argv and "--rdzv-backend=c10d" in argv, argv
    local = {"--nproc-per-node": "1", "--rdzv-endpoint": f"127.0.0.1:{port}", "--preset": "mnist5k-reacgan",
             "--device": "cpu", "--out": "run", **({} if restarts is None else {"--max-restarts": str(restarts)})}
    out = []
    for arg in argv[1:]:
        name = arg.split("=", 1)[0]
        if name in local and "=" in arg:
            arg = f"{name}={local[name]}"
        elif out and out[-1] in local:
            arg = local[out[-1]]
        out.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", *out, *[a for s in sets for a in ("--set", s)]]


def test_two_nodes_train_as_one_node_and_only_rank_0_touches_the_run_dir(tmp_path, one_node_runs):
    """The manual's multi-node line on two launchers (--nnodes=2, c10d rendezvous on 127.0.0.1, one process each),
    each in its own folder with a relative --out: only global rank 0's folder gets a run dir, and G_ema equals one
    node's two processes (1e-6) and one process's (1e-5, as test_distributed compares them)."""
    cmd, nodes = readme_multinode_line(free_port(), ONE_NODE), [tmp_path / "node0", tmp_path / "node1"]
    procs = []
    for node in nodes:
        node.mkdir()
        procs.append(subprocess.Popen(cmd, cwd=node, env=torchrun_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    written = [node / "run" for node in nodes if (node / "run").exists()]
    assert len(written) == 1  # rank 1 neither read nor wrote its --out
    two, one, single = (load(run / "checkpoints/ckpt_00000003.pt") for run in (written[0], *one_node_runs))
    print({net: (max_gap(two[net], one[net]), max_gap(two[net], single[net])) for net in ("G_ema", "G", "D")})
    for net in ("G_ema", "G", "D"):
        assert max_gap(two[net], one[net]) < 1e-6, net
    assert max_gap(two["G_ema"], single["G_ema"]) < 1e-5
    assert len(two["rng_ranks"]) == 2
    assert (written[0] / "metrics.jsonl").read_text().count("\n") == 3


@pytest.mark.parametrize("target", ["rank 1", "launcher"])
def test_sigterm_stops_every_rank_at_one_step_and_the_rerun_is_exact(tmp_path, uninterrupted, target):
    """SIGTERM to one rank, or to torchrun: both ranks stop at one step with a checkpoint of it and exit 143; the
    rerun ends bitwise as the uninterrupted run."""
    run = tmp_path / "run"
    proc = launch(tmp_path, FAULTS)
    wait_for_step(run, 3, proc)
    os.kill(worker_pid(proc, 1) if target == "rank 1" else proc.pid, signal.SIGTERM)
    finish(proc)
    out, err = output(tmp_path)
    assert codes(tmp_path) == {0: 143, 1: 143}, err[-3000:]
    stops = re.findall(r"^condgan: stopped by SIGTERM at step (\d+) \(checkpoint (\S+) written\): rerun the same "
                       r"command to continue$", err, re.M)
    assert len(stops) == 1, err[-3000:]  # said once, by rank 0
    step, path = int(stops[0][0]), Path(stops[0][1])
    assert 3 <= step < STEPS and path == run / f"checkpoints/ckpt_{step:08d}.pt"
    state = load(path)
    assert state["step"] == step and len(state["rng_ranks"]) == 2  # both ranks gave their state at that step
    assert max(int(p.stem[5:]) for p in (run / "checkpoints").glob("ckpt_*.pt")) == step
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == step  # nothing lost
    no_condgan_traceback(err)
    assert finish(launch(tmp_path, FAULTS)) == 0, output(tmp_path)[1][-3000:]  # the same command again
    assert f"resuming from {path} (step {step}/{STEPS})" in output(tmp_path)[0]
    assert_same_state(load(run / f"checkpoints/ckpt_{STEPS:08d}.pt"), uninterrupted)


@pytest.mark.parametrize("restarts", [1, 0])
def test_a_killed_rank_restarts_the_group_or_says_how_to_resume(tmp_path, uninterrupted, restarts):
    """SIGKILL to rank 1 after step 12: with --max-restarts=1 the run finishes by itself from its last checkpoint,
    bitwise as if never interrupted; with 0, rank 0 says in one line what happened and how to resume."""
    run = tmp_path / "run"
    proc = launch(tmp_path, FAULTS, f"--max-restarts={restarts}")
    wait_for_step(run, 12, proc)
    os.kill(worker_pid(proc, 1), signal.SIGKILL)
    rc = finish(proc)
    out, err = output(tmp_path)
    no_condgan_traceback(err)
    if restarts:
        assert rc == 0 and codes(tmp_path) == {0: 0, 1: 0}, err[-3000:]
        resumed = re.findall(r"^restart 1 of 1 \(torchrun\): resuming from \S+ckpt_(\d+)\.pt \(step (\d+)/40\)$",
                             out, re.M)
        assert len(resumed) == 1 and int(resumed[0][0]) == int(resumed[0][1]) >= 10, out
        assert_same_state(load(run / f"checkpoints/ckpt_{STEPS:08d}.pt"), uninterrupted)
    else:
        assert rc != 0 and codes(tmp_path) == {0: 4}, err[-3000:]  # rank 1 was killed: it kept no code
        lines = [line for line in err.splitlines() if line.startswith("condgan:")]
        assert len(lines) == 1, err[-3000:]
        newest = max(int(p.stem[5:]) for p in (run / "checkpoints").glob("ckpt_*.pt"))
        assert re.match(r"condgan: error: rank 1 \(\S+, pid \d+, last heard at step \d+\) stopped answering", lines[0])
        assert lines[0].endswith(f"rerun the same command to resume from the checkpoint of step {newest}"), lines[0]


def test_ranks_wait_for_rank_0_beyond_dist_timeout_while_it_answers(tmp_path):
    """Rank 0 works alone for 3 x dist.timeout (as an evaluation or a large checkpoint may): the other rank waits
    for it without failing or filling its log with warnings, and the next collective works. Then rank 1 stays out
    of a collective while alive (stuck I/O): rank 0 names it and the line of code it is at."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(TESTS / "cluster_checks.py"), str(tmp_path / "out.json")]
    done = subprocess.run(cmd, cwd=tmp_path, env=torchrun_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    *ranks, stuck = json.loads((tmp_path / "out.json").read_text())
    assert [r["value"] for r in ranks] == ["done on rank 0"] * 2 and [r["sum"] for r in ranks] == [2.0, 2.0]
    assert ranks[1]["waited"] >= 6
    assert re.match(r"rank 1 \(\S+, pid \d+, last heard at step 0\) did not arrive: it is at \S+cluster_checks.py:\d+ "
                    r"in <module> \(.*; dist.timeout 2 s\)", stuck["stuck"]), stuck
    assert stuck["after"] < 2 + 5
    assert "socket.cpp" not in done.stderr, done.stderr[-2000:]


def test_a_stopped_rank_is_named_within_dist_timeout(tmp_path):
    """SIGSTOP to rank 1: rank 0 gives up dist.timeout (3 s) after its last collective began, plus the heartbeat
    check, with one line naming rank 1."""
    proc = launch(tmp_path, FAULTS + ["dist.timeout=3"], "--shutdown-timeout=1")
    wait_for_step(tmp_path / "run", 3, proc)
    rank1 = worker_pid(proc, 1)
    os.kill(rank1, signal.SIGSTOP)
    start = time.monotonic()
    try:
        while not (tmp_path / "codes/0").exists() and time.monotonic() - start < 60:
            time.sleep(0.05)
        waited = time.monotonic() - start
    finally:
        os.kill(rank1, signal.SIGKILL)  # as torchrun does after --shutdown-timeout
        finish(proc)
    err = output(tmp_path)[1]
    assert codes(tmp_path).get(0) == 4, err[-3000:]
    print(f"rank 0 exited {waited:.1f} s after rank 1 was stopped (dist.timeout 3 s)")
    assert waited < 3 + 8, waited  # dist.timeout + the heartbeat check (2.5 s) + exiting
    lines = [line for line in err.splitlines() if line.startswith("condgan:")]
    assert len(lines) == 1 and "rank 1 (" in lines[0] and "stopped answering" in lines[0], err[-3000:]
    assert "dist.timeout 3 s" in lines[0]
    no_condgan_traceback(err)


FAKE_SRUN = """import os, signal, subprocess, sys
args = sys.argv[1:]
while args[0].startswith("-"):
    args.pop(0)
nodes = int(os.environ["SLURM_JOB_NUM_NODES"])
tasks = [subprocess.Popen(args, env={**os.environ, "SLURM_NODEID": str(i), "SLURM_PROCID": str(i)})
         for i in range(nodes)]
def forward(signum, frame):
    for t in tasks:
        if t.poll() is None:
            t.send_signal(signum)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
    signal.signal(s, forward)
sys.exit(max(t.wait() for t in tasks))
"""
FAKE_SCONTROL = """#!/bin/sh
case "$1" in
  show) echo 127.0.0.1 ;;
  requeue) echo "$2" >> "$REQUEUED" ;;
esac
"""


def test_the_slurm_script_stops_requeues_and_resumes(tmp_path, uninterrupted):
    """examples/slurm/train.sbatch as written, on two local "nodes" (a stand-in srun starts its torchrun line once
    per node and forwards signals, as srun does): SIGUSR1 to the script (SLURM's --signal=B:USR1) stops the run at
    one step with a checkpoint and requeues the job; the requeued job's run resumes and ends bitwise as an
    uninterrupted run."""
    script = TESTS.parent / "examples/slurm/train.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(f"#!{sys.executable}\n{FAKE_SRUN}")
    (bin_dir / "scontrol").write_text(FAKE_SCONTROL)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**torchrun_env(), "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_PER_NODE": "1", "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "node[1-2]", "DEVICE": "cpu", "MASTER_PORT": str(free_port()),
           "REQUEUED": str(tmp_path / "requeued"), "PYTHONUNBUFFERED": "1"}
    argv = ["bash", str(script), "mnist5k-reacgan", str(tmp_path / "run"), *[a for s in FAULTS for a in ("--set", s)]]

    def job(name: str) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=open(tmp_path / f"{name}.out", "w"),
                                stderr=open(tmp_path / f"{name}.err", "w"), start_new_session=True)

    first = job("first")
    wait_for_step(tmp_path / "run", 3, first)
    os.kill(first.pid, signal.SIGUSR1)
    finish(first)
    err = (tmp_path / "first.err").read_text()
    stops = re.findall(r"^condgan: stopped by SIGUSR1 at step (\d+) \(checkpoint (\S+) written\)", err, re.M)
    assert len(stops) == 1, err[-3000:]
    assert (tmp_path / "requeued").read_text() == "4242\n"
    assert finish(job("requeued")) == 0, (tmp_path / "requeued.err").read_text()[-3000:]
    assert f"resuming from {stops[0][1]} (step {stops[0][0]}/{STEPS})" in (tmp_path / "requeued.out").read_text()
    assert (tmp_path / "requeued").read_text() == "4242\n"  # a run that ended is not requeued
    assert_same_state(load(tmp_path / f"run/checkpoints/ckpt_{STEPS:08d}.pt"), uninterrupted)


def two_node_launch(tmp_path: Path, sets: list[str]) -> list[tuple[int, str]]:
    """(exit code, stderr) of each of two launchers (one process each) started in tmp/node0 and tmp/node1."""
    cmd = readme_multinode_line(free_port(), sets, restarts=0)
    procs = [subprocess.Popen(cmd, cwd=tmp_path / f"node{i}", env=torchrun_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    return [(p.returncode, p.communicate(timeout=120)[1]) for p in procs if p.wait(120) is not None]


def save_npz(path: Path, seed: int) -> None:
    images = np.random.default_rng(seed).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=np.arange(32) % 4)


NPZ = ["data.name=npz", "data.root=data.npz", "train.steps=2", "train.ckpt_every=2"]


def test_nodes_reading_different_data_are_refused_naming_the_host(tmp_path):
    for i in range(2):
        (tmp_path / f"node{i}").mkdir()
        save_npz(tmp_path / f"node{i}/data.npz", seed=i)  # each node prepared other images under one name
    results = two_node_launch(tmp_path, DDP_TINY + NPZ)
    lines = [line for _, err in results for line in err.splitlines() if line.startswith("condgan:")]
    assert len(lines) == 1, [err[-2000:] for _, err in results]
    assert re.match(rf"condgan: error: rank 1 \(host {re.escape(socket.gethostname())}\) reads other training data "
                    r"\(npz, content hash \w+\) than rank 0", lines[0]), lines[0]
    assert not any((tmp_path / f"node{i}/run/checkpoints").exists() for i in range(2))


def test_a_rank_that_fails_to_start_stops_the_others_at_once(tmp_path):
    """One node lacks the data: its rank fails while loading it; the other, waiting for it (as long as it answers,
    not dist.timeout), learns of the failure at once and exits."""
    for i in range(2):
        (tmp_path / f"node{i}").mkdir()
    save_npz(tmp_path / "node0/data.npz", seed=0)
    start = time.monotonic()
    results = two_node_launch(tmp_path, DDP_TINY + NPZ)
    assert time.monotonic() - start < 60  # dist.timeout is 600 s
    assert all(code != 0 for code, _ in results)
    lines = [line for _, err in results for line in err.splitlines() if line.startswith("condgan:")]
    assert lines and all("data.npz" in line for line in lines), lines
    for _, err in results:
        no_condgan_traceback(err)

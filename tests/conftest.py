"""Shared test helpers: a tiny, fast version of the demo preset, in-process and subprocess CLI runners."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from condgan.cli import main
from condgan.config import Config, build_config
from condgan.presets import load_preset

# The demo preset (ReACGAN, DCGAN pair, mnist5k) at widths that train a step in tens of milliseconds.
TINY = ["model.g_width=8", "model.d_width=8", "model.z_dim=8", "model.embed_dim=16", "train.batch_size=16",
        "train.log_every=1", "train.sample_every=100", "train.ema_start=2", "eval.num_samples=20"]


# StyleGAN2's nets and strategy at widths that train a step in well under a second (with TINY's batch of 16)
STYLEGAN2 = ["model.arch=stylegan2", "train.strategy=stylegan2", "model.g_sn=false", "model.d_sn=false",
             "model.init=default", "model.attention=false", "loss.adv=ns", "model.z_dim=16", "model.w_dim=16",
             "model.mapping_layers=2", "model.channel_base=128", "model.channel_max=16", "model.mbstd_group=4",
             "model.embed_dim=8", "optim.eps=1e-8"]


def tiny_cfg(*overrides: str) -> Config:
    return build_config(load_preset("mnist5k-reacgan"), TINY + list(overrides))


def straight_and_resumed(cfg: Config, root: Path, at: int) -> tuple:
    """(Trainer run straight to train.steps in root/straight, Trainer stopped at step ``at`` in root/resumed and then
    resumed by a new Trainer to the end): the two a bitwise-resume test compares."""
    from condgan.train.trainer import Trainer

    straight = Trainer(cfg, root / "straight", progress=False)
    straight.train()
    first = Trainer(cfg, root / "resumed", progress=False)
    first.train(until=at)
    first.close()  # a run dir has one owner at a time
    second = Trainer(cfg, root / "resumed", progress=False)
    assert second.step == at and second.resumed_from is not None
    second.train()
    return straight, second


def tiny_train_args(out: Path, *overrides: str) -> list[str]:
    """``condgan train`` arguments for the tiny demo preset into ``out`` (no progress bar, no final report)."""
    return ["train", "--preset", "mnist5k-reacgan", "--out", str(out), "--no-progress", "--no-eval"] + [
        a for s in TINY + list(overrides) for a in ("--set", s)]


def one_line_error(err: str, *culprits: str) -> str:
    """The single ``condgan: error:`` line of stderr (no traceback, nothing else), after checking it names every
    culprit."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("condgan: error: "), err
    for culprit in culprits:
        assert culprit in lines[0], (culprit, lines[0])
    return lines[0]


@pytest.fixture
def quick_private_cache(tmp_path, monkeypatch):
    """A private cache and a 1-epoch evaluation classifier (seconds, not minutes)."""
    import condgan.metrics.classifier as clf_mod

    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    quick = clf_mod.train_classifier
    monkeypatch.setattr(clf_mod, "train_classifier", lambda train, **kw: quick(train, **{**kw, "epochs": 1}))


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``condgan argv...`` run in this process."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``python -m condgan argv...`` in a child process (text output captured)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "condgan", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


# -- torchrun ------------------------------------------------------------------------------------------------
TESTS = Path(__file__).parent
# A tiny BigGAN + D2D-CE on MNIST for runs under torchrun. G's BN statistics span the global batch (model.sync_bn),
# nothing is augmented (augmentation draws are each rank's own). Adam's eps is raised from 1e-6 because conv biases
# in front of a BN have a true gradient of 0: Adam would turn their float rounding (~1e-7, which differs with the
# summation order) into steps of +-lr; eps 1e-4 keeps those steps below 1e-3 lr.
DDP_TINY = ["model.arch=biggan32", "model.g_width=8", "model.d_width=8", "model.z_dim=16", "model.shared_dim=8",
            "model.embed_dim=16", "model.sync_bn=true", "data.hflip=false", "optim.eps=1e-4", "train.batch_size=8",
            "train.n_dis=2", "train.ema_decay=0.5", "train.ema_start=0", "train.log_every=1",
            "train.sample_every=100"]
# Some cases run with Adam's eps 1 and lr 0.02, i.e. as momentum SGD: at eps 1e-4 Adam divides the rounding
# differences of gradients near 0 (different reduction orders of 2 x 4 vs 8 samples, amplified by the BNs'
# centring of G's gradients) by their own tiny scale and turns them into steps of a sizeable fraction of lr
# (measured: a 64 px BigGAN's weights 4e-4 apart after 3 steps, with accumulation 4e-5). The pipeline under
# test is the same; only the optimiser's amplification of float32 rounding is taken out.
MOMENTUM_SGD = ["optim.eps=1", "optim.g_lr=0.02", "optim.d_lr=0.02"]


def torchrun_env() -> dict:
    """The environment of a torchrun child: condgan importable from the checkout, one thread per rank."""
    src = str(TESTS.parent / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src}


def torchrun(args: list[str], cwd: Path) -> None:
    """``torchrun --standalone --nproc_per_node=2 args...``, which must succeed."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    done = subprocess.run(cmd, cwd=cwd, env=torchrun_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def train_args(out: Path | str, sets: list[str]) -> list[str]:
    """``-m condgan train`` on the demo preset into ``out`` with ``--set`` for each of ``sets``."""
    args = ["-m", "condgan", "train", "--preset", "mnist5k-reacgan", "--out", str(out), "--no-eval", "--no-progress"]
    return args + [a for s in sets for a in ("--set", s)]


def train_ranks(out: Path, sets: list[str], ranks: int) -> None:
    """Train into ``out`` with 2 ranks under torchrun, or 1 plain process."""
    if ranks == 2:
        torchrun(train_args(out, sets), out.parent)
    else:
        done = subprocess.run([sys.executable, *train_args(out, sets)], cwd=out.parent, env=torchrun_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]


def load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def max_gap(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


# The tiny BigGAN's first 3 steps (momentum SGD), the one-node reference of the DDP and the two-node tests
ONE_NODE = DDP_TINY + ["train.steps=3", "train.ckpt_every=3", *MOMENTUM_SGD]


@pytest.fixture(scope="session")
def one_node_runs(tmp_path_factory) -> tuple[Path, Path]:
    """The run dirs of ONE_NODE trained by 2 ranks under torchrun (one node) and by 1 process."""
    root = tmp_path_factory.mktemp("one_node")
    train_ranks(root / "ddp", ONE_NODE, ranks=2)
    train_ranks(root / "single", ONE_NODE, ranks=1)
    return root / "ddp", root / "single"


def wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the run logged ``step`` (fails if training ended first)."""
    log, end = run / "metrics.jsonl", time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, f"training ended before step {step}"
        lines = log.read_text().splitlines() if log.exists() else []
        if lines and json.loads(lines[-1]).get("step", 0) >= step:
            return
        time.sleep(0.01)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def assert_same_state(a: dict, b: dict) -> None:
    """Bitwise: the nets, both optimisers' states and the step."""
    assert a["step"] == b["step"]
    for net in ("G", "D", "G_ema"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert a[net][k].equal(b[net][k]), (net, k)
    for opt in ("opt_g", "opt_d"):
        sa, sb = a[opt]["state"], b[opt]["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for k, v in sa[i].items():
                assert v.equal(sb[i][k]), (opt, i, k)

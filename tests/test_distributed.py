"""torchrun / DDP on CPU (gloo): collectives with gradients, and whole runs against one process.

Each test launches ``torchrun --nproc_per_node=2`` as a subprocess, as users do (no custom spawning).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import STYLEGAN2

from condgan.distributed import World, all_gather_cat, all_reduce_sum, convert_sync_batchnorm, world

TESTS = Path(__file__).parent
# A tiny BigGAN + D2D-CE on MNIST. G's BN statistics span the global batch (model.sync_bn), nothing is
# augmented (augmentation draws are each rank's own). Adam's eps is raised from 1e-6 because conv biases in
# front of a BN have a true gradient of 0: Adam would turn their float rounding (~1e-7, which differs with
# the summation order) into steps of +-lr; eps 1e-4 keeps those steps below 1e-3 lr.
TINY = ["model.arch=biggan32", "model.g_width=8", "model.d_width=8", "model.z_dim=16", "model.shared_dim=8",
        "model.embed_dim=16", "model.sync_bn=true", "data.hflip=false", "optim.eps=1e-4", "train.batch_size=8",
        "train.n_dis=2", "train.ema_decay=0.5", "train.ema_start=0", "train.log_every=1", "train.sample_every=100"]


def _env() -> dict:
    src = str(TESTS.parent / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src}


def torchrun(args: list[str], cwd: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def train(out: Path, sets: list[str], ranks: int) -> None:
    args = ["-m", "condgan", "train", "--preset", "mnist5k-reacgan", "--out", str(out), "--no-eval", "--no-progress"]
    args += [a for s in sets for a in ("--set", s)]
    if ranks == 2:
        torchrun(args, out.parent)
    else:
        done = subprocess.run([sys.executable, *args], cwd=out.parent, env=_env(), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def max_gap(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_collectives_match_one_process(tmp_path):
    """Gathered D2D-CE (both forms) and 2C, SyncBN and ADA's p controller, against one process on the whole
    batch."""
    out = tmp_path / "checks.json"
    torchrun([str(TESTS / "ddp_checks.py"), str(out)], tmp_path)
    r = json.loads(out.read_text())
    assert r["world"] == 2
    for loss in ("d2d_ce", "d2d_ce_paper", "2c"):
        c = r[loss]
        assert c["value"] < 1e-6 and c["grad_table"] < 1e-6, (loss, c)
        assert c["grad_weight"] < 1e-6 * max(1.0, c["grad_scale"]), (loss, c)
        assert c["ungathered_grad_weight"] > 1e-3, (loss, c)  # the check can tell a missing gather
    for key, value in r["sync_bn"].items():
        assert value < 1e-5, (key, value)
    ada = r["ada"]  # ADA's p: identical on both ranks and equal to one process's over the whole batches
    assert ada["rank_spread"] == 0.0 and ada["vs_one_process"] < 1e-7 and ada["p_moves"] > 3, ada


# Some cases run with Adam's eps 1 and lr 0.02, i.e. as momentum SGD: at eps 1e-4 Adam divides the rounding
# differences of gradients near 0 (different reduction orders of 2 x 4 vs 8 samples, amplified by the BNs'
# centring of G's gradients) by their own tiny scale and turns them into steps of a sizeable fraction of lr
# (measured: a 64 px BigGAN's weights 4e-4 apart after 3 steps, with accumulation 4e-5). The pipeline under
# test is the same; only the optimiser's amplification of float32 rounding is taken out.
MOMENTUM_SGD = ["optim.eps=1", "optim.g_lr=0.02", "optim.d_lr=0.02"]
BIGGAN64 = ["model.arch=biggan", "data.resolution=64", "data.resize=true", "model.z_dim=20", *MOMENTUM_SGD]


# StyleGAN2's strategy with every phase on: R1 as its own (synced) D step, path length (its mean over the global
# batch), style mixing; noise maps and mixing draws come from the latent stream. Minibatch-std groups are per
# process in NVIDIA's and StudioGAN's code as here, so 2 ranks form other groups than one process: group size 1
# (a constant channel) keeps the runs comparable.
STYLEGAN2_DDP = [*STYLEGAN2, "model.sync_bn=false", "model.mbstd_group=1", "reg.r1=0.1", "reg.r1_interval=2",
                 "reg.r1_own_step=true", "reg.pl_weight=1", "reg.pl_interval=2", "reg.style_mixing=0.5",
                 "train.ema_kimg=0.01", *MOMENTUM_SGD]


# (biggan32 and stream run as momentum SGD too: at eps 1e-4 their G is 1.0008e-5 from one process after 3 steps on
# some CPUs, 1e-5 being the bound, with D 2e-7 and G_ema 5e-6 apart: Adam's amplified rounding, not the pipeline.)
@pytest.mark.parametrize("net", [MOMENTUM_SGD, BIGGAN64, ["train.accumulate=2", *MOMENTUM_SGD],
                                 ["data.residency=stream", *MOMENTUM_SGD], STYLEGAN2_DDP],
                         ids=["biggan32", "biggan64", "accumulate", "stream", "stylegan2"])
def test_ddp_run_equals_one_process(tmp_path, net):
    """2 ranks x 4 images vs 1 process x 8 images over the same global batches: same G_ema, G and D."""
    sets = TINY + ["train.steps=3", "train.ckpt_every=3"] + net
    train(tmp_path / "ddp", sets, ranks=2)
    train(tmp_path / "single", sets, ranks=1)
    a = load(tmp_path / "ddp/checkpoints/ckpt_00000003.pt")
    b = load(tmp_path / "single/checkpoints/ckpt_00000003.pt")
    assert max_gap(a["G_ema"], b["G_ema"]) < 1e-5
    assert max_gap(a["G"], b["G"]) < 1e-5 and max_gap(a["D"], b["D"]) < 1e-5
    assert max_gap(a["G_ema"], a["G"]) > 1e-3  # the EMA really averages (it is not a copy of G)
    if "pl_mean" in b["strategy"]:  # StyleGAN2: the path-length mean spans the global batch, as one process's
        assert abs(float(a["strategy"]["pl_mean"] - b["strategy"]["pl_mean"])) < 1e-6 * float(b["strategy"]["pl_mean"])
        assert torch.equal(a["strategy"]["noise"], b["strategy"]["noise"])  # noise and mixing drawn alike
    assert len(a["rng_ranks"]) == 2 and len(b["rng_ranks"]) == 1
    assert (tmp_path / "ddp/metrics.jsonl").read_text().count("\n") == 3  # rank 0 alone logs


def test_neg_drop_drops_the_same_pairs_on_every_rank(tmp_path):
    """loss.neg_drop's masks span the global batch and come from a stream seeded alike on every rank: the first
    iteration's losses and diagnostics (the gathered D2D-CE's feature gradient included: its scaling under
    torchrun) equal one process's (before any rounding difference in the weights), and G_ema stays
    within rounding after 3 steps. (G and D alone drift further: dropped negatives leave gradient entries near
    zero, whose rounding differences even momentum SGD carries for a few steps; see MOMENTUM_SGD.)"""
    sets = TINY + ["train.steps=3", "train.ckpt_every=3", "loss.neg_drop=0.3", *MOMENTUM_SGD]
    train(tmp_path / "ddp", sets, ranks=2)
    train(tmp_path / "single", sets, ranks=1)
    first = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[0]) for run in ("ddp", "single")]
    for key in ("d_cond", "g_cond", "d_loss", "g_loss", "d_p_target", "d_cond_grad_norm"):
        assert first[0][key] == pytest.approx(first[1][key], rel=1e-6), key
    a = load(tmp_path / "ddp/checkpoints/ckpt_00000003.pt")
    b = load(tmp_path / "single/checkpoints/ckpt_00000003.pt")
    assert max_gap(a["G_ema"], b["G_ema"]) < 1e-5
    assert torch.equal(a["strategy"]["neg_drop"], b["strategy"]["neg_drop"])  # the streams advanced alike


def test_free_adversarial_resumes_at_another_world_size(tmp_path):
    """FastGAN's delta is gathered into checkpoints: 2 ranks to step 2, then 1 process to step 4, equals
    1 process all the way (and 2 ranks all the way)."""
    sets = TINY + ["model.arch=fastgan", "loss.cond=ac", "loss.fake_kl_weight=1.0", "train.strategy=free_adversarial",
                   "robust.epsilon=0.05", "robust.step_size=0.05", "train.steps=4", "train.ckpt_every=2",
                   "model.init=xavier"]
    train(tmp_path / "ddp", sets, ranks=2)
    shutil.copytree(tmp_path / "ddp", tmp_path / "mixed")
    (tmp_path / "mixed/checkpoints/ckpt_00000004.pt").unlink()
    train(tmp_path / "mixed", sets, ranks=1)  # resumes from the 2-rank checkpoint of step 2
    train(tmp_path / "single", sets, ranks=1)
    ddp, mixed, single = (load(tmp_path / f"{d}/checkpoints/ckpt_00000004.pt") for d in ("ddp", "mixed", "single"))
    assert ddp["strategy"]["delta"].shape[0] == 8  # the whole batch's perturbation, not rank 0's half
    for state in (ddp, mixed):
        assert max_gap(state["G_ema"], single["G_ema"]) < 1e-5
        assert max_gap(state["D"], single["D"]) < 1e-5
        assert (state["strategy"]["delta"] - single["strategy"]["delta"]).abs().max() < 1e-6


def test_single_process_helpers_are_identities():
    x = torch.randn(3, 2, requires_grad=True)
    assert world() == World() and world().is_main and not world().distributed
    assert all_gather_cat(x) is x and all_reduce_sum(x) is x
    assert World(1, 4).shard(8) == slice(2, 4)


def test_sync_bn_is_plain_bn_in_one_process():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 1), torch.nn.BatchNorm2d(3))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 1, 3, 3)
    ref = net(x)
    net.load_state_dict(state)
    convert_sync_batchnorm(net)
    assert type(net[1]).__name__ == "SyncBatchNorm2d" and net.state_dict().keys() == state.keys()
    assert torch.allclose(net(x), ref)


@pytest.mark.parametrize("batch", [6, 7])
def test_batch_must_divide_among_ranks(batch):
    from condgan.data import BatchSampler, DataError
    from condgan.data.base import make_dataset

    data = make_dataset(torch.zeros(20, 1, 4, 4, dtype=torch.uint8), torch.zeros(20), 1, "zeros")
    if batch % 2:
        with pytest.raises(DataError, match="train.batch_size 7 must be divisible"):
            BatchSampler(data, batch, 0, World(0, 2))
    else:
        halves = [BatchSampler(data, batch, 0, World(r, 2)).next()[0].shape[0] for r in (0, 1)]
        assert halves == [3, 3]

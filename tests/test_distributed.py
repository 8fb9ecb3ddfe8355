"""torchrun / DDP on CPU (gloo): collectives with gradients, and whole runs against one process.

Each test launches ``torchrun --nproc_per_node=2`` as a subprocess, as users do (no custom spawning).
"""
import json
import shutil

import pytest
import torch
from conftest import DDP_TINY, MOMENTUM_SGD, ONE_NODE, STYLEGAN2, TESTS, load, max_gap, torchrun, train_ranks

from condgan.distributed import World, all_gather_cat, all_reduce_sum, convert_sync_batchnorm, world

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
def test_ddp_run_equals_one_process(tmp_path, net, request):
    """2 ranks x 4 images vs 1 process x 8 images over the same global batches: same G_ema, G and D."""
    sets = DDP_TINY + ["train.steps=3", "train.ckpt_every=3"] + net
    if sets == ONE_NODE:
        ddp, single = request.getfixturevalue("one_node_runs")
    else:
        ddp, single = tmp_path / "ddp", tmp_path / "single"
        train_ranks(ddp, sets, ranks=2)
        train_ranks(single, sets, ranks=1)
    a = load(ddp / "checkpoints/ckpt_00000003.pt")
    b = load(single / "checkpoints/ckpt_00000003.pt")
    assert max_gap(a["G_ema"], b["G_ema"]) < 1e-5
    assert max_gap(a["G"], b["G"]) < 1e-5 and max_gap(a["D"], b["D"]) < 1e-5
    assert max_gap(a["G_ema"], a["G"]) > 1e-3  # the EMA really averages (it is not a copy of G)
    if "pl_mean" in b["strategy"]:  # StyleGAN2: the path-length mean spans the global batch, as one process's
        assert abs(float(a["strategy"]["pl_mean"] - b["strategy"]["pl_mean"])) < 1e-6 * float(b["strategy"]["pl_mean"])
        assert torch.equal(a["strategy"]["noise"], b["strategy"]["noise"])  # noise and mixing drawn alike
    assert len(a["rng_ranks"]) == 2 and len(b["rng_ranks"]) == 1
    assert (ddp / "metrics.jsonl").read_text().count("\n") == 3  # rank 0 alone logs


def test_neg_drop_drops_the_same_pairs_on_every_rank(tmp_path):
    """loss.neg_drop's masks span the global batch and come from a stream seeded alike on every rank: the first
    iteration's losses and diagnostics (the gathered D2D-CE's feature gradient included: its scaling under
    torchrun) equal one process's (before any rounding difference in the weights), and G_ema stays
    within rounding after 3 steps. (G and D alone drift further: dropped negatives leave gradient entries near
    zero, whose rounding differences even momentum SGD carries for a few steps; see MOMENTUM_SGD.)"""
    sets = DDP_TINY + ["train.steps=3", "train.ckpt_every=3", "loss.neg_drop=0.3", *MOMENTUM_SGD]
    train_ranks(tmp_path / "ddp", sets, ranks=2)
    train_ranks(tmp_path / "single", sets, ranks=1)
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
    sets = DDP_TINY + ["model.arch=fastgan", "loss.cond=ac", "loss.fake_kl_weight=1.0", "train.strategy=free_adversarial",
                   "robust.epsilon=0.05", "robust.step_size=0.05", "train.steps=4", "train.ckpt_every=2",
                   "model.init=xavier"]
    train_ranks(tmp_path / "ddp", sets, ranks=2)
    shutil.copytree(tmp_path / "ddp", tmp_path / "mixed")
    (tmp_path / "mixed/checkpoints/ckpt_00000004.pt").unlink()
    train_ranks(tmp_path / "mixed", sets, ranks=1)  # resumes from the 2-rank checkpoint of step 2
    train_ranks(tmp_path / "single", sets, ranks=1)
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

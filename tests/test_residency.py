"""data.residency: the device, host and stream tiers give the same batches, the same training, and resume
in one another."""
from __future__ import annotations

import pytest
import torch

from conftest import tiny_cfg
from condgan.data import BatchSampler, DataError
from condgan.data.base import make_dataset
from condgan.data.residency import DeviceFeed, HostFeed, StreamFeed, choose_residency, make_feed
from condgan.distributed import World
from condgan.train.trainer import Trainer

TIERS = ("device", "host", "stream")


def small_dataset(n: int = 103):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    return make_dataset(images, torch.arange(n) % 5, 5, "small")


def drawn(tier: str, steps: int, world: World = World(), state: dict | None = None, batch: int = 12):
    dataset = small_dataset()
    sampler = BatchSampler(dataset, batch, seed=3, world=world, feed=make_feed(dataset, tier, torch.device("cpu"),
                                                                                batch))
    if state is not None:
        sampler.load_state_dict(state)
    batches = [sampler.next() for _ in range(steps)]
    saved = sampler.state_dict()
    sampler.close()
    return batches, saved


def test_every_tier_draws_the_same_batches_across_epochs():
    # 103 images, batch 12: 8 batches an epoch, so 30 draws cross three epoch boundaries
    reference, _ = drawn("device", 30)
    dataset = small_dataset()
    g = torch.Generator().manual_seed(3)
    perm = torch.randperm(103, generator=g)  # an independent replay of the documented order
    assert torch.equal(reference[0][0], dataset.images[perm[:12]])
    assert torch.equal(reference[8][1], dataset.labels[torch.randperm(103, generator=g)[:12]])
    for tier in ("host", "stream"):
        batches, _ = drawn(tier, 30)
        for (xa, ya), (xb, yb) in zip(reference, batches):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
            assert xb.dtype == torch.uint8 and yb.dtype == torch.int64


@pytest.mark.parametrize("first,second", [("device", "stream"), ("stream", "host"), ("host", "device")])
def test_sampler_state_resumes_in_another_tier(first, second):
    straight, _ = drawn("device", 20)
    _, state = drawn(first, 11)
    rest, _ = drawn(second, 9, state=state)
    for (xa, ya), (xb, yb) in zip(straight[11:], rest):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_each_rank_of_every_tier_gets_its_share_of_the_global_batch():
    whole, _ = drawn("device", 10)
    for tier in TIERS:
        parts = [drawn(tier, 10, World(rank, 3))[0] for rank in range(3)]
        for step, (x, y) in enumerate(whole):
            assert torch.equal(torch.cat([p[step][0] for p in parts]), x)
            assert torch.equal(torch.cat([p[step][1] for p in parts]), y)


def test_stream_reads_ahead_across_epochs_without_drawing_from_the_order(monkeypatch):
    dataset = small_dataset()  # 103 images, batch 12: 8 batches an epoch
    feed = StreamFeed(dataset, torch.device("cpu"), batch_size=12, workers=2, prefetch=3)
    sampler = BatchSampler(dataset, 12, seed=3, feed=feed)
    sampler.next()
    assert sorted(feed.pending) == [(0, 12), (0, 24), (0, 36)]  # the next three batches are being read
    state = sampler.generator.get_state()
    for _ in range(6):
        sampler.next()
    assert sorted(feed.pending) == [(0, 84), (1, 0), (1, 12)]  # on into the next epoch's order ...
    assert torch.equal(sampler.generator.get_state(), state)  # ... computed without drawing it
    epoch0 = sampler.perm
    epoch1 = torch.randperm(103, generator=torch.Generator().set_state(state))
    reads = []
    monkeypatch.setattr(feed, "gather", lambda perm, start, rows: reads.append(
        (0 if torch.equal(perm, epoch0) else 1, start)) or StreamFeed.gather(feed, perm, start, rows))
    x, _ = sampler.next()  # the last batch of epoch 0, then epoch 1's first: both were read ahead
    y, _ = sampler.next()
    assert sampler.epoch == 1 and torch.equal(sampler.perm, epoch1)
    assert torch.equal(x, dataset.images[epoch0[84:96]]) and torch.equal(y, dataset.images[epoch1[:12]])
    for future in feed.pending.values():  # the reads ahead run on the pool's threads: let them start and finish
        future.result()
    assert sorted(reads) == [(1, 24), (1, 36)]  # only new batches were read: nothing twice
    assert feed.wait_s >= 0.0
    sampler.close()


def test_auto_picks_by_size(monkeypatch):
    dataset = small_dataset()  # 19,776 bytes
    cpu = torch.device("cpu")
    monkeypatch.setattr("condgan.data.residency.available_host_memory", lambda: 10**9)
    assert choose_residency(dataset, cpu) == "device"
    monkeypatch.setattr("condgan.data.residency.available_host_memory", lambda: 30_000)
    assert choose_residency(dataset, cpu) == "stream"  # more than half of what is available
    assert choose_residency(dataset, cpu, processes_per_host=1) == "stream"
    monkeypatch.setattr("condgan.data.residency.available_host_memory", lambda: 50_000)
    assert choose_residency(dataset, cpu) == "device"
    assert choose_residency(dataset, cpu, processes_per_host=2) == "stream"  # each process holds a copy
    assert isinstance(make_feed(dataset, "auto", cpu, 12), DeviceFeed)
    assert type(make_feed(dataset, "host", cpu, 12)) is HostFeed


def test_unknown_residency_is_one_line():
    with pytest.raises(DataError, match="data.residency must be one of auto, device, host, stream, got 'disk'"):
        make_feed(small_dataset(), "disk", torch.device("cpu"), 12)


def ema_after(tmp_path, tier: str, steps: int, resume_tier: str | None = None, **_):
    sets = ["train.steps=6", "train.ckpt_every=3", "data.hflip=true", "train.n_dis=2"]
    if resume_tier is None:
        t = Trainer(tiny_cfg(*sets, f"data.residency={tier}"), tmp_path / tier, progress=False)
        t.train(until=steps)
    else:
        first = Trainer(tiny_cfg(*sets, f"data.residency={tier}"), tmp_path / "switch", progress=False)
        first.train(until=3)
        first.close()
        t = Trainer(tiny_cfg(*sets, f"data.residency={resume_tier}"), tmp_path / "switch", progress=False)
        assert t.step == 3 and t.run.sampler.feed.tier == resume_tier
        t.train()
    state = {k: v.clone() for k, v in t.run.ema.shadow.state_dict().items()}
    t.close()
    return state


def test_training_is_bitwise_identical_in_every_tier_and_resumes_across_tiers(tmp_path):
    reference = ema_after(tmp_path, "device", 6)
    for result in (ema_after(tmp_path, "host", 6), ema_after(tmp_path, "stream", 6),
                   ema_after(tmp_path, "stream", 6, resume_tier="device")):
        assert result.keys() == reference.keys()
        assert all(torch.equal(result[k], reference[k]) for k in reference)

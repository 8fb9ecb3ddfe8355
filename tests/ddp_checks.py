"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2`` (gloo, CPU); writes JSON to argv[1].

Every rank holds its half of one global batch. Each check compares the distributed computation with the
same computation done by one process on the whole batch (every rank can do that locally: the global
batch is drawn from a shared seed), through values and gradients, after DDP's gradient average.
"""
from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
from torch import nn

from condgan.distributed import SyncBatchNorm2d, all_gather_cat, world
from condgan.losses import contrastive_2c, d2d_ce


def averaged(grad: torch.Tensor) -> torch.Tensor:
    """DDP's average of a parameter gradient over ranks."""
    out = grad.clone()
    dist.all_reduce(out)
    return out / world().size


def check_gathered_loss(fn, n: int = 12, dim: int = 6, classes: int = 3) -> dict[str, float]:
    """A batch-coupled loss of the gathered rows vs the loss of the whole batch in one process.

    The embeddings come from a linear map W (a "parameter") of per-sample inputs, and the proxies from a
    table P; compares the loss value and the gradients of W and P after the ranks' average.
    """
    gen = torch.Generator().manual_seed(7)
    inputs = torch.randn(n, dim, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    weight = torch.randn(dim, dim, generator=gen).requires_grad_()
    table = torch.randn(classes, dim, generator=gen).requires_grad_()

    full = fn(inputs @ weight, table[labels], labels)
    g_weight, g_table = torch.autograd.grad(full, [weight, table])

    rows = world().shard(n)
    embed = all_gather_cat(inputs[rows] @ weight)
    y = all_gather_cat(labels[rows])
    local = fn(embed, table[y], y)
    d_weight, d_table = torch.autograd.grad(local, [weight, table])
    # what skipping the gather would give (negatives from this rank only): the checks must tell it apart
    alone = fn(inputs[rows] @ weight, table[labels[rows]], labels[rows])
    (a_weight,) = torch.autograd.grad(alone, [weight])
    return {"value": (local - full).abs().item(),
            "ungathered_grad_weight": (averaged(a_weight) - g_weight).abs().max().item(),
            "grad_weight": (averaged(d_weight) - g_weight).abs().max().item(),
            "grad_table": (averaged(d_table) - g_table).abs().max().item(),
            "grad_scale": g_weight.abs().max().item()}


def check_sync_bn(n: int = 8) -> dict[str, float]:
    """SyncBatchNorm2d on the halves vs BatchNorm2d on the whole batch: outputs, gradients, running stats."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 4, 5, 5, generator=gen) * 3 + 1
    upstream = torch.randn(n, 4, 5, 5, generator=gen)
    ref, sync = nn.BatchNorm2d(4), SyncBatchNorm2d(4)
    with torch.no_grad():
        for bn in (ref, sync):
            bn.weight.copy_(torch.linspace(0.5, 2.0, 4))
            bn.bias.copy_(torch.linspace(-1.0, 1.0, 4))
    x_ref = x.clone().requires_grad_()
    (ref(x_ref) * upstream).sum().backward()

    rows = world().shard(n)
    x_loc = x[rows].clone().requires_grad_()
    out = sync(x_loc)
    # each rank's loss is its rows' share of the whole-batch loss, summed over ranks as DDP sums gradients
    (out * upstream[rows]).sum().mul(world().size).backward()
    return {"output": _train_output_gap(x, rows, out),
            "grad_input": (x_loc.grad / world().size - x_ref.grad[rows]).abs().max().item(),
            "grad_weight": (averaged(sync.weight.grad) - ref.weight.grad).abs().max().item(),
            "running_mean": (sync.running_mean - ref.running_mean).abs().max().item(),
            "running_var": (sync.running_var - ref.running_var).abs().max().item()}


def _train_output_gap(x: torch.Tensor, rows: slice, out: torch.Tensor) -> float:
    """|SyncBN output - training-mode BN output of the whole batch| on this rank's rows."""
    with torch.no_grad():
        ref = nn.functional.batch_norm(x, None, None, torch.linspace(0.5, 2.0, 4), torch.linspace(-1.0, 1.0, 4),
                                       training=True, eps=1e-5)
    return (out.detach() - ref[rows]).abs().max().item()


def check_ada_controller(steps: int = 24, local: int = 4) -> dict[str, float]:
    """ADA's p on 2 ranks, each seeing its own half of every batch of D outputs, vs one process seeing whole
    batches: p must be the same on every rank (the interval's signs are all-reduced) and equal the one-process p."""
    from condgan.augment.training import AdaptiveAugmentation
    from condgan.config import AugConfig
    from condgan.distributed import all_reduce_sum

    cfg = AugConfig(ada="bgc", ada_p=0.05, ada_target=0.2, ada_interval=2, ada_kimg=1)
    gen = torch.Generator().manual_seed(11)
    batches = [torch.randn(local * world().size, generator=gen) + (0.8 if t % 9 < 5 else -0.8) for t in range(steps)]
    ranks, alone = AdaptiveAugmentation(cfg, torch.device("cpu"), all_reduce_sum), AdaptiveAugmentation(
        cfg, torch.device("cpu"))
    trajectory = []
    for batch in batches:
        ranks.observe_real(batch[world().shard(batch.shape[0])])
        alone.observe_real(batch)
        trajectory.append(float(ranks.p))
    every_rank = [torch.zeros(()) for _ in range(world().size)]
    dist.all_gather(every_rank, ranks.p)
    return {"rank_spread": max(float(p) for p in every_rank) - min(float(p) for p in every_rank),
            "vs_one_process": abs(float(ranks.p) - float(alone.p)), "p_moves": len(set(trajectory)),
            "p": float(ranks.p)}


def main() -> None:
    dist.init_process_group("gloo")
    results = {
        "world": world().size,
        "d2d_ce": check_gathered_loss(lambda e, p, y: d2d_ce(e, p, y, 0.5, 0.98, reference_form=True)),
        "d2d_ce_paper": check_gathered_loss(lambda e, p, y: d2d_ce(e, p, y, 0.5, 0.9, 0.3)),
        "2c": check_gathered_loss(lambda e, p, y: contrastive_2c(e, p, y, 1.0)),
        "sync_bn": check_sync_bn(),
        "ada": check_ada_controller(),
    }
    if world().is_main:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

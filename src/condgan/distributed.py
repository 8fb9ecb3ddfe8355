"""Data-parallel training under ``torchrun``: process group, collectives with gradients, synchronised BN.

condgan never spawns processes: ``torchrun --nproc_per_node=N -m condgan train ...`` starts N copies and
sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`init_from_env` joins them (NCCL on CUDA, gloo on CPU).

Gradient convention. Every rank back-propagates its own loss L_r and DDP averages the parameter gradients,
so the objective is (1/W) sum_r L_r. A loss over the *global* batch (2C, D2D-CE: negatives span every rank)
is computed identically on every rank from :func:`all_gather_cat`, whose backward sums the incoming
gradients over ranks; after DDP's average each parameter then gets exactly the gradient of the global loss,
as a single process over the whole batch would. :func:`all_reduce_sum` follows the same rule, which is
what makes :class:`SyncBatchNorm2d` (G's BN statistics over the global batch) exact.
"""
from __future__ import annotations

import datetime
import os
import socket
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes logs, samples, checkpoints and keeps G_ema."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def processes_per_host(self) -> int:
        """Training processes on this machine (torchrun's LOCAL_WORLD_SIZE; 1 without torchrun)."""
        return int(os.environ.get("LOCAL_WORLD_SIZE") or 1) if self.distributed else 1

    def shard(self, n_global: int) -> slice:
        """This rank's rows of a global batch of ``n_global`` (divisible by ``size``)."""
        n = n_global // self.size
        return slice(self.rank * n, (self.rank + 1) * n)


def world() -> World:
    """The current world: from the initialised process group, else a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher) asked for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str, timeout_s: float = 600) -> torch.device:
    """Join the process group torchrun described; returns this rank's device.

    ``device`` "cuda" (or "cuda:N") becomes cuda:LOCAL_RANK with NCCL; "cpu" uses gloo. A collective that waits
    more than ``timeout_s`` seconds fails (config key ``dist.timeout``). A second, gloo group carries the small
    votes the trainer casts between steps, on the host, beside the devices' work (:func:`control_group`).
    """
    global _CONTROL
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev, backend = torch.device("cuda", local_rank), "nccl"
    else:
        dev, backend = torch.device(device), "gloo"
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=timeout_s)
        store = _store_of_this_attempt(timeout)
        ranks = {} if store is None else {"rank": int(os.environ["RANK"]), "world_size": int(os.environ["WORLD_SIZE"])}
        dist.init_process_group(backend, device_id=dev if backend == "nccl" else None, timeout=timeout, store=store,
                                **ranks)
        _CONTROL = dist.new_group(backend="gloo", timeout=timeout)
    return dev


def _store_of_this_attempt(timeout: datetime.timedelta) -> dist.Store | None:
    """A store that only this attempt's ranks use (None: torchrun's own is fresh, use env://).

    torchrun keeps one store server across the restarts of --max-restarts and its workers use it bare, so a
    restarted group can read the addresses the previous attempt left and fail to connect. Here rank 0 serves a
    store of the attempt's own and says where through torchrun's; another rank that finds the previous attempt's
    address there (its server is gone with its process) reads again until the new one is there.
    """
    global _AGENT_STORE
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                          timeout=timeout)
    _AGENT_STORE = agent
    size = int(os.environ["WORLD_SIZE"])
    if int(os.environ["RANK"]) == 0:
        host = socket.getfqdn()
        server = dist.TCPStore(host, 0, size, is_master=True, timeout=timeout, wait_for_workers=False)
        agent.set("condgan/attempt_store", f"{host}:{server.port}")
        return server
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        host, port = agent.get("condgan/attempt_store").decode().rsplit(":", 1)
        try:
            return dist.TCPStore(host, int(port), size, is_master=False, timeout=datetime.timedelta(seconds=2))
        except Exception:  # noqa: BLE001 - the previous attempt's server: wait for this attempt's address
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_AGENT_STORE = None


def agent_store() -> dist.Store | None:
    """torchrun's own store (it outlives every rank), or None when the process group's store is torchrun's."""
    return _AGENT_STORE


_CONTROL = None


def control_group():
    """The host-side (gloo) group for votes between steps; None outside torchrun (the default group)."""
    return _CONTROL


def shutdown() -> None:
    global _CONTROL, _AGENT_STORE
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CONTROL = _AGENT_STORE = None


def barrier() -> None:
    if world().distributed:
        dist.barrier()


def _gathered(x: torch.Tensor) -> torch.Tensor:
    """cat over ranks of equally shaped tensors [N, ...] -> [W * N, ...], in rank order (no autograd)."""
    parts = [torch.empty_like(x) for _ in range(world().size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def _reduced(x: torch.Tensor, op: dist.ReduceOp) -> torch.Tensor:
    """``op`` of ``x`` over ranks, on a copy (no autograd)."""
    out = x.detach().contiguous().clone()
    dist.all_reduce(out, op=op)
    return out


class _AllGather(torch.autograd.Function):
    """cat over ranks of equally shaped tensors; backward: sum the output gradient over ranks, keep own rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        w = world()
        ctx.rows = w.shard(x.shape[0] * w.size)
        return _gathered(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # gloo has no reduce-scatter; the batch-sized gradient is small
        return _reduced(grad, dist.ReduceOp.SUM)[ctx.rows]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum shared by every rank is the rank-sum of its gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _reduced(x, dist.ReduceOp.SUM)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _reduced(grad, dist.ReduceOp.SUM)


def all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """[N, ...] on each of W ranks -> [W * N, ...] in rank order, differentiable (see the module docstring).

    The identity in a single process.
    """
    if not world().distributed:
        return x
    return _AllGather.apply(x) if x.requires_grad else _gathered(x)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over ranks (any shape), differentiable; the identity in a single process."""
    return _AllReduceSum.apply(x) if world().distributed else x


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks, without gradient (logging); the identity in a single process."""
    return _reduced(x, dist.ReduceOp.SUM) / world().size if world().distributed else x


def max_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Element-wise max of ``x`` over ranks, without gradient; the identity in a single process."""
    return _reduced(x, dist.ReduceOp.MAX) if world().distributed else x


def gather_objects(obj: object) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not world().distributed:
        return [obj]
    out: list = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span the global batch (all ranks); plain BN otherwise.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``. Each rank must hold the same number
    of samples (condgan's shards are equal). Statistics are taken in two passes (mean, then the centred
    second moment) in float32, so they match single-process BN over the whole batch to rounding; running
    statistics are updated with the unbiased global variance, as BN does. Works on CPU (gloo), unlike
    ``torch.nn.SyncBatchNorm``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world().distributed):
            return super().forward(x)
        xf = x.float()
        count = xf.numel() // xf.shape[1] * world().size
        mean = all_reduce_sum(xf.sum(dim=(0, 2, 3))) / count
        centred = xf - mean[None, :, None, None]
        var = all_reduce_sum(centred.square().sum(dim=(0, 2, 3))) / count
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        self.num_batches_tracked += 1
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
        unbiased = var * (count / max(count - 1, 1))
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Make every ``nn.BatchNorm2d`` in ``module`` a :class:`SyncBatchNorm2d` in place (same state); returns it."""
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SyncBatchNorm2d
    return module

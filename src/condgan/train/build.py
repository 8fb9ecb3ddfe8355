"""Wiring: config -> dataset, nets, optimisers, schedulers, EMA, sampler and step strategy."""
from __future__ import annotations

import inspect
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..cluster import patient_barrier
from ..config import Config
from ..data import BatchSampler, DataError, ImageDataset, load_dataset
from ..data.base import first_per_class
from ..data.residency import make_feed
from ..distributed import World, convert_sync_batchnorm, world
from ..nets import build_nets
from .ema import EMA
from .free_adversarial import FreeAdversarialStrategy
from .pgd import PGDStrategy
from .precision import Precision
from .strategy import Models, StandardStrategy
from .stylegan2 import StyleGAN2Strategy

# train.strategy -> the class that owns the update order of one iteration
STRATEGIES: dict[str, type[StandardStrategy]] = {
    "standard": StandardStrategy,
    "free_adversarial": FreeAdversarialStrategy,
    "pgd": PGDStrategy,
    "stylegan2": StyleGAN2Strategy,
}


@dataclass
class Run:
    """Everything a training run updates, built from one config."""
    dataset: ImageDataset
    num_classes: int
    models: Models
    ema: EMA
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    sampler: BatchSampler
    strategy: StandardStrategy


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(cfg: Config, t: int) -> float:
    """The learning-rate multiplier after ``t`` finished G steps (``optim.lr_decay``).

    linear: 1 until optim.lr_decay_start, then straight down to 0 at train.steps (the FastGAN code's
    "linear"; start 0 = from the first step); exp: 0.5^(t / optim.lr_half_life) (FastGAN); none: 1.
    """
    o, steps = cfg.optim, cfg.train.steps
    if o.lr_decay == "linear":
        return 1.0 if t <= o.lr_decay_start else max(0.0, 1.0 - (t - o.lr_decay_start) / (steps - o.lr_decay_start))
    if o.lr_decay == "exp":
        return 0.5 ** (t / o.lr_half_life)
    return 1.0


def rederive_lr(sched: torch.optim.lr_scheduler.LambdaLR, cfg: Config) -> None:
    """Set the optimiser's lr to this config's curve at the scheduler's step (after loading its state, when
    train.steps may have changed): exactly what the scheduler's next step would compute for that step."""
    lrs = [base * lr_factor(cfg, sched.last_epoch) for base in sched.base_lrs]
    for group, lr in zip(sched.optimizer.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = lrs  # what get_last_lr() reports (and logs)


def adam_settings(cfg: Config, net: str) -> dict:
    """Adam's lr, betas and eps for ``net`` ("g" or "d"). Under train.strategy stylegan2, NVIDIA's lazy-
    regularisation ratio r = k / (k + 1) (k: reg.pl_interval for G, reg.r1_interval for D; r = 1 when k = 1, as
    StudioGAN) scales lr by r and raises the betas to the power r: the main and the regularisation steps together
    then move the weights as one step would (StudioGAN applies it whether or not the regulariser is on)."""
    o = cfg.optim
    lr, betas = (o.g_lr if net == "g" else o.d_lr), (o.beta1, o.beta2)
    if cfg.train.strategy == "stylegan2":
        k = cfg.reg.pl_interval if net == "g" else cfg.reg.r1_interval
        r = k / (k + 1) if k > 1 else 1.0
        lr, betas = lr * r, (o.beta1 ** r, o.beta2 ** r)
    return {"lr": lr, "betas": betas, "eps": o.eps}


def _scheduler(cfg: Config, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    # The factor is read from the config at every step; the scheduler's state (its step count) is
    # checkpointed, so a resumed run continues the same curve.
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(cfg, t))


def build_run(cfg: Config, device: torch.device, dataset: ImageDataset | None = None) -> Run:
    """Seed, load the data (as uint8, where ``data.residency`` puts it) and build every trained object.

    ``dataset`` replaces the one ``cfg.data`` names (benchmarks train on synthetic images); ``data.subset``
    applies to either.

    Under torchrun every rank builds the same nets from the same seed (DDP checks they agree), then
    reseeds the global torch RNG with train.seed + rank for its own randomness (augmentation, attacks).
    """
    w = world()
    seed_everything(cfg.train.seed)
    dataset = dataset or load_dataset(cfg.data, "train")
    if cfg.data.subset:
        dataset = first_per_class(dataset, cfg.data.subset)
        if len(dataset) < cfg.train.batch_size:
            raise DataError(f"data.subset={cfg.data.subset} keeps {len(dataset)} images of {dataset.num_classes} "
                            f"classes, fewer than train.batch_size {cfg.train.batch_size}")
    feed = make_feed(dataset, cfg.data.residency, device, cfg.train.batch_size, w.processes_per_host)
    patient_barrier("data")  # loading takes longer on some ranks; the nets' first collective (DDP) comes next
    channels = dataset.images.shape[1]
    G, D = build_nets(cfg, dataset.num_classes, channels)
    if cfg.model.sync_bn:
        convert_sync_batchnorm(G)
    fmt = torch.channels_last if cfg.speed.channels_last else torch.preserve_format
    G, D = G.to(device, memory_format=fmt), D.to(device, memory_format=fmt)
    fused = True if cfg.speed.fused_adam else None
    opt_g = torch.optim.Adam(G.parameters(), **adam_settings(cfg, "g"), fused=fused)
    opt_d = torch.optim.Adam(D.parameters(), **adam_settings(cfg, "d"), fused=fused)
    models = Models(G, D, opt_g, opt_d, *_training_callables(cfg, G, D, device, w))
    if w.rank:
        torch.manual_seed(cfg.train.seed + w.rank)
    sampler = BatchSampler(dataset, cfg.train.batch_size, seed=cfg.train.seed, world=w, feed=feed)
    precision = Precision(cfg.speed.precision, device)
    strategy = STRATEGIES[cfg.train.strategy](cfg, models, sampler, dataset.num_classes, precision)
    t = cfg.train
    ema = EMA(G, t.ema_decay, t.ema_start, t.ema_kimg, t.ema_rampup, t.batch_size * t.accumulate)
    return Run(dataset, dataset.num_classes, models, ema, _scheduler(cfg, opt_g), _scheduler(cfg, opt_d),
               sampler, strategy)


def advance(run: Run, step: int, keep_ema: bool = True) -> dict[str, torch.Tensor]:
    """One iteration after ``step`` finished G steps: the strategy's D and G steps, the EMA update (where
    ``keep_ema``: rank 0) and both lr schedules. Returns the iteration's detached losses; no host sync."""
    losses = run.strategy.step(run.sampler.device, step)
    if keep_ema:
        run.ema.update(run.models.G, step + 1)
    run.sched_g.step()
    run.sched_d.step()
    return losses


def _training_callables(cfg: Config, G: nn.Module, D: nn.Module, device: torch.device, w: World) -> tuple:
    """(g_fwd, d_synced, d_unsynced, g_eager, d_eager) of :class:`Models`: DDP wrappers under torchrun,
    compiled with speed.compile (the eager pair: the same wrappers, not compiled)."""
    g_fwd, d_synced, d_unsynced = G, D, D
    if w.distributed:
        ids = [device.index] if device.type == "cuda" else None
        # Buffers are synchronised once at wrapping, not before every forward: spectral norm's u follows the
        # (identical) weights on every rank, and BN statistics are either synchronised (model.sync_bn) or rank
        # 0's are the ones kept. (Newer torch calls the option forward_sync_buffers, older broadcast_buffers.)
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        no_sync = {"forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": False}
        g_fwd = DistributedDataParallel(G, device_ids=ids, **no_sync)
        d_synced = DistributedDataParallel(D, device_ids=ids, **no_sync)
    g_eager, d_eager = g_fwd, d_synced
    if cfg.speed.compile:
        g_fwd, d_synced = torch.compile(g_fwd), torch.compile(d_synced)
        d_unsynced = torch.compile(D) if w.distributed else d_synced
    return g_fwd, d_synced, d_unsynced, g_eager, d_eager

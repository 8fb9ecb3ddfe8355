"""Wiring: config -> dataset, nets, optimisers, schedulers, EMA, sampler and step strategy."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config
from ..data import BatchSampler, ImageDataset, load_dataset
from ..nets import build_nets
from .ema import EMA
from .strategy import STRATEGIES, Models, StandardStrategy


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


def _scheduler(cfg: Config, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    steps = cfg.train.steps
    if cfg.optim.lr_decay == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / steps))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)


def build_run(cfg: Config, device: torch.device) -> Run:
    """Seed, load the data onto ``device`` (once, as uint8) and build every trained object."""
    seed_everything(cfg.train.seed)
    dataset = load_dataset(cfg.data, "train").to(device)
    channels = dataset.images.shape[1]
    G, D = build_nets(cfg, dataset.num_classes, channels)
    G, D = G.to(device), D.to(device)
    o = cfg.optim
    opt_g = torch.optim.Adam(G.parameters(), lr=o.g_lr, betas=(o.beta1, o.beta2), eps=o.eps)
    opt_d = torch.optim.Adam(D.parameters(), lr=o.d_lr, betas=(o.beta1, o.beta2), eps=o.eps)
    models = Models(G, D, opt_g, opt_d)
    sampler = BatchSampler(dataset, cfg.train.batch_size, seed=cfg.train.seed)
    strategy = STRATEGIES["standard"](cfg, models, sampler, dataset.num_classes)
    ema = EMA(G, cfg.train.ema_decay, cfg.train.ema_start)
    return Run(dataset, dataset.num_classes, models, ema, _scheduler(cfg, opt_g), _scheduler(cfg, opt_d),
               sampler, strategy)

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
from .free_adversarial import FreeAdversarialStrategy
from .pgd import PGDStrategy
from .strategy import Models, StandardStrategy

# train.strategy -> the class that owns the update order of one iteration
STRATEGIES: dict[str, type[StandardStrategy]] = {
    "standard": StandardStrategy,
    "free_adversarial": FreeAdversarialStrategy,
    "pgd": PGDStrategy,
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


def _scheduler(cfg: Config, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    # The factor is read from the config at every step; the scheduler's state (its step count) is
    # checkpointed, so a resumed run continues the same curve.
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(cfg, t))


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
    strategy = STRATEGIES[cfg.train.strategy](cfg, models, sampler, dataset.num_classes)
    ema = EMA(G, cfg.train.ema_decay, cfg.train.ema_start)
    return Run(dataset, dataset.num_classes, models, ema, _scheduler(cfg, opt_g), _scheduler(cfg, opt_d),
               sampler, strategy)

"""``condgan train --smoke``: a few steps of any preset on fabricated images of its shape, no dataset needed.

It checks a set-up (a GPU, a cluster, the memory a preset takes at its batch size) before anything is
downloaded: the nets, strategy, losses, augmentation, sample grid and checkpoint are the preset's own; only the
data is replaced, by seeded random images with the preset's classes, channels and resolution, in an ``npz`` file
of condgan's cache (one file per shape, written once). The images are noise, so nothing is evaluated.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import Config, ConfigError
from ..config.validate import validate
from ..data.download import cache_dir
from ..data.registry import KNOWN_SHAPES
from ..files import PendingFile

DEFAULT_STEPS = 3


def smoke_config(cfg: Config, steps: int = DEFAULT_STEPS) -> Config:
    """``cfg`` trained ``steps`` steps on fabricated data of its shape: log every step, one grid and one
    checkpoint at the end, no periodic evaluation."""
    if steps < 1:
        raise ConfigError(f"--smoke takes a number of steps >= 1; got {steps}")
    classes, channels = data_shape(cfg)
    images = max(cfg.train.batch_size * cfg.train.accumulate, 2 * classes)  # 2 a class: intra-class FID can run
    path = fabricated_data(classes, channels, cfg.data.resolution, images)
    data = replace(cfg.data, name="npz", root=str(path), resize=False, subset=0, classes="")
    train = replace(cfg.train, steps=steps, log_every=1, sample_every=steps, ckpt_every=steps)
    # a linear decay keeps its place in the schedule (400k of 500k steps: the same share of the smoke's)
    optim = replace(cfg.optim, lr_decay_start=cfg.optim.lr_decay_start * steps // cfg.train.steps)
    smoke = replace(cfg, data=data, train=train, optim=optim, eval=replace(cfg.eval, every=0))
    validate(smoke)
    return smoke


def data_shape(cfg: Config) -> tuple[int, int]:
    """(classes, channels) of the preset's dataset; an ``npz`` or ``folder`` dataset's are read from it."""
    if cfg.data.name in KNOWN_SHAPES:
        return KNOWN_SHAPES[cfg.data.name]
    from ..data import load_dataset

    try:
        data = load_dataset(cfg.data, "train")
    except Exception as e:  # noqa: BLE001 - any reason the user's data cannot be read says the same thing
        raise ConfigError(f"--smoke needs the class and channel count of data.name={cfg.data.name}, which it reads "
                          f"from the data itself: {e}") from None
    return data.num_classes, int(data.images.shape[1])


def fabricated_data(classes: int, channels: int, resolution: int, count: int) -> Path:
    """An npz of ``count`` seeded random uint8 images [N, R, R, C], labels i mod ``classes`` (every class has
    images); written once per shape under ``$CONDGAN_CACHE/smoke``, and read as the run's train and test split."""
    path = cache_dir() / "smoke" / f"c{classes}_ch{channels}_r{resolution}_n{count}.npz"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, resolution, resolution, channels), dtype=np.uint8)
    labels = np.arange(count, dtype=np.int64) % classes
    path.parent.mkdir(parents=True, exist_ok=True)
    with PendingFile(path) as pending:  # two smoke runs at once: the same bytes, renamed into place
        return pending.commit(lambda f: np.savez(f, images=images, labels=labels))

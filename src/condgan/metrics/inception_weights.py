"""Finding and loading the FID Inception weights (``pt_inception-2015-12-05-6726825d.pth``).

Search order: an explicit path, ``$CONDGAN_INCEPTION_WEIGHTS``, torch hub's checkpoint cache (where
pytorch-fid also keeps it), then a sha256-checked download into that cache when allowed
(:mod:`condgan.metrics.weights`). If all fail the error is one line that says where to put the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..train.checkpoint import CheckpointError, load_module_state
from .inception import FIDInceptionV3
from .weights import WeightsFile, find_weights, foreign, read_state

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_NAME}"
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch hub convention: the file name carries its sha256 prefix
ENV_VAR = "CONDGAN_INCEPTION_WEIGHTS"


def weights_file() -> WeightsFile:
    """The published file (read at call time, so the URL can be pointed elsewhere)."""
    return WeightsFile(WEIGHTS_NAME, WEIGHTS_URL, "--inception-weights", ENV_VAR, "the FID Inception",
                       sha256_prefix=WEIGHTS_SHA256_PREFIX)


def hub_weights_path() -> Path:
    """Where torch hub (and pytorch-fid) cache the file: ``<torch hub dir>/checkpoints/<name>``."""
    return weights_file().cached()


def find_inception_weights(path: str | os.PathLike | None = None, allow_download: bool = True,
                           url: str | None = None) -> Path:
    """The weights file: ``path``, else ``$CONDGAN_INCEPTION_WEIGHTS``, else the hub cache, else a download."""
    return find_weights(weights_file(), path, allow_download, url)


def load_inception(path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                   allow_download: bool = True) -> FIDInceptionV3:
    """The FID Inception with the published weights, in eval mode on ``device``, frozen."""
    spec = weights_file()
    found = find_weights(spec, path, allow_download)
    state = read_state(spec, found, path)
    model = FIDInceptionV3()
    # Files written before BatchNorm counted batches lack num_batches_tracked; it is unused in eval mode.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    try:
        load_module_state(model, state, "FID Inception", found)
    except CheckpointError as err:
        raise foreign(spec, found, path, str(err).split(": ", 1)[-1]) from None
    return model.to(device).eval().requires_grad_(False)

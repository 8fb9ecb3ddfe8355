"""Finding and loading the FID Inception weights (``pt_inception-2015-12-05-6726825d.pth``).

Search order: an explicit path, ``$CONDGAN_INCEPTION_WEIGHTS``, torch hub's checkpoint cache (where
pytorch-fid also keeps it), then a sha256-checked download into that cache when allowed. If all fail
the error is one line that says where to put the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..data import DataError
from ..data.download import download
from ..files import load_verified
from ..train.checkpoint import CheckpointError, load_module_state
from .errors import EvalError
from .inception import FIDInceptionV3

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_NAME}"
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch hub convention: the file name carries its sha256 prefix
ENV_VAR = "CONDGAN_INCEPTION_WEIGHTS"


def hub_weights_path() -> Path:
    """Where torch hub (and pytorch-fid) cache the file: ``<torch hub dir>/checkpoints/<name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def find_inception_weights(path: str | os.PathLike | None = None, allow_download: bool = True,
                           url: str | None = None) -> Path:
    """The weights file: ``path``, else ``$CONDGAN_INCEPTION_WEIGHTS``, else the hub cache, else a download.

    An explicit ``path`` (or the variable) that does not exist is an error rather than a fallback, so a
    typo never silently selects another file.
    """
    explicit = path if path is not None else os.environ.get(ENV_VAR) or None
    if explicit is not None:
        found = Path(explicit).expanduser()
        if not found.is_file():
            source = "--inception-weights" if path is not None else f"${ENV_VAR}"
            raise EvalError(f"Inception weights file not found: {found} (from {source})")
        return found
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    reason = "downloads disabled"
    if allow_download:
        try:
            return download(url or WEIGHTS_URL, cached, sha256_prefix=WEIGHTS_SHA256_PREFIX)
        except DataError as err:
            reason = str(err)
    raise EvalError(f"FID Inception weights {WEIGHTS_NAME} not found and could not be downloaded ({reason}); "
                    f"put the file at {cached}, or pass --inception-weights PATH / set ${ENV_VAR}")


def load_inception(path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                   allow_download: bool = True) -> FIDInceptionV3:
    """The FID Inception with the published weights, in eval mode on ``device``, frozen."""
    found = find_inception_weights(path, allow_download)
    try:
        state = load_verified(found)
    except Exception as err:  # noqa: BLE001 - torn or foreign file: one line naming it
        reason = str(err).splitlines()[0] if str(err) else ""
        raise EvalError(f"Inception weights {found} cannot be read: {type(err).__name__}: {reason}") from None
    model = FIDInceptionV3()
    # Files written before BatchNorm counted batches lack num_batches_tracked; it is unused in eval mode.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and isinstance(state, dict):
            state.setdefault(key, value)
    try:
        load_module_state(model, state, "FID Inception", found)
    except CheckpointError as err:
        raise EvalError(str(err)) from None
    return model.to(device).eval().requires_grad_(False)

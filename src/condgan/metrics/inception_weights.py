"""Finding and loading the FID Inception weights (``pt_inception-2015-12-05-6726825d.pth``).

Search order: an explicit path, ``$CONDGAN_INCEPTION_WEIGHTS``, torch hub's checkpoint cache (where
pytorch-fid also keeps it), then a sha256-checked download into that cache when allowed. If all fail
the error is one line that says where to put the file.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..data import DataError
from ..data.download import download
from ..files import CorruptFile, load_verified
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
        if found.is_dir():
            raise EvalError(f"{_source(path)} {found} is a directory, not a weights file: give the path of "
                            f"{WEIGHTS_NAME} itself")
        if not found.is_file():
            raise EvalError(f"Inception weights file not found: {found} (from {_source(path)})")
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
    state = _read_state(found, path)
    model = FIDInceptionV3()
    # Files written before BatchNorm counted batches lack num_batches_tracked; it is unused in eval mode.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    try:
        load_module_state(model, state, "FID Inception", found)
    except CheckpointError as err:
        raise _foreign(found, path, str(err).split(": ", 1)[-1]) from None
    return model.to(device).eval().requires_grad_(False)


def _source(path: str | os.PathLike | None) -> str:
    """How the user named the weights file: the flag, the variable, or the hub cache."""
    if path is not None:
        return "--inception-weights"
    return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else "the cached Inception weights"


def _foreign(found: Path, path: str | os.PathLike | None, why: str) -> EvalError:
    """The one-line error for a file that is not the published weights (none of torch's advice on loading
    untrusted pickles: condgan reads tensors only)."""
    cached = path is None and not os.environ.get(ENV_VAR)
    fix = (f"delete it to download {WEIGHTS_NAME} again" if cached
           else f"give the path of {WEIGHTS_NAME}, the weights pytorch-fid publishes")
    return EvalError(f"{_source(path)} {found} is not an Inception weights file condgan can read ({why}); {fix}")


def _read_state(found: Path, path: str | os.PathLike | None) -> dict:
    """The state dict in ``found`` (tensors only, checksums checked); a one-line EvalError for anything else."""
    try:
        size = found.stat().st_size
        state = load_verified(found)
    except OSError as err:
        raise EvalError(f"{_source(path)} {found} cannot be read: {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001 - torn or foreign file: say which, never torch's advice
        raise _foreign(found, path, _why(found, size, err)) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise _foreign(found, path, f"it holds a {type(state).__name__}, not a state dict of tensors")
    return state


def _why(found: Path, size: int, err: Exception) -> str:
    """A few words on why torch could not read ``found``."""
    if size == 0:
        return "the file is empty"
    if isinstance(err, CorruptFile):
        return "it is damaged: a checksum does not match"
    if not zipfile.is_zipfile(found):
        return "not a torch weights file, or a truncated one"
    if isinstance(err, pickle.UnpicklingError):
        return "it holds Python objects, not only tensors"
    return f"damaged or truncated ({type(err).__name__})"

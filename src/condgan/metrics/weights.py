"""Finding, downloading and reading a feature network's published weights file, offline first.

Search order: an explicit path (a command-line flag), the network's environment variable, torch hub's checkpoint
cache (where torch hub, pytorch-fid and the official repositories keep these files), then a download into that
cache when allowed. A file is read as tensors only (never unpickled objects), its stored checksums verified; every
failure is one line naming the file, how it was named, and what to do.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import DataError
from ..data.download import download
from ..files import CorruptFile, load_verified
from .errors import EvalError


@dataclass(frozen=True)
class WeightsFile:
    """A published weights file: its name, URL, the flag and variable that name it, and what it holds."""
    name: str
    url: str
    flag: str  # the command-line flag that gives its path
    env_var: str
    what: str  # e.g. "DINOv2 ViT-L/14"
    sha256_prefix: str | None = None  # when the publisher puts it in the name (torch hub's convention)

    def cached(self) -> Path:
        """``<torch hub dir>/checkpoints/<name>``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.name


def find_weights(spec: WeightsFile, path: str | os.PathLike | None = None, allow_download: bool = True,
                 url: str | None = None, check: Callable[[Path], None] | None = None) -> Path:
    """The file: ``path``, else ``$env_var``, else the hub cache, else a download (``check``ed before it is kept).

    An explicit ``path`` (or the variable) that does not exist is an error rather than a fallback, so a typo never
    silently selects another file.
    """
    explicit = path if path is not None else os.environ.get(spec.env_var) or None
    if explicit is not None:
        found = Path(explicit).expanduser()
        if found.is_dir():
            raise EvalError(f"{source_of(spec, path)} {found} is a directory, not a weights file: give the path of "
                            f"{spec.name} itself")
        if not found.is_file():
            raise EvalError(f"{spec.what} weights file not found: {found} (from {source_of(spec, path)})")
        return found
    cached = spec.cached()
    if cached.is_file():
        return cached
    reason = "downloads disabled"
    if allow_download:
        try:
            return download(url or spec.url, cached, sha256_prefix=spec.sha256_prefix,
                             check=None if spec.sha256_prefix else check)
        except (DataError, EvalError) as err:
            reason = str(err)
    raise EvalError(f"{spec.what} weights {spec.name} not found and could not be downloaded from {url or spec.url} "
                    f"({reason}); put the file at {cached}, or pass {spec.flag} PATH / set ${spec.env_var}")


def source_of(spec: WeightsFile, path: str | os.PathLike | None) -> str:
    """How the user named the weights file: the flag, the variable, or the hub cache."""
    if path is not None:
        return spec.flag
    return f"${spec.env_var}" if os.environ.get(spec.env_var) else "the cached weights"


def foreign(spec: WeightsFile, found: Path, path: str | os.PathLike | None, why: str) -> EvalError:
    """The one-line error for a file that is not the published weights."""
    cached = path is None and not os.environ.get(spec.env_var)
    fix = f"delete it to download {spec.name} again" if cached else f"give the path of {spec.name} ({spec.url})"
    return EvalError(f"{source_of(spec, path)} {found} is not a weights file condgan can read for {spec.what} "
                     f"({why}); {fix}")


def read_state(spec: WeightsFile, found: Path, path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The state dict in ``found`` (tensors only, checksums checked, every value finite); one line for anything
    else."""
    try:
        size = found.stat().st_size
        state = load_verified(found)
    except OSError as err:
        raise EvalError(f"{source_of(spec, path)} {found} cannot be read: {err.strerror or err}") from None
    except Exception as err:  # noqa: BLE001 - torn or foreign file: say which, never torch's advice
        raise foreign(spec, found, path, _why(found, size, err)) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise foreign(spec, found, path, f"it holds a {type(state).__name__}, not a state dict of tensors")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise foreign(spec, found, path, f"'{bad}' holds non-finite values")
    return state


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file (recorded beside scores: the DINOv2 and SwAV files have no published hash)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


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

"""Complete, atomic training checkpoints.

A checkpoint is a plain dict of tensors and Python primitives, so ``torch.load(weights_only=True)`` reads
it. Writing goes to a temp file in the same directory, is fsync'ed, then renamed over the final name, so a
crash (even SIGKILL) mid-write leaves either the old set of checkpoints or the new one, never a torn file.
"""
from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

_NAME = re.compile(r"^ckpt_(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file."""


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"ckpt_{step:08d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save to a temp file, fsync, rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path``: never a torn file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def prune(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints, and temp files left by a killed writer."""
    for p in list_checkpoints(directory)[:-keep]:
        p.unlink(missing_ok=True)
    for p in directory.glob(".ckpt_*.tmp"):
        p.unlink(missing_ok=True)


def load(path: Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``); a corrupt file is a one-line error naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for torn/foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from None


def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and python RNG states as weights_only-loadable values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_module_state(module: torch.nn.Module, state: dict, what: str, path: Path) -> None:
    """load_state_dict with a one-line error naming the checkpoint and the first mismatching key."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        if shapes:
            k = shapes[0]
            why = f"'{k}' has shape {tuple(state[k].shape)}, the model expects {tuple(own[k].shape)}"
        elif missing:
            why = f"'{missing[0]}' is missing ({len(missing)} keys missing)"
        else:
            why = f"'{unexpected[0]}' is unexpected ({len(unexpected)} unexpected keys)"
        raise CheckpointError(f"checkpoint {path} does not fit this {what} architecture: {why}")
    module.load_state_dict(state)

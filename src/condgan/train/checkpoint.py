"""Complete, atomic training checkpoints.

A checkpoint is a plain dict of tensors and Python primitives, so ``torch.load(weights_only=True)`` reads
it. Writing goes through :func:`condgan.files.save_atomic` (exclusive temp file, fsync, rename), so a crash
(even SIGKILL) mid-write leaves either the old set of checkpoints or the new one, never a torn file.
"""
from __future__ import annotations

import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import CorruptFile, load_verified

# The "format" every checkpoint records, raised when a net's function changes (train.resume warns on resuming an
# older one): 2, D blocks as the reference runs them; 3, FastGAN's G with the official code's BN eps.
FORMAT = 3
_NAME = re.compile(r"^ckpt_(\d{8,})\.pt$")  # at least 8 digits: step 100,000,000 has 9


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


def checkpoint_step(path: Path) -> int:
    """The step in a checkpoint's file name (ckpt_00001500.pt -> 1500)."""
    m = _NAME.match(path.name)
    if m is None:
        raise ValueError(f"{path} is not named like a training checkpoint")
    return int(m.group(1))


def prune(directory: Path, keep: int, written: Path, unreadable: frozenset[Path] = frozenset()) -> None:
    """Delete the oldest checkpoints so that ``keep`` remain up to ``written`` (the one just saved).

    Only checkpoints known to be readable and not newer than ``written`` are counted, so ``written`` is never
    deleted, and neither are files that could not be read (``unreadable``) or newer ones.
    """
    step = checkpoint_step(written)
    counted = [p for p in list_checkpoints(directory) if p not in unreadable and checkpoint_step(p) <= step]
    for p in counted[:-keep]:
        if p != written:
            p.unlink(missing_ok=True)


def remove_orphan_temp_files(directory: Path) -> None:
    """Remove the temp files of checkpoint writes a killed process left behind.

    Call only while holding the run directory's lock: then no live process can own them.
    """
    if directory.is_dir():
        for p in directory.glob(".ckpt_*.tmp"):
            p.unlink(missing_ok=True)


def load(path: Path) -> object:
    """Load a checkpoint file safely (``weights_only=True``, stored checksums verified); a torn, damaged or
    foreign file is a one-line error naming it."""
    try:
        return load_verified(path)
    except CorruptFile as e:  # not a torch file at all, or a damaged one: the message names it and says why
        raise CheckpointError(f"checkpoint {e}") from None
    except pickle.UnpicklingError:  # torch's own message advises weights_only=False: never for a checkpoint
        raise CheckpointError(f"checkpoint {path} cannot be read: it holds pickled objects other than tensors and "
                              f"plain values, which condgan never unpickles") from None
    except Exception as e:  # torch raises many types for torn/foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}") from None


# What a training checkpoint must hold to resume a run; evaluating or sampling needs only GENERATOR_KEYS.
TRAINING_KEYS = ("format", "step", "config", "G", "D", "G_ema", "opt_g", "opt_d", "sched_g", "sched_d", "sampler")
GENERATOR_KEYS = ("step", "config", "G_ema")
_MODULE_KEYS = ("G", "D", "G_ema")


def check_checkpoint(state: object, path: Path, required: tuple[str, ...] = TRAINING_KEYS) -> dict:
    """``state`` if it is a condgan checkpoint holding ``required``, else a one-line CheckpointError."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a condgan checkpoint (it holds a {type(state).__name__}, not a dict)")
    missing = [k for k in required if k not in state]
    if missing and isinstance(state.get("imported"), dict):
        raise CheckpointError(f"{path} was imported from {state['imported'].get('from', 'another code')}: it holds "
                              f"no '{missing[0]}' (no optimiser state), so it can be sampled and evaluated, not "
                              f"resumed (a new run starts from its weights with train.init_from)")
    if missing:
        raise CheckpointError(f"{path} is not a condgan checkpoint: no '{missing[0]}' in it "
                              f"(keys: {', '.join(map(str, list(state)[:8])) or 'none'})")
    bad = [k for k in required if k in _MODULE_KEYS + ("config",) and not isinstance(state[k], dict)]
    bad += [k for k in ("step", "format") if k in required and not _count(state[k], 0 if k == "step" else 1)]
    if bad:
        raise CheckpointError(f"{path} is not a condgan checkpoint: '{bad[0]}' has the wrong type or value")
    if "format" in required and state["format"] > FORMAT:  # its nets may compute what this condgan's do not
        raise CheckpointError(f"{path} was written by a newer condgan (checkpoint format {state['format']}; this "
                              f"one reads formats up to {FORMAT}): resume it with that condgan, or use another --out")
    return state


def _count(value: object, least: int) -> bool:
    """Whether ``value`` is an int (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def load_checkpoint(path: Path, required: tuple[str, ...] = TRAINING_KEYS) -> dict:
    """:func:`load` and :func:`check_checkpoint`."""
    return check_checkpoint(load(path), path, required)


def first_nonfinite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, else None.

    One host sync when everything is finite (the common case): the per-tensor flags are reduced on the device.
    """
    named = [(k, t) for k, t in tensors.items() if t.is_floating_point() or t.is_complex()]
    if not named:
        return None
    finite = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0])][0]


def model_tensors(**modules: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of the given modules, named ``<module>.<key>``."""
    return {f"{name}.{k}": t for name, m in modules.items() for k, t in m.state_dict().items()}


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
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"checkpoint {path}: the {what}'s '{not_tensors[0]}' is not a tensor")
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

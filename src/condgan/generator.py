"""Trained generators from checkpoints alone: ``load_generator(path)`` -> (G_ema in eval mode, GeneratorInfo).

Every checkpoint since condgan 0.1.0's self-describing format holds a ``generator`` record (architecture,
resolution, classes with their names where the dataset gives them, image channels, latent size, the condgan
version that wrote it) beside its config, so G_ema is rebuilt with no dataset and no run dir. Older checkpoints
load too: classes and channels are derived from the config's dataset where condgan knows its shape, and are
otherwise asked for (``num_classes=``, ``img_channels=``) in a one-line error.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .config import Config, ConfigError, from_dict
from .train import checkpoint as ckpt
from .train.resume import warn_changed_generator


@dataclass(frozen=True)
class GeneratorInfo:
    """What a checkpoint says of its generator (``class_names`` is () where the dataset names none)."""

    arch: str
    resolution: int
    num_classes: int
    img_channels: int
    z_dim: int
    class_names: tuple[str, ...]
    step: int
    condgan_version: str  # "" for a checkpoint written before checkpoints described themselves
    config: Config
    checkpoint: Path


def generator_record(cfg: Config, num_classes: int, img_channels: int, class_names: tuple[str, ...]) -> dict:
    """The ``generator`` entry of a checkpoint: plain values, so ``torch.load(weights_only=True)`` reads it."""
    return {"arch": cfg.model.arch, "resolution": cfg.data.resolution, "num_classes": int(num_classes),
            "img_channels": int(img_channels), "z_dim": cfg.model.z_dim, "class_names": list(class_names),
            "condgan_version": __version__}


def find_checkpoint(target: str | Path) -> Path:
    """A checkpoint file itself, or a run dir's newest ``ckpt_*.pt`` (best.pt only when named: a one-line
    error says so when it is all a run dir holds)."""
    path = Path(target)
    if path.is_dir():
        found = ckpt.list_checkpoints(path / "checkpoints")
        if not found:
            best = path / "checkpoints" / "best.pt"
            hint = f" ({best} is there: pass it as the target)" if best.is_file() else ""
            raise ckpt.CheckpointError(f"no checkpoint in {path / 'checkpoints'}{hint}")
        return found[-1]
    if path.is_file():
        return path
    raise ckpt.CheckpointError(f"no such run dir or checkpoint: {target}")


def checkpoint_config(state: dict, path: Path) -> Config:
    """The config a loaded checkpoint ``state`` (read from ``path``) was trained with; a one-line error if this
    condgan cannot use it."""
    try:
        return from_dict(state["config"])
    except ConfigError as e:
        raise ckpt.CheckpointError(f"checkpoint {path} holds a config this condgan cannot use: {e}") from None


def load_generator(target: str | Path, device: str | torch.device = "cpu", num_classes: int | None = None,
                   img_channels: int | None = None) -> tuple[nn.Module, GeneratorInfo]:
    """G_ema of a checkpoint (a ``ckpt_*.pt`` / ``best.pt`` file, or a run dir's newest), in eval mode on
    ``device``, and what the checkpoint says of it; ``G(z [N, z_dim], y [N] int64)`` -> images [N, C, R, R] in
    [-1, 1]. ``num_classes`` / ``img_channels`` are needed only for a checkpoint older than the
    self-describing format whose dataset condgan cannot size (folder, npz); a bad file or a mismatch is a
    one-line CheckpointError naming it."""
    path, state = read_checkpoint(target, ckpt.GENERATOR_KEYS)
    check_checkpoint_model(state, path)
    info = describe(state, path, num_classes, img_channels)
    warn_changed_generator(state, path, info.arch)
    G = build_generator(info.config, state, path, info.num_classes, info.img_channels, torch.device(device))
    return G, info


def read_checkpoint(target: str | Path, required: tuple[str, ...]) -> tuple[Path, dict]:
    """(path, state) of :func:`find_checkpoint`'s checkpoint, loaded. A run that another process is training may
    be read: its checkpoints appear whole (renamed into place), and one pruned between the listing and the
    reading is looked up again (the trainer writes the newer one first)."""
    for attempt in range(3):
        path = find_checkpoint(target)
        try:
            return path, ckpt.load_checkpoint(path, required)
        except ckpt.CheckpointError:
            if attempt == 2 or not Path(target).is_dir() or path.exists():
                raise
    raise AssertionError("unreachable")


MODEL_ROLES = ("G_ema", "G", "D")  # the nets a checkpoint holds, in the order they are checked


def check_model(models: Mapping[str, nn.Module | Mapping[str, torch.Tensor]], where: str) -> None:
    """A one-line CheckpointError (``where``: what names the model) for the first tensor of ``models`` (role ->
    module or state dict) that holds NaN or infinity: parameters and buffers alike (BatchNorm statistics,
    spectral norm's u, StyleGAN2's w_avg). The one check of every command that reads a model: sample, eval,
    import-studiogan's output, train.init_from and the StyleGAN2 sampler refuse the same models."""
    named = {}
    for role, model in models.items():
        state = model.state_dict() if isinstance(model, nn.Module) else model
        named.update({f"{role}.{k}": v for k, v in state.items() if isinstance(v, torch.Tensor)})
    bad = ckpt.first_nonfinite(named)
    if bad is not None:
        raise ckpt.CheckpointError(f"{where}: {bad} holds NaN or infinity (a diverged or damaged model is not "
                                   f"sampled, scored or trained from)")


def check_checkpoint_model(state: dict, path: Path, where: str | None = None) -> None:
    """:func:`check_model` of every net a loaded checkpoint ``state`` (read from ``path``) holds: G_ema, G, D."""
    check_model({r: state[r] for r in MODEL_ROLES if isinstance(state.get(r), dict)}, where or f"checkpoint {path}")


def describe(state: dict, path: Path, num_classes: int | None = None,
             img_channels: int | None = None) -> GeneratorInfo:
    """The GeneratorInfo of a loaded checkpoint ``state`` (read from ``path``)."""
    cfg = checkpoint_config(state, path)
    record = state.get("generator")
    if isinstance(record, dict):
        try:
            names = tuple(str(n) for n in record.get("class_names", ()))
            shape = (int(record["num_classes"]), int(record["img_channels"]))
            version = str(record.get("condgan_version", ""))
        except (KeyError, TypeError, ValueError) as e:
            raise ckpt.CheckpointError(f"checkpoint {path}: its 'generator' record is damaged "
                                       f"({type(e).__name__}: {e})") from None
    else:
        from .data.registry import KNOWN_SHAPES

        names, version = (), ""
        shape = KNOWN_SHAPES.get(cfg.data.name) or (num_classes, img_channels)
        if None in shape:
            raise ckpt.CheckpointError(
                f"checkpoint {path} predates self-describing checkpoints and its dataset ({cfg.data.name}) has no "
                f"known size: give num_classes and img_channels (the training data's class and channel counts)")
    for given, have, what in ((num_classes, shape[0], "num_classes"), (img_channels, shape[1], "img_channels")):
        if given is not None and given != have:
            raise ckpt.CheckpointError(f"checkpoint {path} has {what} {have}, not the {given} asked for")
    return GeneratorInfo(cfg.model.arch, cfg.data.resolution, shape[0], shape[1], cfg.model.z_dim, names,
                         int(state["step"]), version, cfg, path)


def build_generator(cfg: Config, state: dict, path: Path, num_classes: int, img_channels: int,
                    device: torch.device) -> nn.Module:
    """G_ema of a training checkpoint ``state``, rebuilt from its config, in eval mode on ``device``."""
    from .nets import build_nets

    G, _ = build_nets(cfg, num_classes, img_channels)
    ckpt.load_module_state(G, state["G_ema"], "generator", path)
    return G.to(device).eval()


@torch.no_grad()
def standing_statistics(G: nn.Module, z_dim: int, num_classes: int, batches: int, batch_size: int = 64,
                        seed: int = 0) -> None:
    """BigGAN's standing statistics: every BatchNorm of ``G`` forgets its running statistics and re-estimates
    them as the plain average over ``batches`` batches of random latents and classes (momentum None: the mean of
    the batch means and of the unbiased batch variances). Only the BatchNorms run in training mode, so spectral
    norm's vectors and everything else stay as they were; ``G`` is left in eval mode. Statistics
    that come out non-finite (activations that overflow) are put back as they were, and an EvalError names them."""
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if batches < 1 or batch_size < 2:
        raise ValueError(f"standing statistics need at least 1 batch of at least 2 samples; got {batches} x "
                         f"{batch_size}")
    device = next(G.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    momenta = [m.momentum for m in norms]
    stored = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    G.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        for _ in range(batches):
            z = torch.randn(batch_size, z_dim, device=device, generator=gen)
            y = torch.randint(num_classes, (batch_size,), device=device, generator=gen)
            G(z, y)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        G.eval()
    _check_standing(G, norms, stored, batches)


def _check_standing(G: nn.Module, norms: list[nn.Module], stored: list[dict], batches: int) -> None:
    """Statistics that overflowed (finite weights, huge activations) would give flat, finite images: the stored
    ones are put back and the run is refused in one line."""
    from .metrics.errors import EvalError

    names = {m: name for name, m in G.named_modules()}
    bad = ckpt.first_nonfinite({f"{names[m]}.{k}": v for m in norms for k, v in m.state_dict().items()})
    if bad is not None:
        for m, state in zip(norms, stored):
            m.load_state_dict(state)
        raise EvalError(f"--standing-stats {batches}: the re-estimated BatchNorm statistics hold NaN or infinity "
                        f"({bad}: the generator's activations overflow); use its stored statistics")


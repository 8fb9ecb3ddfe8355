"""``train.init_from``: a new run starts from the weights of another run or checkpoint (transfer learning, as
stylegan2-ada's ``--resume``).

The source is a run dir (its newest ``ckpt_*.pt``), a checkpoint file (``best.pt`` too) or a run made by
``condgan import-studiogan``; it must be of the same architecture and resolution. G, G_ema and D are taken
whole: parameters and buffers (BN statistics, spectral norm's u, StyleGAN2's ``w_avg`` and noise maps).
Everything else is the new run's own: fresh optimisers and schedulers, step 0, its data order, strategy state
(ADA's p, the path-length mean) and random streams (reading the source draws no random number). A source without
D (an import of G files only) gives G and G_ema; D then starts fresh, with a warning.

Every tensor must fit, key and shape, or the start stops with one line naming the first that does not. With
``train.init_classes: reinit`` the class-dependent layers keep the new run's fresh initialisation instead (even
when the class counts agree: the classes are another dataset's): every module holding a tensor whose shape
depends on the number of classes, found by building the run's nets for C and C + 1 classes (on the meta device)
and comparing shapes, so the rule holds for every architecture and head. The source's path, step, architecture
and a hash of its config are recorded in every checkpoint of the new run (``state["init_from"]``).

G_ema follows the new run's EMA settings from step 0: with ``train.ema_rampup`` its first steps nearly copy G
(stylegan2-ada's ``--resume`` turns the ramp-up off; here that is ``train.ema_rampup=null``, the user's choice).
A resumed run (its run dir has a checkpoint) never reads the source: its weights are its own.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..generator import check_checkpoint_model, checkpoint_config, read_checkpoint
from ..nets import build_nets
from ..nets.registry import same_architecture
from ..notices import warn
from . import checkpoint as ckpt

SOURCE_KEYS = ("step", "config", "G", "G_ema")  # what a source must hold (D is taken when it has one)
_ROLES = {"G": "generator", "G_ema": "EMA generator", "D": "discriminator"}


@dataclass(frozen=True)
class InitSource:
    """A checkpoint read for ``train.init_from``: its file, its state and the config it was made with."""
    path: Path
    state: dict
    config: Config


def read_init_source(cfg: Config) -> InitSource:
    """The checkpoint ``cfg.train.init_from`` names, checked against ``cfg`` (architecture, resolution, readable
    nets); a one-line CheckpointError otherwise. Nothing is built and no random number is drawn."""
    try:
        path, state = read_checkpoint(cfg.train.init_from, SOURCE_KEYS)
        source_cfg = checkpoint_config(state, path)
    except ckpt.CheckpointError as e:
        raise ckpt.CheckpointError(f"train.init_from: {e}") from None
    path = path.resolve()
    arch, res = source_cfg.model.arch, source_cfg.data.resolution
    if not same_architecture(arch, cfg.model.arch):
        raise ckpt.CheckpointError(f"train.init_from {path} is a model.arch {arch} checkpoint; this run builds "
                                   f"{cfg.model.arch}: a run starts only from weights of its own architecture")
    if res != cfg.data.resolution:
        raise ckpt.CheckpointError(f"train.init_from {path} was trained at {res} px; this run is "
                                   f"{cfg.data.resolution} px (data.resolution): the nets differ")
    if "D" in state and not isinstance(state["D"], dict):
        raise ckpt.CheckpointError(f"train.init_from {path}: its 'D' is not a state dict")
    for role in (r for r in _ROLES if r in state):
        for key, value in state[role].items():
            if not isinstance(value, torch.Tensor):
                raise ckpt.CheckpointError(f"train.init_from {path}: the {_ROLES[role]}'s '{key}' is not a tensor")
    check_checkpoint_model(state, path, f"train.init_from {path}")
    return InitSource(path, state, source_cfg)


def class_dependent_modules(cfg: Config, num_classes: int, img_channels: int) -> dict[str, frozenset[str]]:
    """{"G": names, "D": names}: the modules of ``cfg``'s nets that hold a tensor whose shape depends on the
    number of classes (the nets built for ``num_classes`` and ``num_classes + 1`` on the meta device differ
    there). The global random streams are left as they were."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        nets = build_nets(cfg, num_classes, img_channels), build_nets(cfg, num_classes + 1, img_channels)
    out = {}
    for role, a, b in zip(("G", "D"), *nets):
        sa, sb = a.state_dict(), b.state_dict()
        keys = [k for k in sa.keys() | sb.keys() if k not in sa or k not in sb or sa[k].shape != sb[k].shape]
        out[role] = frozenset(k.rpartition(".")[0] for k in keys)
    return out


def _plan(net: nn.Module, source: dict[str, torch.Tensor], classes: frozenset[str], reinit: bool, role: str,
          src: InitSource) -> list[str]:
    """The keys of ``net`` that keep their fresh values (with ``reinit``: those of the ``classes`` modules), after
    checking that every other one is in ``source`` with its shape and that ``source`` holds nothing else; the
    first key that does not fit is a one-line CheckpointError."""
    own, what = net.state_dict(), _ROLES[role]
    kept = [k for k in own if reinit and k.rpartition(".")[0] in classes]
    for key, want in own.items():
        have = source.get(key)
        if key in kept or (have is not None and have.shape == want.shape):
            continue
        if have is None:
            raise ckpt.CheckpointError(f"train.init_from {src.path}: this run's {what} needs '{key}' "
                                       f"{tuple(want.shape)}, which the source does not have (another model config?)")
        hint = ("it depends on the number of classes: train.init_classes=reinit starts the class layers fresh"
                if key.rpartition(".")[0] in classes else "another model config?")
        raise ckpt.CheckpointError(f"train.init_from {src.path}: the {what}'s '{key}' is {tuple(have.shape)} "
                                   f"there, {tuple(want.shape)} in this run ({hint})")
    extra = [k for k in source if k not in own]
    if extra:
        raise ckpt.CheckpointError(f"train.init_from {src.path}: the source {what}'s '{extra[0]}' has no place in "
                                   f"this run's ({len(extra)} such keys; another model config?)")
    return kept


def init_weights(src: InitSource, cfg: Config, nets: dict[str, nn.Module], num_classes: int, img_channels: int,
                 announce: bool = True) -> dict:
    """Set ``nets`` ({"G", "G_ema", "D"}: the new run's freshly built modules) from ``src`` as ``cfg.train``
    asks (see the module docstring); nothing is set unless everything fits. Returns the record every
    checkpoint of the run keeps. ``announce``: warn when D starts fresh (rank 0 under torchrun)."""
    reinit = cfg.train.init_classes == "reinit"
    classes = class_dependent_modules(cfg, num_classes, img_channels)
    roles = [r for r in ("G", "G_ema", "D") if r in src.state]
    kept = {r: _plan(nets[r], src.state[r], classes["D" if r == "D" else "G"], reinit, r, src) for r in roles}
    for role in roles:
        own = nets[role].state_dict()
        nets[role].load_state_dict({k: own[k] if k in kept[role] else src.state[role][k] for k in own})
    if "D" not in src.state and announce:
        warn(f"train.init_from {src.path} holds no discriminator (an import of generators only): D starts fresh")
    imported = src.state.get("imported")
    generator = src.state.get("generator")
    return {"path": str(src.path), "step": int(src.state["step"]), "arch": src.config.model.arch,
            "num_classes": generator.get("num_classes") if isinstance(generator, dict) else None,
            "config_sha256": config_hash(src.state["config"]), "description": src.config.description,
            "imported_from": imported.get("from") if isinstance(imported, dict) else None,
            "init_classes": cfg.train.init_classes, "d_from_source": "D" in src.state,
            "fresh": [f"{r}.{k}" for r in ("G", "D") for k in kept.get(r, [])],
            "source_init_from": src.state.get("init_from")}  # the source's own start, if it had one


def config_hash(config: dict) -> str:
    """The first 16 hex digits of the sha256 of a checkpoint's config (canonical JSON)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

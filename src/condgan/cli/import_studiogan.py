"""``condgan import-studiogan CKPT --preset NAME --out RUN``: a PyTorch-StudioGAN model as a condgan run.

CKPT is StudioGAN's checkpoint folder (``model=G-best-weights-step=N.pth``, ``model=G_ema-...``,
``model=D-...``; ``--which best|current``, default best where there is one), one of those files (its siblings of
the same kind come too), or a lone generator state dict under another name. The preset (with ``--set`` /
``--config``) says which condgan network the model is; every StudioGAN key must find its place in it, with its
shape, or the import stops at the first that does not (one line). A StyleGAN2 file (``stylegan2``) must be of the
preset's resolution (its largest block says which it is) and hold condgan's resampling filter. The result,
``RUN/checkpoints/ckpt_<step>.pt``, is read by ``condgan sample``, ``condgan eval`` and
``condgan.load_generator``; it holds no optimiser state, so it is not resumed (``train.init_from`` starts a new run
from it). Files are read with ``weights_only`` (tensors, plain values and numpy scalars only).
"""
from __future__ import annotations

import argparse
import copy
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from ..config import Config, ConfigError, to_dict, to_yaml
from ..data.registry import KNOWN_SHAPES
from ..files import not_a_torch_file, save_atomic, write_text_atomic
from ..generator import check_model, generator_record
from ..studiogan import BACKBONES, NonFiniteState, StudioGANError, check_finite, load_studiogan
from ..train import checkpoint as ckpt
from ..train.rundir import LOCK_NAME, RunDirLock

_FILE = re.compile(r"^model=(G|G_ema|D)-(best|current)-weights-step=(\d+)\.pth$")
# numpy scalars StudioGAN keeps beside the weights (best FID, augmentation p): allowed, nothing else
_NUMPY_SCALARS = [getattr(np, "_core", getattr(np, "core", None)).multiarray.scalar, np.dtype,
                  *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool"))]
IMAGE_CHANNELS = 3  # StudioGAN's generators always write RGB


def studiogan_files(target: Path, which: str | None) -> tuple[dict[str, Path], str]:
    """({"G": path, "G_ema": path, "D": path} as found, best/current) for a StudioGAN folder or file."""
    if target.is_file():
        m = _FILE.match(target.name)
        if m is None:
            return {"G_ema": target}, which or "file"
        folder, which = target.parent, which or m.group(2)
    elif target.is_dir():
        folder = target
    else:
        raise ckpt.CheckpointError(f"no such StudioGAN checkpoint file or folder: {target}")
    found: dict[tuple[str, str], tuple[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        if (m := _FILE.match(path.name)) and int(m.group(3)) >= found.get(m.group(1, 2), (-1, path))[0]:
            found[m.group(1, 2)] = (int(m.group(3)), path)
    if not found:
        raise ckpt.CheckpointError(f"{folder} holds no StudioGAN checkpoint (files named like "
                                   f"model=G_ema-best-weights-step=N.pth)")
    kinds = sorted({when for _, when in found})
    which = which or ("best" if "best" in kinds else "current")
    files = {role: path for (role, when), (_, path) in found.items() if when == which}
    if "G" not in files and "G_ema" not in files:
        raise ckpt.CheckpointError(f"{folder} holds no '{which}' generator (it has: {', '.join(kinds)}); "
                                   f"choose with --which")
    return files, which


def read_studiogan(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, the file's other entries) of one StudioGAN file; a one-line CheckpointError otherwise."""
    try:
        problem = not_a_torch_file(path)
    except OSError as e:
        raise ckpt.CheckpointError(f"{path} cannot be read: {e.strerror or e}") from None
    if problem is not None:
        raise ckpt.CheckpointError(f"{path} cannot be read: it {problem}")
    try:
        with torch.serialization.safe_globals(_NUMPY_SCALARS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ckpt.CheckpointError(f"{path} cannot be read safely: it holds pickled objects other than tensors, "
                                   f"plain values and numpy scalars, which condgan never unpickles") from None
    except Exception as e:  # torch raises many types for torn or foreign files
        first = str(e).splitlines()[0] if str(e) else ""
        raise ckpt.CheckpointError(f"{path} cannot be read: {type(e).__name__}: {first}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    raise ckpt.CheckpointError(f"{path} is not a StudioGAN checkpoint (no 'state_dict' of tensors in it)")


def class_count(cfg: Config, generator: dict[str, torch.Tensor], given: int | None) -> int:
    """Classes: the dataset's where condgan knows it, else --num-classes, else the generator's class inputs."""
    known = KNOWN_SHAPES.get(cfg.data.name)
    if known is not None:
        if given is not None and given != known[0]:
            raise ConfigError(f"--num-classes {given}: {cfg.data.name} has {known[0]} classes")
        return known[0]
    if given is not None:
        return given
    state = {k.removeprefix("module."): v for k, v in generator.items()}
    if "shared.weight" in state:  # big_resnet's class embedding [C, shared_dim]
        return int(state["shared.weight"].shape[0])
    if "mapping.embed.weight" in state:  # stylegan2's mapping embeds the one-hot label: [w_dim, C]
        return int(state["mapping.embed.weight"].shape[1])
    for bn in ("bn1", "bn0"):  # resnet.py / deep_conv.py: the first block's BN gain reads the one-hot [., C]
        for leaf in ("weight", "weight_orig"):
            if (t := state.get(f"blocks.0.0.{bn}.gain.{leaf}")) is not None:
                return int(t.shape[1])
    raise ConfigError(f"the generator has no class input and condgan does not know {cfg.data.name}'s classes: "
                      f"give --num-classes")


def run_import(args: argparse.Namespace) -> int:
    from .train import resolve_config
    from ..nets import build_nets

    if not (args.preset or args.config):
        raise ConfigError("give --preset (or --config): the condgan network the StudioGAN model is")
    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1; got {args.num_classes}")
    cfg = resolve_config(args.preset, args.config, args.set)
    if cfg.model.arch not in BACKBONES:
        raise ConfigError(f"model.arch {cfg.model.arch} has no StudioGAN counterpart; importable: "
                          f"{', '.join(sorted(set(BACKBONES) - {'biggan32'}))}")
    if cfg.model.arch == "stylegan2" and cfg.loss.cond == "pd":
        raise ConfigError("loss.cond pd on model.arch stylegan2 is condgan's own head: StudioGAN's PD StyleGAN2 D "
                          "calls an embedding it never builds, so no StudioGAN checkpoint of it exists")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(p.name != LOCK_NAME for p in out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; import into a new run dir")
    files, which = studiogan_files(Path(args.ckpt), args.which)
    states = {role: read_studiogan(path) for role, path in files.items()}
    try:  # every file's every tensor, whichever net the preset builds: a damaged file is not the preset's fault
        for role, (state, _) in states.items():
            check_finite(state, f"StudioGAN {role} {files[role]}")
    except NonFiniteState as e:
        raise ckpt.CheckpointError(str(e)) from None
    generator = states.get("G_ema", states.get("G"))[0]
    classes = class_count(cfg, generator, args.num_classes)
    G, D = build_nets(cfg, classes, IMAGE_CHANNELS)
    G_ema = copy.deepcopy(G)
    try:
        for net, roles in ((G_ema, ("G_ema", "G")), (G, ("G", "G_ema")), (D, ("D",))):
            role = next((r for r in roles if r in states), None)
            if role is not None:
                load_studiogan(net, states[role][0], f"StudioGAN {role} {files[role]}")
    except StudioGANError as e:
        raise ckpt.CheckpointError(f"{e} (the preset and --set must name the same network)") from None
    nets = {"G_ema": G_ema, "G": G, **({"D": D} if "D" in states else {})}
    check_model(nets, f"the import of {Path(args.ckpt)}")  # as sample, eval and train.init_from will check it
    step = _step(states, files)
    state = {"format": ckpt.FORMAT, "step": step, "config": to_dict(cfg), "G": G.state_dict(),
             "G_ema": G_ema.state_dict(), "generator": generator_record(cfg, classes, IMAGE_CHANNELS, ()),
             "imported": {"from": "PyTorch-StudioGAN", "which": which,
                          "files": {role: str(path) for role, path in files.items()}}}
    if "D" in states:
        state["D"] = D.state_dict()
    path = write_run(out, state, cfg)
    roles = ", ".join(r for r in ("G_ema", "G", "D") if r in files)
    print(f"imported StudioGAN {roles} ({which}, step {step}) as condgan {cfg.model.arch} at {cfg.data.resolution} "
          f"px with {classes} classes: {path}")
    if "G_ema" not in files:
        print("note: there is no G_ema file; G_ema is G (StudioGAN ran without an EMA)")
    print(f"next: condgan sample {out} --per-class 10 --out DIR, or condgan eval {out}")
    return 0


def write_run(out: Path, state: dict, cfg: Config) -> Path:
    """The imported run's checkpoint and config.yaml in ``out``, written while holding the run dir's lock: a
    folder that another import or a training run filled meanwhile is refused, never written into."""
    lock = RunDirLock(out)  # a trainer or another import on the same --out now is refused at once
    try:
        if any(p.name != LOCK_NAME for p in out.iterdir()):
            raise ConfigError(f"--out {out} was filled while importing (another import or training run?): it is "
                              f"left as it is and nothing was written; import into a new run dir")
        path = ckpt.checkpoint_path(out / "checkpoints", int(state["step"]))
        save_atomic(state, path)
        write_text_atomic(out / "config.yaml", to_yaml(cfg))
    except BaseException:
        lock.release(remove_if_empty=True)
        raise
    lock.release()
    return path


def _step(states: dict[str, tuple[dict, dict]], files: dict[str, Path]) -> int:
    """The training step: D's record of it, else the number in a file's name, else 0."""
    step = states.get("D", ({}, {}))[1].get("step")
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool) and step >= 0:
        return int(step)
    for path in files.values():
        if m := _FILE.match(path.name):
            return int(m.group(3))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-studiogan", help="a PyTorch-StudioGAN checkpoint as a condgan run (sample, eval)")
    p.add_argument("ckpt", help="StudioGAN's checkpoint folder, one of its model=...pth files, or a G state dict")
    p.add_argument("--preset", help="the condgan preset of the same network (e.g. cifar10-reacgan)")
    p.add_argument("--config", help="a condgan config file instead of --preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", required=True, help="a new run directory")
    p.add_argument("--which", choices=("best", "current"), help="which of StudioGAN's saves (default: best if any)")
    p.add_argument("--num-classes", type=int, help="classes, for a dataset condgan cannot size (folder, npz)")
    p.set_defaults(func=run_import)

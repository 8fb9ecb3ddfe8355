"""Where a run resumes: its newest readable checkpoint, and only with a config that agrees with it.

The checkpoint's own config is the truth (the run dir's config.yaml is only a copy for people to read; it is
consulted when a run was killed before its first checkpoint). A resumed run may change how long it runs and
how it reports (:data:`condgan.config.keys.RESUMABLE_KEYS`, ``eval.*``); any other change is refused, naming
the keys. Checkpoints that cannot be read are skipped with a warning, but when every checkpoint is
unreadable the run stops and changes nothing: starting again from step 0 would silently replace them.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, ConfigError, from_dict, load_yaml
from ..data import DataError
from ..config.keys import resume_conflicts
from ..notices import warn
from . import checkpoint as ckpt
from .rundir import RunDirError

# Since checkpoint format 2 the D blocks of these architectures shortcut on relu(x), as the reference code runs
# them; older checkpoints were trained with the shortcut on x.
RELU_SHORTCUT_FORMAT = 2
RELU_SHORTCUT_ARCHS = ("biggan32", "resnet32")
# Since format 3 FastGAN's G normalises with the official code's BN eps (nets.stages.FASTGAN_BN_EPS); older
# checkpoints were trained with 1e-4 in every BN.
BN_EPS_FORMAT = 3
BN_EPS_ARCHS = ("fastgan",)
BN_EPS_CHANGE = ("was trained with BN eps 1e-4 in G; this condgan uses the official FastGAN code's (2e-5 in the "
                 "per-class BNs, 1e-5 in the others)")


@dataclass
class ResumePoint:
    """The checkpoint a run continues from (``path`` None: a new run) and the files that could not be read."""
    path: Path | None = None
    state: dict | None = None
    unreadable: frozenset[Path] = field(default_factory=frozenset)

    @property
    def step(self) -> int:
        return 0 if self.state is None else int(self.state["step"])


def find_resume_point(ckpt_dir: Path) -> ResumePoint:
    """The newest readable training checkpoint in ``ckpt_dir``.

    Unreadable newer ones are skipped with a warning; a readable file that is not a condgan training
    checkpoint, or checkpoint files none of which can be read, are a CheckpointError.
    """
    files = ckpt.list_checkpoints(ckpt_dir)
    reasons: dict[Path, str] = {}
    for path in reversed(files):
        try:
            state = ckpt.load(path)
        except ckpt.CheckpointError as e:
            reasons[path] = str(e)
            continue
        ckpt.check_checkpoint(state, path)
        for why in reasons.values():
            warn(f"{why}; resuming from the older checkpoint {path.name} instead (the unreadable file is kept)")
        return ResumePoint(path, state, frozenset(reasons))
    if files:
        raise ckpt.CheckpointError(
            f"none of the {len(files)} checkpoint files in {ckpt_dir} can be read ({'; '.join(reasons.values())}); "
            f"nothing was changed: restore them, move them away to start the run afresh, or use another --out")
    return ResumePoint()


def _saved_config(point: ResumePoint, run_dir: Path) -> tuple[Config | None, str]:
    """(the config the run was made with, where it was read), or (None, "") for a new run."""
    if point.state is not None:
        try:
            return from_dict(point.state["config"]), f"checkpoint {point.path}"
        except ConfigError as e:
            raise ckpt.CheckpointError(f"checkpoint {point.path} holds a config this condgan cannot use: {e}") from None
    saved = run_dir / "config.yaml"
    if not saved.exists():
        return None, ""
    try:
        return from_dict(load_yaml(saved)), str(saved)
    except ConfigError as e:
        raise ConfigError(f"run dir {run_dir} has no checkpoint and its config.yaml cannot be used ({e}); "
                          f"remove it to start the run afresh, or use another --out") from None


def check_resume(requested: Config, point: ResumePoint, run_dir: Path) -> Config | None:
    """Refuse to continue a run whose config differs in a key that changes the math, or whose checkpoint
    lies beyond ``train.steps``; warn when a checkpoint predates the reference D blocks.

    Returns the config the run was made with (None for a new run)."""
    saved, source = _saved_config(point, run_dir)
    if saved is not None:
        conflicts = resume_conflicts(saved, requested)
        if conflicts:
            raise ConfigError(f"run dir {run_dir} was made with a different config ({source}); changed keys: "
                              f"{', '.join(conflicts)}. A resumed run may only change its length, its log, "
                              f"sample and checkpoint cadences and its evaluation settings: use the same config "
                              f"for the rest, or another --out")
    if point.state is None:
        return saved
    if point.step > requested.train.steps:
        raise ckpt.CheckpointError(f"checkpoint {point.path} is at step {point.step}, beyond train.steps="
                                   f"{requested.train.steps}: set train.steps to at least {point.step} to resume it")
    _warn_older_format(point, requested.model.arch)
    return saved


def _warn_older_format(point: ResumePoint, arch: str) -> None:
    """One line per change of a net's function since the checkpoint's format (a run resumes across them)."""
    fmt = point.state["format"]
    if fmt < RELU_SHORTCUT_FORMAT and arch in RELU_SHORTCUT_ARCHS:
        warn(f"checkpoint {point.path} was trained with D blocks whose shortcut sees x; this condgan runs the "
             f"reference block (shortcut on relu(x)), so D's function changes from step {point.step} on")
    if fmt < BN_EPS_FORMAT and arch in BN_EPS_ARCHS:
        warn(f"checkpoint {point.path} {BN_EPS_CHANGE}, so G's function changes from step {point.step} on")


def warn_changed_generator(state: dict, path: Path, arch: str) -> None:
    """Warn (one line naming ``path``) when the G of a checkpoint read for its generator (sample, eval) computes
    another function in this condgan than the one it was trained as."""
    fmt = state.get("format")
    if isinstance(fmt, int) and fmt < BN_EPS_FORMAT and arch in BN_EPS_ARCHS:
        warn(f"checkpoint {path} {BN_EPS_CHANGE}, so its images differ slightly from those of the G it trained")


def check_same_data(point: ResumePoint, identity: str, requested: Config) -> None:
    """Refuse to continue a run on training data other than its checkpoint's (same shape is not enough)."""
    saved = None if point.state is None else point.state.get("data_identity")
    if saved is not None and saved != identity:
        raise ckpt.CheckpointError(
            f"the training data ({requested.data.name} {requested.data.root or ''}) changed since checkpoint "
            f"{point.path} was written (content hash {saved}, now {identity}); resuming would silently continue "
            f"on other data: restore the data, or start another --out")


def newest_checkpoint_seen(ckpt_dir: Path) -> tuple[str, int | None]:
    """(this host, the step of the newest checkpoint file it sees in ``ckpt_dir``; None: none), by name only."""
    files = ckpt.list_checkpoints(ckpt_dir)
    return socket.gethostname(), (ckpt.checkpoint_step(files[-1]) if files else None)


def check_run_dir_shared(out: Path, step: int, seen: list[tuple[str, int | None]]) -> None:
    """Refuse to start over (or from an older step) while another rank sees newer checkpoints at ``out``: after a
    restart rank 0 may be on another node, and only a run dir every node shares keeps the run whole."""
    host0, newest0 = seen[0]
    for rank, (host, newest) in enumerate(seen):
        if newest is not None and (newest0 is None or newest > newest0):
            raise RunDirError(f"rank {rank} (host {host}) sees checkpoints up to step {newest} in {out} that rank 0 "
                              f"(host {host0}) does not: rank 0 alone reads and writes the run dir, and may run on "
                              f"another node after a restart: put --out on a filesystem every node shares")


def check_same_data_everywhere(point: ResumePoint, identities: list[tuple[str, str]], cfg: Config) -> None:
    """Every rank reads the training data rank 0 reads (a store prepared per node may differ), and the run's."""
    host0, identity0 = identities[0]
    for rank, (host, identity) in enumerate(identities):
        if identity != identity0:
            raise DataError(f"rank {rank} (host {host}) reads other training data ({cfg.data.name}, content hash "
                            f"{identity}) than rank 0 (host {host0}, {identity0}): prepare the same data on every "
                            f"node")
    check_same_data(point, identity0, cfg)

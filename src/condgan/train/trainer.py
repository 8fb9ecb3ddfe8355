"""The trainer owns time: the step loop, logging, sample grids, checkpoints and resume.

It builds nothing itself beyond wiring (see :mod:`condgan.train.build`) and delegates the update order of
each iteration to a step strategy. Under torchrun every rank runs this loop in lock step; rank 0 alone keeps
G_ema and writes logs, sample grids, evaluations and checkpoints (whose state is gathered from every rank).
"""
from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..cluster import from_main, note_progress
from ..config import Config, ConfigError, to_dict, to_yaml
from ..distributed import control_group, gather_objects, max_over_ranks, mean_over_ranks, world
from ..files import append_line, save_atomic, write_text_atomic
from ..generator import generator_record
from ..notices import warn
from ..sample import class_grid, fixed_latents, grid_classes, row_names, save_grid
from . import checkpoint as ckpt
from .build import Run, advance, build_run, rederive_lr
from .init_from import init_weights, read_init_source
from .resume import (ResumePoint, check_resume, check_run_dir_shared, check_same_data_everywhere, find_resume_point,
                     newest_checkpoint_seen)
from .rundir import RunDirError, RunDirLock
from .runlog import LogWindow, eval_line, progress_line, truncate_log
from .stopping import REQUESTS, StopVote, Stopped
from .tensorboard import TensorBoardLog, check_available

GRID_COLUMNS = 10


# eval.* keys whose change makes a stored best value incomparable with new ones
BEST_PROTOCOL_KEYS = ("best", "backbone", "ref", "resize", "num_samples")


class TrainingDiverged(RuntimeError):
    """A non-finite loss or model state: training stopped and no checkpoint was written after it."""


class Trainer:
    """Train ``cfg`` into ``out_dir``; rerunning on the same dir resumes from its latest checkpoint.

    The trainer owns the run dir (an OS lock, see :mod:`condgan.train.rundir`) from construction until
    :meth:`close` (or its end; also usable as a context manager). Everything that can refuse the run dir
    (lock, checkpoints, config agreement) runs before the slow build, and nothing is written before it
    all succeeded: a failed start leaves a new run dir absent and an existing one unchanged.
    """

    def __init__(self, cfg: Config, out_dir: str | Path, device: str = "cpu", progress: bool = True,
                 log_lines: bool = False) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.world = world()
        self.progress = progress and self.world.is_main
        self.log_lines = log_lines  # a plain stdout line per metrics record (a batch job's log, without a bar)
        self.ckpt_dir = self.out / "checkpoints"
        self._lock: RunDirLock | None = None  # rank 0 owns the run dir for every rank; the others never touch it
        try:
            self._start()
        except BaseException:
            self.close(remove_if_empty=True)
            raise
        self.grid_z = fixed_latents(cfg.model.z_dim, GRID_COLUMNS, cfg.train.seed + 1)

    def _start(self) -> None:
        point, saved_cfg, source = from_main(self._open_run_dir)  # fails fast: before any slow work
        from_main(check_run_dir_shared, self.out, point.step, gather_objects(newest_checkpoint_seen(self.ckpt_dir)))
        self.run: Run = build_run(self.cfg, self.device)
        identities = gather_objects((socket.gethostname(), self.run.dataset.identity))
        from_main(check_same_data_everywhere, point, identities, self.cfg)
        self.init_from: dict | None = None  # where a run started from train.init_from took its weights
        if source is not None:
            nets = {"G": self.run.models.G, "G_ema": self.run.ema.shadow, "D": self.run.models.D}
            self.init_from = init_weights(source, self.cfg, nets, self.run.num_classes,
                                          self.run.dataset.images.shape[1], announce=self.world.is_main)
        try:
            self.grid_classes = grid_classes(self.cfg.train.grid_classes, self.run.num_classes)
        except ValueError as e:
            raise ConfigError(f"config key 'train.grid_classes': {e}") from None
        self.step = 0
        self.best: dict | None = None  # {"metric", "value", "step"} of checkpoints/best.pt
        self._evaluator = None  # built at the first periodic evaluation
        self.tensorboard: TensorBoardLog | None = None
        self.resumed_from: Path | None = point.path
        self._unreadable = point.unreadable  # never counted or deleted when pruning
        if point.state is not None:
            self.load_state_dict(point.state, point.path)
            self._keep_best_if_comparable(saved_cfg)
            note_progress(self.step, checkpoint=True)
        from_main(self._prepare_run_dir)

    def _open_run_dir(self) -> tuple[ResumePoint, Config | None, object]:
        """Rank 0: own the run dir and read where it resumes (every check that can refuse the run dir)."""
        self._lock = RunDirLock(self.out)
        for folder in (self.ckpt_dir, self.out / "samples"):  # found now, not at the first checkpoint or grid
            if folder.exists() and not folder.is_dir():
                raise RunDirError(f"{folder} is not a folder; the run dir needs it as one")
        point = find_resume_point(self.ckpt_dir)
        saved_cfg = check_resume(self.cfg, point, self.out)
        source = read_init_source(self.cfg) if point.state is None and self.cfg.train.init_from else None
        if self.cfg.log.tensorboard:
            check_available()
        return point, saved_cfg, source

    def _prepare_run_dir(self) -> None:
        """Rank 0: clear what a killed run left, and write the agreed config."""
        ckpt.remove_orphan_temp_files(self.ckpt_dir)  # safe: the lock says their writer is gone
        write_text_atomic(self.out / "config.yaml", to_yaml(self.cfg))  # the agreed config, for people
        truncate_log(self.out / "metrics.jsonl", self.step)
        self.tensorboard = TensorBoardLog(self.out) if self.cfg.log.tensorboard else None

    def close(self, remove_if_empty: bool = False) -> None:
        """Give up the run dir (with ``remove_if_empty``: remove it if this trainer created it and wrote nothing)."""
        if hasattr(self, "run"):  # built: stop its background data readers
            self.run.sampler.close()
        if getattr(self, "tensorboard", None) is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self._lock is not None:
            self._lock.release(remove_if_empty)

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The complete run state; a collective under torchrun (call it on every rank)."""
        r = self.run
        rng = gather_objects(ckpt.rng_state())  # every rank's own stream, for a resume at the same world size
        return {
            "format": ckpt.FORMAT, "step": self.step, "config": to_dict(self.cfg),
            "G": r.models.G.state_dict(), "D": r.models.D.state_dict(), "G_ema": r.ema.shadow.state_dict(),
            "opt_g": r.models.opt_g.state_dict(), "opt_d": r.models.opt_d.state_dict(),
            "sched_g": r.sched_g.state_dict(), "sched_d": r.sched_d.state_dict(),
            "sampler": r.sampler.state_dict(), "strategy": r.strategy.state_dict(), "rng": rng[0],
            "rng_ranks": rng, "best": self.best, "data_identity": r.dataset.identity,
            "generator": generator_record(self.cfg, r.dataset.num_classes, r.dataset.images.shape[1],
                                          r.dataset.classes),
            **({"init_from": self.init_from} if self.init_from is not None else {}),
        }

    def load_state_dict(self, state: dict, path: Path) -> None:
        """Restore the run from a checkpoint's ``state``; anything in it that does not fit is a CheckpointError."""
        try:
            self._load_state(state, path)
        except ckpt.CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as e:
            raise ckpt.CheckpointError(f"checkpoint {path} does not fit this run: {type(e).__name__}: "
                                       f"{' '.join(str(e).split())[:200]}") from None

    def _load_state(self, state: dict, path: Path) -> None:
        r = self.run
        ckpt.load_module_state(r.models.G, state["G"], "generator", path)
        ckpt.load_module_state(r.models.D, state["D"], "discriminator", path)
        ckpt.load_module_state(r.ema.shadow, state["G_ema"], "generator", path)
        for obj, key in ((r.models.opt_g, "opt_g"), (r.models.opt_d, "opt_d"), (r.sched_g, "sched_g"),
                         (r.sched_d, "sched_d"), (r.sampler, "sampler")):
            obj.load_state_dict(state[key])
        r.strategy.load_state_dict(state.get("strategy", {}))
        for sched in (r.sched_g, r.sched_d):  # train.steps may have changed: the lr follows this config's curve
            rederive_lr(sched, self.cfg)
        self.step = int(state["step"])
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == self.world.size:
            ckpt.set_rng_state(ranks[self.world.rank])
        elif self.world.is_main:
            ckpt.set_rng_state(state["rng"])
        else:  # resumed with another number of processes: a fresh stream of this rank's own
            torch.manual_seed(self.cfg.train.seed + 1000 * self.step + self.world.rank)
        self.best = state.get("best")
        self.init_from = state.get("init_from")

    def _keep_best_if_comparable(self, saved: Config | None) -> None:
        """Forget the best evaluation when the eval settings that define its value changed on resume."""
        if self.best is None or saved is None:
            return
        changed = [k for k in BEST_PROTOCOL_KEYS if getattr(saved.eval, k) != getattr(self.cfg.eval, k)]
        if changed:
            warn(f"eval.{', eval.'.join(changed)} changed since checkpoints/best.pt was chosen "
                 f"({self.best['metric']} {self.best['value']} at step {self.best['step']}): the next evaluation "
                 f"starts a new best and replaces best.pt")
            self.best = None

    def save_checkpoint(self) -> Path:
        """Write checkpoints/ckpt_<step>.pt (rank 0; every rank contributes its state)."""
        path = ckpt.checkpoint_path(self.ckpt_dir, self.step)
        from_main(self._write_checkpoint, self.state_dict(), path)
        note_progress(self.step, checkpoint=True)
        return path

    def _write_checkpoint(self, state: dict, path: Path) -> None:
        save_atomic(state, path)
        ckpt.prune(self.ckpt_dir, self.cfg.train.keep_ckpts, path, self._unreadable)

    # -- loop ------------------------------------------------------------------------------------------
    def train(self, until: int | None = None) -> None:
        """Run to ``train.steps`` generator steps (or stop early at ``until``, with a checkpoint).

        A stop signal (see :mod:`condgan.train.stopping`) ends the loop at a step every rank agrees on, with a
        checkpoint of it, by raising :class:`~condgan.train.stopping.Stopped`.
        """
        with REQUESTS.deferred():
            self._train(until)

    def _train(self, until: int | None) -> None:
        t = self.cfg.train
        target = t.steps if until is None else min(until, t.steps)
        r = self.run
        r.models.G.train()
        r.models.D.train()
        vote = StopVote(REQUESTS, control_group())
        if signum := vote.now():  # asked to stop while starting up: nothing new to keep
            raise Stopped(signum, self.step, None)
        window = LogWindow(self.device)
        bar = tqdm(total=t.steps, initial=self.step, disable=not self.progress, dynamic_ncols=True,
                   desc="train", unit="it")
        while self.step < target:
            window.add(self.advance(), self.step)
            note_progress(self.step)
            bar.update(1)
            last = self.step == target
            if self.step % t.log_every == 0 or last:
                self._log(window, bar)
            if self.step % t.sample_every == 0 or self.step == t.steps:
                from_main(self.save_samples)
            saved = self.step % t.ckpt_every == 0 or last
            if saved:
                self._checked_checkpoint(window, eval_too=True)
            if signum := vote.poll():
                if not saved:
                    self._log(window, bar)
                    self._checked_checkpoint(window, eval_too=False)
                bar.close()
                raise Stopped(signum, self.step, ckpt.checkpoint_path(self.ckpt_dir, self.step))
        vote.finish()
        bar.close()

    def _checked_checkpoint(self, window: LogWindow, eval_too: bool) -> None:
        """Stop if anything went non-finite, evaluate (at eval.every), then write the step's checkpoint."""
        self._check_finite(max_over_ranks(window.first_bad))
        self._check_model_state()
        if eval_too:
            self._periodic_eval()
        self.save_checkpoint()

    def advance(self) -> dict[str, torch.Tensor]:
        """One iteration (see :func:`condgan.train.build.advance`); no logging, checkpoint or finiteness check."""
        losses = advance(self.run, self.step, keep_ema=self.world.is_main)
        self.step += 1
        return losses

    def _log(self, window: LogWindow, bar: tqdm) -> None:
        """One metrics record of the steps since the last (means over ranks); rank 0 writes it."""
        if not window.steps:
            return
        names = list(window.sums)
        means = torch.stack([window.sums[k].float() / window.counts[k] for k in names])
        values = mean_over_ranks(means).tolist()  # one host sync
        first_bad = max_over_ranks(window.first_bad)
        record = {"step": self.step, **{k: round(v, 6) for k, v in zip(names, values)},
                  "lr_g": self.run.sched_g.get_last_lr()[0], "lr_d": self.run.sched_d.get_last_lr()[0],
                  "it_per_s": round(window.steps / max(window.elapsed(), 1e-9), 3), "time": round(time.time(), 3)}
        window.restart()
        from_main(self._write_record, record, bar)
        self._check_finite(first_bad, record)

    def _write_record(self, record: dict, bar: tqdm) -> None:
        append_line(self.out / "metrics.jsonl", json.dumps(record))
        bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k in ("d_loss", "g_loss")})
        if self.log_lines:
            print(progress_line(record, self.cfg.train.steps), flush=True)
        if self.tensorboard is not None:
            self.tensorboard.scalars(record, self.step)

    def _check_finite(self, first_bad: torch.Tensor, record: dict | None = None) -> None:
        bad = int(first_bad)
        if bad >= 0:
            losses = "" if record is None else ", ".join(
                f"{k}={v}" for k, v in record.items() if not isinstance(v, (int, float)) or not math.isfinite(v))
            raise TrainingDiverged(f"non-finite loss at step {bad} ({losses or 'see metrics.jsonl'}): "
                                   f"training stopped{self._kept()}")

    def _check_model_state(self) -> None:
        """Stop (TrainingDiverged) if any parameter or buffer of G, D or G_ema is NaN or infinite.

        One host sync (plus one collective under torchrun); run before every checkpoint and evaluation, so
        a non-finite model is never saved or scored.
        """
        m = self.run.models
        nets = {"G": m.G, "D": m.D, **({"G_ema": self.run.ema.shadow} if self.world.is_main else {})}
        bad = ckpt.first_nonfinite(ckpt.model_tensors(**nets))
        if int(max_over_ranks(torch.tensor(int(bad is not None), device=self.device))):
            raise TrainingDiverged(f"non-finite model state at step {self.step}: {bad or 'on another rank'} holds "
                                   f"NaN or infinity: training stopped{self._kept()}")

    def _kept(self) -> str:
        last = [p for p in ckpt.list_checkpoints(self.ckpt_dir) if p not in self._unreadable]
        return f"; last good checkpoint kept: {last[-1]}" if last else "; no checkpoint was written"

    def _periodic_eval(self) -> None:
        """Every ``eval.every`` steps (always a checkpoint step): score G_ema, log it, keep the best.

        The evaluation draws from private generators only, so training after it is bit-for-bit the same
        as without it. ``checkpoints/best.pt`` is a complete checkpoint (resumable, evaluable).
        """
        from ..metrics.suite import LOWER_IS_BETTER

        e = self.cfg.eval
        if not e.every or self.step % e.every:
            return
        record = from_main(self._evaluate_and_log)  # rank 0 scores, every rank sees the result
        scalars = _scalars(record)
        value = scalars[e.best]
        lower = e.best in LOWER_IS_BETTER
        better = self.best is None or (value < self.best["value"] if lower else value > self.best["value"])
        if better:
            self.best = {"metric": e.best, "value": value, "step": self.step}
            from_main(self._write_best, self.state_dict(), record)
        if self.world.is_main and (self.progress or self.log_lines):
            line = eval_line(self.step, scalars, self._evaluator.backbone.name, better)
            if self.progress:
                tqdm.write(line)  # above the bar, which stays whole
            else:
                print(line, flush=True)

    def _evaluate_and_log(self) -> dict:
        record = self._evaluate()
        scalars = _scalars(record)
        append_line(self.out / "metrics.jsonl", json.dumps({"step": self.step, "eval": scalars,
                                                            "backbone": self._evaluator.backbone.name}))
        if self.tensorboard is not None:
            self.tensorboard.scalars(scalars, self.step, prefix="eval/")
        return record

    def _write_best(self, state: dict, record: dict) -> None:
        save_atomic(state, self.ckpt_dir / "best.pt")
        write_text_atomic(self.out / "best.json", json.dumps({**self.best, "eval": record}, indent=2) + "\n")

    def _evaluate(self) -> dict:
        """Score G_ema with the run's evaluator (built at the first call)."""
        from ..metrics.evaluate import Evaluator, request_from_config

        if self._evaluator is None:
            # with data.subset the judge (classifier, train reference) still knows the whole training split
            train = None if self.cfg.data.subset else self.run.dataset
            self._evaluator = Evaluator(self.cfg.data, request_from_config(self.cfg), self.device, train=train,
                                        progress=self.progress)
        return self._evaluator(self.run.ema.shadow, self.cfg.model.z_dim)

    def save_samples(self) -> Path:
        """Write G_ema's class grid (rank 0); a grid with NaN or infinity stops the run instead."""
        path = self.out / "samples" / f"step_{self.step:08d}.png"
        images = class_grid(self.run.ema.shadow, self.grid_z, self.grid_classes)
        if not bool(torch.isfinite(images).all()):
            bad = ckpt.first_nonfinite(ckpt.model_tensors(G_ema=self.run.ema.shadow))
            weights = f"{bad} holds NaN or infinity" if bad else "its weights are finite"
            raise TrainingDiverged(f"G_ema's samples at step {self.step} are not finite ({weights}): "
                                   f"training stopped{self._kept()}")
        save_grid(images, self.grid_z.shape[0], path,
                  row_labels=row_names(self.grid_classes, self.run.dataset.classes))
        if self.tensorboard is not None:
            self.tensorboard.image("samples", path, self.step)
        return path


def _scalars(record: dict) -> dict:
    """An evaluation record's numbers (what metrics.jsonl logs and eval.best chooses from)."""
    return {k: v for k, v in record["metrics"].items() if isinstance(v, (int, float))}

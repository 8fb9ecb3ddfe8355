"""The trainer owns time: the step loop, logging, sample grids, checkpoints and resume.

It builds nothing itself beyond wiring (see :mod:`condgan.train.build`) and delegates the update order of
each iteration to a step strategy. Under torchrun every rank runs this loop in lock step; rank 0 alone keeps
G_ema and writes logs, sample grids, evaluations and checkpoints (whose state is gathered from every rank).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from ..config import Config, ConfigError, diff, from_dict, to_dict, to_yaml
from ..distributed import barrier, gather_objects, max_over_ranks, mean_over_ranks, world
from ..sample import class_grid, fixed_latents
from . import checkpoint as ckpt
from .build import Run, advance, build_run

GRID_COLUMNS = 10


class TrainingDiverged(RuntimeError):
    """A non-finite loss: training stopped and no checkpoint was written after it."""


class Trainer:
    """Train ``cfg`` into ``out_dir``; rerunning on the same dir resumes from its latest checkpoint."""

    def __init__(self, cfg: Config, out_dir: str | Path, device: str = "cpu", progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.world = world()
        self.progress = progress and self.world.is_main
        self.ckpt_dir = self.out / "checkpoints"
        _check_run_dir(cfg, self.out)  # before any slow work: a changed config fails fast
        self.run: Run = build_run(cfg, self.device)
        if self.world.is_main:
            _write_config(cfg, self.out)  # only once everything built: a bad archive leaves no run dir
        barrier()
        self.step = 0
        self.best: dict | None = None  # {"metric", "value", "step"} of checkpoints/best.pt
        self._evaluator = None  # built at the first periodic evaluation
        self.resumed_from: Path | None = None
        self._resume()
        self.grid_z = fixed_latents(cfg.model.z_dim, GRID_COLUMNS, cfg.train.seed + 1)

    # -- state -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The complete run state; a collective under torchrun (call it on every rank)."""
        r = self.run
        rng = gather_objects(ckpt.rng_state())  # every rank's own stream, for a resume at the same world size
        return {
            "format": 1, "step": self.step, "config": to_dict(self.cfg),
            "G": r.models.G.state_dict(), "D": r.models.D.state_dict(), "G_ema": r.ema.shadow.state_dict(),
            "opt_g": r.models.opt_g.state_dict(), "opt_d": r.models.opt_d.state_dict(),
            "sched_g": r.sched_g.state_dict(), "sched_d": r.sched_d.state_dict(),
            "sampler": r.sampler.state_dict(), "strategy": r.strategy.state_dict(), "rng": rng[0],
            "rng_ranks": rng, "best": self.best,
        }

    def load_state_dict(self, state: dict, path: Path) -> None:
        r = self.run
        ckpt.load_module_state(r.models.G, state["G"], "generator", path)
        ckpt.load_module_state(r.models.D, state["D"], "discriminator", path)
        ckpt.load_module_state(r.ema.shadow, state["G_ema"], "generator", path)
        r.models.opt_g.load_state_dict(state["opt_g"])
        r.models.opt_d.load_state_dict(state["opt_d"])
        r.sched_g.load_state_dict(state["sched_g"])
        r.sched_d.load_state_dict(state["sched_d"])
        r.sampler.load_state_dict(state["sampler"])
        r.strategy.load_state_dict(state.get("strategy", {}))
        self.step = int(state["step"])
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == self.world.size:
            ckpt.set_rng_state(ranks[self.world.rank])
        elif self.world.is_main:
            ckpt.set_rng_state(state["rng"])
        else:  # resumed with another number of processes: a fresh stream of this rank's own
            torch.manual_seed(self.cfg.train.seed + 1000 * self.step + self.world.rank)
        self.best = state.get("best")

    def _resume(self) -> None:
        for path in reversed(ckpt.list_checkpoints(self.ckpt_dir)):
            try:
                state = ckpt.load(path)
            except ckpt.CheckpointError as e:
                print(f"warning: {e}; trying the previous checkpoint")
                continue
            if "format" not in state or "G" not in state:
                raise ckpt.CheckpointError(f"checkpoint {path} is not a condgan training checkpoint")
            self.load_state_dict(state, path)
            self.resumed_from = path
            break
        if self.world.is_main:
            _truncate_log(self.out / "metrics.jsonl", self.step)
        barrier()

    def save_checkpoint(self) -> Path:
        """Write checkpoints/ckpt_<step>.pt (rank 0; every rank contributes its state)."""
        path = ckpt.checkpoint_path(self.ckpt_dir, self.step)
        state = self.state_dict()
        if self.world.is_main:
            ckpt.save_atomic(state, path)
            ckpt.prune(self.ckpt_dir, self.cfg.train.keep_ckpts)
        barrier()
        return path

    # -- loop ------------------------------------------------------------------------------------------
    def train(self, until: int | None = None) -> None:
        """Run to ``train.steps`` generator steps (or stop early at ``until``, with a checkpoint)."""
        t = self.cfg.train
        target = t.steps if until is None else min(until, t.steps)
        r = self.run
        r.models.G.train()
        r.models.D.train()
        sums: dict[str, torch.Tensor] = {}
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        bar = tqdm(total=t.steps, initial=self.step, disable=not self.progress, dynamic_ncols=True,
                   desc="train", unit="it")
        window_start, window_steps = time.perf_counter(), 0
        while self.step < target:
            losses = self.advance()
            window_steps += 1
            for k, v in losses.items():  # accumulate on the device: no host sync per step
                sums[k] = sums[k] + v if k in sums else v.clone()
            finite = torch.isfinite(torch.stack(list(losses.values()))).all()
            first_bad = torch.where(~finite & (first_bad < 0), self.step, first_bad)
            bar.update(1)
            last = self.step == target
            if self.step % t.log_every == 0 or last:
                elapsed = time.perf_counter() - window_start
                self._log(sums, window_steps, elapsed, first_bad, bar)
                sums, window_start, window_steps = {}, time.perf_counter(), 0
            if self.world.is_main and (self.step % t.sample_every == 0 or self.step == t.steps):
                self.save_samples()
            if self.step % t.ckpt_every == 0 or last:
                self._check_finite(max_over_ranks(first_bad))
                self._periodic_eval()
                self.save_checkpoint()
        bar.close()

    def advance(self) -> dict[str, torch.Tensor]:
        """One iteration (see :func:`condgan.train.build.advance`); no logging, checkpoint or finiteness check."""
        losses = advance(self.run, self.step, keep_ema=self.world.is_main)
        self.step += 1
        return losses

    def _log(self, sums: dict[str, torch.Tensor], steps: int, elapsed: float, first_bad: torch.Tensor,
             bar: tqdm) -> None:
        names = list(sums)
        values = mean_over_ranks(torch.stack([sums[k] for k in names]).float().div(steps)).tolist()  # one host sync
        first_bad = max_over_ranks(first_bad)
        if not self.world.is_main:
            self._check_finite(first_bad)
            return
        record = {"step": self.step, **{k: round(v, 6) for k, v in zip(names, values)},
                  "lr_g": self.run.sched_g.get_last_lr()[0], "it_per_s": round(steps / max(elapsed, 1e-9), 3),
                  "time": round(time.time(), 3)}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        bar.set_postfix({k: f"{v:.3f}" for k, v in zip(names, values) if k in ("d_loss", "g_loss")})
        self._check_finite(first_bad, record)

    def _check_finite(self, first_bad: torch.Tensor, record: dict | None = None) -> None:
        bad = int(first_bad)
        if bad >= 0:
            losses = "" if record is None else ", ".join(
                f"{k}={v}" for k, v in record.items() if not isinstance(v, (int, float)) or not math.isfinite(v))
            last = ckpt.list_checkpoints(self.ckpt_dir)
            kept = f"; last good checkpoint kept: {last[-1]}" if last else "; no checkpoint was written"
            raise TrainingDiverged(f"non-finite loss at step {bad} ({losses or 'see metrics.jsonl'}): "
                                   f"training stopped{kept}")

    def _periodic_eval(self) -> None:
        """Every ``eval.every`` steps (always a checkpoint step): score G_ema, log it, keep the best.

        The evaluation draws from private generators only, so training after it is bit-for-bit the same
        as without it. ``checkpoints/best.pt`` is a complete checkpoint (resumable, evaluable).
        """
        from ..metrics.suite import LOWER_IS_BETTER

        e = self.cfg.eval
        if not e.every or self.step % e.every:
            return
        record = gather_objects(self._evaluate() if self.world.is_main else None)[0]  # rank 0 scores, all see it
        scalars = {k: v for k, v in record["metrics"].items() if isinstance(v, (int, float))}
        if self.world.is_main:
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": self.step, "eval": scalars}) + "\n")
        value = scalars[e.best]
        lower = e.best in LOWER_IS_BETTER
        if self.best is None or (value < self.best["value"] if lower else value > self.best["value"]):
            self.best = {"metric": e.best, "value": value, "step": self.step}
            state = self.state_dict()
            if self.world.is_main:
                ckpt.save_atomic(state, self.ckpt_dir / "best.pt")
                ckpt.write_text_atomic(self.out / "best.json",
                                       json.dumps({**self.best, "eval": record}, indent=2) + "\n")
        barrier()

    def _evaluate(self) -> dict:
        """Score G_ema with the run's evaluator (built at the first call)."""
        from ..metrics.evaluate import Evaluator, request_from_config

        if self._evaluator is None:
            self._evaluator = Evaluator(self.cfg.data, request_from_config(self.cfg), self.device,
                                        train=self.run.dataset, progress=self.progress)
        return self._evaluator(self.run.ema.shadow, self.cfg.model.z_dim)

    def save_samples(self) -> Path:
        path = self.out / "samples" / f"step_{self.step:08d}.png"
        class_grid(self.run.ema.shadow, self.grid_z, self.run.num_classes, path)
        return path


def _check_run_dir(cfg: Config, out: Path) -> None:
    """An existing run dir must have been made with the same config; the error names the changed keys."""
    saved = out / "config.yaml"
    if not saved.exists():
        return
    previous = from_dict(yaml.safe_load(saved.read_text()))
    changed = diff(previous, cfg)
    if changed:
        raise ConfigError(f"run dir {out} was made with a different config; changed keys: {', '.join(changed)} "
                          f"(use the same config to resume, or another --out)")


def _write_config(cfg: Config, out: Path) -> None:
    """Save the resolved config (atomically) in a new run dir."""
    saved = out / "config.yaml"
    if saved.exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_text_atomic(saved, to_yaml(cfg))


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records after ``step`` (written after the last checkpoint by a run that was killed)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError):
            break  # a torn last line from a kill mid-write
    ckpt.write_text_atomic(path, "".join(k + "\n" for k in kept))

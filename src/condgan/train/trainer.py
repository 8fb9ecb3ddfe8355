"""The trainer owns time: the step loop, logging, sample grids, checkpoints and resume.

It builds nothing itself beyond wiring (see :mod:`condgan.train.build`) and delegates the update order of
each iteration to a step strategy.
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
from ..sample import class_grid, fixed_latents
from . import checkpoint as ckpt
from .build import Run, build_run

GRID_COLUMNS = 10


class TrainingDiverged(RuntimeError):
    """A non-finite loss: training stopped and no checkpoint was written after it."""


class Trainer:
    """Train ``cfg`` into ``out_dir``; rerunning on the same dir resumes from its latest checkpoint."""

    def __init__(self, cfg: Config, out_dir: str | Path, device: str = "cpu", progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.device = torch.device(device)
        self.progress = progress
        self.ckpt_dir = self.out / "checkpoints"
        _check_run_dir(cfg, self.out)  # before any slow work: a changed config fails fast
        self.run: Run = build_run(cfg, self.device)
        _write_config(cfg, self.out)  # only once everything built: a bad archive leaves no run dir
        self.step = 0
        self.best: dict | None = None  # {"metric", "value", "step"} of checkpoints/best.pt
        self._evaluator = None  # built at the first periodic evaluation
        self.resumed_from: Path | None = None
        self._resume()
        self.grid_z = fixed_latents(cfg.model.z_dim, GRID_COLUMNS, cfg.train.seed + 1)

    # -- state -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        r = self.run
        return {
            "format": 1, "step": self.step, "config": to_dict(self.cfg),
            "G": r.models.G.state_dict(), "D": r.models.D.state_dict(), "G_ema": r.ema.shadow.state_dict(),
            "opt_g": r.models.opt_g.state_dict(), "opt_d": r.models.opt_d.state_dict(),
            "sched_g": r.sched_g.state_dict(), "sched_d": r.sched_d.state_dict(),
            "sampler": r.sampler.state_dict(), "strategy": r.strategy.state_dict(), "rng": ckpt.rng_state(),
            "best": self.best,
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
        ckpt.set_rng_state(state["rng"])
        self.step = int(state["step"])
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
        _truncate_log(self.out / "metrics.jsonl", self.step)

    def save_checkpoint(self) -> Path:
        path = ckpt.checkpoint_path(self.ckpt_dir, self.step)
        ckpt.save_atomic(self.state_dict(), path)
        ckpt.prune(self.ckpt_dir, self.cfg.train.keep_ckpts)
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
            if self.step % t.sample_every == 0 or self.step == t.steps:
                self.save_samples()
            if self.step % t.ckpt_every == 0 or last:
                self._check_finite(first_bad)
                self._periodic_eval()
                self.save_checkpoint()
        bar.close()

    def advance(self) -> dict[str, torch.Tensor]:
        """One iteration: the strategy's D and G steps, the EMA update and both lr schedules; returns the
        iteration's detached losses. No logging, checkpoint or finiteness check (``train`` adds those)."""
        r = self.run
        losses = r.strategy.step(self.device, self.step)
        self.step += 1
        r.ema.update(r.models.G, self.step)
        r.sched_g.step()
        r.sched_d.step()
        return losses

    def _log(self, sums: dict[str, torch.Tensor], steps: int, elapsed: float, first_bad: torch.Tensor,
             bar: tqdm) -> None:
        names = list(sums)
        values = torch.stack([sums[k] for k in names]).float().div(steps).tolist()  # one host sync
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
        e = self.cfg.eval
        if not e.every or self.step % e.every:
            return
        from ..metrics.evaluate import Evaluator, request_from_config
        from ..metrics.suite import LOWER_IS_BETTER

        if self._evaluator is None:
            self._evaluator = Evaluator(self.cfg.data, request_from_config(self.cfg), self.device,
                                        train=self.run.dataset, progress=self.progress)
        record = self._evaluator(self.run.ema.shadow, self.cfg.model.z_dim)
        scalars = {k: v for k, v in record["metrics"].items() if isinstance(v, (int, float))}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, "eval": scalars}) + "\n")
        value = scalars[e.best]
        lower = e.best in LOWER_IS_BETTER
        if self.best is None or (value < self.best["value"] if lower else value > self.best["value"]):
            self.best = {"metric": e.best, "value": value, "step": self.step}
            ckpt.save_atomic(self.state_dict(), self.ckpt_dir / "best.pt")
            ckpt.write_text_atomic(self.out / "best.json", json.dumps({**self.best, "eval": record}, indent=2) + "\n")

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

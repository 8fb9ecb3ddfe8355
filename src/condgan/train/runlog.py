"""The run's log: metrics.jsonl records of the losses, summed on the device between records.

One record per ``train.log_every`` steps (and at a stop), written by rank 0; a resumed run first drops the records
a killed run wrote after its last checkpoint.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..files import PendingFile, write_text_atomic
from ..notices import warn


class LogWindow:
    """The losses summed on the device since the last record (no host sync per step) and the first step whose
    losses were not finite (-1: none yet; kept across records)."""

    def __init__(self, device: torch.device) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        self.restart()

    def restart(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}  # a lazy regulariser's value is logged on the steps that computed it
        self.steps = 0
        self._start = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor], step: int) -> None:
        for k, v in losses.items():  # accumulate on the device: no host sync per step
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1
        self.steps += 1
        finite = torch.isfinite(torch.stack(list(losses.values()))).all()
        self.first_bad = torch.where(~finite & (self.first_bad < 0), step, self.first_bad)

    def elapsed(self) -> float:
        return time.perf_counter() - self._start


def truncate_log(path: Path, step: int) -> None:
    """Drop log records after ``step`` (written after the last checkpoint by a run that was killed).

    A torn last line (a kill mid-write) is dropped silently; any other line that is not a record with an integer
    step is dropped with a warning, and the file as it was is kept beside it (``metrics.jsonl.<n>.bak``, a new
    name each time).
    """
    if not path.exists():
        return
    raw = path.read_bytes()
    lines = raw.decode("utf-8", errors="replace").splitlines()
    kept, garbled = [], 0
    for i, line in enumerate(lines):
        try:
            record_step = json.loads(line)["step"]
        except (ValueError, KeyError, TypeError):
            record_step = None
        if isinstance(record_step, int) and not isinstance(record_step, bool):
            if record_step <= step:
                kept.append(line)
        elif line.strip() and i < len(lines) - 1:
            garbled += 1
    if garbled:
        backup = next(b for n in range(1, 10**6) if not (b := path.with_name(f"{path.name}.{n}.bak")).exists())
        with PendingFile(backup) as pending:
            pending.commit(lambda f: f.write(raw))
        warn(f"{path}: {garbled} line(s) were not log records and were dropped; the file as it was is in {backup}")
    write_text_atomic(path, "".join(k + "\n" for k in kept))


def progress_line(record: dict, total: int) -> str:
    """One metrics record as a plain log line: step, the two losses, speed and the time left at that speed."""
    losses = "  ".join(f"{k} {record[k]:.4f}" for k in ("d_loss", "g_loss") if k in record)
    speed = record["it_per_s"]
    eta = duration((total - record["step"]) / speed) if speed > 0 else "?"
    return f"step {record['step']}/{total}  {losses}  {speed:.2f} it/s  eta {eta}"


def duration(seconds: float) -> str:
    """H:MM:SS (the time left in a progress line, the time a run took)."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def eval_line(step: int, scalars: dict, backbone: str, best: bool) -> str:
    """A periodic evaluation as one console line: ``eval at step 1000 (classifier): fid 12.3456  acc_top1 ...``."""
    values = "  ".join(f"{k} {v:.4f}" for k, v in scalars.items())
    return f"eval at step {step} ({backbone}): {values}{'  (new best)' if best else ''}"

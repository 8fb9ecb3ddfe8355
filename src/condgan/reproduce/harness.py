"""Run a table's rows (train, then evaluate with the table's protocol) and write paper vs condgan in markdown.

Every row x seed is two commands a user could type (shown by ``condgan reproduce TABLE``); the harness runs
exactly those, in a child process each, so a row behaves as it would by hand. Run dirs live under
``OUT/<preset>[-<hash of the extra --set>]/seed<k>``: training resumes where it stopped, and a row x seed whose
evaluation record exists is finished and skipped. A diverged run (exit 3) is recorded and the table goes on;
a bad input (exit 2: missing data, a wrong key) stops it with that one-line error.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config import ConfigError
from ..files import LockHeld, read_records, take_lock, write_text_atomic
from ..notices import warn
from .tables import CONDGAN_KEYS, FEATURE_SPACE_KEYS, Table

EVAL_RECORD = "reproduce_eval.json"  # in the run dir, written by `condgan eval --out`
LOCK = ".reproduce.lock"  # in OUT: held by the one reproduce running there
# ReACGAN Fig. 2, logged per D step, with their column headings
DIAGNOSTICS = {"d_feat_norm": "D feature norm", "d_head_grad_norm": "cond. loss grad norm, head weight",
               "d_cond_grad_norm": "cond. loss grad norm, features", "d_p_target": "p(target class) on reals"}


class ReproduceError(ConfigError):
    """A row could not be run (its command failed on a bad input); the message is one line."""


@dataclass(frozen=True)
class Job:
    """One row x seed: where it runs and the two commands that produce its record."""
    label: str
    preset: str
    seed: int
    run_dir: Path
    train: list[str]
    eval: list[str]

    record_name: str = EVAL_RECORD

    @property
    def record(self) -> Path:
        return self.run_dir / self.record_name


def jobs(table: Table, seeds: list[int], out: Path, sets: list[str] = (), device: str = "cpu",
         nproc: int = 1) -> list[Job]:
    """The table's rows x seeds as commands (``sets``: the user's extra overrides, e.g. ``data.root=...``)."""
    extra = [*table.sets, *sets]
    suffix = "-" + hashlib.sha256("\n".join(extra).encode()).hexdigest()[:8] if extra else ""
    launcher = ["torchrun", f"--nproc_per_node={nproc}", "-m", "condgan"] if nproc > 1 else ["condgan"]
    further = table.protocol.backbones[1:]  # reported beside the paper's space: a record of its own
    record = EVAL_RECORD if not further else EVAL_RECORD.replace(".json", f".{'+'.join(further)}.json")
    out_jobs = []
    for row in table.rows:
        for seed in seeds:
            run_dir = out / f"{row.preset}{suffix}" / f"seed{seed}"
            train = [*launcher, "train", "--preset", row.preset, "--set", f"train.seed={seed}",
                     *[a for s in extra for a in ("--set", s)], "--out", str(run_dir), "--device", device,
                     "--no-progress", "--no-eval"]
            evaluate = ["condgan", "eval", str(run_dir), *table.protocol.eval_args(), "--device", device,
                        "--out", str(run_dir / record), "--no-progress"]
            out_jobs.append(Job(row.label, row.preset, seed, run_dir, train, evaluate, record))
    return out_jobs


def describe(table: Table, seeds: list[int], out: Path, sets: list[str] = (), device: str = "cpu",
             nproc: int = 1) -> str:
    """The table's rows, the paper's figures, the protocol and the exact commands, as text."""
    p = table.protocol
    lines = [f"{table.name}: {table.title}",
             f"protocol: condgan eval {' '.join(p.eval_args())}" + (f" ({p.note})" if p.note else ""),
             *([f"note: {table.note}"] if table.note else []), ""]
    todo = jobs(table, seeds, out, sets, device, nproc)
    for row in table.rows:
        figures = ", ".join(f"{k} {v}" for k, v in row.paper.items()) or "not in the paper"
        lines.append(f"{row.label}  [{row.preset}]  paper: {figures}" + (f"  ({row.note})" if row.note else ""))
        lines += [f"  {shlex.join(c)}" for job in todo if job.label == row.label for c in (job.train, job.eval)]
    return "\n".join(lines)


def run(table: Table, seeds: list[int], out: Path, sets: list[str] = (), device: str = "cpu",
        nproc: int = 1, echo=print) -> Path:
    """Train and evaluate every unfinished row x seed, then write ``OUT/<table>.md``; returns its path.

    One reproduce at a time owns ``OUT`` (its rows' run dirs and tables): a second is refused at once.
    """
    out.mkdir(parents=True, exist_ok=True)
    lock = _own(out)
    try:
        todo = jobs(table, seeds, out, sets, device, nproc)
        for i, job in enumerate(todo, 1):
            _run_job(table, job, f"[{i}/{len(todo)}] {job.label} ({job.preset}, seed {job.seed})", echo)
        path = out / f"{table.name}.md"
        write_text_atomic(path, markdown(table, todo, device) + "\n")
    finally:
        os.close(lock)
    echo(f"wrote {path}")
    return path


def _own(out: Path) -> int:
    """The exclusive lock of ``OUT/.reproduce.lock`` (an open fd); a ReproduceError when another holds it."""
    try:
        return take_lock(out / LOCK)
    except LockHeld as held:
        who = f" (pid {held.pid})" if held.pid else ""
        raise ReproduceError(f"another condgan reproduce{who} is running in {out}; wait for it to finish, or "
                             f"give this one another --out") from None


def _run_job(table: Table, job: Job, head: str, echo) -> None:
    """Train and evaluate one row x seed unless its record says it is finished."""
    if _finished(job):
        echo(f"{head}: finished before, skipped")
        return
    job.run_dir.mkdir(parents=True, exist_ok=True)
    (job.run_dir / "diverged.json").unlink(missing_ok=True)
    times = {}
    for what, command in (("train", job.train), ("eval", job.eval)):
        echo(f"{head}: {what} ...")
        start = time.perf_counter()
        code, last = _run_logged(command, job.run_dir / "reproduce.log")
        times[what] = time.perf_counter() - start
        if code == 130:  # Ctrl-C reached the child too: stop here; a rerun resumes this row
            raise KeyboardInterrupt
        if code == 3:  # diverged: the table records it and goes on
            write_text_atomic(job.run_dir / "diverged.json", json.dumps({"error": last}) + "\n")
            echo(f"{head}: diverged ({last})")
            return
        if code != 0:
            raise ReproduceError(f"{table.name} row {job.label!r} seed {job.seed}: `{shlex.join(command)}` "
                                 f"failed (exit {code}): {last} (log: {job.run_dir / 'reproduce.log'})")
    write_text_atomic(job.run_dir / "reproduce_times.json", json.dumps(times) + "\n")
    echo(f"{head}: done in {sum(times.values()) / 60:.1f} min")


def _finished(job: Job) -> bool:
    """Whether the job's eval record is there and readable. A damaged one (a killed disk, an editor) is moved
    aside, with a warning, and the row counts as unfinished: evaluating it again loses nothing."""
    if not (job.record.exists() or job.record.is_symlink()):
        return False
    problem = _record_problem(job.record)
    if problem is None:
        return True
    aside = _aside(job.record)
    os.rename(job.record, aside)
    warn(f"{job.record} cannot be used ({problem}); kept as {aside}, evaluating {job.label!r} seed {job.seed} "
         f"again")
    return False


def _record_problem(path: Path) -> str | None:
    """Why ``path`` is not an eval record condgan eval wrote (None when it is one)."""
    if path.is_symlink() or not path.is_file():
        return "not a regular file"
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {' '.join(str(e).split())}" if str(e) else type(e).__name__
    if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
        return "no 'metrics' record in it"
    return None


def _aside(path: Path) -> Path:
    """``<path>.damaged``, or ``.damaged-2``, ``-3``, ... : a name no earlier damaged file has."""
    candidate, n = path.with_name(f"{path.name}.damaged"), 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}.damaged-{n}")
    return candidate


def _run_logged(command: list[str], log: Path) -> tuple[int, str]:
    """Run ``command`` (``condgan`` as this interpreter's module), output appended to ``log``; (exit, last line)."""
    argv = [sys.executable, "-m", "condgan", *command[1:]] if command[0] == "condgan" else command
    with log.open("a") as f:
        f.write(f"$ {shlex.join(command)}\n")
        f.flush()
        start = f.tell()
        proc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT)
    with log.open("rb") as f:  # only what this command wrote, not the log of every earlier command
        f.seek(start)
        tail = [line for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    return proc.returncode, (tail[-1] if tail else "")


# ------------------------------------------------------------------------------------------------ report
def collect(job: Job) -> dict:
    """The job's outcome: {'metrics': {...}} from its eval record, {'diverged': msg}, or {} (not run). A side
    file that cannot be read (times, divergence) is warned about and counts as absent."""
    if _record_problem(job.record) is None:
        metrics = json.loads(job.record.read_bytes())["metrics"]
        times = _side_file(job.run_dir / "reproduce_times.json")
        return {"metrics": metrics, "times": times if isinstance(times, dict) else {}}
    diverged = _side_file(job.run_dir / "diverged.json")
    if isinstance(diverged, dict):
        return {"diverged": str(diverged.get("error", "see reproduce.log"))}
    return {}


def _side_file(path: Path) -> object:
    """The JSON in ``path``, None if it is absent or (with a warning) unreadable."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        warn(f"ignoring unreadable {path} ({type(e).__name__}); the table shows it as missing")
        return None


def mean_std(values: list[float]) -> str:
    """``mean ± sample std`` (one value: the value alone)."""
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4g} ± {std:.2g}"


def markdown(table: Table, todo: list[Job], device: str) -> str:
    """Paper vs condgan per row (mean ± std over the finished seeds), then the Fig. 2 diagnostics if logged."""
    measured = [c for c in table.columns if CONDGAN_KEYS.get(c)]
    primary, *further = table.protocol.backbones
    spaces = [(c, None) for c in measured] + [(c, b) for b in further for c in measured if c in FEATURE_SPACE_KEYS]
    head = ["row", "preset", *[f"paper {c}" for c in table.columns],
            *[f"condgan {c} ({b or primary})" for c, b in spaces], "seeds", "train min / seed"]
    lines = [f"### {table.name}: {table.title}", "",
             f"condgan {__version__}, {time.strftime('%Y-%m-%d')}, {_hardware(device)}; protocol: `condgan eval "
             f"{' '.join(table.protocol.eval_args())}`; mean ± sample std over seeds", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        outcomes = [(j.seed, collect(j)) for j in todo if j.label == row.label]
        done = [o for _, o in outcomes if "metrics" in o]
        cells = [row.label, f"`{row.preset}`", *[_fmt(row.paper.get(c)) for c in table.columns]]
        values = {(c, b): [_value(o["metrics"], CONDGAN_KEYS[c], b) for o in done] for c, b in spaces}
        cells += [mean_std([v for v in values[key] if _number(v)]) for key in spaces]  # a damaged value: left out
        diverged = [f"seed {s} diverged" for s, o in outcomes if "diverged" in o]
        cells += [", ".join([f"{len(done)}/{len(outcomes)}", *diverged]),
                  mean_std([o["times"]["train"] / 60 for o in done if _number(o["times"].get("train"))])]
        lines.append("| " + " | ".join(cells) + " |")
    diag = diagnostics_table(table, todo)
    return "\n".join(lines + ([""] + diag if diag else []))


def _value(metrics: dict, key: str, backbone: str | None) -> object:
    """``key`` of the primary backbone's values, or of ``backbone``'s (its ``by_backbone`` entry)."""
    if backbone is None:
        return metrics.get(key)
    own = metrics.get("by_backbone")
    return own.get(backbone, {}).get(key) if isinstance(own, dict) and isinstance(own.get(backbone), dict) else None


def diagnostics_table(table: Table, todo: list[Job]) -> list[str]:
    """ReACGAN Fig. 2 from the runs' logs: D's feature norm, the conditional loss's gradient norms w.r.t. the
    head's weight and the features, and the target-class probability on reals (each over tenths of the logged
    steps: the first, the largest and the last tenth's mean, then averaged over seeds), and the FID of the
    periodic evaluations (first, last, best)."""
    out = []
    for row in table.rows:
        logs = [read_records(j.run_dir / "metrics.jsonl") for j in todo if j.label == row.label]
        logs = [log for log in logs if log]
        if not logs:
            continue
        cells = [row.label]
        for key in DIAGNOSTICS:
            series = [[r[key] for r in log if _number(r.get(key))] for log in logs]  # a damaged line: left out
            series = [s for s in series if s]
            cells += [_first_peak_last(series)] if series else ["—"]
        fids = [[r["eval"]["fid"] for r in log if isinstance(r.get("eval"), dict) and _number(r["eval"].get("fid"))]
                for log in logs]
        fids = [f for f in fids if f]
        cells.append(" / ".join(mean_std([f[i] for f in fids]) for i in (0, -1)) + " (best " +
                     mean_std([min(f) for f in fids]) + ")" if fids else "—")
        out.append("| " + " | ".join(cells) + " |")
    if not out:
        return []
    head = ["row", *(f"{name} (first → peak → last tenth)" for name in DIAGNOSTICS.values()),
            "FID first / last eval"]
    return ["Training diagnostics (ReACGAN Fig. 2):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *out]


def _first_peak_last(series: list[list[float]]) -> str:
    """'first → peak → last' of each series' tenths (block means), averaged over the series (seeds)."""
    def tenths(s: list[float]) -> list[float]:
        bounds = [round(i * len(s) / 10) for i in range(11)]
        blocks = [s[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
        return [sum(b) / len(b) for b in blocks]
    picks = [(t[0], max(t), t[-1]) for t in map(tenths, series)]
    return " → ".join(f"{sum(p[i] for p in picks) / len(picks):.3g}" for i in range(3))


def _number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (not a bool): what a table cell can average."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _hardware(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}"
    return f"CPU {_cpu_name()}, {torch.get_num_threads()} threads"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

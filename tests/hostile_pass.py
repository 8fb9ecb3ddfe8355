"""A hostile user's pass over every command (DESIGN.md section 9), as real ``condgan`` processes: kills, races between
two commands, bad files, bad values, a full disk and read-only places. Prints one table row per scenario: exit code,
the last line condgan printed on stderr, what was kept, and a verdict (a traceback, a lost file or an unexpected exit
code fails it).

    sudo python tests/hostile_pass.py [--work /tmp/hostile_pass] [--only SUBSTRING]

Linux and root only: the full-disk and read-only scenarios mount small tmpfs folders (root ignores chmod). Not
collected by pytest; the findings it led to are tests in the hostile test modules.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

TINY = ["model.g_width=8", "model.d_width=8", "model.z_dim=8", "model.embed_dim=16", "train.batch_size=16",
        "train.log_every=1", "train.sample_every=100", "train.ema_start=2", "eval.num_samples=20"]


@dataclass
class Row:
    name: str
    code: int
    message: str
    kept: str
    ok: bool


class Pass:
    """The work folder, the shared fixtures (a finished run, a folder dataset) and the scenario runner."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {**os.environ, "CONDGAN_CACHE": str(work / "cache"), "PYTHONUNBUFFERED": "1"}
        self.rows: list[Row] = []

    def cg(self, *args: str, timeout: float = 600, env: dict | None = None, cwd: Path | None = None):
        """``python -m condgan args`` -> CompletedProcess (text)."""
        return subprocess.run([sys.executable, "-m", "condgan", *args], capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **(env or {})}, cwd=cwd)

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "condgan", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, **(env or {})},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even from a bg job

    def train_args(self, out: Path, *sets: str) -> list[str]:
        return ["train", "--preset", "mnist5k-reacgan", "--out", str(out), "--no-progress", "--no-eval"] + [
            a for s in TINY + list(sets) for a in ("--set", s)]

    def fresh(self, name: str) -> Path:
        folder = self.work / "scenarios" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def run(self, name: str, scenario: Callable[[Path], tuple], codes: tuple[int, ...]) -> None:
        """Run one scenario: it returns (exit code, stderr, what was kept, kept is right)."""
        try:
            code, err, kept, kept_ok = scenario(self.fresh(name))
        except Exception as e:  # a scenario's own failure is a failed row, not the end of the pass
            code, err, kept, kept_ok = -1, f"scenario failed: {type(e).__name__}: {e}", "?", False
        lines = [line for line in err.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else ""
        clean = "Traceback" not in err and all(
            line.startswith(("condgan: ", "resuming", "training done")) or not line.startswith(" ")
            for line in lines)
        ok = clean and code in codes and kept_ok
        self.rows.append(Row(name, code, message, kept, ok))
        print(f"| {name} | {code} | {message[:150]} | {kept} | {'ok' if ok else 'FAIL'} |", flush=True)


def write_png(path: Path, seed: int, size: int = 40) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def afhq_folder(root: Path, classes=("cat", "dog"), per_class: int = 6, size: int = 40) -> Path:
    for split in ("train", "val"):
        for c, name in enumerate(classes):
            for i in range(per_class):
                write_png(root / split / name / f"{i}.png", 1000 * c + i + (0 if split == "train" else 500), size)
    return root


def after_first_chunk(cache: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until prepare has logged a finished chunk of its first split (so a kill lands mid-store)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(log.read_text().strip() for log in cache.glob("stores/*/*.partial/done.log")):
            return
        time.sleep(0.05)


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != ".lock" and not p.name.startswith(".")}


def mount_tmpfs(folder: Path, size: str, read_only: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    if read_only:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def fill(path: Path) -> None:
    """Fill the file system of ``path`` to its last byte."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (bytes(4096), b"x"):  # whole blocks, then the last bytes
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass


def unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=False)


def read_only(folder: Path) -> Path:
    """A read-only copy of ``folder`` (a tmpfs holding it, remounted read-only) at ``folder``-ro."""
    target = folder.parent / (folder.name + "-ro")
    mount_tmpfs(target, "64m")
    shutil.copytree(folder, target, dirs_exist_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
    return target


# -- the scenarios: each takes its own fresh folder and returns (exit code, stderr, what was kept, kept is right) --

def scenarios(hp: Pass) -> list[tuple[str, Callable[[Path], tuple], tuple[int, ...]]]:
    base = hp.work / "base_run"
    ckpts = lambda run: sorted((run / "checkpoints").glob("*.pt"))  # noqa: E731

    def copy_run(d: Path) -> Path:
        return Path(shutil.copytree(base, d / "run"))

    def result(p, kept: str, kept_ok: bool) -> tuple:
        return p.returncode, p.stderr, kept, kept_ok

    def kill_after(proc: subprocess.Popen, seconds: float, sig=signal.SIGKILL) -> tuple[int, str]:
        time.sleep(seconds)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err

    # kills
    def kill_train(d):
        run = d / "run"
        proc = hp.start(*hp.train_args(run, "train.steps=400", "train.ckpt_every=5"))
        deadline = time.time() + 120
        while time.time() < deadline and len(ckpts(run)) < 1:
            time.sleep(0.2)
        code, err = kill_after(proc, 1.0)
        again = hp.cg(*hp.train_args(run, "train.steps=400", "train.ckpt_every=5"), timeout=900)
        return again.returncode, err + again.stderr, f"killed at {code}; resumed: {again.stdout.splitlines()[:1]}", \
            "resuming from" in again.stdout

    def kill_sample(d):
        out = d / "s.npz"
        proc = hp.start("sample", str(base), "--out", str(out), "--format", "npz", "--per-class", "3000")
        code, err = kill_after(proc, 6.0)
        return code, err, f"{out.name} exists: {out.exists()}", not out.exists()

    def interrupt_sample(d):
        out = d / "s.npz"
        proc = hp.start("sample", str(base), "--out", str(out), "--format", "npz", "--per-class", "3000")
        code, err = kill_after(proc, 6.0, signal.SIGINT)
        left = [p.name for p in d.iterdir()]
        return code, err, f"left in folder: {left}", left == []

    def kill_eval(d):
        run = copy_run(d)
        first = hp.cg("eval", str(run), "--num", "20")
        before = (run / "eval.json").read_bytes()
        proc = hp.start("eval", str(run), "--num", "2000")
        code, err = kill_after(proc, 8.0)
        after = (run / "eval.json").read_bytes()
        return code, first.stderr + err, "eval.json unchanged" if before == after else "eval.json changed", \
            first.returncode == 0 and before == after

    def kill_prepare(d):
        root = afhq_folder(d / "afhq", per_class=300, size=200)
        cache = {"CONDGAN_CACHE": str(d / "cache")}
        proc = hp.start("prepare", "--data", "afhq", "--root", str(root), "--resolution", "32", "--workers", "1",
                        env=cache)
        after_first_chunk(d / "cache", proc)
        code, err = kill_after(proc, 0.0)
        again = hp.cg("prepare", "--data", "afhq", "--root", str(root), "--resolution", "32", env=cache)
        counts = [line.split(":")[1].split(" images")[0].strip() for line in again.stdout.splitlines()
                  if line.startswith("afhq ")]
        return again.returncode, err + again.stderr, f"killed ({code}); rerun: {counts} images", \
            code == -9 and counts == ["600", "600"]

    def interrupt_prepare(d):
        root = afhq_folder(d / "afhq", per_class=300, size=200)
        proc = hp.start("prepare", "--data", "afhq", "--root", str(root), "--resolution", "32", "--no-progress",
                        env={"CONDGAN_CACHE": str(d / "cache")})
        after_first_chunk(d / "cache", proc)
        code, err = kill_after(proc, 0.0, signal.SIGINT)
        done = sum(log.read_text().count("\n") for log in (d / "cache").glob("stores/*/*.partial/done.log"))
        lines = len(err.strip().splitlines())
        return code, err, f"{lines} line(s) on stderr; {done} finished chunk(s) kept", lines == 1 and done >= 1

    # races between two commands
    def two_trains(d):
        run = d / "run"
        first = hp.start(*hp.train_args(run, "train.steps=200"))
        time.sleep(6)
        second = hp.cg(*hp.train_args(run, "train.steps=200"))
        first.kill()
        first.communicate()
        return result(second, "second refused; first owned the run", second.returncode == 2)

    def eval_while_training(d):
        run = copy_run(d)
        trainer = hp.start(*hp.train_args(run, "train.steps=300", "train.ckpt_every=2"))
        time.sleep(4)
        ev = hp.cg("eval", str(run), "--num", "20", "--out", str(d / "e.json"))
        trainer.kill()
        trainer.communicate()
        return result(ev, f"eval.json written: {(d / 'e.json').exists()}", ev.returncode == 0)

    def two_samples_one_out(d):
        out = d / "grid.png"
        procs = [hp.start("sample", str(base), "--out", str(out), "--grid", "--seed", str(s)) for s in (0, 1)]
        outs = [p.communicate(timeout=300) for p in procs]
        codes = sorted(p.returncode for p in procs)
        wrote = sum("wrote" in o for o, _ in outs)
        return codes[-1], outs[0][1] + outs[1][1], f"exits {codes}, {wrote} said wrote", codes == [0, 2] and wrote == 1

    def two_evals_one_run(d):
        run = copy_run(d)
        hp.cg("eval", str(run), "--num", "20")  # the classifier exists before the race
        procs = [hp.start("eval", str(run), "--num", "20", "--seed", str(s)) for s in (1, 2)]
        errs = [p.communicate(timeout=600)[1] for p in procs]
        history = json.loads((run / "eval.json").read_text())
        n = len(history) if isinstance(history, list) else len(history.get("history", [history]))
        return max(p.returncode for p in procs), "".join(errs), f"records in eval.json: {n}", n >= 3

    def two_prepares(d):
        root = afhq_folder(d / "afhq", per_class=60)
        env = {"CONDGAN_CACHE": str(d / "cache")}
        procs = [hp.start("prepare", "--data", "afhq", "--root", str(root), "--resolution", "32", env=env)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        codes = sorted(p.returncode for p in procs)
        return codes[-1], outs[0][1] + outs[1][1], f"exits {codes}", codes[0] == 0

    def two_reproduce(d):
        sets = [a for s in TINY + ["train.steps=2"] for a in ("--set", s)]
        first = hp.start("reproduce", "mnist5k-t3", "--run", "--seeds", "0", "--out", str(d / "r"), *sets)
        time.sleep(5)
        second = hp.cg("reproduce", "mnist5k-t3", "--run", "--seeds", "0", "--out", str(d / "r"), *sets)
        first.kill()
        first.communicate()
        return result(second, "second refused while the first owns OUT", second.returncode == 2)

    def two_plots(d):
        out = d / "imported"
        procs = [hp.start("plot", str(base), "--out", str(out)) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        codes = sorted(p.returncode for p in procs)
        return codes[-1], outs[0][1] + outs[1][1], f"plot twice at once: exits {codes}", codes[0] == 0

    return [
        ("kill -9 train mid-run, rerun", kill_train, (0,)),
        ("kill -9 sample mid-generation", kill_sample, (-9,)),
        ("Ctrl-C sample mid-generation", interrupt_sample, (130,)),
        ("kill -9 eval mid-scoring", kill_eval, (-9,)),
        ("kill -9 prepare mid-decode, rerun", kill_prepare, (0,)),
        ("Ctrl-C prepare", interrupt_prepare, (130,)),
        ("two train on one run dir", two_trains, (2,)),
        ("eval while train writes checkpoints", eval_while_training, (0,)),
        ("two sample --grid to one file", two_samples_one_out, (2,)),
        ("two eval on one run", two_evals_one_run, (0,)),
        ("two prepare of one store", two_prepares, (0, 2)),
        ("two reproduce on one OUT", two_reproduce, (2,)),
        ("two plot to one folder", two_plots, (0, 2)),
    ] + bad_inputs(hp, base, copy_run, result)


def bad_inputs(hp: Pass, base: Path, copy_run, result) -> list:
    """Bad files, bad values, a full disk and read-only places: each must be one line, exit 2, nothing changed."""
    def one_line(p) -> bool:
        return p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1

    def refused(*args: str, env: dict | None = None):
        def scenario(d):
            p = hp.cg(*[a.replace("{d}", str(d)) for a in args], env=env)
            return result(p, f"folder after: {sorted(x.name for x in d.iterdir())}", one_line(p))
        return scenario

    def damaged_ckpt(how: str, command: str):
        def scenario(d):
            run = copy_run(d)
            newest = sorted((run / "checkpoints").glob("*.pt"))[-1]
            raw = newest.read_bytes()
            newest.write_bytes(b"" if how == "empty" else raw[: len(raw) // 2] if how == "truncated"
                               else raw[:200] + bytes(200) + raw[400:])
            before = files_of(run)
            args = {"sample": ["sample", str(run), "--out", str(d / "o.png"), "--grid"],
                    "eval": ["eval", str(run), "--num", "20"], "train": hp.train_args(run, "train.steps=6")}[command]
            p = hp.cg(*args)
            if command == "train":  # resumes from the older checkpoint; the damaged one is kept, not deleted
                kept = newest.exists() or any(run.rglob(newest.name + "*"))
                return result(p, f"damaged checkpoint kept: {kept}", kept and p.returncode in (0, 2))
            same = files_of(run) == before
            return result(p, "run unchanged" if same else "run changed", same and p.returncode in (0, 2))
        return scenario

    def npz(images, labels, extra=None):
        def scenario(d):
            path = d / "data.npz"
            np.savez(path, **{"images": images, "labels": labels, **(extra or {})})
            p = hp.cg(*hp.train_args(d / "run", "data.name=npz", f"data.root={path}", "train.steps=2"))
            return result(p, f"run dir made: {(d / 'run').exists()}", one_line(p))
        return scenario

    def garbled_log(content: bytes):
        def scenario(d):
            run = copy_run(d)
            (run / "metrics.jsonl").write_bytes(content)
            p = hp.cg("plot", str(run), "--out", str(d / "plots"))
            return result(p, f"plots: {sorted(x.name for x in (d / 'plots').glob('*'))}", p.returncode in (0, 2)
                          and len(p.stderr.strip().splitlines()) <= 1)
        return scenario

    def full_disk(command: str):
        def scenario(d):
            full = d / "full"
            mount_tmpfs(full, "200k")
            try:
                fill(full / "filler")
                args = {"sample": ["sample", str(base), "--out", str(full / "s.npz"), "--format", "npz",
                                   "--per-class", "300", "--no-progress"],
                        "eval": ["eval", str(base), "--num", "20", "--out", str(full / "e.json"), "--no-progress"],
                        "plot": ["plot", str(base), "--out", str(full / "plots")],
                        "train": hp.train_args(full / "run", "train.steps=2")}[command]
                p = hp.cg(*args)
                left = sorted(x.name for x in full.iterdir())
                return result(p, f"left: {left}", one_line(p) and "No space" in p.stderr and str(full) in p.stderr
                              and not any(n.endswith(".tmp") for n in left))
            finally:
                unmount(full)
        return scenario

    def read_only_place(command: str):
        def scenario(d):
            ro = d / "ro"
            mount_tmpfs(ro, "1m", read_only=True)
            try:
                args = {"sample": ["sample", str(base), "--out", str(ro / "g.png"), "--grid"],
                        "eval": ["eval", str(base), "--num", "20", "--out", str(ro / "e.json")],
                        "plot": ["plot", str(base), "--out", str(ro)],
                        "train": hp.train_args(ro / "run"),
                        "reproduce": ["reproduce", "mnist5k-t3", "--run", "--out", str(ro / "r")]}[command]
                p = hp.cg(*args)
                return result(p, "nothing written (read-only)", one_line(p) and "Read-only" in p.stderr)
            finally:
                unmount(ro)
        return scenario

    def run_read_only(command: str):
        def scenario(d):
            ro = read_only(copy_run(d))
            try:
                args = {"sample": ["sample", str(ro), "--out", str(d / "g.png"), "--grid"],
                        "eval-out": ["eval", str(ro), "--num", "20", "--out", str(d / "e.json")],
                        "plot": ["plot", str(ro), "--out", str(d / "plots")]}[command]
                p = hp.cg(*args)
                return result(p, "read from a read-only run", p.returncode == 0)
            finally:
                unmount(ro)
        return scenario

    def store_in_read_only_cache(d):
        root = afhq_folder(d / "afhq", per_class=10)
        cache = d / "cache"
        first = hp.cg("prepare", "--data", "afhq", "--root", str(root), "--resolution", "32",
                      env={"CONDGAN_CACHE": str(cache)})
        ro = read_only(cache)
        try:
            p = hp.cg(*hp.train_args(d / "run", "data.name=afhq", f"data.root={root}", "data.resolution=32",
                                     "model.arch=dcgan", "train.steps=2"), env={"CONDGAN_CACHE": str(ro)})
            return result(p, f"prepare {first.returncode}; trained from the read-only store", p.returncode == 0)
        finally:
            unmount(ro)

    def bad_studiogan(content: bytes):
        def scenario(d):
            ck = d / "model=G-best-weights-step=1.pth"
            ck.write_bytes(content)
            p = hp.cg("import-studiogan", str(ck), "--preset", "cifar10-reacgan", "--out", str(d / "imp"))
            return result(p, f"out made: {(d / 'imp').exists()}", one_line(p) and not (d / "imp").exists())
        return scenario

    def edited_run_config(d):
        run = copy_run(d)
        (run / "config.yaml").write_text("model: {arch: [unclosed\n")
        before = files_of(run)
        p = hp.cg("sample", str(run), "--out", str(d / "g.png"), "--grid")
        return result(p, "run unchanged" if files_of(run) == before else "run changed",
                      files_of(run) == before and p.returncode in (0, 2))

    x = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    return [
        ("sample from an empty checkpoint", damaged_ckpt("empty", "sample"), (0, 2)),
        ("eval of a truncated checkpoint", damaged_ckpt("truncated", "eval"), (0, 2)),
        ("sample from a checkpoint with zeroed bytes", damaged_ckpt("zeroed", "sample"), (0, 2)),
        ("train resumes past a damaged newest checkpoint", damaged_ckpt("truncated", "train"), (0, 2)),
        ("run config.yaml garbled, then sample", edited_run_config, (0, 2)),
        ("npz with float images", npz(x.astype(np.float32) * 7, y), (2,)),
        ("npz labels out of range", npz(x, y + 100, {"class_names": np.array(list("abcd"))}), (2,)),
        ("train on a missing npz file", refused("train", "--preset", "mnist5k-reacgan", "--out", "{d}/run", "--set",
                                                "data.name=npz", "--set", "data.root={d}/missing.npz"), (2,)),
        ("npz of one image", npz(x[:1], y[:1]), (2,)),
        ("plot of a binary metrics.jsonl", garbled_log(os.urandom(4096)), (0, 2)),
        ("plot of an empty metrics.jsonl", garbled_log(b""), (0, 2)),
        ("plot of a log with 1e308 and NaN", garbled_log(b'{"step": 1, "d_loss": 1e308}\n{"step": 2, "d_loss": NaN}\n'
                                                         b'{"step": 3, "d_loss": -1e308}\n{"step": 4, "d_loss": 1}\n'),
         (0,)),
        ("plot of a log whose every value is NaN", garbled_log(b'{"step": 1, "d_loss": NaN}\n'), (2,)),
        ("import of random bytes", bad_studiogan(os.urandom(3000)), (2,)),
        ("import of an empty file", bad_studiogan(b""), (2,)),
        ("import of a zip that is not torch's", bad_studiogan(b"PK\x03\x04" + bytes(100)), (2,)),
        ("sample --per-class -1", refused("sample", str(base), "--out", "{d}/g.png", "--per-class", "-1"), (2,)),
        ("sample --truncation nan", refused("sample", str(base), "--out", "{d}/g.png", "--truncation", "nan"), (2,)),
        ("sample --classes 999", refused("sample", str(base), "--out", "{d}/g.png", "--classes", "999"), (2,)),
        ("sample --seed -1", refused("sample", str(base), "--out", "{d}/g.png", "--seed", "-1"), (2,)),
        ("sample --out into a missing folder", refused("sample", str(base), "--out", "{d}/no/such/g.png", "--grid"),
         (2,)),
        ("eval --num 0", refused("eval", str(base), "--num", "0"), (2,)),
        ("eval --batch-size 0", refused("eval", str(base), "--batch-size", "0"), (2,)),
        ("eval --metrics bogus", refused("eval", str(base), "--metrics", "fid,bogus"), (2,)),
        ("eval --inception-weights a folder", refused("eval", str(base), "--backbone", "inception",
                                                      "--inception-weights", "{d}"), (2,)),
        ("eval of a folder that is no run", refused("eval", "{d}"), (2,)),
        ("train --set train.steps=-5", refused(*hp.train_args(Path("{d}/run"), "train.steps=-5")), (2,)),
        ("train --set data.subset=1e20", refused(*hp.train_args(Path("{d}/run"), "data.subset=1e20")), (2,)),
        ("train --config a folder", refused("train", "--config", "{d}", "--out", "{d}/run"), (2,)),
        ("prepare --workers -3", refused("prepare", "--data", "afhq", "--root", "{d}", "--resolution", "32",
                                         "--workers", "-3"), (2,)),
        ("prepare of an empty folder", refused("prepare", "--data", "afhq", "--root", "{d}", "--resolution", "32"),
         (2,)),
        ("prepare --resolution 100000", refused("prepare", "--data", "afhq", "--root", "{d}", "--resolution",
                                                "100000"), (2,)),
        ("plot --out naming a file", refused("plot", str(base), "--out", str(base / "config.yaml")), (2,)),
        ("reproduce of an unknown table", refused("reproduce", "no-such-table"), (2,)),
        ("presets --show of an unknown preset", refused("presets", "--show", "nope"), (2,)),
        ("config keys of an unknown prefix", refused("config", "keys", "zzz."), (2,)),
        ("import-studiogan of a missing file", refused("import-studiogan", "{d}/nope.pth", "--preset", "cifar10-reacgan",
                                                       "--out", "{d}/o"), (2,)),
        ("sample to a full disk", full_disk("sample"), (2,)),
        ("eval --out to a full disk", full_disk("eval"), (2,)),
        ("plot to a full disk", full_disk("plot"), (2,)),
        ("train on a full disk", full_disk("train"), (2,)),
        ("sample --out in a read-only folder", read_only_place("sample"), (2,)),
        ("eval --out in a read-only folder", read_only_place("eval"), (2,)),
        ("plot --out in a read-only folder", read_only_place("plot"), (2,)),
        ("train into a read-only folder", read_only_place("train"), (2,)),
        ("reproduce into a read-only folder", read_only_place("reproduce"), (2,)),
        ("sample from a read-only run", run_read_only("sample"), (0,)),
        ("eval of a read-only run (--out elsewhere)", run_read_only("eval-out"), (0,)),
        ("plot of a read-only run", run_read_only("plot"), (0,)),
        ("train from a store in a read-only cache", store_in_read_only_cache, (0,)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/hostile_pass"))
    parser.add_argument("--only", default="", help="run the scenarios whose name contains one of these (|-separated)")
    args = parser.parse_args()
    hp = Pass(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / "base_run" / "checkpoints").is_dir():
        done = hp.cg(*hp.train_args(args.work / "base_run", "train.steps=4", "train.ckpt_every=2"))
        assert done.returncode == 0, done.stderr
    print("| scenario | exit | message (last stderr line) | kept | verdict |\n|---|---|---|---|---|")
    for name, scenario, codes in scenarios(hp):
        if any(part in name for part in args.only.split("|")):
            hp.run(name, scenario, codes)
    failed = [r.name for r in hp.rows if not r.ok]
    print(f"\n{len(hp.rows)} scenarios, {len(failed)} failed" + (f": {failed}" if failed else ""))


if __name__ == "__main__":
    main()

"""Every benchmark script still starts and still runs: each imports and parses ``--help``; the GPU suite runs
whole at its smallest (``REDUCED=1``), and every other script that needs no reference checkout runs its main at
its tiniest settings. The lent-GPU time of a session is never spent discovering a script that no longer starts.
(The scripts that compare against a reference checkout — StudioGAN, stylegan2-ada-pytorch, the official FastGAN —
cannot run without one; CI imports them and parses their --help.)"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))


# In one child process (one torch import for all): import each script and run its main with --help.
STARTS = """
import contextlib, importlib, io, sys
sys.path[:0] = [sys.argv[1]]
for name in sys.argv[2:]:
    module = importlib.import_module(name)
    if hasattr(module, "main"):
        sys.argv = [name + ".py", "--help"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                module.main()
            except SystemExit as e:
                assert e.code == 0, (name, e.code)
        assert "usage" in out.getvalue(), name
    print("started", name)
"""


def test_every_benchmark_script_starts():
    """Each script imports and its main parses --help (a helper module without a main imports)."""
    names = [Path(s).stem for s in SCRIPTS]
    done = subprocess.run([sys.executable, "-c", STARTS, str(BENCHMARKS), *names], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split().count("started") == len(names)


def test_the_gpu_suite_runs_whole_at_its_smallest(tmp_path):
    """REDUCED=1: every section (step_bench's three rows, data_bench, metrics_bench, feature extraction) at tiny
    widths and sizes."""
    env = {**os.environ, "REDUCED": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu_suite.sh")], capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    sections = [line for line in done.stdout.splitlines() if line.startswith("(") and ": exit " in line]
    assert len(sections) == 7 and all(": exit 0," in line for line in sections), sections
    style = next(line for line in done.stdout.splitlines() if line.startswith("condgan fp32") and " 4 " in line)
    assert float(style.split()[3]) > 0  # ms per iteration
    assert (tmp_path / "gpu_suite.log").read_text().count(": exit 0,") == 7
    features = [line.split() for line in done.stdout.splitlines() if line.startswith(("dinov2 ", "swav "))]
    assert [row[0] for row in features] == ["dinov2", "swav"] and all(float(row[3]) > 0 for row in features)


# The smallest run of each script that needs no reference checkout (the GPU suite's scripts run above).
SMALLEST = {
    "augment_bench": ["--methods", "none,ada", "--steps", "2", "--seeds", "0", "--num", "20", "--log-every", "1",
                      "--time-iters", "1"],
    "conditioning_bench": ["--methods", "none,d2d_ce", "--steps", "2", "--num", "20"],
    "fastgan_bench": ["--methods", "d2d_ce,fastgan", "--budget", "1", "--points", "1", "--num", "20"],
    "scale_bench": ["--rows", "tiny-reacgan", "--batches", "1,2", "--set", "model.g_width=8", "--set",
                    "model.d_width=8", "--smallest"],
}


@pytest.mark.parametrize("name", sorted(SMALLEST))
def test_benchmark_runs_at_its_smallest(name, tmp_path, monkeypatch, capsys, quick_private_cache):
    """The script's main, in this process, with a private cache and a one-epoch judge (seconds, not minutes)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    out = ["--out", str(tmp_path / "runs")] if name != "scale_bench" else []
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *SMALLEST[name], *out])
    importlib.import_module(name).main()
    printed = capsys.readouterr().out
    assert printed.strip(), name
    assert "nan" not in printed.lower().replace("nan_", ""), printed[-2000:]

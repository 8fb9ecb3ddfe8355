"""Every benchmark script still starts: imported (its condgan and sibling imports resolve) and its command line
parses ``--help``; the StyleGAN2 step benchmark runs one iteration at a tiny width. The lent-GPU time of a session
is never spent discovering a script that no longer starts (benchmarks/gpu_suite.sh runs them)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_step_bench_times_a_stylegan2_iteration():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "step_bench.py"), "--preset", "cifar10-stylegan2-d2dce",
                           "--batches", "4", "--options", "fp32", "--warmup", "1", "--iterations", "1",
                           "--set", "model.channel_max=8", "--set", "model.mbstd_group=4", "--set", "model.z_dim=16",
                           "--set", "model.w_dim=16", "--set", "model.embed_dim=8"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("condgan fp32"))
    assert float(row.split()[3]) > 0  # ms per iteration

"""``condgan plot RUN_DIR``: PNG plots of a run's ``metrics.jsonl`` against the step (matplotlib, headless).

One figure per family, one panel per logged value: ``losses.png`` (every D and G term and the weighted sums),
``learning_rates.png``, ``diagnostics.png`` (D's feature norm and ReACGAN Fig. 2's gradient norms and target
probability, where logged), ``speed.png`` (iterations per second) and ``eval.png`` (every periodic evaluation
metric). Families with nothing logged are not drawn.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..files import read_records
from ..metrics.errors import EvalError

DIAGNOSTICS = ("d_feat_norm", "d_head_grad_norm", "d_cond_grad_norm", "d_p_target")


def split_records(path: Path) -> tuple[list[dict], list[dict]]:
    """(training records, evaluation records) of a metrics.jsonl; unreadable lines are skipped."""
    records = read_records(path)
    return ([r for r in records if not isinstance(r.get("eval"), dict)],
            [r for r in records if isinstance(r.get("eval"), dict)])


def series(records: list[dict], keys: list[str]) -> dict[str, tuple[list[int], list[float]]]:
    """key -> (steps, values) over the records holding a finite number for it."""
    out = {}
    for key in keys:
        points = [(r["step"], float(r[key])) for r in records
                  if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
                  and math.isfinite(float(r[key]))]
        if points:
            out[key] = ([s for s, _ in points], [v for _, v in points])
    return out


def families(train: list[dict], evals: list[dict]) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """File stem -> the series it plots."""
    keys = sorted({k for r in train for k in r})
    losses = [k for k in keys if k.startswith(("d_", "g_")) and k not in DIAGNOSTICS]
    flat_evals = [{"step": r["step"], **r["eval"]} for r in evals]
    eval_keys = sorted({k for r in flat_evals for k in r if k != "step"})
    out = {"losses": series(train, losses), "learning_rates": series(train, ["lr_g", "lr_d"]),
           "diagnostics": series(train, list(DIAGNOSTICS)), "speed": series(train, ["it_per_s"]),
           "eval": series(flat_evals, eval_keys)}
    return {name: s for name, s in out.items() if s}


def draw(name: str, panels: dict[str, tuple[list[int], list[float]]], path: Path, title: str) -> None:
    """One figure of small panels (value against G step), written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import PendingFile

    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (key, (steps, values)) in zip(axes.flat, panels.items()):
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, linewidth=1)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("G step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: {name.replace('_', ' ')}", fontsize=10)
    fig.tight_layout()
    with PendingFile(path) as pending:
        pending.commit(lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def run_plot(args: argparse.Namespace) -> int:
    run = Path(args.run)
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise EvalError(f"no metrics.jsonl in {run}: give a run directory `condgan train` wrote")
    train, evals = split_records(log)
    plotted = families(train, evals)
    if not plotted:
        raise EvalError(f"{log} holds no training or evaluation record to plot")
    out = Path(args.out) if args.out else run / "plots"
    out.mkdir(parents=True, exist_ok=True)
    for name, panels in plotted.items():
        draw(name, panels, out / f"{name}.png", run.resolve().name)
        print(f"wrote {out / (name + '.png')} ({', '.join(panels)})")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="PNG plots of a run's losses, learning rates, diagnostics and evaluations")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="folder for the PNGs (default RUN/plots)")
    p.set_defaults(func=run_plot)

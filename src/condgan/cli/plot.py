"""``condgan plot RUN_DIR``: PNG plots of a run's ``metrics.jsonl`` against the step (matplotlib, headless).

One figure per family, one panel per logged value: ``losses.png`` (every D and G term and the weighted sums),
``learning_rates.png``, ``diagnostics.png`` (D's feature norm and ReACGAN Fig. 2's gradient norms and target
probability, where logged), ``speed.png`` (iterations per second) and ``eval.png`` (every periodic evaluation
metric). Families with nothing logged are not drawn.

A value that cannot be drawn (NaN, infinity, or beyond +-1e300, where matplotlib's axis arithmetic overflows)
is left out of its panel, and a warning says how many of each key were. ``plot`` replaces only figures it
wrote itself (PNGs carrying its ``Software`` stamp): any other file at a figure's name, a user's own
``losses.png`` in ``--out`` say, is a one-line error, and nothing is written.
"""
from __future__ import annotations

import argparse
import math
from collections import Counter
from functools import cache
from pathlib import Path

from ..files import read_records
from ..metrics.errors import EvalError
from ..notices import warn

DIAGNOSTICS = ("d_feat_norm", "d_head_grad_norm", "d_cond_grad_norm", "d_p_target")


LIMIT = 1e300  # larger magnitudes overflow matplotlib's tick and margin arithmetic
STAMP = "condgan plot"  # the PNG Software text of the figures this command writes


def split_records(path: Path) -> tuple[list[dict], list[dict]]:
    """(training records, evaluation records) of a metrics.jsonl; unreadable lines are skipped."""
    records = read_records(path)
    return ([r for r in records if not isinstance(r.get("eval"), dict)],
            [r for r in records if isinstance(r.get("eval"), dict)])


def drawable(value: object) -> bool:
    """Whether ``value`` is a number matplotlib can draw: not a bool, finite, within +-LIMIT."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value)) and abs(float(value)) <= LIMIT
    except OverflowError:  # a JSON integer beyond the float range
        return False


def series(records: list[dict], keys: list[str], left_out: Counter | None = None
           ) -> dict[str, tuple[list[int], list[float]]]:
    """key -> (steps, values) over the records holding a drawable number for it; ``left_out`` counts, per key,
    the numbers (NaN, infinity, out of range) that were not."""
    out = {}
    for key in keys:
        points = []
        for r in records:
            value = r.get(key)
            if drawable(value) and drawable(r["step"]):
                points.append((r["step"], float(value)))
            elif left_out is not None and key in r and (value is None or isinstance(value, (int, float))):
                left_out[key] += 1  # a number (or JSON's null for NaN) that cannot be drawn
        if points:
            out[key] = ([s for s, _ in points], [v for _, v in points])
    return out


def families(train: list[dict], evals: list[dict], left_out: Counter | None = None
             ) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """File stem -> the series it plots (``left_out``: see :func:`series`)."""
    keys = sorted({k for r in train for k in r})
    losses = [k for k in keys if k.startswith(("d_", "g_")) and k not in DIAGNOSTICS]
    flat_evals = [{"step": r["step"], **{in_space(k, r.get("backbone")): v for k, v in r["eval"].items()}}
                  for r in evals]
    eval_keys = sorted({k for r in flat_evals for k in r if k != "step"})
    out = {"losses": series(train, losses, left_out), "learning_rates": series(train, ["lr_g", "lr_d"], left_out),
           "diagnostics": series(train, list(DIAGNOSTICS), left_out), "speed": series(train, ["it_per_s"], left_out),
           "eval": series(flat_evals, eval_keys, left_out)}
    return {name: s for name, s in out.items() if s}


def in_space(key: str, backbone: object) -> str:
    """An evaluation value's panel title: ``fid (inception)`` for a value computed in a feature space (values of
    two spaces are never one curve); the classifier's accuracies and values of runs that did not record the
    space keep their bare name."""
    return f"{key} ({backbone})" if key in _spaced_values() and isinstance(backbone, str) else key


@cache
def _spaced_values() -> frozenset[str]:
    """The values of the metrics computed in each backbone's feature space (fid, kid_mean, precision, ...)."""
    from ..metrics.suite import METRICS

    return frozenset(v for m in METRICS.values() if m.per_backbone for v in m.values)


def draw(name: str, panels: dict[str, tuple[list[int], list[float]]], path: Path, title: str,
         replace: bool = False) -> None:
    """One figure of small panels (value against G step), written atomically as a PNG stamped as plot's own;
    ``replace``: an earlier figure of plot's is there (else a file that appears meanwhile is never replaced)."""
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
    def save(f) -> None:
        fig.savefig(f, format="png", dpi=100, metadata={"Software": STAMP})

    try:
        with PendingFile(path) as pending:
            pending.commit(save, replace=replace)
    except FileExistsError:
        if not _stamped(path):  # a file of the user's appeared meanwhile: theirs, kept
            raise EvalError(f"{path} appeared while plotting and is not a plot condgan plot wrote; it is left as "
                            f"it is") from None
        with PendingFile(path) as pending:  # another plot of a run drew it meanwhile: plot's own, replaced
            pending.commit(save)
    finally:
        plt.close(fig)


def run_plot(args: argparse.Namespace) -> int:
    run = Path(args.run)
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise EvalError(f"no metrics.jsonl in {run}: give a run directory `condgan train` wrote")
    out = Path(args.out) if args.out else run / "plots"
    if out.exists() and not out.is_dir():
        raise EvalError(f"{'--out ' if args.out else ''}{out} is a file, not a folder: give a folder for the PNGs")
    train, evals = split_records(log)
    lines = sum(1 for line in log.read_text(errors="replace").splitlines() if line.strip())
    skipped = lines - len(train) - len(evals)
    skipped_words = f"{skipped} line{'s' if skipped > 1 else ''} that {'are' if skipped > 1 else 'is'} not a JSON " \
                    f"record with an integer step"
    left_out: Counter = Counter()
    plotted = families(train, evals, left_out)
    if not plotted and left_out:
        raise EvalError(f"{log} holds no value that can be drawn: every one is NaN, infinite or beyond "
                        f"+-{LIMIT:g} (" + ", ".join(f"{key}: {n}" for key, n in sorted(left_out.items())) + ")")
    if not plotted:
        raise EvalError(f"{log} holds no training or evaluation record to plot"
                        + (f" ({skipped_words})" if skipped > 0 else ""))
    if skipped > 0:  # a line torn by a killed run, or a damaged log: said, not silently dropped
        warn(f"skipped {skipped_words} in {log}")
    if left_out:
        warn(f"left out of the plots of {log} the values that are NaN, infinite or beyond +-{LIMIT:g}: "
             + ", ".join(f"{key}: {n}" for key, n in sorted(left_out.items())))
    out.mkdir(parents=True, exist_ok=True)
    # condgan made RUN/plots: a matplotlib PNG at a figure's name there is a figure an older plot wrote unstamped
    legacy = out.resolve() == (run / "plots").resolve()
    ours = {name: _check_target(out / f"{name}.png", legacy) for name in plotted}  # every refusal before any write
    for name, panels in plotted.items():
        draw(name, panels, out / f"{name}.png", run.resolve().name, replace=ours[name])
        print(f"wrote {out / (name + '.png')} ({', '.join(panels)})")
    return 0


def _check_target(path: Path, legacy: bool = False) -> bool:
    """True when ``path`` is a figure plot wrote (to be replaced), False when nothing is there; an EvalError
    for anything else, which is the user's. ``legacy``: also a figure of a condgan before the stamp (matplotlib's
    own Software text)."""
    if not (path.exists() or path.is_symlink()):
        return False
    if not path.is_symlink() and path.is_file() and _stamped(path, legacy):
        return True
    raise EvalError(f"{path} is not a plot condgan plot wrote; refusing to replace it (move it away, or give "
                    f"another --out)")


def _stamped(path: Path, legacy: bool = False) -> bool:
    """Whether ``path`` is a PNG carrying plot's Software stamp (or, ``legacy``, matplotlib's)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            software = str(image.info.get("Software", ""))
            return image.format == "PNG" and (software == STAMP or legacy and software.startswith("Matplotlib"))
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="PNG plots of a run's losses, learning rates, diagnostics and evaluations")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="folder for the PNGs (default RUN/plots); only figures plot wrote there before "
                                 "are replaced")
    p.set_defaults(func=run_plot)

"""condgan plot: a run's metrics.jsonl as PNG figures, one panel per logged value."""
from __future__ import annotations

import json

from PIL import Image

from conftest import run_main
from condgan.cli.plot import families, split_records


def _log(run, lines: list[str]) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_every_family_gets_a_figure_with_a_panel_per_value(tmp_path, capsys):
    records = [{"step": s, "d_loss": 1.0 / s, "g_loss": 2.0, "d_cond": 0.5, "lr_g": 2e-4, "lr_d": 1e-4,
                "d_feat_norm": float(s), "it_per_s": 3.0, "time": 1.0} for s in (50, 100, 150)]
    lines = [json.dumps(r) for r in records] + ['{"step": 100, "eval": {"fid": 9.5, "acc_top1": 0.5}}', "garbage",
                                                 '{"step": 150, "d_loss": NaN}']
    _log(tmp_path / "run", lines)
    train, evals = split_records(tmp_path / "run" / "metrics.jsonl")
    assert len(train) == 4 and [e["step"] for e in evals] == [100]  # the garbage line is skipped
    plotted = families(train, evals)
    assert plotted["losses"]["d_loss"] == ([50, 100, 150], [0.02, 0.01, 1.0 / 150])  # NaN left out
    assert set(plotted["losses"]) == {"d_loss", "g_loss", "d_cond"} and set(plotted["diagnostics"]) == {"d_feat_norm"}
    assert plotted["eval"] == {"acc_top1": ([100], [0.5]), "fid": ([100], [9.5])}
    code, out, err = run_main(capsys, "plot", str(tmp_path / "run"))
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "run" / "plots").iterdir())
    assert names == ["diagnostics.png", "eval.png", "learning_rates.png", "losses.png", "speed.png"]
    for name in names:
        with Image.open(tmp_path / "run" / "plots" / name) as image:
            assert image.format == "PNG" and image.width > 300


def test_a_run_with_nothing_to_plot_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_main(capsys, "plot", str(tmp_path))
    assert code == 2 and "no metrics.jsonl in" in err
    _log(tmp_path / "run", ["not json"])
    code, _, err = run_main(capsys, "plot", str(tmp_path / "run"))
    assert code == 2 and "holds no training or evaluation record" in err and len(err.strip().splitlines()) == 1

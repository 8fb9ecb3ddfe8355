"""Issue 28, finding 13: condgan's FastGAN G is the official FastGAN code's, BN eps included, and a run made
before that change resumes with a one-line warning.

The reference (tests/data/fastgan_reference.json) holds the official G's images on tiny cases, written by
``python benchmarks/fastgan_nets.py --fastgan CHECKOUT --write tests/data/fastgan_reference.json`` from the
official nets with the seeded weights of ``fastgan_nets.seed_weights``; no official code is in condgan.
"""
from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_main, tiny_cfg, tiny_train_args
from torch import nn

from condgan.cli import main
from condgan.config import build_config, to_dict
from condgan.nets import build_nets
from condgan.nets.layers import ConditionalBatchNorm2d
from condgan.notices import CondganWarning
from condgan.train import checkpoint as ckpt
from condgan.train.resume import RELU_SHORTCUT_FORMAT, ResumePoint, check_resume

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fastgan_nets import case_config, inputs, probe, seed_weights  # noqa: E402

REFERENCE = json.loads((Path(__file__).parent / "data" / "fastgan_reference.json").read_text())
TOL = 1e-10


def _case_id(case: dict) -> str:
    s = case["settings"]
    return f"{s['layout']}-{s['resolution']}-{'cond' if s['conditional'] else 'uncond'}"


def _close(mine: dict, ref: dict, numel: int) -> None:
    diff = np.abs(np.array(mine["values"]) - np.array(ref["values"])).max()
    assert diff <= TOL, f"max |difference| {diff:.3e} from the official G's images"
    # sums over up to 150k values: float64 rounding grows with the count
    for key in ("sum", "sum_sq"):
        assert abs(mine[key] - ref[key]) <= TOL * numel, (key, mine[key], ref[key])


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=_case_id)
@torch.no_grad()
def test_fastgan_generator_gives_the_official_images_in_float64(case):
    """Eval mode (BN running statistics) and train mode (batch statistics) both see BN's eps."""
    s, seed = case["settings"], REFERENCE["seed"]
    classes = s["classes"] if s["conditional"] else 1
    cfg = case_config(s["layout"], s["resolution"], s["width"], s["z_dim"], s["conditional"])
    G = build_nets(cfg, classes, 3)[0].double()
    seed_weights(G, seed)
    z, y, _ = inputs(seed, s["batch"], s["z_dim"], classes, s["resolution"])
    for mode, key in ((G.eval, "G_eval"), (G.train, "G_train")):
        mode()
        images = G(z, y)
        _close(probe(images), case[key], images.numel())


def _bn_eps(g: nn.Module) -> set[tuple[str, float]]:
    kinds = set()
    for m in g.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            kinds.add(("block", m.bn.eps))
    kinds.add(("last", g.bn.eps))
    return kinds


@pytest.mark.parametrize("arch,cond,expected", [
    ("fastgan", "ac", {("block", 2e-5), ("last", 1e-5)}),     # sn_resblocks.CatCondBatchNorm2d; nn.BatchNorm2d
    ("fastgan", "none", {("block", 1e-5), ("last", 1e-5)}),   # n_classes=0: nn.BatchNorm2d in the blocks too
    ("resnet", "pd", {("block", 1e-4), ("last", 1e-4)}),      # StudioGAN's ops.batchnorm_2d
    ("sagan", "pd", {("block", 1e-4), ("last", 1e-4)}),
    ("resnet32", "pd", {("block", 1e-4), ("last", 1e-4)}),
    ("biggan", "d2d_ce", {("block", 1e-4), ("last", 1e-4)}),
])
def test_each_generator_takes_its_bn_eps_from_its_reference(arch, cond, expected):
    sets = {"model": {"arch": arch, "g_sn": arch != "fastgan", "z_dim": 80}, "data": {"resolution": 32},
            "loss": {"cond": cond}}
    with torch.device("meta"):
        G = build_nets(build_config(sets), 10, 3)[0]
    assert _bn_eps(G) == expected


# -- a run made before the change ---------------------------------------------------------------------------

FASTGAN_RUN = ["model.arch=fastgan", "model.g_sn=false", "model.g_width=4", "model.d_width=4", "train.ckpt_every=1",
               "train.batch_size=8"]


def _older(checkpoint: Path, fmt: object) -> None:
    """Rewrite ``checkpoint`` as an older condgan wrote it: its format number ``fmt``."""
    state = torch.load(checkpoint, weights_only=True)
    state["format"] = fmt
    torch.save(state, checkpoint)


def _warnings(err: str) -> list[str]:
    lines = err.strip().splitlines()
    assert all(line.startswith("condgan: warning: ") for line in lines), err  # no traceback, no other noise
    return lines


def test_resuming_a_fastgan_run_from_before_the_bn_eps_change_warns_once(tmp_path, capsys):
    """Resuming says G's function changes from the checkpoint's step on; sampling it says its images differ."""
    run = tmp_path / "run"
    code, _, err = run_main(capsys, *tiny_train_args(run, *FASTGAN_RUN, "train.steps=1"))
    assert code == 0 and err == ""
    _older(run / "checkpoints" / "ckpt_00000001.pt", ckpt.FORMAT - 1)  # the format before the BN eps change
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s.npz"), "--format", "npz",
                            "--per-class", "1", "--no-progress")
    assert code == 0
    lines = _warnings(err)
    assert len(lines) == 1 and "ckpt_00000001.pt" in lines[0] and "eps" in lines[0], err
    code, _, err = run_main(capsys, *tiny_train_args(run, *FASTGAN_RUN, "train.steps=2"))
    assert code == 0
    lines = _warnings(err)
    assert len(lines) == 1, err
    for culprit in ("ckpt_00000001.pt", "eps", "G's function changes from step 1 on"):
        assert culprit in lines[0], (culprit, lines[0])
    # the checkpoint it writes is of this condgan's format, which no warning concerns (see below)
    assert torch.load(run / "checkpoints" / "ckpt_00000002.pt", weights_only=True)["format"] == ckpt.FORMAT


@pytest.mark.parametrize("arch, fmt, expected", [
    ("fastgan", ckpt.FORMAT - 1, ["G's function changes from step 2 on"]),
    ("fastgan", RELU_SHORTCUT_FORMAT - 1, ["G's function changes from step 2 on"]),  # its D blocks never changed
    ("resnet32", RELU_SHORTCUT_FORMAT - 1, ["D's function changes from step 2 on"]),  # its BN eps never changed
    ("resnet32", ckpt.FORMAT - 1, []),
    ("fastgan", ckpt.FORMAT, []),
])
def test_each_change_since_a_checkpoints_format_is_one_warning(tmp_path, arch, fmt, expected):
    """The resume check on its own: one line per change that concerns the checkpoint's architecture."""
    cfg = tiny_cfg(f"model.arch={arch}", "model.g_sn=false", "train.steps=4")
    path = tmp_path / "ckpt_00000002.pt"
    point = ResumePoint(path, {"format": fmt, "step": 2, "config": to_dict(cfg)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_resume(cfg, point, tmp_path)
    lines = [str(w.message) for w in caught if issubclass(w.category, CondganWarning)]
    assert len(lines) == len(expected) and all(e in l and str(path) in l for e, l in zip(expected, lines)), lines


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A tiny run at step 1, trained once for the module (each test copies it)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(tiny_train_args(run, "train.steps=1", "train.ckpt_every=1", "train.batch_size=8")) == 0
    return run


@pytest.mark.parametrize("fmt, culprit", [("3", "'format'"), (2.0, "'format'"), (True, "'format'"),
                                          (ckpt.FORMAT + 1, f"format {ckpt.FORMAT + 1}")])
def test_a_checkpoint_format_this_condgan_cannot_read_is_refused(trained_run, tmp_path, capsys, fmt, culprit):
    """A format number that is no number (no traceback comparing it) or a newer condgan's (whose nets may
    compute another function) is a one-line error naming the file; nothing in the run dir changes."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    checkpoint = run / "checkpoints" / "ckpt_00000001.pt"
    _older(checkpoint, fmt)
    before = checkpoint.read_bytes()
    code, _, err = run_main(capsys, *tiny_train_args(run, "train.steps=2", "train.ckpt_every=1", "train.batch_size=8"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("condgan: error: "), err
    assert "ckpt_00000001.pt" in lines[0] and culprit in lines[0], lines[0]
    assert checkpoint.read_bytes() == before and not (run / "checkpoints" / "ckpt_00000002.pt").exists()

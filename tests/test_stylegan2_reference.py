"""condgan's StyleGAN2 against what NVIDIA's stylegan2-ada-pytorch and PyTorch-StudioGAN computed on the same
seeded weights and inputs, in float64 (tests/data/stylegan2_reference.json, written by
``python benchmarks/stylegan2_nets.py --nvidia ... --studiogan ... --pin``): G with the class input and constant
noise, train and eval mode, truncated; D of both architectures with every head; the gradients of every parameter
in the stylegan2 strategy's four phases (Gmain, Greg with path length, Dmain, Dreg with R1) against NVIDIA's
StyleGAN2Loss, and the path-length mean. No reference code runs here."""
from __future__ import annotations

import math

import pytest
import torch
from stylegan2_cases import (CASES, HEADS, PHASES, case_config, d_outputs, inputs, load_reference, phase_strategy,
                             run_phase, seed_)

from condgan.nets import build_nets

REFERENCE = load_reference()
TOL = 1e-10


def _close(mine: torch.Tensor, ref: dict, what: str) -> None:
    """``mine`` agrees with a reference probe within TOL relative to the reference's largest value."""
    flat = mine.detach().double().flatten()
    scale = max(ref["max_abs"], 1e-300)
    at = torch.linspace(0, flat.numel() - 1, len(ref["values"])).long()
    worst = (flat[at] - torch.tensor(ref["values"], dtype=torch.float64)).abs().max().item()
    assert worst <= TOL * scale, f"{what}: values differ by {worst:.3e} (scale {scale:.3e})"
    n = flat.numel()
    assert abs(flat.sum().item() - ref["sum"]) <= TOL * scale * n, f"{what}: sum"
    assert abs((flat * flat).sum().item() - ref["sum_sq"]) <= TOL * scale * scale * n, f"{what}: sum of squares"


def _pair(case: dict, cond: str = "spd", aux: str = "none", seed: int = REFERENCE["seed"]):
    G, D = build_nets(case_config(case, cond, aux), case["num_classes"], 3)
    return seed_(G.double(), seed), seed_(D.double(), seed + 1)


@pytest.mark.parametrize("tag", CASES)
@torch.no_grad()
def test_generator_equals_the_references(tag):
    case, ref = CASES[tag], REFERENCE["cases"][tag]["G"]
    G, _ = _pair(case)
    v = inputs(case, REFERENCE["seed"])
    for name, probe in ref.items():
        G.train(name.startswith("G train"))
        psi = 0.7 if "psi" in name else 1.0
        cutoff = 3 if "cutoff 3" in name else None
        for fused in (None, True):  # the default form, and the grouped convolution (NVIDIA's sampling on a GPU)
            G.fused_modconv = fused
            images = G(v.z, v.y, truncation=psi, truncation_cutoff=cutoff, noise_mode="const")
            _close(images, probe, f"{tag} {name}, fused_modconv {fused}")
    assert len(ref) == 4  # train; eval; eval truncated on 3 layers and on all


@pytest.mark.parametrize("tag", CASES)
@torch.no_grad()
def test_every_head_equals_studiogans(tag):
    case, ref = CASES[tag], REFERENCE["cases"][tag]["D"]
    v = inputs(case, REFERENCE["seed"])
    assert set(ref) == {cond + ("" if aux == "none" else f"+{aux}") for cond, aux in HEADS}
    for cond, aux in HEADS:
        head = cond + ("" if aux == "none" else f"+{aux}")
        _, D = _pair(case, cond, aux)
        ours = d_outputs(D.eval()(v.x, v.y), cond, aux, v.y)
        assert set(ours) == set(ref[head]), head
        for key, probe in ref[head].items():
            _close(ours[key], probe, f"{tag} {head} {key}")


@pytest.mark.parametrize("tag", CASES)
def test_strategy_phases_equal_nvidias_loss(tag):
    """Gmain, Greg, Dmain and Dreg: every parameter's gradient, and the path-length mean after Greg."""
    case, ref = CASES[tag], REFERENCE["cases"][tag]["phases"]
    G, D = _pair(case)
    v = inputs(case, REFERENCE["seed"])
    strategy = phase_strategy(case, G, D, v)
    for phase, _gain in PHASES:
        run_phase(strategy, phase, v)
        net = G if phase.startswith("G") else D
        grads = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
        assert set(grads) == set(ref[phase]), phase
        for name, probe in ref[phase].items():
            _close(grads[name], probe, f"{tag} {phase} d/d {name}")
    _close(strategy.pl_mean, ref["pl_mean"], f"{tag} path-length mean")
    assert math.isfinite(strategy.pl_mean.item()) and strategy.pl_mean.item() > 0

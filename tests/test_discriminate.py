"""The one door of D passes: nets' batch-coupling declarations, the concatenated pass, where augmentation
applies (and where not), gradients through it, and that no training code calls D another way."""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import STYLEGAN2, tiny_cfg
from condgan.augment.training import Augmentation
from condgan.nets import ARCHITECTURES
from condgan.nets.heads import DOutput
from condgan.train.build import build_run
from condgan.train.discriminate import DiscriminatorPass, is_batch_coupled
from condgan.train.precision import Precision
from condgan.train.regularize import Regularizers

TRAIN_DIR = Path(__file__).resolve().parents[1] / "src" / "condgan" / "train"


def rows_depend_on_batch(D: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Largest change of the first half's outputs when D sees the whole batch instead of that half alone
    (train mode, each pass from the same state: spectral norm's power iteration runs once in both)."""
    n = x.shape[0] // 2
    alone, together = copy.deepcopy(D).train(), copy.deepcopy(D).train()
    a, b = alone(x[:n], y[:n]), together(x, y).rows(slice(0, n))
    return max((a.adv - b.adv).abs().max().item(), (a.features - b.features).abs().max().item())


class BatchNormD(nn.Module):
    """A D whose output depends on its batch (batch-statistics BN), declared so."""
    batch_coupled = True

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.adv = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        h = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return DOutput(adv=self.adv(h)[:, 0], features=h)


ARCH_CASES = [(name, res) for name, arch in ARCHITECTURES.items() for res in arch.resolutions if res <= 128]


@pytest.mark.parametrize("arch,resolution", ARCH_CASES)
def test_batch_coupling_declarations_match_behaviour(arch, resolution):
    style = STYLEGAN2 if arch == "stylegan2" else ["model.z_dim=60"]
    cfg = tiny_cfg(*style, f"model.arch={arch}", f"data.resolution={resolution}")
    _, D = ARCHITECTURES[arch].build(cfg, 10, 3)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, resolution, resolution, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    gap = rows_depend_on_batch(D.double(), x.double(), y)
    assert is_batch_coupled(D) == (gap > 1e-9), (arch, gap)
    # every D of the zoo but StyleGAN2's (minibatch std) is per sample: the concatenated pass is exact there
    assert is_batch_coupled(D) == (arch == "stylegan2")


def test_batch_coupled_net_is_detected_and_gets_two_passes():
    torch.manual_seed(0)
    D = BatchNormD().double()
    x_real, x_fake = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.randn(6, 1, 8, 8, dtype=torch.float64) + 2
    y = torch.zeros(6, dtype=torch.long)
    assert rows_depend_on_batch(D, torch.cat([x_real, x_fake]), torch.cat([y, y])) > 1e-3  # the check can fail
    assert is_batch_coupled(D) and is_batch_coupled(nn.Identity())  # undeclared counts as coupled
    d_pass = DiscriminatorPass(D, D, Precision("fp32", "cpu"), batch_coupled=True)
    real, fake = d_pass.real_fake(x_real, y, x_fake, y)
    assert torch.allclose(real.adv, D(x_real, y).adv) and torch.allclose(fake.adv, D(x_fake, y).adv)
    assert real.adv.dtype == torch.float64  # a float64 pass stays float64 (half precision becomes float32)
    joint = D(torch.cat([x_real, x_fake]), torch.cat([y, y])).adv
    assert (joint[:6] - real.adv).abs().max() > 1e-3  # a concatenated pass would have been wrong here


class Recorder(Augmentation):
    """A known, differentiable augmentation (x -> 2x + 1 on every sample) that records what it was given."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.observed: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        return 2 * x + 1

    def observe_real(self, real_adv: torch.Tensor) -> None:
        self.observed.append(real_adv.detach().clone())


class QuadraticD(nn.Module):
    """adv = sum of squares of the input (per sample): its input gradient is known in closed form."""
    batch_coupled = False

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> DOutput:
        adv = (x ** 2).flatten(1).sum(1)
        return DOutput(adv=adv, features=adv[:, None])


def test_penalties_go_through_the_augmentation_to_the_unaugmented_input():
    """R1 through A(x) = 2x + 1 with D(u) = |u|^2: grad_x = 4 (2x + 1), so R1 = mean_n |4 (2x + 1)|^2."""
    x = torch.randn(5, 1, 4, 4)
    aug = Recorder()
    d_pass = DiscriminatorPass(QuadraticD(), QuadraticD(), Precision("fp32", "cpu"), aug, batch_coupled=False)
    regs = Regularizers(tiny_cfg("reg.r1=1.0", "reg.cr=1.0"))
    real, fake = d_pass.real_fake(x, torch.zeros(5, dtype=torch.long), x, torch.zeros(5, dtype=torch.long))
    assert aug.seen == [10] and torch.allclose(aug.observed[0], ((2 * x + 1) ** 2).flatten(1).sum(1))
    terms = regs.d_terms(d_pass, None, 0, x, torch.zeros(5, dtype=torch.long), x, torch.zeros(5, dtype=torch.long),
                         None, real, fake)
    expected = (4 * (2 * x + 1)).pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(terms["d_r1"][0], expected, rtol=1e-5)
    assert aug.seen == [10, 5]  # R1's pass augmented; CR's comparison pass was not
    assert len(aug.observed) == 1  # only the D-update pass feeds ADA's controller


def test_strategy_augments_every_d_input_once(monkeypatch):
    """A D step augments reals and fakes (one concatenated pass), a G step its fakes; both through the door."""
    run = build_run(tiny_cfg("train.steps=2"), torch.device("cpu"))
    aug = Recorder()
    run.strategy.d_pass.augmentation = aug
    run.strategy.step(torch.device("cpu"))
    b = run.sampler.local_batch
    assert aug.seen == [2 * b, b] and len(aug.observed) == 1


D_CALLABLES = {"D", "d_synced", "d_unsynced", "d_eager"}  # the modules and wrappers of Models


def d_calls(source: str) -> list[int]:
    """Lines of calls to a D module or wrapper (``D(...)``, ``x.D(...)``, ``self.m.d_synced(...)``...)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in D_CALLABLES:
                lines.append(node.lineno)
    return lines


def test_no_d_call_outside_the_door():
    """In the training code only discriminate.py calls D or its wrappers (the check finds such calls)."""
    assert d_calls("out = self.m.D(x, y)\nD(x)\nself.d_unsynced(x, y)\nd_pass(x, y)\n") == [1, 2, 3]
    offenders = {path.name: d_calls(path.read_text()) for path in sorted(TRAIN_DIR.glob("*.py"))}
    assert offenders.pop("discriminate.py")  # the door itself does call them
    assert {name: lines for name, lines in offenders.items() if lines} == {}

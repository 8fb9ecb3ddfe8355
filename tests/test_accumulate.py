"""train.accumulate (StudioGAN's acml_steps): one optimiser step on the mean gradient of k micro-batches (exact
resume with it: tests/test_train.py, under torchrun: tests/test_distributed.py)."""
from __future__ import annotations

import pytest
import torch

from condgan.config import ConfigError
from condgan.train.build import build_run
from condgan.train.precision import Precision
from conftest import tiny_cfg


def gradients_at_each_step(run, net: str, calls: int, stepping: bool) -> list[list[torch.Tensor]]:
    """The gradients ``net``'s optimiser is given at each of ``calls`` D or G updates; with ``stepping`` False
    the optimiser never moves, so every update sees the same weights."""
    captured: list[list[torch.Tensor]] = []
    original = Precision.step
    module = run.models.D if net == "d" else run.models.G

    def step(self, opt, which):
        if which == net:
            captured.append([p.grad.clone() for p in module.parameters() if p.grad is not None])
            if not stepping:
                return
        original(self, opt, which)

    Precision.step = step
    try:
        for _ in range(calls):
            run.strategy.d_step(0) if net == "d" else run.strategy.g_step(torch.device("cpu"), 0)
    finally:
        Precision.step = original
    return captured


@pytest.mark.parametrize("net", ["d", "g"])
@pytest.mark.parametrize("sets", [[], ["reg.lecam=0.1", "reg.lecam_start=0", "loss.cond=2c"]])
def test_accumulated_gradient_is_the_mean_of_the_micro_batches(net, sets):
    """k = 3 micro-batches of 8 against three separate updates of 8 at frozen weights (the same draws of
    reals, fakes and latents in the same order): the accumulated gradient is their mean."""
    torch.manual_seed(0)
    accumulated = build_run(tiny_cfg("train.accumulate=3", "train.batch_size=8", *sets), torch.device("cpu"))
    torch.manual_seed(0)
    separate = build_run(tiny_cfg("train.batch_size=8", *sets), torch.device("cpu"))
    (mean_grads,) = gradients_at_each_step(accumulated, net, 1, stepping=True)
    parts = gradients_at_each_step(separate, net, 3, stepping=False)
    assert len(mean_grads) == len(parts[0]) > 0
    means = [sum(pieces) / 3 for pieces in zip(*parts)]
    scale = max(m.abs().max() for m in means)  # biases in front of a BN have a gradient of rounding noise only
    for got, mean in zip(mean_grads, means):
        assert (got - mean).abs().max() <= 1e-5 * scale  # float32 rounding of the sums
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(parts[0], parts[1]))  # the micro-batches differ


def test_accumulate_needs_the_standard_strategy():
    with pytest.raises(ConfigError, match="'train.accumulate' must be 1 with train.strategy free_adversarial"):
        tiny_cfg("train.accumulate=2", "train.strategy=free_adversarial", "loss.cond=ac", "robust.epsilon=0.01",
                 "robust.step_size=0.01")
    with pytest.raises(ConfigError, match="'train.accumulate' must be positive"):
        tiny_cfg("train.accumulate=0")

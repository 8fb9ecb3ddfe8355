"""Mixed precision of one run (``speed.precision``): the autocast context and the backward/step of each net.

fp32: no autocast. bf16: autocast to bfloat16 (same exponent range as float32: no loss scaling).
fp16: autocast to float16 with one ``GradScaler`` per net, since D's and G's losses have different scales;
the scalers' state is run state and goes into every checkpoint. Parameters and optimiser states stay float32
throughout; the losses are computed in float32 from D's outputs (see ``DOutput.float``).
"""
from __future__ import annotations

import contextlib
import warnings

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast and loss scaling for ``mode`` (fp32 | bf16 | fp16) on ``device``."""

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in DTYPES:
            raise ValueError(f"unknown precision {mode!r}; expected one of {tuple(DTYPES)}")
        self.mode = mode
        self.device_type = torch.device(device).type
        self.dtype = DTYPES[mode]
        self.scalers = ({"d": torch.amp.GradScaler(self.device_type), "g": torch.amp.GradScaler(self.device_type)}
                        if mode == "fp16" else {})
        if self.scalers:
            # The scaler skips the first steps while it finds its scale; torch then warns that the lr schedule
            # stepped before the optimiser did, which is expected here.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before",
                                    category=UserWarning)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context for forward passes: autocast to the run's dtype, or nothing in fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, net: str) -> None:
        """zero_grad, backward of ``loss`` and ``opt.step()`` for ``net`` ("d" or "g"), scaled under fp16.

        Under fp16 an input's ``.grad`` (free adversarial training) holds the scaled gradient; its sign,
        which is all that is used, is the same.
        """
        opt.zero_grad(set_to_none=True)
        self.backward(loss, net)
        self.step(opt, net)

    def backward(self, loss: torch.Tensor, net: str) -> None:
        """Backward of ``loss`` into the gradients of ``net`` ("d" or "g"), scaled under fp16 (accumulates)."""
        scaler = self.scalers.get(net)
        (loss if scaler is None else scaler.scale(loss)).backward()

    def step(self, opt: torch.optim.Optimizer, net: str) -> None:
        """``opt.step()`` on the gradients :meth:`backward` left; under fp16 skipped when one overflowed."""
        scaler = self.scalers.get(net)
        if scaler is None:
            opt.step()
            return
        scaler.step(opt)  # skips the step when a gradient overflowed, then lowers the scale
        scaler.update()

    def state_dict(self) -> dict:
        return {name: s.state_dict() for name, s in self.scalers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, scaler in self.scalers.items():
            if name in state:
                scaler.load_state_dict(state[name])

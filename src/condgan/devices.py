"""The ``--device`` argument: a torch device condgan can run on here, or a one-line error naming it."""
from __future__ import annotations

import torch

from .config import ConfigError


def parse_device(text: str, flag: str = "--device") -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a torch.device; anything else, or a missing GPU, is a ConfigError."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{flag} {text!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"{flag} {text}: condgan runs on cpu or cuda, not {device.type}")
    if not torch.cuda.is_available():
        raise ConfigError(f"{flag} {text}: CUDA is not available on this machine")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{flag} {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device

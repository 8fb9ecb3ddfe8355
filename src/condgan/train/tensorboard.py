"""Optional TensorBoard events of a run (``log.tensorboard: true``): the metrics.jsonl scalars, the sample grids
and the periodic evaluations, under ``RUN/tensorboard``. Needs the ``tensorboard`` package (condgan[tensorboard])."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..config import ConfigError

NOT_SCALARS = ("step", "time")


def check_available() -> None:
    """A one-line ConfigError unless the tensorboard package can be imported (checked before any slow work)."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("config key 'log.tensorboard' needs the tensorboard package: "
                          "pip install 'condgan[tensorboard]' (or set log.tensorboard=false)")


class TensorBoardLog:
    """A SummaryWriter over the run dir's ``tensorboard/`` folder (rank 0 only); resumed runs append to it."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def scalars(self, record: dict, step: int, prefix: str = "") -> None:
        """Every finite number of a log or evaluation record, tagged ``prefix + key``."""
        for key, value in record.items():
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                self.writer.add_scalar(prefix + key, value, step)
        self.writer.flush()

    def image(self, tag: str, png: Path, step: int) -> None:
        """A PNG the run wrote (a sample grid), as the same picture."""
        with Image.open(png) as picture:
            array = np.array(picture.convert("RGB"))
        self.writer.add_image(tag, array, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

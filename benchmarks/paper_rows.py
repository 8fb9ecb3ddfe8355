"""The papers' 64 / 128 px rows the benchmarks time (step_bench, scale_bench, data_bench): shipped presets, each
with the batch one GPU runs in one backward when the row is trained as its paper did.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from condgan.data.registry import KNOWN_SHAPES  # noqa: E402
from condgan.config import Config, build_config  # noqa: E402
from condgan.presets import list_presets, load_preset  # noqa: E402

# preset -> (batch of one backward on one GPU, the row)
ROWS: dict[str, tuple[int, str]] = {
    "imagenet128-reacgan": (256, "ReACGAN Table 2, ImageNet 128, batch 256, 2 D steps"),
    "imagenet128-reacgan-2048": (64, "ReACGAN Table 2, batch 2048 = 512 (8 GPUs x 64) x accumulate 4, 2 D steps"),
    "imagenet128-biggan": (256, "ReACGAN Table 2 'BigGAN', ImageNet 128, batch 256"),
    "imagenet128-sngan": (256, "ReACGAN Table 2 'SNGAN', ImageNet 128, batch 256"),
    "imagenet128-sagan": (256, "ReACGAN Table 2 'SAGAN', ImageNet 128, batch 256"),
    "cub200-reacgan": (256, "ReACGAN Table 1, CUB200 128, batch 256"),
    "tiny-reacgan": (1024, "ReACGAN Table 1, Tiny-ImageNet 64, batch 1024"),
    "imagenet128-fastgan-b256": (256, "FastGAN Table 4, ImageNet 128, batch 256"),
}
assert set(ROWS) <= set(list_presets()), set(ROWS) - set(list_presets())


def row_config(name: str, overrides: list[str] = ()) -> tuple[Config, int]:
    """(the row's preset at its one-GPU batch with ``overrides``, its number of classes)."""
    cfg = build_config(load_preset(name), [f"train.batch_size={ROWS[name][0]}", "train.accumulate=1", *overrides])
    return cfg, KNOWN_SHAPES[cfg.data.name][0]

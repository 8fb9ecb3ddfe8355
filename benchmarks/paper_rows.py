"""The papers' 64 / 128 px rows as configs for the benchmarks (step_bench, scale_bench), until they are presets.

Each row: overrides on ``cifar10-reacgan``, the dataset's number of classes, the batch per GPU and the row it
stands for (hyper-parameters of StudioGAN's configs and the FastGAN scripts that produced the rows).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from condgan.config import Config, build_config  # noqa: E402
from condgan.presets import load_preset  # noqa: E402

BIGGAN128 = ["model.arch=biggan", "data.resolution=128", "model.g_width=96", "model.d_width=96", "model.z_dim=120",
             "model.shared_dim=128", "optim.beta1=0.0", "train.n_dis=2"]
# name -> (overrides on cifar10-reacgan, classes, batch of one backward on one GPU, the row)
ROWS: dict[str, tuple[list[str], int, int, str]] = {
    "imagenet128-reacgan": (BIGGAN128 + ["model.embed_dim=2048", "loss.cond_weight=1.0"], 1000, 256,
                            "ReACGAN Table 2, ImageNet 128, batch 256, 2 D steps"),
    "imagenet128-reacgan-2048": (BIGGAN128 + ["model.embed_dim=2048", "loss.m_p=0.90", "loss.temperature=0.25",
                                              "train.accumulate=4"], 1000, 64,
                                 "ReACGAN Table 2, batch 2048 = 512 (8 GPUs x 64) x accumulate 4, 2 D steps"),
    "imagenet128-biggan": (BIGGAN128 + ["loss.cond=pd"], 1000, 256, "BigGAN Table 2, ImageNet 128, batch 256"),
    "imagenet128-sngan": (["model.arch=resnet", "data.resolution=128", "model.g_width=64", "model.d_width=64",
                           "model.z_dim=128", "model.g_sn=false", "loss.cond=pd", "train.n_dis=2"], 1000, 256,
                          "SNGAN Table 2, ImageNet 128, batch 256"),
    "imagenet128-sagan": (["model.arch=sagan", "data.resolution=128", "model.g_width=64", "model.d_width=64",
                           "model.z_dim=128", "loss.cond=pd", "train.n_dis=1"], 1000, 256,
                          "SAGAN Table 2, ImageNet 128, batch 256"),
    "cub200-reacgan": (BIGGAN128 + ["model.g_width=80", "model.d_width=80", "model.embed_dim=1024"], 200, 256,
                       "ReACGAN Table 1, CUB200 128"),
    "baby64-reacgan": (["model.arch=biggan", "data.resolution=64", "model.g_width=80", "model.d_width=80",
                        "model.z_dim=100", "model.embed_dim=768", "train.n_dis=1"], 100, 1024,
                       "StudioGAN Baby-ImageNet 64 ReACGAN, batch 1024"),
    "imagenet128-fastgan": (["model.arch=fastgan", "data.resolution=128", "model.g_width=64", "model.d_width=64",
                             "model.z_dim=128", "model.g_sn=false", "model.d_sn=false", "model.init=xavier",
                             "loss.cond=ac", "loss.fake_kl_weight=1.0", "train.strategy=free_adversarial",
                             "robust.epsilon=0.01", "robust.step_size=0.01", "train.n_dis=1",
                             "model.embed_dim=512"], 1000, 256, "FastGAN Table 4, ImageNet 128, batch 256"),
}


def row_config(name: str, overrides: list[str] = ()) -> tuple[Config, int]:
    """(the row's config with ``overrides``, its number of classes)."""
    sets, classes, batch, _ = ROWS[name]
    return build_config(load_preset("cifar10-reacgan"), [*sets, f"train.batch_size={batch}", *overrides]), classes



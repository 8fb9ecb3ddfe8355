"""The cifar10-reacgan preset: the BigGAN-32 pair of the reference configuration, trained for 2 steps."""
import json

import torch
from fakes import make_cifar_archive

from condgan.config import build_config
from condgan.nets import BigGANDiscriminator, BigGANGenerator, count_parameters
from condgan.presets import load_preset
from condgan.train import checkpoint as ckpt
from condgan.train.trainer import Trainer


def test_cifar10_reacgan_preset_trains_two_steps(tmp_path):
    archive = make_cifar_archive(tmp_path / "cifar-10-python.tar.gz", n=4)  # 20 train images
    # Only the batch (and I/O cadence) shrink for CPU; the architecture and losses are the preset's.
    cfg = build_config(load_preset("cifar10-reacgan"),
                       [f"data.root={archive}", "data.download=false", "train.batch_size=4", "train.steps=2",
                        "train.ckpt_every=2", "train.log_every=1", "train.sample_every=2"])
    t = Trainer(cfg, tmp_path / "run", progress=False)
    G, D = t.run.models.G, t.run.models.D
    assert isinstance(G, BigGANGenerator) and isinstance(D, BigGANDiscriminator)
    assert count_parameters(G) == 9_416_196 and count_parameters(D) == 2_517_186
    assert t.run.dataset.images.shape == (20, 3, 32, 32)
    t.train()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["d_cond"])) and r["d_cond"] > 0 for r in records)
    [saved] = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")
    state = torch.load(saved, weights_only=True)
    assert state["step"] == 2 and state["opt_d"]["state"]  # D stepped (5 times per G step)
    assert (tmp_path / "run" / "samples" / "step_00000002.png").exists()

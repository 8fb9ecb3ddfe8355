"""condgan.load_generator: G_ema rebuilt from a checkpoint alone, bitwise the trainer's, old checkpoints too."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_cfg
import condgan
from condgan.train.checkpoint import CheckpointError
from condgan.train.trainer import Trainer


def _trained(tmp_path, *sets: str) -> Trainer:
    trainer = Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=2", *sets), tmp_path / "run", progress=False)
    trainer.train()
    trainer.close()
    return trainer


def _same_images(G: torch.nn.Module, trainer: Trainer) -> bool:
    z = torch.randn(6, trainer.cfg.model.z_dim, generator=torch.Generator().manual_seed(3))
    y = torch.arange(6) % trainer.run.dataset.num_classes
    ema = trainer.run.ema.shadow.eval()
    with torch.no_grad():
        return torch.equal(G(z, y), ema(z, y))


def test_a_checkpoint_rebuilds_the_trainers_g_ema_bitwise(tmp_path):
    trainer = _trained(tmp_path)
    G, info = condgan.load_generator(tmp_path / "run")
    assert not G.training and _same_images(G, trainer)
    assert (info.arch, info.resolution, info.num_classes, info.img_channels) == ("dcgan", 32, 10, 1)
    assert info.class_names == tuple("0123456789") and info.step == 2 and info.condgan_version == condgan.__version__
    assert info.checkpoint.name == "ckpt_00000002.pt" and info.config.model.z_dim == info.z_dim


def test_the_dataset_is_not_needed_and_its_class_names_travel(tmp_path):
    path = tmp_path / "digits.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8), labels=np.arange(24) % 3,
             class_names=np.array(["cat", "dog", "owl"]))
    trainer = _trained(tmp_path, "data.name=npz", f"data.root={path}", "train.batch_size=8")
    path.unlink()  # the checkpoint alone
    G, info = condgan.load_generator(tmp_path / "run" / "checkpoints" / "ckpt_00000002.pt")
    assert _same_images(G, trainer) and info.class_names == ("cat", "dog", "owl") and info.img_channels == 3


def _strip_description(checkpoint) -> None:
    """Make ``checkpoint`` look written before checkpoints described themselves."""
    state = torch.load(checkpoint, weights_only=True)
    del state["generator"]
    torch.save(state, checkpoint)


def test_old_checkpoints_load_where_their_size_can_be_derived_and_say_what_cannot(tmp_path):
    trainer = _trained(tmp_path)
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt_00000002.pt"
    _strip_description(checkpoint)
    G, info = condgan.load_generator(checkpoint)  # mnist5k: condgan knows it has 10 one-channel classes
    assert _same_images(G, trainer) and info.num_classes == 10 and info.class_names == ()
    assert info.condgan_version == ""
    with pytest.raises(CheckpointError, match="has num_classes 10, not the 7 asked for"):
        condgan.load_generator(checkpoint, num_classes=7)


def test_an_old_checkpoint_of_unsized_data_asks_for_its_counts(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((16, 32, 32), np.uint8), labels=np.arange(16) % 4)
    trainer = _trained(tmp_path, "data.name=npz", f"data.root={path}", "train.batch_size=8")
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt_00000002.pt"
    _strip_description(checkpoint)
    with pytest.raises(CheckpointError) as e:
        condgan.load_generator(checkpoint)
    assert "predates self-describing checkpoints" in str(e.value)
    assert "give num_classes and img_channels" in str(e.value)
    G, _info = condgan.load_generator(checkpoint, num_classes=4, img_channels=1)
    assert _same_images(G, trainer)
    with pytest.raises(CheckpointError, match="does not fit this generator architecture"):
        condgan.load_generator(checkpoint, num_classes=5, img_channels=1)


def test_a_damaged_description_is_a_one_line_error(tmp_path):
    _trained(tmp_path)
    checkpoint = tmp_path / "run" / "checkpoints" / "ckpt_00000002.pt"
    state = torch.load(checkpoint, weights_only=True)
    del state["generator"]["num_classes"]
    torch.save(state, checkpoint)
    with pytest.raises(CheckpointError, match="its 'generator' record is damaged \\(KeyError"):
        condgan.load_generator(checkpoint)


def test_bad_targets_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such run dir or checkpoint"):
        condgan.load_generator(tmp_path / "nothing")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        condgan.load_generator(tmp_path / "empty")
    (tmp_path / "empty" / "checkpoints" / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="best.pt is there: pass it as the target"):
        condgan.load_generator(tmp_path / "empty")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt cannot be read"):
        condgan.load_generator(tmp_path / "junk.pt")


# ---------------------------------------------------------------------------- soft labels
ARCHS = [("dcgan", 32), ("deep_cnn", 32), ("resnet", 32), ("biggan", 32), ("fastgan", 32), ("sagan", 64),
         ("biggan", 64)]


@pytest.mark.parametrize("arch,res", ARCHS, ids=[f"{a}-{r}" for a, r in ARCHS])
@pytest.mark.parametrize("conditional", [True, False], ids=["cond", "uncond"])
def test_every_generator_takes_class_weights(arch, res, conditional):
    """One-hot weights give the labels' images (to float64 rounding); a mixture of two classes gives an image
    of neither; an unconditional G ignores the class."""
    from condgan.nets import build_nets

    sets = [f"model.arch={arch}", f"data.resolution={res}", "model.g_width=8", "model.d_width=8",
            "loss.cond=" + ("d2d_ce" if conditional else "none"), "model.z_dim=80" if "biggan" in arch else ""]
    if arch == "fastgan":
        sets += ["model.g_sn=false"]
    cfg = tiny_cfg(*[s for s in sets if s])
    torch.manual_seed(0)
    G = build_nets(cfg, 5, 3)[0].double().eval()
    with torch.no_grad():
        for m in G.modules():  # non-trivial class tables and per-class BN affines
            if isinstance(m, torch.nn.Embedding) or (hasattr(m, "gain") and hasattr(m, "bias")):
                for p in m.parameters():
                    p.add_(torch.randn_like(p) * 0.3)
    z = torch.randn(4, cfg.model.z_dim, dtype=torch.float64)
    y = torch.tensor([0, 3, 4, 1])
    onehot = torch.nn.functional.one_hot(y, 5).double()
    with torch.no_grad():
        assert torch.allclose(G(z, onehot), G(z, y), rtol=0, atol=1e-12)
        mixed = G(z, 0.5 * onehot + 0.5 * torch.nn.functional.one_hot(torch.tensor([2, 2, 0, 0]), 5).double())
        pure = G(z, torch.tensor([2, 2, 0, 0]))
        if conditional:
            assert not torch.allclose(mixed, G(z, y)) and not torch.allclose(mixed, pure)
        else:
            assert torch.equal(G(z, y), pure) and torch.allclose(mixed, pure, rtol=0, atol=1e-12)
    if conditional:
        with pytest.raises(ValueError, match=r"class weights must be \[batch, 5\]; got \(4, 4\)"):
            G(z, torch.zeros(4, 4, dtype=torch.float64))


# ---------------------------------------------------------------------------- every architecture and resolution
EVERY = [(arch, res) for arch, sizes in (("dcgan", (32,)), ("deep_cnn", (32,)), ("resnet32", (32,)),
                                          ("resnet", (32, 64, 128, 256)), ("sagan", (64, 256)),
                                          ("biggan", (32, 64, 128, 256)), ("fastgan", (32, 64, 128))) for res in sizes]


@pytest.mark.parametrize("arch,res", EVERY, ids=[f"{a}-{r}" for a, r in EVERY])
def test_every_architecture_is_rebuilt_from_its_checkpoint_alone(tmp_path, arch, res):
    path = tmp_path / "colour.npz"
    rng = np.random.default_rng(1)
    np.savez(path, images=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), labels=np.arange(12) % 3,
             class_names=np.array(["a", "b", "c"]))
    sets = [f"model.arch={arch}", f"data.resolution={res}", "data.resize=true", "data.name=npz", f"data.root={path}",
            "train.batch_size=4", "model.g_width=8", "model.d_width=8", "train.sample_every=100"]
    sets += {"biggan": [f"model.z_dim={ {32: 80, 64: 80, 128: 96, 256: 112}[res]}"], "fastgan": ["model.g_sn=false"],
             "deep_cnn": [], "resnet32": ["model.g_width=16", "model.d_width=16"]}.get(arch, [])
    trainer = _trained(tmp_path, *sets)
    path.unlink()  # no dataset: the checkpoint alone
    G, info = condgan.load_generator(tmp_path / "run")
    assert (info.arch, info.resolution, info.num_classes, info.img_channels) == (arch, res, 3, 3)
    assert info.class_names == ("a", "b", "c") and _same_images(G, trainer)

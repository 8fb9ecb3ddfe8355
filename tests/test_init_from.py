"""train.init_from: a new run starts from another run's (or an imported checkpoint's) weights with its own
optimiser, step 0 and random streams; init_classes reinit keeps the class layers fresh; every misfit is one line."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import STYLEGAN2, run_main, tiny_cfg, tiny_train_args
from studiogan_stylegan2_reference import studiogan_folder

from condgan.config import build_config
from condgan.nets import build_nets
from condgan.presets import load_preset
from condgan.train import checkpoint as ckpt
from condgan.train.init_from import class_dependent_modules, config_hash
from condgan.train.trainer import Trainer

SHORT = ("train.steps=1", "train.ckpt_every=1")
ROLES = ("G", "G_ema", "D")


def _train(out: Path, *overrides: str) -> Path:
    with Trainer(tiny_cfg(*SHORT, *overrides), out, progress=False) as t:
        t.train()
    return ckpt.list_checkpoints(out / "checkpoints")[-1]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny 10-class mnist5k run (DCGAN pair, D2D-CE), one step trained."""
    out = tmp_path_factory.mktemp("source") / "run"
    _train(out)
    return out


@pytest.fixture(scope="module")
def sg2_source(tmp_path_factory) -> Path:
    """The same with StyleGAN2's nets and strategy at tiny widths."""
    out = tmp_path_factory.mktemp("sg2") / "run"
    _train(out, *STYLEGAN2)
    return out


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory) -> list[str]:
    """Overrides for a fabricated 3-class grayscale 32 px npz dataset (mnist5k's image shape, other classes)."""
    path = tmp_path_factory.mktemp("npz") / "three.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 256, (48, 32, 32), dtype=np.uint8), labels=np.arange(48) % 3)
    return ["data.name=npz", f"data.root={path}"]


def _nets(t: Trainer) -> dict[str, dict[str, torch.Tensor]]:
    r = t.run
    return {"G": r.models.G.state_dict(), "G_ema": r.ema.shadow.state_dict(), "D": r.models.D.state_dict()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys=None) -> bool:
    keys = a.keys() if keys is None else keys
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in keys)


def _start(out: Path, *overrides: str) -> tuple[Trainer, torch.Tensor]:
    """A Trainer of the tiny config and the torch RNG state right after its construction."""
    t = Trainer(tiny_cfg(*SHORT, *overrides), out, progress=False)
    return t, torch.get_rng_state()


@pytest.mark.parametrize("arch", [(), STYLEGAN2], ids=["dcgan", "stylegan2"])
def test_a_new_run_starts_from_the_sources_weights_with_a_fresh_optimiser(tmp_path, source, sg2_source, arch):
    src_dir = sg2_source if arch else source
    src_path = ckpt.list_checkpoints(src_dir / "checkpoints")[-1]
    src = ckpt.load(src_path)
    plain, plain_rng = _start(tmp_path / "plain", *arch, "train.seed=5")
    plain.close()
    t, rng = _start(tmp_path / "new", *arch, "train.seed=5", f"train.init_from={src_dir}")
    nets = _nets(t)
    assert all(_equal(nets[r], src[r]) for r in ROLES)  # w_avg, noise maps, BN statistics, SN's u: all
    assert not _equal(nets["G"], plain.run.models.G.state_dict())
    assert torch.equal(rng, plain_rng)  # reading the source drew no random number: the run's own streams
    assert t.step == 0 and not t.run.models.opt_g.state_dict()["state"] and not t.run.models.opt_d.state_dict()["state"]
    t.train()
    t.close()
    state = ckpt.load(ckpt.list_checkpoints(tmp_path / "new" / "checkpoints")[-1])
    record = state["init_from"]
    assert record["path"] == str(src_path.resolve()) and record["step"] == 1
    assert record["config_sha256"] == config_hash(src["config"]) and record["arch"] == ("stylegan2" if arch
                                                                                        else "dcgan")
    assert record["d_from_source"] and record["init_classes"] == "strict" and record["fresh"] == []
    assert state["step"] == 1 and not _equal(state["G"], src["G"])  # it trained on


def test_a_resumed_run_keeps_its_weights_and_its_record_without_the_source(tmp_path, source):
    copy = tmp_path / "source.pt"
    shutil.copy(ckpt.list_checkpoints(source / "checkpoints")[-1], copy)
    _train(tmp_path / "run", f"train.init_from={copy}")
    own = ckpt.load(ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    copy.unlink()  # gone: a resumed run never reads it
    with Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=1", f"train.init_from={copy}"), tmp_path / "run",
                 progress=False) as t:
        assert t.step == 1 and _equal(_nets(t)["G"], own["G"])
        t.train()
    last = ckpt.load(ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert last["step"] == 2 and last["init_from"] == own["init_from"]


@pytest.mark.parametrize("arch", [(), STYLEGAN2], ids=["dcgan", "stylegan2"])
def test_reinit_keeps_the_class_layers_fresh_and_takes_the_rest(tmp_path, source, sg2_source, three_classes, arch):
    """10 mnist5k classes -> 3 other classes: the class-dependent modules are bitwise those of a run without
    init_from, everything else the source's."""
    src_dir = sg2_source if arch else source
    src = ckpt.load(ckpt.list_checkpoints(src_dir / "checkpoints")[-1])
    plain, plain_rng = _start(tmp_path / "plain", *arch, *three_classes)
    plain.close()
    t, rng = _start(tmp_path / "new", *arch, *three_classes, f"train.init_from={src_dir}",
                    "train.init_classes=reinit")
    assert torch.equal(rng, plain_rng)  # finding the class layers drew no random number either
    fresh = class_dependent_modules(t.cfg, 3, 1)
    assert fresh["G"] and fresh["D"]
    for role, mine in _nets(t).items():
        new = {k for k in mine if k.rpartition(".")[0] in fresh[role[0]]}
        assert new and _equal(mine, _nets(plain)[role], new)
        assert _equal(mine, src[role], mine.keys() - new)
    assert sorted(t.init_from["fresh"]) == sorted(f"{r}.{k}" for r in ("G", "D") for k in _nets(t)[r]
                                                  if k.rpartition(".")[0] in fresh[r])
    t.train()
    t.close()


def _first_class_key(cfg, role: int) -> tuple[str, tuple, tuple]:
    """(key, shape with 10 classes, shape with 3) of the first tensor of G (0) or D (1) that depends on them."""
    with torch.device("meta"):
        a, b = build_nets(cfg, 10, 1)[role].state_dict(), build_nets(cfg, 3, 1)[role].state_dict()
    key = next(k for k in a if a[k].shape != b[k].shape)
    return key, tuple(a[key].shape), tuple(b[key].shape)


def test_strict_names_the_first_class_dependent_key_and_writes_nothing(tmp_path, capsys, source, three_classes):
    key, theirs, mine = _first_class_key(tiny_cfg(*three_classes), 0)
    out = tmp_path / "run"
    code, _, err = run_main(capsys, *tiny_train_args(out, *three_classes, f"train.init_from={source}"))
    assert code == 2 and err.strip().count("\n") == 0, err
    assert f"the generator's '{key}' is {theirs} there, {mine} in this run" in err
    assert "train.init_classes=reinit" in err and not out.exists()


def test_an_imported_generator_starts_a_run_whose_d_is_fresh(tmp_path, capsys):
    """A StudioGAN StyleGAN2 import of G files only: G and G_ema come from it, D starts fresh with a warning."""
    npz = tmp_path / "rgb.npz"
    rng = np.random.default_rng(1)
    np.savez(npz, images=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), labels=np.arange(16) % 4)
    sets = ["model.channel_base=256", "model.channel_max=16", "model.z_dim=16", "model.w_dim=16",
            "model.embed_dim=8", "model.mbstd_group=4", "train.batch_size=8", "data.name=npz", f"data.root={npz}",
            "train.steps=1", "train.ckpt_every=1", "train.sample_every=1", "eval.num_samples=8"]
    preset = "cifar10-stylegan2-d2dce"
    studiogan_folder(tmp_path / "sg", build_config(load_preset(preset), sets), roles=("G", "G_ema"), classes=4)
    flags = [a for s in sets for a in ("--set", s)]
    code, _, err = run_main(capsys, "import-studiogan", str(tmp_path / "sg"), "--preset", preset, *flags,
                            "--out", str(tmp_path / "imported"))
    assert code == 0, err
    imported = ckpt.load(ckpt.list_checkpoints(tmp_path / "imported" / "checkpoints")[-1])
    code, _, err = run_main(capsys, "train", "--preset", preset, *flags, "--set",
                            f"train.init_from={tmp_path / 'imported'}", "--out", str(tmp_path / "run"),
                            "--no-progress", "--no-eval")
    assert code == 0, err
    assert "holds no discriminator (an import of generators only): D starts fresh" in err
    state = ckpt.load(ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert state["init_from"]["imported_from"] == "PyTorch-StudioGAN" and not state["init_from"]["d_from_source"]
    assert state["init_from"]["step"] == 4321 and state["init_from"]["config_sha256"] == config_hash(imported["config"])


def _hostile(tmp: Path, kind: str, source: Path, sg2_source: Path) -> list[str]:
    """Overrides that start a tiny run from a bad source (fabricated under ``tmp``)."""
    newest = ckpt.list_checkpoints(source / "checkpoints")[-1]
    path = tmp / "bad.pt"
    if kind == "empty_run":
        (tmp / "empty" / "checkpoints").mkdir(parents=True)
        return [f"train.init_from={tmp / 'empty'}"]
    if kind in ("garbage", "foreign"):
        path.write_bytes(b"not a checkpoint") if kind == "garbage" else torch.save({"weights": torch.zeros(2)}, path)
    elif kind in ("nan", "resolution", "not_tensor"):
        state = ckpt.load(ckpt.list_checkpoints(sg2_source / "checkpoints")[-1] if kind == "resolution" else newest)
        if kind == "nan":
            state["D"][next(iter(state["D"]))][0] = float("nan")
        elif kind == "not_tensor":
            state["G_ema"]["shared.weight"] = [1.0]
        else:
            state["config"]["data"]["resolution"] = 64
        torch.save(state, path)
    return {"missing": [f"train.init_from={tmp / 'nowhere'}"], "other_arch": [f"train.init_from={sg2_source}"],
            "other_head": [f"train.init_from={source}", "loss.cond=ac", "loss.adv=hinge"],
            "reinit_alone": ["train.init_classes=reinit"],
            "resolution": [*STYLEGAN2, f"train.init_from={path}"]}.get(kind, [f"train.init_from={path}"])


@pytest.mark.parametrize("kind, culprit", [
    ("missing", "train.init_from: no such run dir or checkpoint"),
    ("empty_run", "train.init_from: no checkpoint in"),
    ("garbage", "train.init_from: checkpoint"),
    ("foreign", "is not a condgan checkpoint: no 'step'"),
    ("other_arch", "is a model.arch stylegan2 checkpoint; this run builds dcgan"),
    ("resolution", "was trained at 64 px; this run is 32 px"),
    ("nan", "holds NaN or infinity"),
    ("not_tensor", "the EMA generator's 'shared.weight' is not a tensor"),
    ("other_head", "another model config?"),
    ("reinit_alone", "'train.init_classes' (reinit) applies to a run started from train.init_from"),
])
def test_bad_sources_are_one_line_errors_that_write_nothing(tmp_path, capsys, source, sg2_source, kind, culprit):
    overrides = _hostile(tmp_path, kind, source, sg2_source)
    out = tmp_path / "run"
    code, _, err = run_main(capsys, *tiny_train_args(out, *overrides))
    assert code == 2 and culprit in err and err.strip().count("\n") == 0, err
    assert not out.exists()


def test_init_from_may_not_change_when_a_run_resumes(tmp_path, capsys, source):
    _train(tmp_path / "run")
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "run", "train.steps=2",
                                                     f"train.init_from={source}"))
    assert code == 2 and "changed keys: train.init_from ('' -> " in err and err.strip().count("\n") == 0, err

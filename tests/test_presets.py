"""The cifar10-reacgan preset: the BigGAN-32 pair of the reference configuration, trained for 2 steps."""
import json

import numpy as np
import torch
from fakes import make_cifar_archive
from layouts import make_imagenet, write_class_list
from PIL import Image

from condgan.config import build_config
from condgan.data.prepared import prepare
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


# ------------------------------------------------------------------------------------------ every preset
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from condgan.config import ConfigError  # noqa: E402
from condgan.presets import list_presets  # noqa: E402


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory):
    """data.name -> a fabricated data.root: CIFAR10/100 archives of 20 training images, a 3-class folder."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "folder"
    for c in range(3):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(3):
            pixels = np.random.default_rng(10 * c + i).integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")
    imagenet = make_imagenet(root / "imagenet", wnids=("n02085620", "n02123045", "n01440764"), per_class=2)
    wnids = write_class_list(root / "catdog.txt", ("n02085620", "n02123045"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONDGAN_CACHE", str(root / "cache"))
        store = prepare("imagenet143", str(imagenet.root), 64, "lanczos", str(wnids), progress=False)[0][1].parent
    return {"cifar10": [f"data.root={make_cifar_archive(root / 'cifar-10-python.tar.gz', n=4)}"],
            "cifar100": [f"data.root={make_cifar_archive(root / 'cifar-100-python.tar.gz', hundred=True, n=4)}"],
            "folder": [f"data.root={folder}"], "imagenet143": [f"data.root={store}"]}  # a store as the root


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_builds_and_trains_two_steps(name, tmp_path, data_roots):
    """The preset's architecture, losses, regularisers and strategy as shipped; the batch shrinks, and on the
    paper data sets (full-width nets on a CPU, fabricated data) one D iteration per G step and no sample grid
    or checkpoint keep the test short (the cifar10-reacgan test above runs the full trainer with 5 D steps)."""
    tree = load_preset(name)
    small = ["train.steps=2", "train.ckpt_every=2", "train.log_every=1", "train.sample_every=2", "eval.every=0"]
    paper_data = tree["data"]["name"] in data_roots
    small += ([*data_roots[tree["data"]["name"]], "data.download=false", "train.batch_size=4", "train.n_dis=1"]
              if paper_data else ["train.batch_size=8"])
    cfg = build_config(tree, small)
    assert cfg.reproduces, f"preset {name} does not say which paper row it reproduces"
    t = Trainer(cfg, tmp_path / "run", progress=False)
    if paper_data:
        records = [{k: v.item() for k, v in t.run.strategy.step(torch.device("cpu"), i).items()} for i in range(2)]
    else:
        t.train()
        records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2]
    values = [v for r in records for k, v in r.items() if k.startswith(("d_", "g_"))]
    assert values and all(torch.isfinite(torch.tensor(v)) for v in values)
    expected = {f"d_{k}" for k in ("gp", "dra", "r1", "cr", "lecam") if getattr(cfg.reg, k)}
    expected |= {"d_cond"} if cfg.loss.cond not in ("none", "pd", "mh") else set()
    expected |= {"d_tac", "g_tac"} if cfg.loss.aux == "tac" else set()
    expected |= {"d_kl"} if cfg.loss.fake_kl_weight else set()
    expected |= {"d_delta_abs"} if cfg.train.strategy == "free_adversarial" else set()
    assert expected <= set(records[-1]), (expected, set(records[-1]))


def test_presets_command_lists_paper_rows():
    out = subprocess.run([sys.executable, "-m", "condgan", "presets"], capture_output=True, text=True,
                         check=True).stdout
    for name, (row, _desc) in list_presets().items():
        assert name in out and f"reproduces: {row}" in out
    for name in ("cifar10-acgan-mod", "cifar10-biggan", "cifar10-contragan", "cifar10-mhgan", "cifar10-reacgan-ns",
                 "cifar10-reacgan-wgp", "cifar10-tacgan", "cifar10-adcgan", "cifar10-reacgan-cr", "cifar10-sngan",
                 "cifar10-biggan-uncond", "mnist5k-acgan", "mnist5k-pd", "mnist5k-contragan", "mnist5k-mhgan",
                 "cifar10-fastgan", "cifar100-fastgan", "imagenet143-64-fastgan", "cifar10-robgan", "mnist5k-fastgan"):
        assert name in out


def test_preset_base_merges_and_cycles_are_errors(monkeypatch):
    tree = load_preset("cifar10-reacgan-wgp")
    assert tree["loss"]["adv"] == "wasserstein" and tree["loss"]["cond"] == "d2d_ce"  # own key over base's
    assert tree["train"]["batch_size"] == 128 and tree["reg"]["gp"] == 10.0 and "base" not in tree
    import condgan.presets as presets
    real_load_yaml = presets.load_yaml

    def fake_load_yaml(path):
        tree = real_load_yaml(path)
        return {**tree, "base": "cifar10-tacgan"} if str(path).endswith("cifar10-biggan.yaml") else tree
    monkeypatch.setattr(presets, "load_yaml", fake_load_yaml)
    with pytest.raises(ConfigError, match="is its own base"):
        load_preset("cifar10-tacgan")

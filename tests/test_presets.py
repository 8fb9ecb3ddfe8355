"""The cifar10-reacgan preset: the BigGAN-32 pair of the reference configuration, trained for 2 steps."""
import json

import numpy as np
import torch
from fakes import make_cifar_archive
from layouts import make_afhq, make_cub, make_imagenet, make_tiny_imagenet, write_class_list
from PIL import Image

from condgan.config import build_config
from condgan.data.prepared import prepare
from condgan.nets import BigGANDiscriminator, BigGANGenerator, build_nets, count_parameters
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
    """(data.name, data.resolution) -> overrides naming a fabricated data.root: CIFAR10/100 archives of 20 training
    images, a 3-class folder, and for the papers' large data sets a prepared store of their fabricated layout
    (a store folder as the root, as a user copying it to a local disk would pass)."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "folder"
    for c in range(3):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(3):
            pixels = np.random.default_rng(10 * c + i).integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")
    imagenet = make_imagenet(root / "imagenet", wnids=("n02085620", "n02123045", "n01440764"), per_class=2)
    wnids = write_class_list(root / "catdog.txt", ("n02085620", "n02123045"))
    sources = {"imagenet143": (imagenet.root, str(wnids)), "imagenet": (imagenet.root, ""),
               "tiny_imagenet": (make_tiny_imagenet(root / "tiny", per_class=2).root, ""),
               "cub200": (make_cub(root / "cub", per_class=6).root, ""),
               "afhq": (make_afhq(root / "afhq", per_class=2).root, "")}
    roots = {("cifar10", 32): [f"data.root={make_cifar_archive(root / 'cifar-10-python.tar.gz', n=4)}"],
             ("cifar100", 32): [f"data.root={make_cifar_archive(root / 'cifar-100-python.tar.gz', hundred=True, n=4)}"],
             ("folder", 32): [f"data.root={folder}"]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONDGAN_CACHE", str(root / "cache"))
        for (name, resolution) in (("imagenet143", 64), ("imagenet143", 128), ("imagenet", 128), ("tiny_imagenet", 64),
                                   ("cub200", 128), ("afhq", 512)):
            source, classes = sources[name]
            store = prepare(name, str(source), resolution, "lanczos", classes, progress=False)[0][1].parent
            roots[(name, resolution)] = [f"data.root={store}"]
    return roots


def _paper_data(tree: dict, data_roots: dict) -> list[str] | None:
    """Overrides running a preset on fabricated data of its layout (None: the built-in mnist5k)."""
    name = tree["data"]["name"]
    return None if name == "mnist5k" else data_roots[(name, _resolution(tree))]


def _resolution(tree: dict) -> int:
    return tree["data"].get("resolution", 32)


SMALL_NETS = ["model.g_width=8", "model.d_width=8"]  # every net at CI size (full width: tests/test_smoke.py, slow)
# StyleGAN2 at CI size (every resolution: channels min(2048 / r, 16), so 4 at 512 px); full width: tests/test_smoke.py, slow
SMALL_STYLEGAN2 = ["model.channel_base=2048", "model.channel_max=16", "model.z_dim=16", "model.w_dim=16",
                   "model.embed_dim=8"]


def _is_stylegan2(tree: dict) -> bool:
    return tree["model"]["arch"] == "stylegan2"


def _ci_nets(tree: dict) -> list[str]:
    return SMALL_STYLEGAN2 if _is_stylegan2(tree) else SMALL_NETS


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_every_preset_builds_and_trains_two_steps(name, tmp_path, data_roots):
    """The preset's losses, regularisers, strategy and architecture as shipped (the nets at width 8, StyleGAN2 at
    channel_max 16; full width in tests/test_smoke.py's slow test and in cifar10-reacgan's test above); the batch shrinks, and on the paper data sets
    one D iteration per G step and no sample grid or checkpoint keep the test short (the cifar10-reacgan test above
    runs the full trainer with 5 D steps)."""
    tree = load_preset(name)
    _train_two_steps(name, tree, tmp_path, data_roots, _ci_nets(tree))


def _train_two_steps(name: str, tree: dict, tmp_path, data_roots: dict, nets: list[str]) -> None:
    small = ["train.steps=2", "train.ckpt_every=2", "train.log_every=1", "train.sample_every=2", "eval.every=0",
             "optim.lr_decay_start=0"]
    paper_data = _paper_data(tree, data_roots)
    batch = 2 if _resolution(tree) >= 512 else 4  # 512 px: ADA's warp works on 6x the image side, per sample
    small += ([*paper_data, "data.download=false", f"train.batch_size={batch}", "train.n_dis=1"]
              if paper_data else ["train.batch_size=8"])
    cfg = build_config(tree, small + nets)
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
    expected |= {"d_cond"} if cfg.loss.cond in ("ac", "2c", "d2d_ce") else set()
    expected |= {"d_tac", "g_tac"} if cfg.loss.aux == "tac" else set()
    expected |= {"d_kl"} if cfg.loss.fake_kl_weight else set()
    expected |= {"d_delta_abs"} if cfg.train.strategy == "free_adversarial" else set()
    expected |= {"g_pl_mean"} | ({"g_pl"} if cfg.reg.pl_weight else set()) if cfg.train.strategy == "stylegan2" else set()
    expected |= {"aug_p"} if cfg.aug.ada else set()
    assert expected <= set().union(*records), (expected, set().union(*records))


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


# PyTorch-StudioGAN's counts (spectral norm's weight_orig counted; ../DESIGN.md 4b). Tiny-ImageNet has no published
# count: Baby-ImageNet's (100 classes: G 17,322,404, D 31,601,330) plus 100 more classes' shared G embedding
# (x 128) and D proxies (x 768), counted by hand.
REFERENCE_COUNTS = {"cub200-reacgan": (49_226_404, 61_551_026), "imagenet128-reacgan": (70_433_988, 91_642_146),
                    "imagenet128-biggan": (70_433_988, 87_982_370), "imagenet128-sngan": (41_996_931, 39_443_137),
                    "imagenet128-sagan": (42_017_412, 39_448_258),
                    "tiny-reacgan": (17_322_404 + 100 * 128, 31_601_330 + 100 * 768)}
# ../DESIGN.md 8a: NVIDIA's and StudioGAN's StyleGAN2 (benchmarks/stylegan2_refs.py builds the same counts from both)
STYLEGAN2_COUNTS = {"cifar10-stylegan2": (20_215_315, 23_089_664), "cifar10-stylegan2-d2dce": (20_215_315, 21_251_585),
                    "cifar10-stylegan2-ada": (20_215_315, 23_089_664),
                    "cifar10-stylegan2-d2dce-ada": (20_215_315, 21_251_585),
                    "cifar10-stylegan2-d2dce-diffaug-tuning": (20_215_315, 21_251_585),
                    "afhq512-stylegan2-ada": (30_540_775, 31_348_288),
                    "afhq512-stylegan2-d2dce-ada": (30_540_775, 30_561_857)}
REFERENCE_COUNTS.update(STYLEGAN2_COUNTS)


@pytest.mark.parametrize("name", sorted(STYLEGAN2_COUNTS))
def test_stylegan2_presets_have_the_references_parameter_counts(name):
    """The full-width nets, built on the meta device (no memory, no time), count what the references count."""
    from condgan.data.registry import KNOWN_SHAPES

    cfg = build_config(load_preset(name))
    with torch.device("meta"):
        G, D = build_nets(cfg, *KNOWN_SHAPES[cfg.data.name])
    assert (count_parameters(G), count_parameters(D)) == STYLEGAN2_COUNTS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_presets_show_prints_the_reference_parameter_counts(name):
    out = subprocess.run([sys.executable, "-m", "condgan", "presets", "--show", name], capture_output=True, text=True,
                         check=True).stdout
    g, d = REFERENCE_COUNTS[name]
    assert f"# parameters: G {g:,}  D {d:,}" in out

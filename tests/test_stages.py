"""The networks at 32 to 256 px against their references: parameter counts, the stage tables' block-by-block
shapes and attention positions, float64 forward/backward, and two training steps on fabricated data."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from condgan.config import ConfigError, build_config
from condgan.nets import build_nets, count_parameters
from condgan.nets.layers import SelfAttention
from condgan.nets.stages import STUDIOGAN_STAGES
from condgan.train.trainer import Trainer
from conftest import tiny_cfg


def _cfg(arch: str, res: int, classes_hint: str = "", **model):
    tree = {"model": {"arch": arch, **model}, "data": {"resolution": res}}
    if classes_hint:
        tree["loss"] = {"cond": classes_hint}
    return build_config(tree)


# ----------------------------------------------------------------------------------------- parameter counts
# StudioGAN's models built from its configs (counting spectral norm's weight_orig; u and v are buffers).
REFERENCE_COUNTS = {
    "ReACGAN CUB200": ("biggan", 128, 200, dict(g_width=80, d_width=80, z_dim=120, embed_dim=1024), "d2d_ce",
                       49_226_404, 61_551_026),
    "ReACGAN ImageNet-256": ("biggan", 128, 1000, dict(g_width=96, d_width=96, z_dim=120, embed_dim=2048), "d2d_ce",
                             70_433_988, 91_642_146),
    "BigGAN ImageNet-256": ("biggan", 128, 1000, dict(g_width=96, d_width=96, z_dim=120), "pd",
                            70_433_988, 87_982_370),
    "SNGAN ImageNet-256": ("resnet", 128, 1000, dict(g_width=64, d_width=64, z_dim=128, g_sn=False), "pd",
                           41_996_931, 39_443_137),
    "SAGAN ImageNet-256": ("sagan", 128, 1000, dict(g_width=64, d_width=64, z_dim=128, g_sn=True), "pd",
                           42_017_412, 39_448_258),
    "ReACGAN Baby-ImageNet": ("biggan", 64, 100, dict(g_width=80, d_width=80, z_dim=100, embed_dim=768), "d2d_ce",
                              17_322_404, 31_601_330),
    "ReACGAN CIFAR10": ("biggan", 32, 10, dict(g_width=96, d_width=96, z_dim=80, embed_dim=512), "d2d_ce",
                        9_416_196, 2_517_186),
}


@pytest.mark.parametrize("row", REFERENCE_COUNTS)
def test_parameter_counts_equal_studiogan(row):
    arch, res, classes, model, cond, g_ref, d_ref = REFERENCE_COUNTS[row]
    with torch.device("meta"):  # full width, no memory or init time
        g, d = build_nets(_cfg(arch, res, cond, **model), classes, 3)
    assert (count_parameters(g), count_parameters(d)) == (g_ref, d_ref)


def official_fastgan_counts(g_mult: tuple, d_mult: tuple, d_down: tuple, w: int, z: int, c: int) -> tuple[int, int]:
    """Parameters of the official FastGAN nets (tools/networks/gan/sn_resnet_*.py, no SN, BN in G, c_metric
    ce_kl), counted layer by layer from their code: UpBlock = CatCondBN(in) + conv3(in->out) + CatCondBN(out)
    + conv3(out->out) + conv1(in->out), all convs with bias, a CatCondBN holding C gains and C biases per
    channel; OptimizedBlock = conv3(3->d0) + conv3(d0->d0) + conv1(3->d0); DownBlock(in, out, hidden = in) =
    conv3(in->in) + conv3(in->out) + conv1(in->out) when in != out or downsampling; heads o_b Linear(F, 1) and
    o_c Linear(F, C), both with bias."""
    def conv(i, o, k):
        return i * o * k * k + o
    gs = [w * m for m in g_mult]
    g = z * gs[0] * 16 + gs[0] * 16
    for i, o in zip(gs[:-1], gs[1:]):
        g += 2 * c * i + conv(i, o, 3) + 2 * c * o + conv(o, o, 3) + conv(i, o, 1)
    g += 2 * gs[-1] + conv(gs[-1], 3, 3)
    ds = [w * m for m in d_mult]
    d = conv(3, ds[0], 3) + conv(ds[0], ds[0], 3) + conv(3, ds[0], 1)
    for i, o, down in zip(ds[:-1], ds[1:], d_down):
        d += conv(i, i, 3) + conv(i, o, 3) + (conv(i, o, 1) if i != o or down else 0)
    d += (ds[-1] + 1) + (ds[-1] * c + c)
    return g, d


# (layout, classes, the official nets' counts as instantiated from their code with n_classes = classes)
FASTGAN_128 = [("imagenet", 1000, (16, 16, 8, 4, 2, 1), (1, 2, 4, 8, 16, 16), 41_996_931, 30_042_857),
               ("imagenet143", 143, (8, 8, 4, 4, 2, 1), (1, 2, 4, 4, 8, 8), 10_606_339, 8_575_120)]


@pytest.mark.parametrize("layout,classes,g_mult,d_mult,g_official,d_official", FASTGAN_128)
def test_fastgan_128_equals_a_hand_count_of_the_official_nets(layout, classes, g_mult, d_mult, g_official,
                                                              d_official):
    down = (True, True, True, True, False)
    assert official_fastgan_counts(g_mult, d_mult, down, 64, 128, classes) == (g_official, d_official)
    for cls_bias, d_expected in ((True, d_official), (False, d_official - classes)):  # default: StudioGAN's head
        with torch.device("meta"):
            g, d = build_nets(build_config({"model": {"arch": "fastgan", "layout": layout, "g_width": 64,
                                                      "d_width": 64, "z_dim": 128, "d_sn": False, "init": "xavier",
                                                      "cls_bias": cls_bias},
                                            "data": {"resolution": 128},
                                            "loss": {"cond": "ac", "fake_kl_weight": 1.0}}), classes, 3)
        assert (count_parameters(g), count_parameters(d)) == (g_official, d_expected)


# ------------------------------------------------------------------------------------------- stage tables
# Every G block / attention output, then every D block / attention output, as channels (in units of the
# width) @ side; "A" marks self-attention. Written from the reference code's dictionaries, not from ours.
STAGES = {
    ("biggan", 32, ""): "G 4@8 4@16 A4@16 4@32 | D 2@16 A2@16 2@8 2@8 2@8",
    ("biggan", 64, ""): "G 8@8 4@16 2@32 A2@32 1@64 | D 1@32 A1@32 2@16 4@8 8@4 16@4",
    ("biggan", 128, ""): "G 16@8 8@16 4@32 2@64 A2@64 1@128 | D 1@64 A1@64 2@32 4@16 8@8 16@4 16@4",
    ("biggan", 256, ""): "G 16@8 8@16 8@32 4@64 A4@64 2@128 1@256 | D 1@128 2@64 A2@64 4@32 8@16 8@8 16@4 16@4",
    ("resnet", 32, ""): "G 4@8 4@16 4@32 | D 2@16 2@8 2@8 2@8",
    ("resnet", 64, ""): "G 8@8 4@16 2@32 1@64 | D 1@32 2@16 4@8 8@4 16@4",
    ("resnet", 128, ""): "G 16@8 8@16 4@32 2@64 1@128 | D 1@64 2@32 4@16 8@8 16@4 16@4",
    ("resnet", 256, ""): "G 16@8 8@16 8@32 4@64 2@128 1@256 | D 1@128 2@64 4@32 8@16 8@8 16@4 16@4",
    ("sagan", 32, ""): "G 4@8 4@16 A4@16 4@32 | D 2@16 A2@16 2@8 2@8 2@8",
    ("sagan", 64, ""): "G 8@8 4@16 2@32 A2@32 1@64 | D 1@32 A1@32 2@16 4@8 8@4 16@4",
    ("sagan", 128, ""): "G 16@8 8@16 4@32 2@64 A2@64 1@128 | D 1@64 A1@64 2@32 4@16 8@8 16@4 16@4",
    ("sagan", 256, ""): "G 16@8 8@16 8@32 4@64 A4@64 2@128 1@256 | D 1@128 2@64 A2@64 4@32 8@16 8@8 16@4 16@4",
    ("fastgan", 128, "imagenet"): "G 16@8 8@16 4@32 2@64 1@128 | D 1@64 2@32 4@16 8@8 16@4 16@4",
    ("fastgan", 128, "imagenet143"): "G 8@8 4@16 4@32 2@64 1@128 | D 1@64 2@32 4@16 4@8 8@4 8@4",
    ("fastgan", 64, ""): "G 8@8 4@16 2@32 1@64 | D 1@32 2@16 4@8 8@4 16@2",
    ("fastgan", 32, ""): "G 1@8 1@16 1@32 | D 1@16 1@8 1@4 1@2",
}
W = 8  # tiny width: attention needs 8 channels


def _tiny_pair(arch: str, res: int, layout: str):
    z = {"biggan": 4 * 5 * 6 * 7}.get(arch, 16)  # splits into chunks at every resolution
    cfg = build_config({"model": {"arch": arch, "layout": layout, "g_width": W, "d_width": W, "z_dim": z,
                                  "embed_dim": 8, "shared_dim": 8, "g_sn": arch != "fastgan"},
                        "data": {"resolution": res}, "loss": {"cond": "d2d_ce"}})
    torch.manual_seed(0)
    g, d = build_nets(cfg, 5, 3)
    return g.double(), d.double(), z


def _record(net: torch.nn.Module, trace: list[str]) -> None:
    for name, m in net.named_modules():
        if re.fullmatch(r"blocks\.\d+|opt_block|attn", name):
            tag = "A" if isinstance(m, SelfAttention) else ""
            m.register_forward_hook(lambda mod, i, o, tag=tag: trace.append(f"{tag}{o.shape[1] // W}@{o.shape[-1]}"))


@pytest.mark.parametrize("arch,res,layout", STAGES)
def test_stage_table_shapes_attention_and_float64_backward(arch, res, layout):
    g, d, z_dim = _tiny_pair(arch, res, layout)
    g_trace, d_trace = [], []
    _record(g, g_trace)
    _record(d, d_trace)
    y = torch.tensor([0, 4])
    x = g(torch.randn(2, z_dim, dtype=torch.float64), y)
    out = d(x, y)
    assert x.shape == (2, 3, res, res) and x.dtype == torch.float64
    assert f"G {' '.join(g_trace)} | D {' '.join(d_trace)}" == STAGES[(arch, res, layout)]
    (out.adv.sum() + out.embed.square().sum() + out.proxies.square().sum()).backward()
    grads = [p.grad for p in [*g.parameters(), *d.parameters()] if p.requires_grad]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    if arch == "fastgan":  # its D blocks' first conv keeps the input width
        assert all(b.conv0.out_channels == b.conv0.in_channels for b in d.blocks)


def test_resolutions_and_chunks_are_config_errors():
    with pytest.raises(ConfigError, match=r"'data.resolution' must be one of 32, 64, 128, 256 for model.arch=biggan"):
        _cfg("biggan", 48)
    with pytest.raises(ConfigError, match=r"'model.z_dim' must split into 6 equal chunks for biggan at 128 px"):
        _cfg("biggan", 128, z_dim=80)
    with pytest.raises(ConfigError, match=r"'data.resolution' must be one of 32 for model.arch=biggan32"):
        _cfg("biggan32", 64, z_dim=100)
    with pytest.raises(ConfigError, match=r"'model.layout' applies to model.arch=fastgan only"):
        _cfg("biggan", 128, z_dim=120, layout="imagenet")
    with pytest.raises(ConfigError, match=r"'model.layout' cifar exists at 32 px; got data.resolution=128"):
        _cfg("fastgan", 128, layout="cifar")
    with pytest.raises(ConfigError, match=r"'model.g_sn' must be false for model.arch=fastgan"):
        _cfg("fastgan", 32, g_sn=True)
    with pytest.raises(ConfigError, match=r"'model.cls_bias' applies to model.arch resnet, sagan, resnet32, fastgan"):
        _cfg("biggan", 32, "ac", cls_bias=True)
    with pytest.raises(ConfigError, match=r"'model.cls_bias' needs loss.cond ac"):
        _cfg("fastgan", 32, "pd", cls_bias=True)


@pytest.mark.parametrize("old,new", [
    (("biggan32", {"g_width": 16, "d_width": 16}), ("biggan", {"g_width": 16, "d_width": 16})),
    (("resnet32", {"g_width": 256, "d_width": 128}), ("resnet", {"g_width": 64, "d_width": 64}))])
def test_old_names_build_the_same_nets(old, new):
    """biggan32 and resnet32 (the names runs made before the stage tables resume under) build, from the same
    seed, bitwise the nets biggan / resnet build (resnet32's widths are the blocks' own: 256 = 4 x 64)."""
    nets = []
    for arch, widths in (old, new):
        torch.manual_seed(0)
        nets.append(build_nets(_cfg(arch, 32, "pd", z_dim=8, **widths), 10, 3))
    for a, b in zip(*nets):
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------- training at every size
def fabricated_npz(path, res: int, classes: int = 3, per_class: int = 8):
    """An npz dataset of res x res RGB noise images, ``per_class`` per class."""
    rng = np.random.default_rng(0)
    n = classes * per_class
    np.savez(path, images=rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8),
             labels=np.arange(n) % classes)
    return path


TRAINED = [("biggan", 64, ""), ("biggan", 128, ""), ("biggan", 256, ""), ("resnet", 64, ""), ("resnet", 128, ""),
           ("sagan", 128, ""), ("fastgan", 128, "imagenet"), ("fastgan", 128, "imagenet143")]


def _train_two_steps(tmp_path, arch: str, res: int, layout: str, *sets: str) -> float:
    z = 20 * (STUDIOGAN_STAGES[res].g_blocks + 1) if arch == "biggan" else 16  # BigGAN's 20-dim chunks
    npz = fabricated_npz(tmp_path / "data.npz", res)
    cfg = tiny_cfg("data.name=npz", f"data.root={npz}", f"data.resolution={res}", f"model.arch={arch}",
                   f"model.layout={layout}", f"model.z_dim={z}", "train.steps=2", "train.ckpt_every=2",
                   "train.batch_size=4", *sets)
    start = time.perf_counter()
    t = Trainer(cfg, tmp_path / "run", progress=False)
    t.train()
    assert t.step == 2 and (tmp_path / "run" / "checkpoints").is_dir()
    x = t.run.ema.shadow(torch.randn(2, z), torch.tensor([0, 2]))
    assert x.shape == (2, 3, res, res) and torch.isfinite(x).all()
    return time.perf_counter() - start


@pytest.mark.parametrize("arch,res,layout", TRAINED)
def test_every_new_net_trains_two_steps_at_its_size(tmp_path, arch, res, layout):
    _train_two_steps(tmp_path, arch, res, layout, "model.g_width=8", "model.d_width=8")


FULL_WIDTH = {("biggan", 64, ""): ["model.g_width=80", "model.d_width=80", "model.embed_dim=768"],
              ("biggan", 128, ""): ["model.g_width=96", "model.d_width=96", "model.embed_dim=2048"],
              ("resnet", 128, ""): ["model.g_width=64", "model.d_width=64"],
              ("sagan", 128, ""): ["model.g_width=64", "model.d_width=64", "model.g_sn=true"],
              ("fastgan", 128, "imagenet"): ["model.g_width=64", "model.d_width=64"],
              ("fastgan", 128, "imagenet143"): ["model.g_width=64", "model.d_width=64"]}


@pytest.mark.slow
@pytest.mark.parametrize("arch,res,layout", FULL_WIDTH)
def test_full_width_nets_train_two_steps(tmp_path, arch, res, layout):
    seconds = _train_two_steps(tmp_path, arch, res, layout, *FULL_WIDTH[(arch, res, layout)])
    print(f"{arch} {res} {layout}: 2 steps at batch 4 in {seconds:.1f} s")


def test_a_biggan32_run_resumes_under_the_biggan_name(tmp_path):
    """Runs made before the stage tables saved model.arch=biggan32; the presets now say biggan."""
    old = tiny_cfg("model.arch=biggan32", "model.z_dim=16", "model.shared_dim=8", "train.steps=2",
                   "train.ckpt_every=1")
    first = Trainer(old, tmp_path, progress=False)
    first.train(until=1)
    first.close()
    resumed = Trainer(tiny_cfg("model.arch=biggan", "model.z_dim=16", "model.shared_dim=8", "train.steps=2",
                               "train.ckpt_every=1"), tmp_path, progress=False)
    assert resumed.step == 1
    resumed.train()
    assert resumed.step == 2
    resumed.close()
    with pytest.raises(ConfigError, match=r"model.arch \('biggan' -> 'resnet'\)"):
        Trainer(tiny_cfg("model.arch=resnet", "model.z_dim=16", "train.steps=2", "train.ckpt_every=1"), tmp_path,
                progress=False)

"""StyleGAN2's reference cases, shared by benchmarks/stylegan2_nets.py (which runs NVIDIA's and StudioGAN's code on
them and writes tests/data/stylegan2_reference.json with ``--pin``) and tests/test_stylegan2_reference.py (which
checks condgan against that file without the references).

Weights: every tensor but the resample filters gets N(0, 1) draws from a stream seeded by its StudioGAN name
(condgan's name without ``heads.``), scaled as its layer stores it (equalised lr: values over the lr multiplier;
biases N(0, 0.2), style affines' biases around 1, noise strengths N(0, 0.3), w_avg N(0, 0.5)), so no
tensor keeps the constant its init gave it and both codes can draw the same weights.
"""
from __future__ import annotations

import json
import types
import zlib
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from condgan.config import Config, build_config
from condgan.data.base import make_dataset
from condgan.data.loader import BatchSampler
from condgan.train.precision import Precision
from condgan.train.strategy import Models
from condgan.train.stylegan2 import StyleGAN2Strategy

REFERENCE = Path(__file__).parent / "data" / "stylegan2_reference.json"
N = 8  # samples of every comparison
SCALE = {"weight": 1.0, "const": 1.0, "noise_const": 1.0, "bias": 0.2, "noise_strength": 0.3, "w_avg": 0.5}
# case -> the pair's settings (StyleGAN2Spec's fields): small widths, both D architectures
CASES = {
    "small": dict(resolution=32, num_classes=10, z_dim=64, w_dim=64, mapping_layers=2, channel_base=512,
                  channel_max=32, d_arch="orig", mbstd_group=4),
    "resnet64": dict(resolution=64, num_classes=3, z_dim=64, w_dim=64, mapping_layers=3, channel_base=512,
                     channel_max=32, d_arch="resnet", mbstd_group=2),
}
HEADS = (("spd", "none"), ("d2d_ce", "none"), ("d2d_ce", "tac"), ("d2d_ce", "adc"), ("2c", "none"),
         ("ac", "none"), ("ac", "tac"), ("mh", "none"), ("none", "none"))
PHASES = (("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16))  # NVIDIA's phases and their gains (intervals)
R1_GAMMA, PL_WEIGHT = 0.01, 2.0


def case_config(case: dict, cond: str = "spd", aux: str = "none", *extra: str) -> Config:
    """condgan's config of a case's pair with one head (batch N; w_avg_beta NVIDIA's 0.995)."""
    model = [f"model.{k}={case[k]}" for k in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                                               "d_arch", "mbstd_group")]
    return build_config(None, ["model.arch=stylegan2", "train.strategy=stylegan2", "model.g_sn=false",
                               "model.d_sn=false", "model.init=default", "model.attention=false",
                               f"loss.adv={'mh' if cond == 'mh' else 'ns'}", f"loss.cond={cond}", f"loss.aux={aux}",
                               f"data.resolution={case['resolution']}", f"train.batch_size={N}",
                               "model.embed_dim=24", "model.w_avg_beta=0.995", *model, *extra])


def studiogan_name(key: str) -> str:
    """A condgan StyleGAN2 key under StudioGAN's name (D heads sit at its D's top level)."""
    return key.removeprefix("heads.")


@torch.no_grad()
def seed_(net: nn.Module, seed: int, name=studiogan_name) -> nn.Module:
    """Set every tensor of ``net`` (condgan's or a reference's) but resample filters to its seeded value."""
    for key, tensor in net.state_dict(keep_vars=True).items():
        owner, _, leaf = key.rpartition(".")
        if leaf == "resample_filter":
            continue
        lr = float(getattr(net.get_submodule(owner), "bias_gain", 1.0))  # an equalised layer's lr multiplier
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name(key).encode()))
        draw = torch.randn(tensor.shape, generator=gen, dtype=torch.float64)
        tensor.copy_((float(key.endswith("affine.bias")) + SCALE[leaf] * draw) / lr)
    return net


def inputs(case: dict, seed: int = 0) -> types.SimpleNamespace:
    """z [N, z_dim], y [N], one-hot c, images x [N, 3, R, R] in [-1, 1], the path-length noise (half the batch)."""
    gen = torch.Generator().manual_seed(seed)
    f64 = dict(generator=gen, dtype=torch.float64)
    r, y = case["resolution"], torch.arange(N) % case["num_classes"]
    return types.SimpleNamespace(z=torch.randn(N, case["z_dim"], **f64), y=y,
                                 c=F.one_hot(y, case["num_classes"]).double(),
                                 x=torch.rand(N, 3, r, r, **f64) * 2 - 1, pl_noise=torch.randn(N // 2, 3, r, r, **f64))


def phase_strategy(case: dict, G: nn.Module, D: nn.Module, v: types.SimpleNamespace) -> StyleGAN2Strategy:
    """condgan's stylegan2 strategy on float64 (G, D) whose steps leave the weights as they are (SGD at lr 0: each
    phase's gradients stay in .grad), fed ``v``'s reals, latents and path-length noise and G's constant noise."""
    cfg = case_config(case, "spd", "none", f"reg.r1={R1_GAMMA}", "reg.r1_interval=16", "reg.r1_own_step=true",
                      f"reg.pl_weight={PL_WEIGHT}", "reg.pl_interval=4", "data.hflip=false")
    r, classes = case["resolution"], case["num_classes"]
    data = make_dataset(torch.zeros(N, 3, r, r, dtype=torch.uint8), torch.arange(N) % classes, classes, "inputs")
    models = Models(G.train(), D.train(), torch.optim.SGD(G.parameters(), lr=0.0),
                    torch.optim.SGD(D.parameters(), lr=0.0))
    strategy = StyleGAN2Strategy(cfg, models, BatchSampler(data, N, 0), classes, Precision("fp32", "cpu"))
    const = [layer.noise_const.expand(N, 1, -1, -1) for block in G.synthesis.blocks() for layer in block.layers()]
    strategy.fake_inputs = lambda n, device: (v.z[:n], v.y[:n], {"noise": [m[:n] for m in const]})
    strategy.real_batch = lambda: (v.x, v.y)
    strategy.path_length_noise = lambda images: v.pl_noise.to(images.dtype)
    strategy.pl_mean = torch.zeros((), dtype=torch.float64)
    return strategy


def run_phase(strategy: StyleGAN2Strategy, phase: str, v: types.SimpleNamespace) -> None:
    """One of NVIDIA's phases through condgan's strategy (steps chosen so that no other phase is due)."""
    device = torch.device("cpu")
    if phase == "Gmain":
        strategy.g_step(device, 1)  # step 1: no path-length step due
    elif phase == "Greg":
        strategy.path_length_step(device)
    elif phase == "Dmain":
        strategy.d_index = 1  # D step 1: no R1 due
        strategy.d_step(0)
    else:
        strategy.r1_step(v.x, v.y)


def d_outputs(out, cond: str, aux: str, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """condgan's DOutput under StudioGAN's output names, normalised as StudioGAN returns them (embeddings and
    proxies; its AC returns normalize(h) as h; its ADC proxies are those of the real labels 2y)."""
    h = F.normalize(out.features, dim=1) if cond == "ac" else out.features
    got = {"adv_output": out.cls_logits if cond == "mh" else out.adv, "h": h,
           "cls_output": None if cond == "mh" else out.cls_logits, "mi_cls_output": out.tac_logits}
    if out.embed is not None:
        rows = 2 * y if aux == "adc" else y
        got.update(embed=F.normalize(out.embed, dim=1), proxy=F.normalize(out.proxies[rows], dim=1))
    if out.tac_embed is not None:
        got.update(mi_embed=F.normalize(out.tac_embed, dim=1), mi_proxy=F.normalize(out.tac_proxies[y], dim=1))
    return {k: v for k, v in got.items() if v is not None}


def probe(t: torch.Tensor, count: int = 24) -> dict:
    """What the reference file keeps of a tensor: sum, sum of squares, max |value|, ``count`` values spread over it."""
    flat = t.detach().double().flatten()
    at = torch.linspace(0, flat.numel() - 1, count).long()
    return {"sum": flat.sum().item(), "sum_sq": (flat * flat).sum().item(), "max_abs": flat.abs().max().item(),
            "values": flat[at].tolist()}


def load_reference() -> dict:
    return json.loads(REFERENCE.read_text())

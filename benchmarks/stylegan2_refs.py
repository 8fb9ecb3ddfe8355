"""The StyleGAN2 references, NVIDIA's stylegan2-ada-pytorch and PyTorch-StudioGAN's port, run as is in float64.

    python benchmarks/stylegan2_refs.py --nvidia CHECKOUT --studiogan CHECKOUT

Nothing of either is copied here: their modules are imported from the checkouts at run time. Both hard-code
float32 as the compute dtype (``z.to(torch.float32)``, block dtypes, filter asserts), so each imported module's
global ``torch`` is swapped for a proxy of torch whose ``float32`` is ``torch.float64`` (see compute_dtype()).
Off CUDA both codes take their plain-torch paths by themselves: bias_act / upfirdn2d fall back to '_ref' when
x is not on CUDA, conv2d_gradfix to F.conv2d (the self-check asserts it). NVIDIA's dnnlib is the top-level
``dnnlib``, StudioGAN's ``utils.style_ops.dnnlib``, so both load into one process.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "tests")]
from studiogan_step import _placeholder_modules  # noqa: E402
from stylegan2_cases import seed_  # noqa: E402  (the seeded, non-constant weights both codes get)

OPS = ("upfirdn2d", "bias_act", "conv2d_resample", "fma", "conv2d_gradfix")  # the ops the networks call
NVIDIA_MODULES = ("training.networks", "training.loss", "torch_utils.misc", *(f"torch_utils.ops.{m}" for m in OPS))
STUDIOGAN_MODULES = ("models.stylegan2", "utils.losses", "utils.style_misc", *(f"utils.style_ops.{m}" for m in OPS))
D_COND = {"spd": "SPD", "d2d_ce": "D2DCE", "ac": "AC", "2c": "2C", "mh": "MH", "none": "W/O"}
AUX = {"none": "W/O", "tac": "TAC", "adc": "ADC"}
STUDIOGAN_COND_TYPE = ("PD", "SPD", "2C", "D2DCE")  # its config.py STYLEGAN.cond_type: D gets c_dim > 0


class _TorchProxy:
    """torch, except ``float32`` (the references' compute dtype); instance attributes shadow torch's."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.float32 = dtype

    def __getattr__(self, name: str):
        return getattr(torch, name)


def _load(root: Path, names: tuple[str, ...], **short: str) -> types.SimpleNamespace:
    """Import ``names`` from ``root``, each with a float64 torch proxy (kept if it has one already)."""
    if "requests" not in sys.modules and importlib.util.find_spec("requests") is None:
        sys.modules["requests"] = types.ModuleType("requests")  # dnnlib/util.py's, for downloads only
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    modules = {}
    for name in names:
        module = importlib.import_module(name)
        # a same-named package elsewhere (or an earlier checkout) would shadow the namespace packages models/utils
        if not Path(module.__file__).resolve().is_relative_to(root):
            raise SystemExit(f"{name} was imported from {module.__file__}, not from {root}")
        if not isinstance(module.torch, _TorchProxy):
            module.torch = _TorchProxy(torch.float64)
        modules[name] = module
    return types.SimpleNamespace(**{k: modules[v] for k, v in short.items()}, modules=modules,
                                 proxies=[m.torch for m in modules.values()])


def load_nvidia(checkout: str | Path) -> types.SimpleNamespace:
    """NVIDIA's training.networks and training.loss (and ops), float64-redirected."""
    root = Path(checkout).resolve()
    if not (root / "training" / "networks.py").is_file():
        raise SystemExit(f"--nvidia {checkout}: not a stylegan2-ada-pytorch checkout (no training/networks.py)")
    return _load(root, NVIDIA_MODULES, networks="training.networks", loss="training.loss")


def load_studiogan(checkout: str | Path) -> types.SimpleNamespace:
    """StudioGAN's models.stylegan2 and utils.losses (and style ops), float64-redirected."""
    root = (Path(checkout) / "src").resolve()
    if not (root / "models" / "stylegan2.py").is_file():
        raise SystemExit(f"--studiogan {checkout}: not a PyTorch-StudioGAN checkout (no src/models/stylegan2.py)")
    _placeholder_modules()
    return _load(root, STUDIOGAN_MODULES, stylegan2="models.stylegan2", losses="utils.losses")


@contextlib.contextmanager
def compute_dtype(ns: types.SimpleNamespace, dtype: torch.dtype) -> Iterator[None]:
    """Run a loaded reference with ``dtype`` as its float32 (torch.float32: the code as shipped)."""
    before = [p.float32 for p in ns.proxies]
    for p in ns.proxies:
        p.float32 = dtype
    try:
        yield
    finally:
        for p, d in zip(ns.proxies, before):
            p.float32 = d


@dataclasses.dataclass(frozen=True, kw_only=True)
class StyleGAN2Spec:
    """One StyleGAN2 pair's settings, for both codes (NVIDIA's: cond spd or none, aux none)."""
    resolution: int
    img_channels: int = 3
    num_classes: int
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int
    channel_base: int = 32768
    channel_max: int = 512
    d_arch: str  # "orig" | "resnet" ("skip" exists too)
    mbstd_group: int
    cond: str = "spd"  # spd | d2d_ce | ac | 2c | mh | none
    aux: str = "none"  # none | tac | adc
    embed_dim: int = 512
    conv_clamp: float | None = None
    w_avg_beta: float | None = None  # None: each code's default (NVIDIA 0.995, StudioGAN 0.998)
    normalize_d_embed: bool = True  # StudioGAN's D2DCE configs; its config.py default is False


def studiogan_channel_base(resolution: int, dataset: str) -> int:
    """StudioGAN model.py's stylegan2 rule (channel_max is always 512)."""
    return 32768 if resolution >= 512 or dataset in ("CIFAR10", "CIFAR100") else 16384


def _g_kwargs(spec: StyleGAN2Spec) -> dict:
    beta = {} if spec.w_avg_beta is None else {"w_avg_beta": spec.w_avg_beta}
    return dict(z_dim=spec.z_dim, w_dim=spec.w_dim, img_resolution=spec.resolution, img_channels=spec.img_channels,
                mapping_kwargs={"num_layers": spec.mapping_layers, **beta},
                synthesis_kwargs=dict(channel_base=spec.channel_base, channel_max=spec.channel_max, num_fp16_res=0,
                                      conv_clamp=spec.conv_clamp))


def _d_kwargs(spec: StyleGAN2Spec) -> dict:
    return dict(img_resolution=spec.resolution, img_channels=spec.img_channels, architecture=spec.d_arch,
                channel_base=spec.channel_base, channel_max=spec.channel_max, num_fp16_res=0,
                conv_clamp=spec.conv_clamp, epilogue_kwargs={"mbstd_group_size": spec.mbstd_group})


def nvidia_pair(ns: types.SimpleNamespace, spec: StyleGAN2Spec,
                dtype: torch.dtype = torch.float64) -> tuple[nn.Module, nn.Module]:
    """NVIDIA's (G, D) as train.py builds them, fp16 off. Labels: one-hot [N, C] ([N, 0] if unconditional)."""
    if spec.cond not in ("spd", "none") or spec.aux != "none":
        raise ValueError(f"NVIDIA's code has only the cmap projection D or none, not {spec.cond}/{spec.aux}")
    c_dim = spec.num_classes if spec.cond == "spd" else 0
    G = ns.networks.Generator(c_dim=c_dim, **_g_kwargs(spec))
    D = ns.networks.Discriminator(c_dim=c_dim, **_d_kwargs(spec))
    return G.to(dtype), D.to(dtype)


def studiogan_pair(ns: types.SimpleNamespace, spec: StyleGAN2Spec,
                   dtype: torch.dtype = torch.float64) -> tuple[nn.Module, nn.Module]:
    """StudioGAN's (G, D) as its model.py builds them for backbone stylegan2 (G cAdaIN unless cond is none).

    G takes one-hot labels, D integer labels and returns a dict (adv_output, embed, proxy, cls_output, ...)."""
    model = types.SimpleNamespace(info_type="N/A", g_info_injection="N/A")
    d_cond = D_COND[spec.cond]
    G = ns.stylegan2.Generator(c_dim=spec.num_classes if spec.cond != "none" else 0, MODEL=model, **_g_kwargs(spec))
    D = ns.stylegan2.Discriminator(c_dim=spec.num_classes if d_cond in STUDIOGAN_COND_TYPE else 0, cmap_dim=None,
                                   d_cond_mtd=d_cond, aux_cls_type=AUX[spec.aux], d_embed_dim=spec.embed_dim,
                                   num_classes=spec.num_classes, normalize_d_embed=spec.normalize_d_embed,
                                   block_kwargs={}, mapping_kwargs={}, MODEL=model, **_d_kwargs(spec))
    return G.to(dtype), D.to(dtype)


class _ConstNoiseSynthesis(nn.Module):
    """G.synthesis with noise_mode='const': StyleGAN2Loss calls G_synthesis(ws), ddp_sync wants an nn.Module."""

    def __init__(self, synthesis: nn.Module) -> None:
        super().__init__()
        self.synthesis = synthesis

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws, noise_mode="const")


def nvidia_phase(ns: types.SimpleNamespace, G: nn.Module, D: nn.Module, phase: str, real_img: torch.Tensor,
                 real_c: torch.Tensor, gen_z: torch.Tensor, gen_c: torch.Tensor, *, r1_gamma: float,
                 pl_weight: float, style_mixing_prob: float = 0.0, pl_noise: torch.Tensor | None = None,
                 pl_batch_shrink: int = 2, pl_decay: float = 0.01, pl_mean: torch.Tensor | None = None,
                 gain: float) -> dict:
    """One phase of NVIDIA's training loop: StyleGAN2Loss.accumulate_gradients, no augmentation, no step.

    ``pl_noise`` (shape of the Gpl images, N // pl_batch_shrink) is what torch.randn_like returns there; the
    loss divides it by sqrt(H * W). Style mixing draws from torch's global RNG. Returns {"grads": {name: grad}
    of the phase's module, "pl_mean", "w_avg" (updated: G runs in train mode if the caller left it so),
    "losses": {training_stats name: value}}. Both nets are left requires_grad False, as the loop leaves them."""
    module = G if phase.startswith("G") else D
    for net in (G, D):  # the loop builds both requires_grad False; then opt.zero_grad(set_to_none=True)
        net.requires_grad_(False)
        for p in net.parameters():
            p.grad = None
    loss = ns.loss.StyleGAN2Loss(device=real_img.device, G_mapping=G.mapping, D=D, augment_pipe=None,
                                 G_synthesis=_ConstNoiseSynthesis(G.synthesis), style_mixing_prob=style_mixing_prob,
                                 r1_gamma=r1_gamma, pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay,
                                 pl_weight=pl_weight)
    # its pl_mean is torch.zeros([]) in the default dtype: lerp with a float64 length would raise
    loss.pl_mean = torch.zeros([], dtype=torch.float64) if pl_mean is None else pl_mean.detach().clone()
    losses, calls, stats = {}, [], ns.loss.training_stats

    def report(name: str, value):  # stands in for training_stats.report: keeps what the loss reports
        losses[name] = value.detach().clone() if isinstance(value, torch.Tensor) else value
        return value

    def randn_like(t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if pl_noise is not None and t.shape == pl_noise.shape:  # Gpl's; style mixing's z is 2-d
            calls.append(t.shape)
            return pl_noise.to(dtype=t.dtype, device=t.device)
        return torch.randn_like(t, *args, **kwargs)

    ns.loss.torch.randn_like, ns.loss.training_stats = randn_like, types.SimpleNamespace(report=report)
    try:
        module.requires_grad_(True)
        loss.accumulate_gradients(phase=phase, real_img=real_img, real_c=real_c, gen_z=gen_z, gen_c=gen_c,
                                  sync=False, gain=gain)
        module.requires_grad_(False)
    finally:
        del ns.loss.torch.randn_like
        ns.loss.training_stats = stats
    if pl_noise is not None and phase in ("Greg", "Gboth") and pl_weight != 0 and len(calls) != 1:
        raise RuntimeError(f"pl_noise was used {len(calls)} times, expected once")
    grads = {name: torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5)  # the loop's, before opt.step
             for name, p in module.named_parameters() if p.grad is not None}
    return {"grads": grads, "pl_mean": loss.pl_mean.clone(), "w_avg": G.mapping.w_avg.clone(), "losses": losses}


def nvidia_d_to_studiogan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """NVIDIA's cmap D state under StudioGAN's SPD D keys: b4.out is its linear1, the rest is equal."""
    return {k.replace("b4.out.", "linear1.", 1) if k.startswith("b4.out.") else k: v for k, v in state.items()}


def _self_check(nv: types.SimpleNamespace, sg: types.SimpleNamespace, seed: int) -> None:
    """Small CIFAR10 cStyleGAN2 from both codes on NVIDIA's weights: outputs, dtypes, CPU paths, the 4 phases."""
    spec = StyleGAN2Spec(resolution=32, num_classes=10, mapping_layers=2, channel_base=512, channel_max=32,
                         d_arch="orig", mbstd_group=4)
    (nG, nD), (sG, sD) = nvidia_pair(nv, spec), studiogan_pair(sg, spec)
    seed_(nG, seed), seed_(nD, seed + 1, name=lambda k: k.replace("b4.out.", "linear1.", 1))
    sG.load_state_dict(nG.state_dict()), sD.load_state_dict(nvidia_d_to_studiogan(nD.state_dict()))
    gen, n = torch.Generator().manual_seed(seed), 8
    z, labels = torch.randn(n, spec.z_dim, generator=gen, dtype=torch.float64), torch.arange(n) % 10
    c, img = nn.functional.one_hot(labels, 10).double(), torch.rand(n, 3, 32, 32, generator=gen).double() * 2 - 1
    with torch.no_grad():
        g_nv, g_sg = nG.eval()(z, c, noise_mode="const"), sG.eval()(z, c, eval=True, noise_mode="const")
        d_nv, d_sg = nD.eval()(img, c), sD.eval()(img, labels)["adv_output"]
        g_unfused = nG.synthesis(nG.mapping(z, c), noise_mode="const", fused_modconv=False)
    with compute_dtype(nv, torch.float32), torch.no_grad():  # the code as shipped, on the same rounded weights
        g32, d32 = nvidia_pair(nv, spec, torch.float32)
        g32.load_state_dict(nG.state_dict()), d32.load_state_dict(nD.state_dict())
        g_32, d_32 = g32.eval()(z.float(), c.float(), noise_mode="const"), d32(img.float(), c.float())
    assert g_nv.dtype == d_nv.dtype == g_sg.dtype == d_sg.dtype == torch.float64 and g_32.dtype == torch.float32
    rows = {"G NVIDIA vs StudioGAN, float64": (g_sg, g_nv, 0, 1e-13),
            "D NVIDIA vs StudioGAN, float64": (d_sg, d_nv, 0, 1e-13),
            "G fused vs unfused modconv (summation order), float64": (g_unfused, g_nv, 0, 1e-13),
            "G float32 (as shipped) vs float64": (g_32, g_nv, 1e-9, 1e-4),
            "D float32 vs float64": (d_32, d_nv, 1e-9, 1e-4)}
    for name, (a, b, low, high) in rows.items():  # a float32 run is close, yet far from the float64 agreement
        diff = float((a.double() - b).abs().max())
        print(f"{name}: max|diff| {diff:.3e}, relative to max|out| {diff / float(b.abs().max()):.3e}")
        assert low <= diff / float(b.abs().max()) < high, name
    # CPU paths: no plugin was built (bias_act/upfirdn2d took '_ref'), conv2d_gradfix hands off to F.conv2d
    for ns, gradfix in ((nv, "torch_utils.ops.conv2d_gradfix"), (sg, "utils.style_ops.conv2d_gradfix")):
        assert all(getattr(mod, "_plugin", None) is None for mod in ns.modules.values())
        assert not ns.modules[gradfix]._should_use_custom_op(img)
    w_nv, w_sg = nG.mapping.w_avg.clone(), sG.mapping.w_avg.clone()
    with torch.no_grad():
        nG.train()(z, c, noise_mode="const"), sG.train()(z, c, noise_mode="const")
    print(f"a train-mode G forward moves w_avg: NVIDIA {not torch.equal(w_nv, nG.mapping.w_avg)} (beta "
          f"{nG.mapping.w_avg_beta}), StudioGAN {not torch.equal(w_sg, sG.mapping.w_avg)} (beta "
          f"{sG.mapping.w_avg_beta}; it updates only when called with update_emas=True)")
    pl_noise = torch.randn(n // 2, 3, 32, 32, generator=gen, dtype=torch.float64)
    common = dict(real_img=img, real_c=c, gen_z=z, gen_c=c, r1_gamma=0.01, pl_weight=2.0, pl_noise=pl_noise)
    print("NVIDIA phases, float64 (G, D in train mode):")
    for phase, gain in (("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)):  # gains: the reg intervals
        out = nvidia_phase(nv, nG, nD.train(), phase, gain=gain, **common)
        assert all(g.dtype == torch.float64 for g in out["grads"].values())
        norm = float(torch.stack([g.norm() for g in out["grads"].values()]).norm())
        vals = {k[5:]: f"{float(v.mean()):.4g}" for k, v in out["losses"].items() if "signs" not in k}
        print(f"  {phase:5s} gain {gain:2d}: {len(out['grads'])} grads, norm {norm:.6e}, pl_mean "
              f"{float(out['pl_mean']):.6g}, means {vals}")
        if phase == "Greg":  # pl_noise given: a rerun is bitwise equal
            again = nvidia_phase(nv, nG, nD, phase, gain=gain, **common)["grads"]
            assert all(torch.equal(again[k], v) for k, v in out["grads"].items())


def _param_counts(nv: types.SimpleNamespace, sg: types.SimpleNamespace) -> None:
    """Full-width counts, checked against the published ones (float32 builds, counting only)."""
    cifar = dict(resolution=32, num_classes=10, mapping_layers=2, d_arch="orig", mbstd_group=32,
                 channel_base=studiogan_channel_base(32, "CIFAR10"))
    afhq = dict(resolution=512, num_classes=3, mapping_layers=8, d_arch="resnet", mbstd_group=8,
                channel_base=studiogan_channel_base(512, "AFHQ"))
    cases = (("CIFAR10", cifar, 512, (20_215_315, 23_089_664, 21_251_585)),
             ("AFHQ", afhq, 1024, (30_540_775, 31_348_288, 30_561_857)))
    with compute_dtype(nv, torch.float32), compute_dtype(sg, torch.float32):
        for name, kw, embed, (g, d, d2d) in cases:
            nets = (*nvidia_pair(nv, StyleGAN2Spec(**kw), torch.float32),
                    *studiogan_pair(sg, StyleGAN2Spec(**kw), torch.float32),
                    studiogan_pair(sg, StyleGAN2Spec(**kw, cond="d2d_ce", embed_dim=embed), torch.float32)[1])
            got = [sum(p.numel() for p in net.parameters()) for net in nets]
            print(f"  {name}: NVIDIA G {got[0]:,} D {got[1]:,} | StudioGAN G {got[2]:,} SPD D {got[3]:,} "
                  f"D2D-CE (embed {embed}) D {got[4]:,}")
            assert got == [g, d, g, d, d2d], name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--nvidia", "--studiogan"):
        parser.add_argument(name, required=True, help="the repository's checkout")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    nv, sg = load_nvidia(args.nvidia), load_studiogan(args.studiogan)
    _self_check(nv, sg, args.seed)
    print("full-width parameter counts:")
    _param_counts(nv, sg)


if __name__ == "__main__":
    main()

"""Network-to-network check: condgan's cifar10-reacgan BigGAN pair against PyTorch-StudioGAN's big_resnet.

    python benchmarks/studiogan_nets.py --studiogan ~/PyTorch-StudioGAN [--batch 8] [--seed 0]

Both pairs in float64; StudioGAN's is imported from the checkout (ReACGAN CIFAR10 settings, as in
studiogan_step.py). Its weights, with random biases, attention gains and BN statistics so that none is a
constant, are copied into condgan's by its StudioGAN import (condgan.studiogan); every stored spectral-norm v
is first set to normalize(W^T u), as after a training forward (a fresh torch SN layer's random u and v can give
a negative u^T W v). On the same inputs: (a) eval-mode D outputs and
G images; (c) those D outputs with condgan's DiscBlocks on the raw-x shortcut, which must differ; (b) one
training forward + backward of D and of G (one power iteration, BN batch statistics): outputs, gradients
and updated buffers (u, BN statistics). Exit 1 when an (a)/(b) difference exceeds TOL or (c) agrees.
"""
from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from condgan.config import build_config  # noqa: E402
from condgan.nets import build_nets  # noqa: E402
from condgan.nets.blocks import DiscBlock  # noqa: E402
from condgan.presets import load_preset  # noqa: E402
from condgan.studiogan import condgan_keys, load_studiogan  # noqa: E402
from studiogan_step import CLASSES, Z_DIM, _modules, _placeholder_modules  # noqa: E402

TOL, SENSITIVE = 1e-10, 1e-6
Table = dict[str, str]
Tensors = dict[str, torch.Tensor]
Rows = list[tuple[str, float, float, str, bool]]  # quantity, max |diff|, max |value|, worst tensor, gates exit

def studiogan_nets(checkout: str) -> tuple[nn.Module, nn.Module]:
    """StudioGAN's big_resnet (G, D) with the ReACGAN CIFAR10 settings, imported from ``checkout``."""
    src = Path(checkout) / "src"
    if not (src / "models" / "big_resnet.py").is_file():
        raise SystemExit(f"--studiogan {checkout}: not a PyTorch-StudioGAN checkout (no src/models/big_resnet.py)")
    _placeholder_modules()
    sys.path.insert(0, str(src))
    import models.big_resnet as big_resnet
    import utils.ops as ops

    model = types.SimpleNamespace(info_type="N/A", g_info_injection="N/A")
    layers = _modules(ops)
    g = big_resnet.Generator(z_dim=Z_DIM, g_shared_dim=128, img_size=32, g_conv_dim=96, apply_attn=True,
                             attn_g_loc=[2], g_cond_mtd="cBN", num_classes=CLASSES, g_init="ortho",
                             g_depth="N/A", mixed_precision=False, MODULES=layers, MODEL=model)
    d = big_resnet.Discriminator(img_size=32, d_conv_dim=96, apply_d_sn=True, apply_attn=True, attn_d_loc=[1],
                                 d_cond_mtd="D2DCE", aux_cls_type="W/O", d_embed_dim=512, normalize_d_embed=True,
                                 num_classes=CLASSES, d_init="ortho", d_depth="N/A", mixed_precision=False,
                                 MODULES=layers, MODEL=model)
    return g.double(), d.double()


@torch.no_grad()
def randomise(net: nn.Module, gen: torch.Generator) -> None:
    """Random values where StudioGAN's init leaves constants: biases, attention sigma, BN affine and stats."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
            if m.affine:
                m.weight.normal_(1, 0.2, generator=gen)
                m.bias.normal_(0, 0.2, generator=gen)
        for name, p in m.named_parameters(recurse=False):
            if name in ("bias", "sigma"):
                p.normal_(0, 0.5 if name == "sigma" else 0.2, generator=gen)


def copy_weights(sg: nn.Module, cg: nn.Module) -> dict[str, str]:
    """Load ``sg``'s state into ``cg`` with condgan's StudioGAN import; {StudioGAN key: condgan key}."""
    load_studiogan(cg, sg.state_dict(), "StudioGAN net")
    mapping = condgan_keys(cg)
    assert sorted(mapping.values()) == sorted(cg.state_dict()), "a condgan tensor has no StudioGAN counterpart"
    return mapping


@torch.no_grad()
def sync_sn_v(net: nn.Module) -> int:
    """Set each torch SN layer's stored v to normalize(W^T u), as condgan's eval mode; returns the count."""
    count = 0
    for m in net.modules():
        for hook in m._forward_pre_hooks.values():
            if type(hook).__name__ == "SpectralNorm":
                mat = hook.reshape_weight_to_matrix(getattr(m, hook.name + "_orig"))
                v = F.normalize(mat.t() @ getattr(m, hook.name + "_u"), dim=0, eps=hook.eps)
                getattr(m, hook.name + "_v").copy_(v)
                count += 1
    return count


def d_outputs(d: nn.Module, x: torch.Tensor, y: torch.Tensor, studiogan: bool) -> Tensors:
    """adv [N], features h [N, F], normalised embed [N, E] and per-sample normalised proxy [N, E]."""
    o = d(x.clone(), y)
    if studiogan:
        return {"adv": o["adv_output"], "h": o["h"], "embed": o["embed"], "proxy": o["proxy"]}
    return {"adv": o.adv, "h": o.features, "embed": F.normalize(o.embed, dim=1),
            "proxy": F.normalize(o.proxies[y], dim=1)}


def compare(rows: Rows, label: str, a: Tensors, b: Tensors, gate: bool = True, group: str | None = None) -> None:
    """Append one row per key of ``a`` (or, with ``group``, one row for all keys, naming the worst)."""
    stats = {k: ((a[k] - b[k]).abs().max().item(), max(a[k].abs().max().item(), b[k].abs().max().item()))
             for k in a}
    if group is None:
        rows.extend((f"{label} {k}", d, s, "", gate) for k, (d, s) in stats.items())
    else:
        worst = max(stats, key=lambda k: stats[k][0])
        rows.append((f"{label} {group} ({len(stats)})", stats[worst][0], max(s for _, s in stats.values()),
                     worst, gate))


def mapped(sg: Tensors, mapping: Table, like: Tensors) -> Tensors:
    """StudioGAN tensors under condgan names, shaped as condgan's."""
    return {mapping[k]: t.reshape(like[mapping[k]].shape) for k, t in sg.items() if k in mapping}


def train_step(rows: Rows, name: str, nets: tuple[nn.Module, nn.Module], mapping: Table,
               run: Callable[[nn.Module, bool], tuple[Tensors, torch.Tensor]]) -> None:
    """One training forward + backward of (StudioGAN net, condgan net); compare outputs, grads, buffers."""
    outs = []
    for studiogan, net in zip((True, False), nets):
        net.train()
        net.zero_grad(set_to_none=True)
        out, loss = run(net, studiogan)
        loss.backward()
        outs.append({**out, "loss": loss.detach()})
    compare(rows, f"(b) {name} train", outs[1], outs[0])
    sg_grads = {k: p.grad for k, p in nets[0].named_parameters()}
    cg_grads = {k: p.grad for k, p in nets[1].named_parameters()}
    assert set(mapping[k] for k in sg_grads) == cg_grads.keys(), "parameters do not map one to one"
    compare(rows, f"(b) {name}", cg_grads, mapped(sg_grads, mapping, cg_grads), group="grads")
    cg_bufs = dict(nets[1].named_buffers())
    compare(rows, f"(b) {name}", cg_bufs, mapped(dict(nets[0].named_buffers()), mapping, cg_bufs),
            group="buffers after")


def eval_checks(rows: Rows, g: tuple[nn.Module, nn.Module], d: tuple[nn.Module, nn.Module],
                x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> None:
    """(a) eval-mode D outputs and G images, (StudioGAN, condgan) pairs; (c) D with the raw-x shortcut."""
    for net in (*g, *d):
        net.eval()
    compare(rows, "(a) D eval", d_outputs(d[1], x, y, False), d_outputs(d[0], x, y, True))
    compare(rows, "(a) G eval", {"images": g[1](z, y)}, {"images": g[0](z, y, eval=True)})
    blocks = [m for m in d[1].modules() if isinstance(m, DiscBlock)]
    for block in blocks:
        block.relu_shortcut = False  # the non-reference shortcut: block(x) = F(relu x) + S(x)
    compare(rows, "(c) D eval, raw-x shortcut", d_outputs(d[1], x, y, False), d_outputs(d[0], x, y, True), False)
    for block in blocks:
        block.relu_shortcut = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studiogan", required=True, help="a PyTorch-StudioGAN checkout")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    sg_g, sg_d = studiogan_nets(args.studiogan)
    cg_g, cg_d = (net.double() for net in build_nets(build_config(load_preset("cifar10-reacgan")), CLASSES, 3))
    gen = torch.Generator().manual_seed(args.seed)
    maps = {}
    for name, sg, cg in (("G", sg_g, cg_g), ("D", sg_d, cg_d)):
        randomise(sg, gen)
        synced = sync_sn_v(sg)
        maps[name] = copy_weights(sg, cg)
        print(f"{name}: {len(maps[name])} tensors copied, {synced} SN v set to normalize(W^T u)")

    n, f64 = args.batch, dict(generator=gen, dtype=torch.float64)
    x, z = torch.rand(n, 3, 32, 32, **f64) * 2 - 1, torch.randn(n, Z_DIM, **f64)
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    # Losses: fixed random weights on every output (a hinge would be flat here, every adv logit is > 1).
    w = {k: torch.randn(shape, **f64) for k, shape in (("adv", (n,)), ("h", (n, 192)), ("embed", (n, 512)),
                                                       ("proxy", (n, 512)), ("images", (n, 3, 32, 32)))}
    rows: Rows = []
    with torch.no_grad():
        eval_checks(rows, (sg_g, cg_g), (sg_d, cg_d), x, y, z)

    def run_d(net: nn.Module, studiogan: bool) -> tuple[Tensors, torch.Tensor]:
        out = d_outputs(net, x, y, studiogan)
        return out, sum((out[k] * w[k]).sum() for k in out) + (out["embed"] * out["proxy"]).sum()

    def run_g(net: nn.Module, studiogan: bool) -> tuple[Tensors, torch.Tensor]:
        img = net(z, y, eval=False) if studiogan else net(z, y)
        return {"images": img}, (img * w["images"]).sum()

    train_step(rows, "D", (sg_d, cg_d), maps["D"], run_d)
    train_step(rows, "G", (sg_g, cg_g), maps["G"], run_g)
    return report(rows)


def report(rows: Rows) -> int:
    """Print the table; 1 when a gated difference exceeds TOL or the ungated (sensitivity) rows agree."""
    width = max(len(r[0]) for r in rows)
    print(f"{'quantity':<{width}}  {'max |diff|':>10}  {'max |value|':>11}  worst tensor")
    for label, diff, scale, worst, _ in rows:
        print(f"{label:<{width}}  {diff:10.3e}  {scale:11.3e}  {worst}")
    bad = [r[0] for r in rows if r[4] and not r[1] <= TOL]
    insensitive = max(r[1] for r in rows if not r[4]) <= SENSITIVE
    print(f"reference shortcut: {'FAIL ' + ', '.join(bad) if bad else f'all differences <= {TOL:g}'}; "
          f"raw-x shortcut: {'did NOT differ (check insensitive)' if insensitive else 'differs, as it must'}")
    return 1 if bad or insensitive else 0


if __name__ == "__main__":
    sys.exit(main())

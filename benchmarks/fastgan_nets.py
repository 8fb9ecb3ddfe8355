"""condgan's ``fastgan`` nets against the official FastGAN code (Zhong, Liu & Hsieh), in float64.

    python benchmarks/fastgan_nets.py --fastgan ~/fastgan [--width 8] [--batch 4] [--seed 0]
        [--write tests/data/fastgan_reference.json]

The official nets are imported, as they are, from the checkout's tools/networks/gan/sn_resnet_*.py (nothing they
import needs a stand-in: torch and its own tools.metric). Beside condgan's pair they are built for every layout
of FASTGAN_LAYOUTS (cifar 32; imagenet143 64 and 128, the code's cat/dog nets; imagenet 128), conditional
(per-class BN in G, a classifier head with its bias in D) and unconditional (plain BN, no classifier), the
settings of the FastGAN configs: BN in G, no spectral norm, no attention.

Both get the same weights, drawn in condgan's names by :func:`seed_weights` so that nothing keeps its init:
convs and linears N(0, 1 / fan_in) (not orthogonal), biases N(0, 0.2), per-class BN gains 1 + N(0, 0.3) and
biases N(0, 0.3), the last BN's affine and every BN's running statistics random; :func:`official_state` gives
them the official names. On the same z, labels and images, rows per setting of max |difference|:
  G eval   images from BN running statistics
  G train  images from batch statistics; gradients of a fixed random loss; running statistics after
  D        adversarial (and class) logits; gradients of a fixed random loss (D has no BN: one mode)
Exit 1 when a difference exceeds TOL. ``--write PATH`` writes the official G's images on the tiny cases of
:data:`REFERENCE_CASES` (seed, settings, probes: no code) for tests/test_hostile_nets.py, which checks condgan's
G against them without the official code.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from condgan.config import Config, build_config  # noqa: E402
from condgan.nets import build_nets  # noqa: E402
from condgan.nets.stages import FASTGAN_LAYOUTS  # noqa: E402
from condgan.presets import load_preset  # noqa: E402

TOL = 1e-10
CLASSES = 7  # the layouts do not depend on the class count
# (layout, resolution) -> (module of tools/networks/gan, class-name prefix) in the official code
OFFICIAL = {("cifar", 32): ("sn_resnet_cifar10", "SN_ResNet_CIFAR10"),
            ("imagenet143", 64): ("sn_resnet_catdog64", "SN_ResNet_CatDog64"),
            ("imagenet143", 128): ("sn_resnet_catdog128", "SN_ResNet_CatDog128"),
            ("imagenet", 128): ("sn_resnet_imgnet128", "SN_ResNet_ImgNet128")}
assert set(OFFICIAL) == set(FASTGAN_LAYOUTS), "a FastGAN layout without its official net"
SETTINGS = [(layout, res, cond) for (layout, res) in FASTGAN_LAYOUTS for cond in (True, False)]
# The tiny cases tests/test_hostile_nets.py checks condgan's G on (layout, resolution, conditional)
REFERENCE_CASES = [("imagenet143", 64, True), ("imagenet", 128, True), ("imagenet143", 128, False)]
REFERENCE_SIZES = {"width": 2, "z_dim": 8, "classes": 5, "batch": 3}

# condgan module names -> the official ones (blocks.i is the official block{i + 2}: its block1 is G's linear / D's
# optimised block); per-class BN tensors: (official name, conversion) conditional and unconditional
RENAME = {"linear0": "l1", "bn": "finalbn", "conv_out": "l6", "opt_block": "block1", "heads.adv": "o_b",
          "heads.classifier": "o_c", "conv0": "c1", "conv1": "c2", "conv_sc": "c_sc"}
CBN = {"gain.weight": (("gammas.weight", "gain_t"), ("weight", "gain_col")),
       "bias.weight": (("betas.weight", "t"), ("bias", "col")),
       "bn.running_mean": (("avg_mean", ""), ("running_mean", "")),
       "bn.running_var": (("avg_var", ""), ("running_var", "")),
       "bn.num_batches_tracked": ((None, ""), ("num_batches_tracked", ""))}
# the official per-class BN's buffers that its forward never reads
UNUSED = re.compile(r".*\.(gamma_|beta_)$")
Tensors = dict[str, torch.Tensor]


def case_config(layout: str, resolution: int, width: int, z_dim: int, conditional: bool) -> Config:
    """condgan's config for one setting (the cifar10-fastgan preset: no SN, Xavier init, classifier bias)."""
    sets = [f"data.resolution={resolution}", f"model.layout={layout}", f"model.g_width={width}",
            f"model.d_width={width}", f"model.z_dim={z_dim}"]
    if not conditional:
        sets += ["loss.cond=none", "loss.fake_kl_weight=0", "model.cls_bias=false"]
    return build_config(load_preset("cifar10-fastgan"), sets)


@torch.no_grad()
def seed_weights(net: nn.Module, seed: int) -> None:
    """Every tensor of ``net`` from a stream seeded by its condgan name (see the module docstring)."""
    for name, t in net.state_dict().items():
        if not t.is_floating_point():
            continue
        gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
        draw = torch.randn(t.shape, generator=gen, dtype=torch.float64)
        if name.endswith("running_var"):
            value = 0.5 + draw.abs()
        elif name.endswith(("gain.weight", "bias.weight", "running_mean")) or name.startswith("bn."):
            value = 0.3 * draw + (1.0 if name == "bn.weight" else 0.0)
        elif name.endswith("bias"):
            value = 0.2 * draw
        else:
            value = draw / t[0].numel() ** 0.5  # N(0, 1 / fan_in)
        t.copy_(value.to(t.dtype))


def inputs(seed: int, batch: int, z_dim: int, classes: int, resolution: int) -> tuple[torch.Tensor, ...]:
    """(z [B, z_dim], labels [B], images [B, 3, R, R] in [-1, 1]) in float64, from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    f64 = dict(generator=gen, dtype=torch.float64)
    z = torch.randn(batch, z_dim, **f64)
    y = torch.randint(0, classes, (batch,), generator=gen)
    return z, y, torch.rand(batch, 3, resolution, resolution, **f64) * 2 - 1


def probe(t: torch.Tensor) -> dict[str, object]:
    """What the reference keeps of an output: its sum, sum of squares and 32 values spread over it."""
    flat = t.detach().double().flatten()
    at = torch.linspace(0, flat.numel() - 1, 32).long()
    return {"sum": flat.sum().item(), "sum_sq": (flat * flat).sum().item(), "values": flat[at].tolist()}


def official_name(key: str, conditional: bool) -> tuple[str | None, str]:
    """(the official state key, the conversion of the value) of condgan's ``key`` (None: none there)."""
    m = re.fullmatch(r"blocks\.(\d+)\.(\w+)\.(.+)", key)
    if m is None:
        prefix = next(p for p in RENAME if key.startswith(p + "."))
        module, _, rest = key[len(prefix) + 1:].rpartition(".")  # opt_block.conv0.weight: its convs too
        return ".".join(filter(None, (RENAME[prefix], RENAME.get(module, module), rest))), ""
    block, module, rest = f"block{int(m.group(1)) + 2}", m.group(2), m.group(3)
    if module in ("cbn1", "cbn2"):
        name, kind = CBN[rest][0 if conditional else 1]
        return (None if name is None else f"{block}.b{module[-1]}.{name}"), kind
    return f"{block}.{RENAME[module]}.{rest}", ""


def convert(t: torch.Tensor, kind: str, grad: bool = False) -> torch.Tensor:
    """condgan's tensor as the official one (per-class BN: gain 1 + g, tables transposed); a gradient maps
    the same way without the 1."""
    one = 0.0 if grad else 1.0
    return {"": lambda: t, "t": lambda: t.t(), "gain_t": lambda: one + t.t(), "col": lambda: t[:, 0],
            "gain_col": lambda: one + t[:, 0]}[kind]()


def official_state(cg: nn.Module, off: nn.Module, conditional: bool) -> Tensors:
    """condgan's state under the official names; checks that the two nets' tensors pair one to one."""
    state = {}
    for key, t in cg.state_dict().items():
        name, kind = official_name(key, conditional)
        if name is not None:
            state[name] = convert(t, kind)
    own = off.state_dict()
    missing = [k for k in own if k not in state and not UNUSED.fullmatch(k)]
    extra = [k for k in state if k not in own]
    assert not missing and not extra, f"official tensors without a condgan one {missing}; unknown {extra}"
    bad = [k for k in state if state[k].shape != own[k].shape]
    assert not bad, f"shapes differ: {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in bad]}"
    return {**own, **state}


def official_nets(layout: str, resolution: int, width: int, z_dim: int, classes: int) -> tuple[nn.Module, ...]:
    """The official (G, D) of one setting, unconditional for ``classes`` 0 (the checkout is on sys.path)."""
    module, prefix = OFFICIAL[(layout, resolution)]
    nets = importlib.import_module(f"tools.networks.gan.{module}")
    g = getattr(nets, prefix + "_Gen")(dim_z=z_dim, img_c=3, fm_base=width, bottom_width=4, n_classes=classes,
                                       bn=True, sn=False, sa=False)
    d = getattr(nets, prefix + "_Dis")(img_c=3, fm_base=width, n_classes=classes, bn=False, sn=False, sa=False,
                                       c_metric="ce" if classes else "", wide=False)
    return g.double(), d.double()


def paired_nets(layout: str, resolution: int, width: int, z_dim: int, classes: int, conditional: bool,
                seed: int) -> tuple[tuple[nn.Module, nn.Module], tuple[nn.Module, nn.Module]]:
    """((condgan G, official G), (condgan D, official D)) in float64 with the same seeded weights."""
    cfg = case_config(layout, resolution, width, z_dim, conditional)
    cg = [net.double() for net in build_nets(cfg, classes if conditional else 1, 3)]
    off = official_nets(layout, resolution, width, z_dim, classes if conditional else 0)
    for mine, theirs in zip(cg, off):
        seed_weights(mine, seed)
        theirs.load_state_dict(official_state(mine, theirs, conditional))
    return (cg[0], off[0]), (cg[1], off[1])


def max_diff(a: Tensors, b: Tensors) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def grads_diff(cg: nn.Module, off: nn.Module, conditional: bool) -> float:
    """Max |difference| of the two nets' parameter gradients (condgan's converted to the official layout)."""
    theirs = dict(off.named_parameters())
    mine = {}
    for key, p in cg.named_parameters():
        name, kind = official_name(key, conditional)
        mine[name] = convert(p.grad, kind, grad=True)
    assert mine.keys() == theirs.keys(), "parameters do not pair one to one"
    return max_diff(mine, {k: p.grad for k, p in theirs.items()})


def buffers_diff(cg: nn.Module, off: nn.Module, conditional: bool) -> float:
    """Max |difference| of the two nets' BN running statistics."""
    theirs = dict(off.named_buffers())
    pairs = [(official_name(key, conditional), t) for key, t in cg.named_buffers() if t.is_floating_point()]
    return max_diff({name: convert(t, kind) for (name, kind), t in pairs}, theirs)


def compare_setting(layout: str, resolution: int, conditional: bool, width: int, z_dim: int, batch: int,
                    seed: int) -> dict[str, float]:
    """The max |differences| of one setting: G eval / train images, G grads and BN statistics, D outputs and grads."""
    (cg_g, off_g), (cg_d, off_d) = paired_nets(layout, resolution, width, z_dim, CLASSES, conditional, seed)
    z, y, x = inputs(seed, batch, z_dim, CLASSES if conditional else 1, resolution)
    onehot = F.one_hot(y, CLASSES).double() if conditional else None
    row = {}
    with torch.no_grad():
        row["G eval"] = (cg_g.eval()(z, y) - off_g.eval()(z, onehot)).abs().max().item()
    images = [cg_g.train()(z, y), off_g.train()(z, onehot)]
    row["G train"] = (images[0] - images[1]).abs().max().item()
    w = torch.randn(images[0].shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    for img in images:
        (img * w).sum().backward()
    row["G grads"] = grads_diff(cg_g, off_g, conditional)
    row["G BN stats"] = buffers_diff(cg_g, off_g, conditional)
    out, (adv, cls) = cg_d(x, y), off_d(x)
    row["D out"] = max((out.adv - adv[:, 0]).abs().max().item(),
                       (out.cls_logits - cls).abs().max().item() if conditional else 0.0)
    for a, c in ((out.adv, out.cls_logits), (adv[:, 0], cls)):
        (a.sum() + (0.0 if c is None else (c * torch.arange(c.shape[1], dtype=c.dtype)).sum())).backward()
    row["D grads"] = grads_diff(cg_d, off_d, conditional)
    return row


def report(rows: dict[str, dict[str, float]]) -> int:
    """Print the table; 1 when a difference exceeds TOL."""
    cols = list(next(iter(rows.values())))
    width = max(map(len, rows))
    print(f"{'setting':<{width}}  " + "  ".join(f"{c:>10}" for c in cols))
    for name, row in rows.items():
        print(f"{name:<{width}}  " + "  ".join(f"{row[c]:10.2e}" for c in cols))
    bad = {c: sum(not row[c] <= TOL for row in rows.values()) for c in cols}
    bad = {c: n for c, n in bad.items() if n}
    print(f"FAIL (> {TOL:g}): " + ", ".join(f"{c} in {n} of {len(rows)} settings" for c, n in bad.items())
          if bad else f"every difference <= {TOL:g}")
    return 1 if bad else 0


def reference(seed: int, commit: str, run: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """The official G's eval and train images on :data:`REFERENCE_CASES` (``run`` gives them for one case)."""
    cases = []
    for layout, res, cond in REFERENCE_CASES:
        settings = {"layout": layout, "resolution": res, "conditional": cond, **REFERENCE_SIZES}
        g_eval, g_train = run(**settings, seed=seed)
        cases.append({"settings": settings, "G_eval": probe(g_eval), "G_train": probe(g_train)})
    return {"fastgan_commit": commit, "seed": seed, "cases": cases}


def official_images(layout: str, resolution: int, conditional: bool, width: int, z_dim: int, classes: int,
                    batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The official G's images (eval, then train mode) with condgan's seeded weights for one reference case."""
    (_, off_g), _ = paired_nets(layout, resolution, width, z_dim, classes, conditional, seed)
    z, y, _ = inputs(seed, batch, z_dim, classes if conditional else 1, resolution)
    onehot = F.one_hot(y, classes).double() if conditional else None
    with torch.no_grad():
        return off_g.eval()(z, onehot), off_g.train()(z, onehot)


def write_json(path: Path, doc: dict) -> None:
    """``doc`` as indented JSON with each list of numbers on one line."""
    text = json.dumps(doc, indent=1)
    text = re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    path.write_text(text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fastgan", required=True, help="a checkout of the official FastGAN code")
    parser.add_argument("--width", type=int, default=8, help="fm_base = model.g_width = model.d_width (64: full)")
    parser.add_argument("--z-dim", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", metavar="PATH", help="also write the test's reference JSON here")
    args = parser.parse_args()
    if not (Path(args.fastgan) / "tools" / "networks" / "gan" / "sn_resblocks.py").is_file():
        raise SystemExit(f"--fastgan {args.fastgan}: not a FastGAN checkout (no tools/networks/gan/sn_resblocks.py)")
    sys.path.insert(0, str(Path(args.fastgan).resolve()))
    rows = {f"{layout} {res} {'cond' if cond else 'uncond'}":
            compare_setting(layout, res, cond, args.width, args.z_dim, args.batch, args.seed)
            for layout, res, cond in SETTINGS}
    print(f"float64, width {args.width}, z_dim {args.z_dim}, batch {args.batch}, seed {args.seed}")
    code = report(rows)
    if args.write:
        commit = subprocess.run(["git", "-C", args.fastgan, "rev-parse", "HEAD"], capture_output=True, text=True)
        write_json(Path(args.write), reference(args.seed, commit.stdout.strip() or "unknown", official_images))
        print(f"wrote {args.write}")
    return code


if __name__ == "__main__":
    sys.exit(main())

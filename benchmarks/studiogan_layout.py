"""Write tests/data/studiogan_reference.json from PyTorch-StudioGAN's own models (the import's reference).

    python benchmarks/studiogan_layout.py --studiogan ~/PyTorch-StudioGAN [--out tests/data/studiogan_reference.json]

For each case of tests/studiogan_reference.py (a condgan preset and overrides), StudioGAN's G and D are built
from the checkout with the settings that config stands for (backbone, widths, attention places, conditioning,
spectral norm), in float64 and eval mode. The JSON keeps their state-dict keys and shapes, and their outputs
on the case's inputs with the seeded weights of ``studiogan_state``: a probe of G's images and of every D
output.
tests/test_studiogan.py loads the same weights into condgan through ``condgan.studiogan.load_studiogan`` and
compares. Nothing of StudioGAN is copied; the JSON holds names, shapes and numbers.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from condgan.config import Config  # noqa: E402
from condgan.nets.stages import STUDIOGAN_STAGES  # noqa: E402
from condgan.studiogan import BACKBONES  # noqa: E402
from studiogan_reference import BATCH, CASES, REFERENCE, case_config, inputs, num_classes, probe  # noqa: E402
from studiogan_reference import studiogan_state  # noqa: E402
from studiogan_step import _modules, _placeholder_modules  # noqa: E402

D_COND = {"none": "W/O", "pd": "PD", "ac": "AC", "mh": "MH", "2c": "2C", "d2d_ce": "D2DCE"}
AUX = {"none": "W/O", "tac": "TAC", "adc": "ADC"}
D_OUTPUTS = ("adv_output", "h", "embed", "proxy", "cls_output", "mi_embed", "mi_proxy", "mi_cls_output")


def studiogan_pair(src: Path, cfg: Config) -> tuple[nn.Module, nn.Module]:
    """StudioGAN's (G, D) for condgan config ``cfg``, float64, eval mode."""
    import importlib

    backbone = BACKBONES[cfg.model.arch]
    module = importlib.import_module(f"models.{backbone}")
    ops = importlib.import_module("utils.ops")
    m, res = cfg.model, cfg.data.resolution
    stages = STUDIOGAN_STAGES[res]
    attention = m.attention if backbone == "big_resnet" else m.arch == "sagan"
    # resnet32 reads its widths as the blocks' own; StudioGAN's g/d_conv_dim are multiplied by 4 / 2 at 32 px
    g_dim, d_dim = (m.g_width // 4, m.d_width // 2) if m.arch == "resnet32" else (m.g_width, m.d_width)
    info = types.SimpleNamespace(info_type="N/A", g_info_injection="N/A")
    # StudioGAN's config.define_modules: big_resnet always builds conditional BNs (fed z chunks alone when W/O)
    layers = _modules(ops, m.g_sn, m.d_sn, cond_bn=cfg.loss.cond != "none" or backbone == "big_resnet")
    common = dict(num_classes=num_classes(cfg), mixed_precision=False, MODULES=layers, MODEL=info)
    g = module.Generator(z_dim=m.z_dim, g_shared_dim=m.shared_dim, img_size=res, g_conv_dim=g_dim,
                         apply_attn=attention, attn_g_loc=[stages.g_attn_after],
                         g_cond_mtd="cBN" if cfg.loss.cond != "none" else "W/O", g_init="ortho", g_depth="N/A",
                         **common)
    d = module.Discriminator(img_size=res, d_conv_dim=d_dim, apply_d_sn=m.d_sn, apply_attn=attention,
                             attn_d_loc=[stages.d_attn_after], d_cond_mtd=D_COND[cfg.loss.cond],
                             aux_cls_type=AUX[cfg.loss.aux], d_embed_dim=m.embed_dim, normalize_d_embed=False,
                             d_init="ortho", d_depth="N/A", **common)
    for layer in g.modules():  # resnet.py and deep_conv.py cast their one-hot labels to float32 (exact in float64)
        if isinstance(layer, nn.Linear):
            layer.register_forward_pre_hook(lambda _, args: tuple(a.double() for a in args))
    return g.double().eval(), d.double().eval()


def manifest(net: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


@torch.no_grad()
def reference_case(src: Path, case: str) -> dict:
    cfg = case_config(case)
    g, d = studiogan_pair(src, cfg)
    record = {"preset": CASES[case][0], "set": list(CASES[case][1]), "G": manifest(g), "D": manifest(d)}
    for net, role in ((g, "G"), (d, "D")):
        net.load_state_dict(studiogan_state(record[role]))
    z, y, x = inputs(cfg)
    record["G_images"] = probe(g(z, y, eval=True))
    out = d(x, y.clone(), eval=True)
    record["D_outputs"] = {k: probe(out[k]) for k in D_OUTPUTS if out[k] is not None}
    return record


def write_reference(path: Path, doc: dict) -> None:
    """``doc`` as indented JSON with one line per list of numbers (shapes, outputs): readable key by key, and small."""
    text = json.dumps(doc, indent=1)
    text = re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    path.write_text(text + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studiogan", required=True, help="a PyTorch-StudioGAN checkout")
    p.add_argument("--out", default=str(REFERENCE))
    args = p.parse_args()
    src = Path(args.studiogan) / "src"
    if not (src / "models" / "big_resnet.py").is_file():
        raise SystemExit(f"--studiogan {args.studiogan}: not a PyTorch-StudioGAN checkout")
    _placeholder_modules()
    sys.path.insert(0, str(src))
    commit = subprocess.run(["git", "-C", args.studiogan, "rev-parse", "HEAD"], capture_output=True, text=True)
    cases = {case: reference_case(src, case) for case in CASES}
    doc = {"studiogan_commit": commit.stdout.strip() or "unknown", "batch": BATCH, "cases": cases}
    write_reference(Path(args.out), doc)
    for case, rec in cases.items():
        print(f"{case:22s} G {len(rec['G']):3d} keys, D {len(rec['D']):3d} keys, "
              f"images sum {rec['G_images']['sum']:+.6f}, D outputs {', '.join(rec['D_outputs'])}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

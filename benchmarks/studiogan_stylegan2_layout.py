"""Write tests/data/studiogan_stylegan2_reference.json from PyTorch-StudioGAN's own StyleGAN2 (the import's reference).

    python benchmarks/studiogan_stylegan2_layout.py --studiogan ~/PyTorch-StudioGAN [--out PATH]

For each case of tests/studiogan_stylegan2_reference.py (a condgan preset and overrides), StudioGAN's G and D are
built from the checkout by benchmarks/stylegan2_refs.py (its models/stylegan2.py as model.py calls it, float64
through the torch proxy) with the settings that config stands for, in eval mode. The JSON keeps their
state-dict keys and shapes, and their outputs on the case's inputs with the seeded weights of
``stylegan2_state``: G's images with constant noise, plain and with truncation toward w_avg, and every D output
(normalize_d_embed on: the embeddings, proxies and AC's features come back L2-normalised).
tests/test_studiogan_stylegan2.py loads the same weights into condgan through ``condgan.studiogan.load_studiogan``
and compares. Nothing of StudioGAN is copied; the JSON holds names, shapes and numbers.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from condgan.config import Config  # noqa: E402
from studiogan_reference import num_classes, probe  # noqa: E402
from studiogan_stylegan2_reference import (BATCH, CASES, REFERENCE, TRUNCATION, case_config, inputs,  # noqa: E402
                                           stylegan2_state)
from studiogan_layout import write_reference  # noqa: E402
from stylegan2_refs import StyleGAN2Spec, load_studiogan, studiogan_pair  # noqa: E402

D_OUTPUTS = ("adv_output", "h", "embed", "proxy", "cls_output", "mi_embed", "mi_proxy", "mi_cls_output")


def spec(cfg: Config) -> StyleGAN2Spec:
    """StudioGAN's settings for condgan config ``cfg``."""
    m = cfg.model
    return StyleGAN2Spec(resolution=cfg.data.resolution, num_classes=num_classes(cfg), z_dim=m.z_dim, w_dim=m.w_dim,
                         mapping_layers=m.mapping_layers, channel_base=m.channel_base, channel_max=m.channel_max,
                         d_arch=m.d_arch, mbstd_group=m.mbstd_group, cond=cfg.loss.cond, aux=cfg.loss.aux,
                         embed_dim=m.embed_dim, conv_clamp=m.conv_clamp, w_avg_beta=m.w_avg_beta,
                         normalize_d_embed=True)


def manifest(net: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in net.state_dict().items()}


@torch.no_grad()
def reference_case(ns, case: str) -> dict:
    cfg = case_config(case)
    g, d = studiogan_pair(ns, spec(cfg))
    g, d = g.eval(), d.eval()
    record = {"preset": CASES[case][0], "set": list(CASES[case][1]), "G": manifest(g), "D": manifest(d)}
    for net, role in ((g, "G"), (d, "D")):
        net.load_state_dict(stylegan2_state(record[role]))
    z, y, x = inputs(cfg)
    c = F.one_hot(y, num_classes(cfg)).double() if cfg.loss.cond != "none" else torch.zeros(BATCH, 0).double()
    record["G_images"] = probe(g(z, c, noise_mode="const"))
    record["G_images_truncated"] = probe(g(z, c, truncation_psi=TRUNCATION, noise_mode="const"))
    out = d(x, y.clone())
    # SPD's "embed" is linear1(h) before the projection: condgan's adv holds it through the projection
    keep = [k for k in D_OUTPUTS if out[k] is not None and not (k == "embed" and cfg.loss.cond == "spd")]
    record["D_outputs"] = {k: probe(out[k]) for k in keep}
    return record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studiogan", required=True, help="a PyTorch-StudioGAN checkout")
    p.add_argument("--out", default=str(REFERENCE))
    args = p.parse_args()
    ns = load_studiogan(args.studiogan)
    commit = subprocess.run(["git", "-C", args.studiogan, "rev-parse", "HEAD"], capture_output=True, text=True)
    cases = {case: reference_case(ns, case) for case in CASES}
    doc = {"studiogan_commit": commit.stdout.strip() or "unknown", "batch": BATCH, "truncation": TRUNCATION,
           "cases": cases}
    write_reference(Path(args.out), doc)
    for case, rec in cases.items():
        print(f"{case:16s} G {len(rec['G']):3d} keys, D {len(rec['D']):3d} keys, "
              f"images sum {rec['G_images']['sum']:+.6f}, D outputs {', '.join(rec['D_outputs'])}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

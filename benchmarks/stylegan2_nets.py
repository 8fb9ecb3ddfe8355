"""condgan's StyleGAN2 against the reference code, in float64: nets, heads, truncation and the four loss phases.

    python benchmarks/stylegan2_nets.py --nvidia ~/stylegan2-ada-pytorch --studiogan ~/PyTorch-StudioGAN
        [--full] [--break mbstd_contiguous|skip_nearest|pl_mean_detached] [--pin tests/data/stylegan2_reference.json]

The references run as they are, through their plain-PyTorch op paths, their float32 read as float64
(stylegan2_refs.py). Both codes get the same seeded weights (tests/stylegan2_cases.py: no tensor left at its
constant init; into condgan through its StudioGAN import) and the same inputs; then:
  (a) G, NVIDIA's and StudioGAN's: class input, constant noise, train and eval mode; truncation (psi 0.7 on the
      first 3 layers, and on all)
  (b) D of both architectures (orig at 32 px, resnet at 64 px) with every head: StudioGAN's D for spd,
      d2d_ce (+ tac, + adc), 2c, ac (+ tac), mh and none; NVIDIA's cmap D (spd)
  (c) the stylegan2 strategy's phases Gmain, Greg (path length), Dmain, Dreg (R1) against NVIDIA's
      StyleGAN2Loss.accumulate_gradients on identical state (cStyleGAN2): every parameter's gradient, and the
      path lengths' running mean
Every row must agree within TOL relative to its largest value (exit 1 otherwise). ``--full`` adds the CIFAR10
pair at its full width (slower). ``--break NAME`` makes one deliberate change to condgan first; the check must
then fail. ``--pin FILE`` writes the references' side of every row (tests/test_stylegan2_reference.py checks
condgan against it in CI, without the references).
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

from condgan.nets import build_nets  # noqa: E402
from condgan.studiogan import condgan_keys  # noqa: E402
from condgan.studiogan import load_studiogan as import_studiogan  # noqa: E402
from stylegan2_cases import (CASES, HEADS, PHASES, PL_WEIGHT, R1_GAMMA, case_config, d_outputs, inputs,  # noqa: E402
                             phase_strategy, probe, run_phase, seed_)
from studiogan_layout import write_reference  # noqa: E402
from stylegan2_refs import (StyleGAN2Spec, load_nvidia, load_studiogan, nvidia_d_to_studiogan,  # noqa: E402
                            nvidia_pair, nvidia_phase, studiogan_pair)

TOL = 1e-10
EMBED = 24  # the cases' D2D-CE / 2C embedding (tests/stylegan2_cases.case_config)
FULL = dict(resolution=32, num_classes=10, z_dim=512, w_dim=512, mapping_layers=2, channel_base=32768,
            channel_max=512, d_arch="orig", mbstd_group=4)  # the CIFAR10 pair's widths
Rows = list[tuple[str, float, float]]  # quantity, max |diff|, max |value|


class Pins(dict):
    """The references' side of every row, by case and quantity (what --pin writes)."""

    def keep(self, case: str, *path_and_tensor, count: int = 24) -> None:
        *path, tensor = path_and_tensor
        node = self.setdefault(case, {})
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = probe(tensor, count)


def spec(case: dict, cond: str = "spd", aux: str = "none") -> StyleGAN2Spec:
    return StyleGAN2Spec(**case, cond=cond, aux=aux, embed_dim=EMBED)


def condgan_pair(case: dict, cond: str, aux: str, g_state: dict, d_state: dict) -> tuple[nn.Module, nn.Module]:
    """condgan's pair with a StudioGAN-layout state loaded by condgan's own import (condgan.studiogan)."""
    G, D = build_nets(case_config(case, cond, aux), case["num_classes"], 3)
    G, D = G.double(), D.double()
    import_studiogan(G, g_state, "reference G")
    import_studiogan(D, d_state, "reference D")
    return G, D


def nvidia_seeded(refs: dict, case: dict, seed: int) -> tuple[nn.Module, nn.Module]:
    """NVIDIA's cmap pair with the cases' weights (its D's b4.out is StudioGAN's linear1: seeded by that name)."""
    nG, nD = nvidia_pair(refs["nvidia"], spec(case))
    seed_(nG, seed)
    seed_(nD, seed + 1, name=lambda k: k.replace("b4.out.", "linear1.", 1))
    return nG, nD


def compare(rows: Rows, label: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    ours, ref = ours.detach().double().reshape(ref.shape), ref.detach().double()
    rows.append((label, float((ours - ref).abs().max()), float(ref.abs().max())))


@torch.no_grad()
def check_generators(rows: Rows, pins: Pins, refs: dict, tag: str, case: dict, seed: int) -> None:
    """(a): NVIDIA's and StudioGAN's G (the same weights) against condgan's."""
    nG, nD = nvidia_seeded(refs, case, seed)
    sG, _ = studiogan_pair(refs["studiogan"], spec(case))
    sG.load_state_dict(nG.state_dict())
    G, _ = condgan_pair(case, "spd", "none", nG.state_dict(), nvidia_d_to_studiogan(nD.state_dict()))
    v = inputs(case, seed)
    for mode in ("train", "eval"):
        for net in (nG, sG, G):
            net.train(mode == "train")
        # truncation in eval mode: NVIDIA's mapping first moves w_avg in a train-mode forward, then truncates
        for psi, cutoff in ((1.0, None),) + (((0.7, 3), (0.7, None)) if mode == "eval" else ()):
            name = f"G {mode}" + ("" if psi == 1 else f", psi {psi} cutoff {cutoff}")
            ours = G(v.z, v.y, truncation=psi, truncation_cutoff=cutoff, noise_mode="const")
            kw = dict(truncation_psi=psi, truncation_cutoff=cutoff, noise_mode="const")
            w_avg = nG.mapping.w_avg.clone()
            ref = nG(v.z, v.c, **kw)
            nG.mapping.w_avg.copy_(w_avg)  # NVIDIA's mapping moves w_avg in every train-mode forward
            compare(rows, f"(a) {tag} {name} vs NVIDIA", ours, ref)
            compare(rows, f"(a) {tag} {name} vs StudioGAN", ours, sG(v.z, v.c, **kw))
            pins.keep(tag, "G", name, ref)


@torch.no_grad()
def check_discriminators(rows: Rows, pins: Pins, refs: dict, tag: str, case: dict, seed: int) -> None:
    """(b): every head on StudioGAN's D, and NVIDIA's cmap D, against condgan's D (eval mode)."""
    v = inputs(case, seed)
    for cond, aux in HEADS:
        head = cond + ("" if aux == "none" else f"+{aux}")
        sG, sD = studiogan_pair(refs["studiogan"], spec(case, cond, aux))
        seed_(sD, seed + 1)
        _, D = condgan_pair(case, cond, aux, sG.state_dict(), sD.state_dict())
        out = sD.eval()(v.x, v.y)
        ref = {k: out[k] for k in ("adv_output", "h", "embed", "proxy", "cls_output", "mi_embed", "mi_proxy",
                                   "mi_cls_output") if out[k] is not None and not (k == "embed" and cond == "spd")}
        ours = d_outputs(D.eval()(v.x, v.y), cond, aux, v.y)
        assert ref.keys() == ours.keys(), (head, sorted(ref), sorted(ours))
        for key in ref:
            compare(rows, f"(b) {tag} {case['d_arch']} D {head} {key}", ours[key], ref[key])
            pins.keep(tag, "D", head, key, ref[key])
    nG, nD = nvidia_seeded(refs, case, seed)
    _, D = condgan_pair(case, "spd", "none", nG.state_dict(), nvidia_d_to_studiogan(nD.state_dict()))
    compare(rows, f"(b) {tag} {case['d_arch']} D spd adv vs NVIDIA", D.eval()(v.x, v.y).adv, nD.eval()(v.x, v.c))


def check_phases(rows: Rows, pins: Pins, refs: dict, tag: str, case: dict, seed: int) -> None:
    """(c): Gmain, Greg, Dmain, Dreg of condgan's strategy against NVIDIA's StyleGAN2Loss on identical state."""
    nG, nD = nvidia_seeded(refs, case, seed)
    G, D = condgan_pair(case, "spd", "none", nG.state_dict(), nvidia_d_to_studiogan(nD.state_dict()))
    v = inputs(case, seed)
    strategy = phase_strategy(case, G, D, v)
    to_condgan = condgan_keys(D)  # StudioGAN key -> condgan's
    d_name = {k: to_condgan[next(iter(nvidia_d_to_studiogan({k: 0})))] for k, _ in nD.named_parameters()}
    for phase, gain in PHASES:
        ref = nvidia_phase(refs["nvidia"], nG.train(), nD.train(), phase, real_img=v.x, real_c=v.c, gen_z=v.z,
                           gen_c=v.c, r1_gamma=R1_GAMMA, pl_weight=PL_WEIGHT, pl_noise=v.pl_noise, gain=gain)
        run_phase(strategy, phase, v)
        net = G if phase.startswith("G") else D
        mine = {k: p.grad for k, p in net.named_parameters() if p.grad is not None}
        theirs = {(k if phase.startswith("G") else d_name[k]): g for k, g in ref["grads"].items()}
        assert mine.keys() == theirs.keys(), (phase, sorted(set(mine) ^ set(theirs)))
        worst = max(mine, key=lambda k: float((mine[k] - theirs[k]).abs().max()))
        scale = max(float(g.abs().max()) for g in theirs.values())
        rows.append((f"(c) {tag} {phase}: {len(mine)} gradients (worst {worst})",
                     float((mine[worst] - theirs[worst]).abs().max()), scale))
        for name, grad in theirs.items():
            pins.keep(tag, "phases", phase, name, grad, count=4)
        if phase == "Greg":
            compare(rows, f"(c) {tag} Greg path-length mean", strategy.pl_mean, ref["pl_mean"])
            pins.keep(tag, "phases", "pl_mean", ref["pl_mean"])


BREAKS = {  # a deliberate change to condgan
    "mbstd_contiguous": "minibatch-std groups of contiguous samples instead of the reference's strided ones",
    "skip_nearest": "G's skip images upsampled by nearest neighbour instead of the [1, 3, 3, 1] filter",
    "pl_mean_detached": "the path-length mean without its graph in the step",
}


def apply_break(name: str) -> None:
    import condgan.nets.stylegan2 as nets
    import condgan.train.stylegan2 as strategy

    if name == "mbstd_contiguous":
        original = nets.minibatch_std

        def contiguous(x: torch.Tensor, group_size: int) -> torch.Tensor:
            g = min(group_size, x.shape[0])
            order = torch.arange(x.shape[0]).reshape(-1, g).t().reshape(-1)  # contiguous groups in strided slots
            return original(x[order], group_size)[torch.argsort(order)]
        nets.minibatch_std = contiguous
    elif name == "skip_nearest":
        nets.upsample2d = lambda x: F.interpolate(x, scale_factor=2, mode="nearest")
    elif name == "pl_mean_detached":
        strategy.all_gather_cat = lambda x: x.detach()


def report(rows: Rows) -> bool:
    """Print the table; True when every row is within TOL relative to its largest value."""
    width = max(len(r[0]) for r in rows)
    print(f"{'quantity':<{width}}  {'max |diff|':>10}  {'max |value|':>11}  {'relative':>9}")
    bad = []
    for label, diff, scale in rows:
        rel = diff / max(scale, 1e-300)
        print(f"{label:<{width}}  {diff:10.3e}  {scale:11.3e}  {rel:9.2e}{'  FAIL' if not rel <= TOL else ''}")
        bad += [] if rel <= TOL else [label]
    worst = max(r[1] / max(r[2], 1e-300) for r in rows)
    print(f"{len(rows)} rows, worst relative difference {worst:.2e}: "
          + (f"FAIL ({len(bad)} beyond {TOL:g})" if bad else f"all within {TOL:g}"))
    return not bad


def write_pins(path: Path, pins: Pins, args: argparse.Namespace) -> None:
    commits = {name: subprocess.run(["git", "-C", getattr(args, name), "rev-parse", "HEAD"], capture_output=True,
                                    text=True).stdout.strip() or "unknown" for name in ("nvidia", "studiogan")}
    write_reference(path, {"commits": commits, "seed": args.seed, "cases": pins})
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia", required=True, help="a stylegan2-ada-pytorch checkout")
    parser.add_argument("--studiogan", required=True, help="a PyTorch-StudioGAN checkout")
    parser.add_argument("--full", action="store_true", help="also the CIFAR10 pair at full width (slower)")
    parser.add_argument("--break", dest="broken", choices=sorted(BREAKS), help="a deliberate change that must fail")
    parser.add_argument("--pin", type=Path, help="write the references' side of every row to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    refs = {"nvidia": load_nvidia(args.nvidia), "studiogan": load_studiogan(args.studiogan)}
    if args.broken:
        apply_break(args.broken)
        print(f"deliberate change: {BREAKS[args.broken]}")
    rows, pins = [], Pins()
    for tag, case in list(CASES.items()) + ([("cifar10-full", FULL)] if args.full else []):
        for check in (check_generators, check_discriminators, check_phases):
            check(rows, pins if tag in CASES else Pins(), refs, tag, case, args.seed)
    ok = report(rows)
    if args.pin and ok and not args.broken:
        write_pins(args.pin, pins, args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""StudioGAN import: its layout (keys and shapes from StudioGAN's own models), float64 equality of outputs with
StudioGAN's on the same weights, torch's spectral norm as the reference of the stored vectors, and the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_main
from studiogan_reference import (CASES, case_config, inputs, load_reference, num_classes, probe,
                                 studiogan_state)
from torch import nn

from condgan import load_generator
from condgan.nets import build_nets
from condgan.nets.layers import SNConv2d, SNEmbedding, SNLinear
from condgan.studiogan import StudioGANError, load_studiogan, to_studiogan

REFERENCE = load_reference()
TOL = 1e-10


def _nets(case: str) -> tuple[nn.Module, nn.Module]:
    cfg = case_config(case)
    G, D = build_nets(cfg, num_classes(cfg), 3)
    return G.double().eval(), D.double().eval()


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def _close(mine: dict, ref: dict, numel: int) -> None:
    assert np.allclose(mine["values"], ref["values"], rtol=0, atol=TOL)
    # sums over up to 150k values: float64 rounding grows with the count
    assert abs(mine["sum"] - ref["sum"]) <= TOL * numel and abs(mine["sum_sq"] - ref["sum_sq"]) <= TOL * numel


def _d_outputs(out, cfg, y: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """condgan's DOutput under StudioGAN's names (its proxies per sample; ADC's real labels are 2y)."""
    rows = y * 2 if cfg.loss.aux == "adc" else y
    mh = cfg.loss.cond == "mh"
    return {"adv_output": out.cls_logits if mh else out.adv, "h": out.features, "embed": out.embed,
            "proxy": None if out.proxies is None else out.proxies[rows], "cls_output": None if mh else out.cls_logits,
            "mi_cls_output": out.tac_logits, "mi_embed": out.tac_embed,
            "mi_proxy": None if out.tac_proxies is None else out.tac_proxies[y]}


@pytest.mark.parametrize("case", CASES)
def test_condgan_nets_have_studiogans_layout(case):
    G, D = _nets(case)
    assert _shapes(to_studiogan(G)) == REFERENCE["cases"][case]["G"]
    assert _shapes(to_studiogan(D)) == REFERENCE["cases"][case]["D"]


@pytest.mark.parametrize("case", CASES)
@torch.no_grad()
def test_imported_weights_give_studiogans_outputs_in_float64(case):
    """The outputs StudioGAN's own G and D computed on these weights (tests/data, benchmarks/studiogan_layout.py)."""
    ref, cfg = REFERENCE["cases"][case], case_config(case)
    G, D = _nets(case)
    load_studiogan(G, studiogan_state(ref["G"]), "G")
    load_studiogan(D, studiogan_state(ref["D"]), "D")
    z, y, x = inputs(cfg)
    images = G(z, y)
    _close(probe(images), ref["G_images"], images.numel())
    mine = _d_outputs(D(x, y), cfg, y)
    assert {k for k, v in mine.items() if v is not None} == set(ref["D_outputs"])
    for name, expected in ref["D_outputs"].items():
        _close(probe(mine[name]), expected, mine[name].numel())


def _trained(case: str, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """A case's nets in float64 with random weights, biases, gains and BN statistics, and spectral norm's u
    after a few training forwards (unit vectors, as in every condgan-trained layer), in eval mode."""
    torch.manual_seed(seed)
    cfg = case_config(case)
    G, D = _nets(case)
    with torch.no_grad():
        for net in (G, D):
            for name, t in net.state_dict().items():
                if t.is_floating_point() and not name.endswith((".u", "running_var")):
                    t.add_(0.1 * torch.randn_like(t))
        z, y, x = inputs(cfg)
        G.train(), D.train()
        for _ in range(3):
            D(G(z, y), y)
    return G.eval(), D.eval()


@pytest.mark.parametrize("case", CASES)
@torch.no_grad()
def test_condgan_weights_round_trip_through_studiogans_layout(case):
    """condgan's layout -> StudioGAN's -> condgan: the same outputs in float64 (within 1e-10)."""
    cfg = case_config(case)
    z, y, x = inputs(cfg)
    (G, D), (G2, D2) = _trained(case), _nets(case)
    load_studiogan(G2, to_studiogan(G), "round trip")
    load_studiogan(D2, to_studiogan(D), "round trip")
    assert (G(z, y) - G2(z, y)).abs().max().item() <= TOL
    a, b = D(x, y), D2(x, y)
    assert max((a.adv - b.adv).abs().max().item(), (a.features - b.features).abs().max().item()) <= TOL


@pytest.mark.parametrize("make", [lambda: nn.Linear(7, 5), lambda: nn.Conv2d(3, 4, 3, padding=1),
                                  lambda: nn.Embedding(6, 4)])
def test_spectral_norm_import_matches_torch_spectral_norm(make):
    """torch.nn.utils.spectral_norm (StudioGAN's layers) with stored u, v that are not converged: condgan's
    layer computes the same function in eval mode, and the same after one training forward of each."""
    torch.manual_seed(0)
    ref = nn.utils.spectral_norm(make().double(), eps=1e-6)
    condgan = {nn.Linear: SNLinear(7, 5), nn.Conv2d: SNConv2d(3, 4, 3, padding=1),
               nn.Embedding: SNEmbedding(6, 4)}[type(ref)].double()
    with torch.no_grad():
        w = ref.weight_orig.reshape(ref.weight_orig.shape[0], -1)
        ref.weight_u.copy_(torch.nn.functional.normalize(torch.randn_like(ref.weight_u), dim=0))
        wu = w.t() @ ref.weight_u
        ref.weight_v.copy_(torch.nn.functional.normalize(wu + 0.5 * wu.norm() * torch.randn_like(wu), dim=0))
    state = {"weight_orig": ref.weight_orig, "weight_u": ref.weight_u, "weight_v": ref.weight_v}
    if getattr(ref, "bias", None) is not None:
        state["bias"] = ref.bias
    load_studiogan(_Holder(condgan), {f"layer.{k}": v.detach().clone() for k, v in state.items()}, "layer")
    x = torch.randint(0, 6, (5,)) if isinstance(ref, nn.Embedding) else torch.randn(
        (2, 3, 5, 5) if isinstance(ref, nn.Conv2d) else (2, 7), dtype=torch.float64)
    sigma = ref.weight_u @ w @ ref.weight_v
    with torch.no_grad():
        ref.eval(), condgan.eval()
        assert (condgan(x) - ref(x)).abs().max().item() <= 1e-12
        assert abs(condgan.sigma().item() - sigma.item()) <= 1e-12
        ref.train(), condgan.train()
        assert (condgan(x) - ref(x)).abs().max().item() <= 1e-12  # one power step each, from the same u
        assert torch.allclose(condgan.u, ref.weight_u, rtol=0, atol=1e-12)


class _Holder(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer


def _good_state() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    G, _ = _nets("biggan32-d2dce")
    return G, studiogan_state(REFERENCE["cases"]["biggan32-d2dce"]["G"])


@pytest.mark.parametrize("damage, culprit", [
    (lambda s: s.pop("blocks.1.0.conv2d2.weight_orig"), "no 'blocks.1.0.conv2d2.weight_orig'"),
    (lambda s: s.update({"linear9.weight": torch.zeros(2)}), "'linear9.weight' has no place"),
    (lambda s: s.update({"shared.weight": torch.zeros(200, 8)}), "'shared.weight' is (200, 8), condgan's net "
                                                                  "expects (10, 8)"),
    (lambda s: s.update({"bn4.bias": [0.0] * 16}), "'bn4.bias' is list"),
    (lambda s: s.update({"conv2d5.weight_v": -s["conv2d5.weight_v"]}), "'conv2d5.weight_u' gives spectral norm"),
])
def test_a_state_that_does_not_fit_is_a_one_line_error_naming_the_key(damage, culprit):
    G, state = _good_state()
    damage(state)
    with pytest.raises(StudioGANError) as e:
        load_studiogan(G, state, "StudioGAN G x.pth")
    assert culprit in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith("StudioGAN G x.pth")


def test_a_dataparallel_prefix_is_dropped():
    G, state = _good_state()
    load_studiogan(G, {f"module.{k}": v for k, v in state.items()}, "G")
    assert torch.equal(G.shared.weight, state["shared.weight"])


# -- the command --------------------------------------------------------------------------------------------

CLI_CASE = "biggan32-d2dce"
CLI_SET = [a for s in CASES[CLI_CASE][1] for a in ("--set", s)]


def _studiogan_folder(folder, step: int = 1234, roles=("G", "G_ema", "D"), when: str = "best"):
    """A StudioGAN checkpoint folder as its worker.save writes one (float32; D's file carries the run's
    bookkeeping, numpy scalars included)."""
    folder.mkdir(parents=True, exist_ok=True)
    ref = REFERENCE["cases"][CLI_CASE]
    for role in roles:
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in studiogan_state(ref["D" if role == "D" else "G"], seed=len(role)).items()}
        record = {"state_dict": state, "optimizer": {"state": {}, "param_groups": []}}
        if role == "D":
            record.update(seed=0, run_name="ReACGAN-train-2021", step=step, epoch=3, topk="initialize",
                          aa_p=np.float64(0.0), best_step=step, best_fid=np.float64(7.88), best_fid_ckpt=str(folder),
                          lecam_emas={"G_loss": 7777})
        torch.save(record, folder / f"model={role}-{when}-weights-step={step}.pth")
    return folder


def test_import_writes_a_run_that_load_generator_and_sample_read(tmp_path, capsys):
    folder = _studiogan_folder(tmp_path / "sg")
    run = tmp_path / "run"
    code, out, err = run_main(capsys, "import-studiogan", str(folder), "--preset", "cifar10-reacgan", *CLI_SET,
                              "--out", str(run))
    assert code == 0, err
    assert "G_ema, G, D (best, step 1234)" in out and (run / "checkpoints" / "ckpt_00001234.pt").is_file()
    G, info = load_generator(run)
    assert (info.arch, info.resolution, info.num_classes, info.step) == ("biggan", 32, 10, 1234)
    cfg = case_config(CLI_CASE)
    G_ref, _ = build_nets(cfg, 10, 3)
    load_studiogan(G_ref, torch.load(folder / "model=G_ema-best-weights-step=1234.pth")["state_dict"], "G_ema")
    z, y, _ = inputs(cfg)
    with torch.no_grad():
        assert torch.equal(G(z.float(), y), G_ref.eval()(z.float(), y))  # G_ema is the G_ema file
    code, _, err = run_main(capsys, "sample", str(run), "--per-class", "2", "--out", str(tmp_path / "s"),
                            "--no-progress")
    assert code == 0, err
    assert len(list((tmp_path / "s").rglob("*.png"))) == 20


def test_an_imported_run_is_evaluated_but_not_resumed(tmp_path, capsys):
    rng = np.random.default_rng(0)
    npz = tmp_path / "data.npz"
    np.savez(npz, images=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), labels=np.arange(40) % 10)
    data = ["--set", "data.name=npz", "--set", f"data.root={npz}"]
    folder = _studiogan_folder(tmp_path / "sg", roles=("G",), when="current")
    run = tmp_path / "run"
    code, out, err = run_main(capsys, "import-studiogan", str(folder / "model=G-current-weights-step=1234.pth"),
                              "--preset", "cifar10-reacgan", *CLI_SET, *data, "--out", str(run))
    assert code == 0, err
    assert "with 10 classes" in out and "G_ema is G" in out  # classes from the class embedding (npz: unknown)
    code, _, err = run_main(capsys, "eval", str(run), "--metrics", "fid", "--num", "20", "--no-progress")
    assert code == 0, err
    code, _, err = run_main(capsys, "train", "--preset", "cifar10-reacgan", *CLI_SET, *data, "--out", str(run),
                            "--no-progress")
    assert code == 2 and "imported from PyTorch-StudioGAN" in err and "not resumed" in err
    assert err.strip().count("\n") == 0


@pytest.mark.parametrize("setup, args, culprit", [
    (None, [], "no such StudioGAN checkpoint file or folder"),
    ("empty", [], "holds no StudioGAN checkpoint"),
    ("sg", ["--which", "current"], "holds no 'current' generator (it has: best)"),
    ("sg", ["--preset", "cifar10-sngan"], "no 'linear0.weight'"),
    ("sg", ["--preset", "cifar10-fastgan"], "model.arch fastgan has no StudioGAN counterpart"),
    ("garbage", [], "cannot be read"),
    ("pickle", [], "cannot be read safely"),
    ("sg", ["--no-preset"], "give --preset"),
])
def test_bad_imports_are_one_line_errors_that_write_nothing(tmp_path, capsys, setup, args, culprit):
    target = tmp_path / "sg"
    if setup == "sg":
        _studiogan_folder(target)
    elif setup == "empty":
        target.mkdir()
    elif setup in ("garbage", "pickle"):
        target.mkdir()
        path = target / "model=G_ema-best-weights-step=5.pth"
        if setup == "garbage":
            path.write_bytes(b"not a torch file")
        else:
            torch.save({"state_dict": {"x": torch.zeros(1)}, "opt": _Holder(nn.Linear(1, 1))}, path)
    preset = [] if "--no-preset" in args else ["--preset", "cifar10-reacgan"]
    args = [a for a in args if a != "--no-preset"]
    if "--preset" in args:
        preset = []
    code, _, err = run_main(capsys, "import-studiogan", str(target), *preset, *CLI_SET, *args,
                            "--out", str(tmp_path / "run"))
    assert code == 2 and culprit in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "run").exists()


def test_import_never_writes_into_a_used_folder_and_checks_its_counts(tmp_path, capsys):
    folder = _studiogan_folder(tmp_path / "sg")
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    for extra, culprit in ((["--out", str(used)], "exists and is not an empty folder"),
                           (["--out", str(tmp_path / "r"), "--num-classes", "0"], "--num-classes must be at least 1"),
                           (["--out", str(tmp_path / "r"), "--num-classes", "7"], "cifar10 has 10 classes")):
        code, _, err = run_main(capsys, "import-studiogan", str(folder), "--preset", "cifar10-reacgan", *CLI_SET,
                                *extra)
        assert code == 2 and culprit in err and err.strip().count("\n") == 0, err
    assert [p.name for p in used.iterdir()] == ["notes.txt"] and not (tmp_path / "r").exists()

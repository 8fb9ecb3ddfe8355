"""StudioGAN import of StyleGAN2: its layout (keys and shapes from StudioGAN's own models/stylegan2.py), float64
outputs equal to StudioGAN's on the same weights, the resample filter, bitwise round trips, and the command."""
from __future__ import annotations

import pytest
import torch
from conftest import run_main
from studiogan_stylegan2_reference import (CASES, TRUNCATION, WIDTHS, case_config, inputs, load_reference,
                                           nvidia_filter, randomised, studiogan_folder, stylegan2_state)
from torch import nn
from torch.nn import functional as F

from condgan import load_generator
from condgan.config import build_config
from condgan.cli.import_studiogan import class_count
from condgan.nets import build_nets
from condgan.presets import load_preset
from condgan.studiogan import (StudioGANError, condgan_keys, load_studiogan, resample_filter, stylegan2_resolution,
                               to_studiogan)

REFERENCE = load_reference()
TOL = 1e-10


def _nets(case: str, classes: int = 10) -> tuple[nn.Module, nn.Module]:
    G, D = build_nets(case_config(case), classes, 3)
    return G.double().eval(), D.double().eval()


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in state.items()}


def _probe(t: torch.Tensor) -> dict:
    flat = t.detach().double().flatten()
    at = torch.linspace(0, flat.numel() - 1, 32).long()
    return {"sum": flat.sum().item(), "sum_sq": (flat * flat).sum().item(), "values": flat[at].tolist()}


def _close(mine: torch.Tensor, ref: dict) -> None:
    got = _probe(mine)
    assert max(abs(a - b) for a, b in zip(got["values"], ref["values"])) <= TOL
    for key in ("sum", "sum_sq"):  # float64 rounding of a sum grows with the count
        assert abs(got[key] - ref[key]) <= TOL * mine.numel(), key


def _d_outputs(out, cfg, y: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """condgan's DOutput as StudioGAN returns it with normalize_d_embed (ADC's real rows are 2y; AC reports
    the normalised features it classified)."""
    cond = cfg.loss.cond
    rows = y * 2 if cfg.loss.aux == "adc" else y
    unit = lambda t: None if t is None else F.normalize(t, dim=1)  # noqa: E731
    return {"adv_output": out.cls_logits if cond == "mh" else out.adv,
            "h": unit(out.features) if cond == "ac" else out.features, "embed": unit(out.embed),
            "proxy": None if out.proxies is None else unit(out.proxies[rows]),
            "cls_output": None if cond == "mh" else out.cls_logits, "mi_cls_output": out.tac_logits,
            "mi_embed": unit(out.tac_embed), "mi_proxy": None if out.tac_proxies is None else unit(out.tac_proxies[y])}


@pytest.mark.parametrize("case", CASES)
def test_condgan_stylegan2_has_studiogans_layout(case):
    G, D = _nets(case)
    assert _shapes(to_studiogan(G)) == REFERENCE["cases"][case]["G"]
    assert _shapes(to_studiogan(D)) == REFERENCE["cases"][case]["D"]


@pytest.mark.parametrize("case", CASES)
@torch.no_grad()
def test_imported_stylegan2_gives_studiogans_outputs_in_float64(case):
    """G's images (constant noise; plain and truncated toward the imported w_avg) and D's outputs that
    StudioGAN's own nets computed on these weights (tests/data, benchmarks/studiogan_stylegan2_layout.py)."""
    ref, cfg = REFERENCE["cases"][case], case_config(case)
    G, D = _nets(case)
    load_studiogan(G, stylegan2_state(ref["G"]), "G")
    load_studiogan(D, stylegan2_state(ref["D"]), "D")
    z, y, x = inputs(cfg)
    _close(G(z, y, noise_mode="const"), ref["G_images"])
    _close(G(z, y, noise_mode="const", truncation=TRUNCATION), ref["G_images_truncated"])
    mine = {k: v for k, v in _d_outputs(D(x, y), cfg, y).items() if k in ref["D_outputs"]}
    assert set(mine) == set(ref["D_outputs"])
    for name, expected in ref["D_outputs"].items():
        _close(mine[name], expected)


@pytest.mark.parametrize("case", CASES)
def test_stylegan2_round_trips_through_studiogans_layout_bitwise(case):
    """condgan -> StudioGAN's layout -> condgan: every tensor (w_avg and noise maps too) bit for bit, in float32."""
    cfg = case_config(case)
    G, D = randomised(cfg, 10, seed=3)
    for net in (G, D):
        exported = to_studiogan(net)
        fresh = build_nets(cfg, 10, 3)[0 if net is G else 1]
        load_studiogan(fresh, exported, "round trip")
        mine, back = net.state_dict(), fresh.state_dict()
        assert mine.keys() == back.keys() and all(torch.equal(mine[k], back[k]) for k in mine)
        names = condgan_keys(net)  # every StudioGAN key but the filters names a condgan tensor equal to it
        assert set(names) == {k for k in exported if not k.endswith(".resample_filter")}
        assert all(torch.equal(exported[s], mine[c]) for s, c in names.items())


def test_the_resample_filter_is_nvidias_and_condgans():
    assert torch.equal(resample_filter(torch.float64), nvidia_filter())
    assert torch.equal(resample_filter(), nvidia_filter().float())  # exact in float32 too (k / 64)
    G, D = _nets("d2dce-resnet")
    filters = [v for k, v in {**to_studiogan(G), **to_studiogan(D)}.items() if k.endswith(".resample_filter")]
    # G: 4 blocks and 7 layers; resnet D: 3 blocks, fromrgb, 3 x (conv0, conv1, skip), the epilogue's conv
    assert len(filters) == (4 + 7) + (3 + 1 + 3 * 3 + 1) and all(torch.equal(f, nvidia_filter()) for f in filters)


def _good(case: str = "d2dce-resnet", role: str = "G") -> tuple[nn.Module, dict[str, torch.Tensor]]:
    G, D = _nets(case)
    return (G, D)[role == "D"], stylegan2_state(REFERENCE["cases"][case][role])


@pytest.mark.parametrize("role, damage, culprit", [
    ("G", lambda s: s["synthesis.b16.conv0.resample_filter"].mul_(2),
     "'synthesis.b16.conv0.resample_filter' is not the filter"),
    ("D", lambda s: s["b4.conv.resample_filter"].__setitem__((0, 0), 1 / 64 + 1e-12),
     "'b4.conv.resample_filter' is not the filter"),
    ("G", lambda s: s.update({"synthesis.b8.resample_filter": torch.ones(3, 3)}),
     "'synthesis.b8.resample_filter' is (3, 3), condgan's net expects (4, 4)"),
    ("G", lambda s: s.pop("mapping.w_avg"), "no 'mapping.w_avg'"),
    ("G", lambda s: s.pop("synthesis.b32.conv1.noise_const"), "no 'synthesis.b32.conv1.noise_const'"),
    ("G", lambda s: s.update({"mapping.embed.weight": torch.zeros(16, 7)}), "'mapping.embed.weight' is (16, 7)"),
    ("D", lambda s: s.update({"heads.linear1.weight": s.pop("linear1.weight")}), "no 'linear1.weight'"),
    ("D", lambda s: s.update({"mapping.fc0.weight": torch.zeros(16, 16)}), "'mapping.fc0.weight' has no place"),
])
def test_a_stylegan2_state_that_does_not_fit_names_the_key_and_changes_nothing(role, damage, culprit):
    net, state = _good(role=role)
    damage(state)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(StudioGANError) as e:
        load_studiogan(net, state, f"StudioGAN {role} x.pth")
    assert culprit in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith(f"StudioGAN {role}")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_condgans_pd_head_has_no_studiogan_layout():
    cfg = build_config(load_preset("cifar10-stylegan2"), [*WIDTHS, "loss.cond=pd"])
    _, D = build_nets(cfg, 10, 3)
    with pytest.raises(StudioGANError, match=r"pd head on StyleGAN2 \('heads.projection'\)"):
        to_studiogan(D)


def test_resolution_and_classes_are_read_from_the_state():
    G, D = _nets("2c-adc-resnet64", classes=7)
    g, d = to_studiogan(G), to_studiogan(D)
    assert stylegan2_resolution(g) == stylegan2_resolution(d) == 64
    assert stylegan2_resolution({f"module.{k}": v for k, v in d.items()}) == 64
    assert stylegan2_resolution({"linear1.weight": torch.zeros(1)}) is None
    npz = build_config(load_preset("cifar10-stylegan2"), [*WIDTHS, "data.name=npz", "data.root=x.npz"])
    assert class_count(npz, g, None) == 7  # mapping.embed.weight [w_dim, C]


# -- the command --------------------------------------------------------------------------------------------

PRESET = "cifar10-stylegan2-d2dce"
CLI_CASE = "d2dce-resnet"
CLI_SET = [a for s in CASES[CLI_CASE][1] for a in ("--set", s)]


def _import(capsys, folder, out, *extra: str) -> tuple[int, str, str]:
    return run_main(capsys, "import-studiogan", str(folder), "--preset", PRESET, *CLI_SET, *extra, "--out", str(out))


def test_import_stylegan2_writes_a_run_that_load_generator_and_sample_read(tmp_path, capsys):
    cfg = case_config(CLI_CASE)
    written = studiogan_folder(tmp_path / "sg", cfg)
    run = tmp_path / "run"
    code, out, err = _import(capsys, tmp_path / "sg", run)
    assert code == 0, err
    assert "G_ema, G, D (best, step 4321)" in out and "stylegan2 at 32 px with 10 classes" in out
    G, info = load_generator(run)
    assert (info.arch, info.resolution, info.num_classes, info.step) == ("stylegan2", 32, 10, 4321)
    expected, _ = build_nets(cfg, 10, 3)
    load_studiogan(expected, written["G_ema"], "G_ema")
    mine, theirs = G.state_dict(), expected.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)  # G_ema bitwise
    state = torch.load(next((run / "checkpoints").iterdir()), weights_only=True)
    for role, net in zip(("G", "D"), build_nets(cfg, 10, 3)):  # G and D are their files, bitwise too
        assert all(torch.equal(state[role][c], written[role][s]) for s, c in condgan_keys(net).items())
    code, _, err = run_main(capsys, "sample", str(run), "--per-class", "1", "--out", str(tmp_path / "s"),
                            "--no-progress")
    assert code == 0, err
    assert len(list((tmp_path / "s").rglob("*.png"))) == 10


def test_an_import_of_g_files_only_reads_the_class_count_from_the_mapping(tmp_path, capsys):
    import numpy as np

    npz = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(npz, images=rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), labels=np.arange(8) % 4)
    cfg = build_config(load_preset(PRESET), [*CASES[CLI_CASE][1], "data.name=npz", f"data.root={npz}"])
    studiogan_folder(tmp_path / "sg", cfg, roles=("G",), classes=4, when="current")
    code, out, err = _import(capsys, tmp_path / "sg", tmp_path / "run", "--set", "data.name=npz", "--set",
                             f"data.root={npz}")
    assert code == 0, err
    assert "with 4 classes" in out and "G_ema is G" in out


@pytest.mark.parametrize("fixture, extra, culprit", [
    ("64px", [], "a 64 px StyleGAN2 (its largest block is b64); condgan's net is 32 px (data.resolution)"),
    ("spd", [], "'linear1.weight' is (16, 16), condgan's net expects (1, 16)"),
    ("7classes", [], "'mapping.embed.weight' is (16, 7), condgan's net expects (16, 10)"),
    ("filter", [], "'synthesis.b8.conv0.resample_filter' is not the filter condgan's StyleGAN2 resamples with"),
    ("good", ["--set", "loss.cond=pd"], "loss.cond pd on model.arch stylegan2 is condgan's own head"),
    ("good", ["--set", "model.d_arch=orig"], "'b32.skip.weight' has no place in condgan's net"),
])
def test_bad_stylegan2_imports_are_one_line_errors_that_write_nothing(tmp_path, capsys, fixture, extra, culprit):
    folder = tmp_path / "sg"
    sets = {"64px": ["data.resolution=64"], "spd": ["loss.cond=spd", "loss.cond_weight=1.0"]}.get(fixture, [])
    cfg = build_config(load_preset(PRESET), [*CASES[CLI_CASE][1], *sets])
    written = studiogan_folder(folder, cfg, classes=7 if fixture == "7classes" else 10)
    if fixture == "filter":
        path = folder / "model=G_ema-best-weights-step=4321.pth"
        written["G_ema"]["synthesis.b8.conv0.resample_filter"] = torch.full((4, 4), 1 / 16)
        torch.save({"state_dict": written["G_ema"]}, path)
    code, _, err = _import(capsys, folder, tmp_path / "run", *extra)
    assert code == 2 and culprit in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "run").exists()

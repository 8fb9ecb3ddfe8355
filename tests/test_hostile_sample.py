"""A hostile user against ``condgan sample``, ``condgan import-studiogan`` and every command that reads a model
(issue 28): two samplers on one output, huge counts, non-finite models, files that are not checkpoints at all.
DESIGN.md section 9: nothing lost, nothing silently wrong, every bad input a one-line error with exit 2."""
from __future__ import annotations

import os
import random
import shutil
import signal
import sys

import pytest
import torch
from conftest import STYLEGAN2, one_line_error, run_main, tiny_cfg, tiny_train_args
from studiogan_reference import CASES, load_reference, studiogan_state

import condgan
import condgan.cli.sample as sample_cli
from condgan.cli import main
from condgan.files import take_lock
from condgan.metrics.errors import EvalError
from condgan.metrics.generate import truncated_normal
from condgan.train import checkpoint as ckpt
from condgan.train.trainer import Trainer


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))




@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny DCGAN run (checkpoints at steps 1 and 2)."""
    out = tmp_path_factory.mktemp("dcgan") / "run"
    with Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=1"), out, progress=False) as t:
        t.train()
    return out


@pytest.fixture(scope="module")
def sg2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sg2") / "run"
    assert main(tiny_train_args(out, *STYLEGAN2, "train.steps=1", "train.ckpt_every=1")) == 0
    return out


def damaged_copy(run, tmp_path, role: str, suffix: str, value: float = float("inf"), name: str = "bad"):
    """A copy of ``run``'s newest checkpoint whose first ``role`` tensor ending in ``suffix`` holds ``value``;
    returns (the checkpoint file, the damaged key)."""
    newest = ckpt.list_checkpoints(run / "checkpoints")[-1]
    path = tmp_path / name / "checkpoints" / newest.name
    path.parent.mkdir(parents=True)
    state = torch.load(newest, weights_only=True)
    key = next(k for k in state[role] if k.endswith(suffix))
    state[role][key].view(-1)[0] = value
    torch.save(state, path)
    return path, key


def others(tmp_path) -> list[str]:
    """Everything in tmp_path, hidden temporaries included."""
    return sorted(p.name for p in tmp_path.iterdir())


# -- finding 2: two samplers on one output ---------------------------------------------------------------------

RACES = {  # --out name, flags, the step during which the other process writes, what it writes
    "npz": ("s.npz", ["--format", "npz"], "draw", "file"),
    "grid": ("g.png", ["--grid", "--per-class", "2"], "picture", "file"),
    "interpolation": ("i.png", ["--interpolate", "latent", "--steps", "3", "--classes", "1,2"], "picture", "file"),
    "folders": ("s", [], "draw", "folder"),
    "empty folder": ("s", [], "draw", "empty"),
    "planted link": ("s.npz", ["--format", "npz"], "draw", "link"),
}


@pytest.mark.parametrize("race", RACES)
def test_an_output_that_appears_while_sampling_is_never_replaced(run, tmp_path, capsys, monkeypatch, race):
    name, flags, step, theirs = RACES[race]
    out, victim = tmp_path / "out" / name, tmp_path / "victim.txt"
    out.parent.mkdir()
    victim.write_text("theirs")
    real = getattr(sample_cli, step)

    def racing(*args, **kwargs):
        result = real(*args, **kwargs)
        if theirs == "file":  # another `condgan sample --out` finished first
            out.write_text("theirs")
        elif theirs == "link":
            out.symlink_to(victim)
        else:
            out.mkdir()
            if theirs == "folder":
                (out / "0000_0").mkdir()
        return result

    monkeypatch.setattr(sample_cli, step, racing)
    code, stdout, err = run_main(capsys, "sample", str(run), "--out", str(out), "--per-class", "2", "--no-progress",
                                 *flags)
    assert code == 2 and "wrote" not in stdout
    one_line_error(err, f"--out {out}", "appeared while sampling")
    assert others(out.parent) == [name]  # theirs alone: no hidden temporary left
    if theirs == "file":
        assert out.read_text() == "theirs"
    elif theirs == "link":
        assert out.is_symlink() and victim.read_text() == "theirs"
    else:
        assert sorted(p.name for p in out.iterdir()) == (["0000_0"] if theirs == "folder" else [])


def test_sample_folders_get_the_permissions_of_a_plain_mkdir(run, tmp_path, capsys):
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--per-class", "1",
                            "--no-progress")
    assert code == 0, err
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700


@pytest.mark.parametrize("flags", [["--format", "npz"], [], ["--grid"]], ids=["npz", "folders", "grid"])
def test_an_unwritable_destination_fails_before_the_generator_is_loaded(run, capsys, monkeypatch, flags):
    if not os.path.isdir("/sys"):
        pytest.skip("needs Linux's /sys (a folder no one may create files in, root included)")
    monkeypatch.setattr(sample_cli, "load_generator", lambda *a, **k: pytest.fail("loaded before the output"))
    out = "/sys/condgan-samples" + (".npz" if "npz" in flags else ".png" if "--grid" in flags else "")
    code, _, err = run_main(capsys, "sample", str(run), "--out", out, "--no-progress", *flags)
    assert code == 2
    one_line_error(err, out)


@pytest.mark.parametrize("flags, step", [(["--format", "npz"], "draw"), ([], "draw"), (["--grid"], "picture")],
                         ids=["npz", "folders", "grid"])
def test_ctrl_c_while_sampling_leaves_nothing(run, tmp_path, capsys, monkeypatch, flags, step):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_cli, step, interrupted)
    out = tmp_path / ("s.npz" if "npz" in flags else "g.png" if "--grid" in flags else "s")
    code, _, _ = run_main(capsys, "sample", str(run), "--out", str(out), "--no-progress", *flags)
    assert code == 130 and others(tmp_path) == []


def test_sampling_a_run_another_process_trains(run, tmp_path, capsys, monkeypatch):
    """The trainer holds the run's lock and prunes its older checkpoint as it writes a newer one: sample reads
    the newest finished checkpoint."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    fd = take_lock(copy / ".lock")  # a training process owns the run dir
    try:
        real = ckpt.load_checkpoint

        def pruned_meanwhile(path, *args):
            if path.name == "ckpt_00000002.pt":  # listed as the newest, then replaced by step 3 and pruned
                shutil.copy(path, path.with_name("ckpt_00000003.pt"))
                path.unlink()
            return real(path, *args)

        monkeypatch.setattr(ckpt, "load_checkpoint", pruned_meanwhile)
        code, stdout, err = run_main(capsys, "sample", str(copy), "--out", str(tmp_path / "s"), "--per-class", "1",
                                     "--no-progress")
        assert code == 0, err
        assert "ckpt_00000003.pt" in stdout and len(list((tmp_path / "s").rglob("*.png"))) == 10
    finally:
        os.close(fd)


# -- finding 7: huge counts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, culprit", [
    (["--per-class", "100000000000"], "--per-class 100000000000"),
    (["--per-class", "100000000000", "--format", "npz"], "--per-class 100000000000"),
    (["--interpolate", "latent", "--steps", "100000000"], "--steps 100000000"),
    (["--grid", "--per-class", "1000000000"], "--per-class 1000000000"),
    (["--interpolate", "class", "--classes", "0,1", "--per-class", "1000000000"], "--per-class 1000000000"),
])
def test_huge_counts_are_refused_before_anything_is_allocated(run, tmp_path, capsys, monkeypatch, flags, culprit):
    for step in ("draw", "picture"):
        monkeypatch.setattr(sample_cli, step, lambda *a, **k: pytest.fail("generated before the check"))
    suffix = ".png" if "--grid" in flags or "--interpolate" in flags else ".npz" if "npz" in flags else ""
    out = tmp_path / f"s{suffix}"
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(out), "--no-progress", *flags)
    assert code == 2
    one_line_error(err, culprit, "GiB")
    assert others(tmp_path) == []


def test_a_batch_too_big_for_memory_is_refused_before_it_is_allocated(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sample_cli, "available_memory", lambda device: 2**25)  # 32 MiB free
    monkeypatch.setattr(sample_cli, "draw", lambda *a, **k: pytest.fail("generated before the check"))
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--per-class", "1000",
                            "--batch-size", "100000", "--no-progress")
    assert code == 2
    one_line_error(err, "--batch-size 100000", "MiB", "smaller --batch-size")
    assert others(tmp_path) == []


def test_an_allocation_that_fails_anyway_names_the_batch_size(run, tmp_path, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 8000000000000 bytes. Error code 12")

    monkeypatch.setattr(sample_cli, "generated_batches", oom)
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--batch-size", "500",
                            "--no-progress")
    assert code == 2
    one_line_error(err, "--batch-size 500", "out of memory")
    assert others(tmp_path) == []


def test_center_samples_beyond_memory_are_refused(sg2_run, tmp_path, capsys):
    code, _, err = run_main(capsys, "sample", str(sg2_run), "--out", str(tmp_path / "s"), "--truncation", "0.5",
                            "--truncation-center", "class", "--center-samples", "100000000000", "--no-progress")
    assert code == 2
    one_line_error(err, "--center-samples 100000000000", "GiB")


class Hung(Exception):
    pass


def test_a_vanishing_truncation_threshold_is_refused_not_looped_on_for_ever(run, tmp_path, capsys):
    def hung(*_):
        raise Hung("truncated_normal did not return")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        with pytest.raises(EvalError, match="at least 0.001"):
            truncated_normal((4, 8), 1e-30, torch.Generator().manual_seed(0))
        code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--truncation", "1e-30",
                                "--no-progress")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert code == 2
    one_line_error(err, "--truncation", "1e-30")


# -- finding 10: every command checks a model the same way -----------------------------------------------------

DAMAGE = [("G_ema", "running_var"), ("G_ema", "shared.weight"), ("G", "fc.weight"), ("D", ".u")]


@pytest.mark.parametrize("role, suffix", DAMAGE, ids=[f"{r}-{s.strip('.')}" for r, s in DAMAGE])
def test_sample_eval_and_init_from_refuse_a_nonfinite_model_alike(run, tmp_path, capsys, role, suffix):
    path, key = damaged_copy(run, tmp_path, role, suffix, float("nan") if "." in suffix else float("inf"))
    code, _, err = run_main(capsys, "sample", str(path), "--out", str(tmp_path / "s"), "--no-progress")
    assert code == 2 and not (tmp_path / "s").exists()
    one_line_error(err, str(path), f"{role}.{key}", "NaN or infinity")
    with pytest.raises(ckpt.CheckpointError, match=f"{role}.{key}"):
        condgan.load_generator(path)
    code, _, err = run_main(capsys, *tiny_train_args(tmp_path / "new", "train.steps=2", f"train.init_from={path}"))
    assert code == 2 and not (tmp_path / "new").exists()
    one_line_error(err, "train.init_from", f"{role}.{key}", "NaN or infinity")
    code, _, err = run_main(capsys, "eval", str(path), "--metrics", "fid", "--num", "20", "--out",
                            str(tmp_path / "e.json"), "--no-progress")
    assert code == 2 and not (tmp_path / "e.json").exists()
    one_line_error(err, f"{role}.{key}", "NaN or infinity")


def test_a_stylegan2_center_that_is_not_finite_is_refused(sg2_run, tmp_path, capsys):
    from condgan.style_sampling import StyleSampler

    path, key = damaged_copy(sg2_run, tmp_path, "G_ema", "w_avg")
    code, _, err = run_main(capsys, "sample", str(path), "--out", str(tmp_path / "s"), "--no-progress")
    assert code == 2 and not (tmp_path / "s").exists()
    one_line_error(err, f"G_ema.{key}", "NaN or infinity")
    G, _ = condgan.load_generator(sg2_run)
    with torch.no_grad():
        G.mapping.w_avg.fill_(float("inf"))
    with pytest.raises(ckpt.CheckpointError, match="mapping.w_avg holds NaN or infinity"):
        StyleSampler(G, psi=0.5)


def test_standing_statistics_that_overflow_are_refused_not_written(run, tmp_path, capsys, monkeypatch):
    """Finite weights whose activations overflow: re-estimated BatchNorm variances of infinity would silently
    give finite (flat) images."""
    from condgan.generator import load_generator

    def loud(*args, **kwargs):
        G, info = load_generator(*args, **kwargs)
        with torch.no_grad():
            first = next(m for m in G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d,
                                                                  torch.nn.Linear)))
            first.weight.mul_(1e30)  # finite, but squared activations overflow float32
        return G, info

    monkeypatch.setattr(sample_cli, "load_generator", loud)
    code, _, err = run_main(capsys, "sample", str(run), "--out", str(tmp_path / "s"), "--standing-stats", "1",
                            "--no-progress")
    assert code == 2 and others(tmp_path) == []
    one_line_error(err, "--standing-stats", "NaN or infinity")


# -- findings 4 and 12: import-studiogan -----------------------------------------------------------------------

CLI_CASE = "biggan32-d2dce"
CLI_ARGS = ["--preset", "cifar10-reacgan", *[a for s in CASES[CLI_CASE][1] for a in ("--set", s)]]


def studiogan_folder(folder, damage: tuple[str, str, float] | None = None):
    """A StudioGAN checkpoint folder (G, G_ema, D; float32); ``damage`` (role, key suffix, value) poisons the
    first tensor of that role whose key ends so."""
    folder.mkdir(parents=True)
    ref = load_reference()["cases"][CLI_CASE]
    for role in ("G", "G_ema", "D"):
        state = {k: v.float() if v.is_floating_point() else v
                 for k, v in studiogan_state(ref["D" if role == "D" else "G"], seed=len(role)).items()}
        if damage is not None and damage[0] == role:
            key = next(k for k in state if k.endswith(damage[1]))
            state[key].view(-1)[-1] = damage[2]
        record = {"state_dict": state, **({"step": 1234} if role == "D" else {})}
        torch.save(record, folder / f"model={role}-best-weights-step=1234.pth")
    return folder


NONFINITE = [  # role, key suffix, value, what the message must say
    ("G", "bn4.running_var", float("inf"), "'bn4.running_var' holds NaN or infinity"),
    ("D", "linear1.bias", float("nan"), "'linear1.bias' holds NaN or infinity"),
    ("G_ema", "shared.weight", float("-inf"), "'shared.weight' holds NaN or infinity"),
    ("G", "weight_u", float("nan"), "spectral-norm u vector"),
    ("D", "weight_v", float("nan"), "spectral-norm v vector"),
    ("G_ema", "weight_orig", float("inf"), "spectral-norm weight"),
]


@pytest.mark.parametrize("role, suffix, value, culprit", NONFINITE, ids=[f"{r}-{s}" for r, s, _, _ in NONFINITE])
def test_import_refuses_nonfinite_tensors_in_any_file(tmp_path, capsys, role, suffix, value, culprit):
    folder = studiogan_folder(tmp_path / "sg", (role, suffix, value))
    code, _, err = run_main(capsys, "import-studiogan", str(folder), *CLI_ARGS, "--out", str(tmp_path / "run"))
    assert code == 2 and not (tmp_path / "run").exists()
    one_line_error(err, f"model={role}-best-weights-step=1234.pth", culprit)
    assert "preset" not in err  # the file is damaged: another preset would not help


def test_import_checks_the_model_it_writes(tmp_path, capsys, monkeypatch):
    """A conversion that overflowed (all inputs finite) is refused like any other non-finite model."""
    import condgan.cli.import_studiogan as imp

    real = imp.load_studiogan

    def overflowing(net, state, what):
        real(net, state, what)
        if what.startswith("StudioGAN D"):
            with torch.no_grad():
                next(b for n, b in net.named_buffers() if n.endswith(".u")).fill_(float("inf"))

    monkeypatch.setattr(imp, "load_studiogan", overflowing)
    folder = studiogan_folder(tmp_path / "sg")
    code, _, err = run_main(capsys, "import-studiogan", str(folder), *CLI_ARGS, "--out", str(tmp_path / "run"))
    assert code == 2 and not (tmp_path / "run").exists()
    one_line_error(err, "D.", ".u holds NaN or infinity")


def test_two_imports_into_one_new_run_dir_never_mix(tmp_path, capsys, monkeypatch):
    """Both pass the "new folder" check; the other finishes first: its run is kept whole, this one refused."""
    import condgan.cli.import_studiogan as imp

    run, real = tmp_path / "run", imp.load_studiogan

    def other_import_finishes(net, state, what):
        real(net, state, what)
        if not run.exists():
            (run / "checkpoints").mkdir(parents=True)
            (run / "checkpoints" / "ckpt_00000007.pt").write_text("theirs")
            (run / "config.yaml").write_text("theirs")

    monkeypatch.setattr(imp, "load_studiogan", other_import_finishes)
    folder = studiogan_folder(tmp_path / "sg")
    code, _, err = run_main(capsys, "import-studiogan", str(folder), *CLI_ARGS, "--out", str(run))
    assert code == 2
    one_line_error(err, f"--out {run}", "was filled while importing")
    assert (run / "config.yaml").read_text() == "theirs"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["ckpt_00000007.pt"]
    assert (run / "checkpoints" / "ckpt_00000007.pt").read_text() == "theirs"


def test_import_into_a_run_dir_a_trainer_owns_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    fd = take_lock(run / ".lock")
    try:
        folder = studiogan_folder(tmp_path / "sg")
        code, _, err = run_main(capsys, "import-studiogan", str(folder), *CLI_ARGS, "--out", str(run))
    finally:
        os.close(fd)
    assert code == 2
    one_line_error(err, str(run), "in use by another condgan process")
    assert [p.name for p in run.iterdir()] == [".lock"]


def _not_torch(tmp_path, kind: str):
    path = tmp_path / "model=G_ema-best-weights-step=5.pth"
    if kind == "random bytes":
        path.write_bytes(random.Random(28).randbytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated zip":
        torch.save({"state_dict": {"x": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:1500])
    else:
        path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("kind, culprit", [
    ("random bytes", "is not a PyTorch checkpoint"),
    ("empty", "is empty (0 bytes)"),
    ("truncated zip", "truncated or damaged"),
    ("directory", "is a folder, not a PyTorch checkpoint"),
])
def test_import_says_what_a_file_is_when_it_is_not_a_pytorch_checkpoint(tmp_path, capsys, kind, culprit):
    path = _not_torch(tmp_path / "sg" if kind == "directory" else tmp_path, kind)
    target = path.parent if kind == "directory" else path
    code, _, err = run_main(capsys, "import-studiogan", str(target), *CLI_ARGS, "--out", str(tmp_path / "run"))
    assert code == 2 and not (tmp_path / "run").exists()
    one_line_error(err, str(path), culprit)
    assert "pickled" not in err


def test_a_legacy_format_file_is_still_read(tmp_path, capsys):
    """torch.save's old (non-zip) format is a PyTorch checkpoint too: the sniffing must not refuse it."""
    folder = studiogan_folder(tmp_path / "sg")
    for path in folder.iterdir():
        torch.save(torch.load(path, weights_only=True), path, _use_new_zipfile_serialization=False)
    code, out, err = run_main(capsys, "import-studiogan", str(folder), *CLI_ARGS, "--out", str(tmp_path / "run"))
    assert code == 0, err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))

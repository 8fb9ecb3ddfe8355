"""Config: presets, typed overrides, one-line errors naming the culprit."""
import pytest

from condgan.cli import main, resolve_config
from condgan.config import ConfigError, build_config, diff, from_dict, to_dict
from condgan.presets import DEFAULT_PRESET, list_presets, load_preset


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_overrides_are_typed():
    cfg = build_config(None, ["train.steps=7", "optim.g_lr=1e-4", "loss.m_n=null", "data.hflip=true",
                              "loss.temperature=1"])
    assert cfg.train.steps == 7 and cfg.optim.g_lr == 1e-4 and cfg.loss.m_n is None and cfg.data.hflip
    assert isinstance(cfg.loss.temperature, float)


@pytest.mark.parametrize("override, culprit", [
    ("train.stpes=3", "did you mean 'train.steps'"),
    ("trian.steps=3", "did you mean 'train.steps'"),
    ("train.steps=abc", "'train.steps' expects int"),
    ("train.steps=1.5", "'train.steps' expects int"),
    ("data.hflip=3", "'data.hflip' expects bool"),
    ("loss.cond=foo", "'loss.cond' must be one of"),
    ("train.batch_size=0", "'train.batch_size' must be positive"),
    ("train", "must look like key=value"),
])
def test_bad_override_is_one_line_error(override, culprit):
    with pytest.raises(ConfigError) as e:
        build_config(None, [override])
    assert culprit in one_line_error(e)


def test_unknown_preset_names_it_and_suggests():
    with pytest.raises(ConfigError) as e:
        load_preset("cifar10-reacgn")
    msg = one_line_error(e)
    assert "'cifar10-reacgn'" in msg and "cifar10-reacgan" in msg


def test_unknown_key_in_config_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  n_diss: 2\n")
    with pytest.raises(ConfigError) as e:
        resolve_config(None, str(f), [])
    assert "'train.n_diss'" in one_line_error(e) and "train.n_dis" in str(e.value)


def test_a_config_file_starts_from_the_preset_its_base_names(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: cifar10-acgan-mod\nloss:\n  cond_weight: 0.5\ntrain:\n  steps: 7\n")
    cfg = resolve_config(None, str(f), ["train.batch_size=16"])
    preset = build_config(load_preset("cifar10-acgan-mod"))
    assert sorted(diff(preset, cfg)) == ["loss.cond_weight", "train.batch_size", "train.steps"]
    assert (cfg.loss.cond_weight, cfg.train.steps, cfg.train.batch_size) == (0.5, 7, 16)
    for base, culprit in (("cifar10-acgam-mod", "unknown preset 'cifar10-acgam-mod' (did you mean 'cifar10-acgan-mod'"),
                          ("[1, 2]", "'base' must name a preset")):
        f.write_text(f"base: {base}\n")
        with pytest.raises(ConfigError) as e:
            resolve_config(None, str(f), [])
        assert one_line_error(e).startswith(f"config file {f}: ") and culprit in str(e.value)


def test_version(capsys):
    from condgan import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"condgan {__version__}\n"


def test_presets_resolve_and_round_trip():
    names = list_presets()
    assert DEFAULT_PRESET in names and "cifar10-reacgan" in names
    for name in names:
        cfg = build_config(load_preset(name))
        assert diff(from_dict(to_dict(cfg)), cfg) == []


def test_cifar10_reacgan_preset_has_reference_settings():
    c = build_config(load_preset("cifar10-reacgan"))
    assert (c.model.arch, c.model.z_dim, c.model.g_width, c.model.d_width) == ("biggan", 80, 96, 96)
    assert (c.loss.cond, c.loss.cond_weight, c.loss.temperature, c.loss.m_p) == ("d2d_ce", 0.5, 0.5, 0.98)
    assert c.optim.g_lr == pytest.approx(2.8284271e-4) and (c.optim.beta1, c.optim.beta2) == (0.5, 0.999)
    assert (c.train.batch_size, c.train.n_dis, c.train.steps) == (128, 5, 100000)
    assert (c.train.ema_decay, c.train.ema_start) == (0.9999, 1000)


def test_cli_presets_show_prints_config_and_counts(capsys):
    assert main(["presets", "--show", "cifar10-reacgan"]) == 0
    out = capsys.readouterr().out
    assert "arch: biggan" in out
    assert "G 9,416,196" in out and "D 2,517,186" in out


def test_cli_unknown_preset_exits_2_with_one_line(capsys):
    assert main(["presets", "--show", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'nope'" in err


def test_cli_train_bad_key_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--set", "train.stpes=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'train.stpes'" in err and "train.steps" in err
    assert not out.exists()


def test_cli_train_changed_config_leaves_run_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "train.batch_size=8",
            "--set", "train.steps=1", "--no-eval", "--no-progress"]
    assert main(["train", "--out", str(out)] + tiny) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["train", "--out", str(out), "--set", "loss.m_p=0.5"] + tiny) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "loss.m_p" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_cli_train_missing_archive_offline_names_file_and_leaves_no_run_dir(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--preset", "cifar10-reacgan", "--out", str(out), "--set", f"data.root={tmp_path}",
                 "--set", "data.download=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "cifar-10-python.tar.gz" in err and str(tmp_path) in err
    assert not out.exists()


@pytest.mark.parametrize("overrides,key", [
    (["loss.cond=mh"], "'loss.adv' and 'loss.cond'"),
    (["loss.adv=mh"], "'loss.adv' and 'loss.cond'"),
    (["loss.cond=pd", "loss.aux=adc"], "'loss.aux'"),
    (["loss.ac_fake_in_d=true"], "'loss.ac_fake_in_d'"),
    (["reg.r1=-0.5"], "'reg.r1'"),
    (["reg.lecam_decay=1.0"], "'reg.lecam_decay'"),
    (["reg.topk=true", "loss.cond=mh", "loss.adv=mh"], "'reg.topk'"),
])
def test_loss_and_regulariser_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as e:
        build_config(load_preset(DEFAULT_PRESET), overrides)
    assert key in one_line_error(e)


def test_every_config_key_is_described_from_the_schema():
    from condgan.config import valid_keys
    from condgan.config.docs import key_docs
    from condgan.nets.registry import ARCHITECTURES

    docs = {d.key: d for d in key_docs()}
    assert sorted(docs) == valid_keys()
    undescribed = [k for k, d in docs.items() if not d.meaning]
    assert not undescribed, f"give these fields a comment in config/schema.py: {undescribed}"
    arch = docs["model.arch"]
    assert arch.choices == tuple(ARCHITECTURES) and arch.default == "dcgan" and arch.type == "str"
    clip = docs["loss.feature_clip"]
    assert (clip.type, clip.default) == ("float | None", None) and "L2 norm" in clip.meaning
    assert "data.root" in docs and "archive / folder / .npz path" in docs["data.root"].meaning  # a comment above


def test_cli_config_keys_prints_each_key_on_one_line(capsys):
    assert main(["config", "keys", "loss."]) == 0
    lines = capsys.readouterr().out.splitlines()
    from condgan.config import valid_keys

    assert [line.split()[0] for line in lines] == [k for k in valid_keys() if k.startswith("loss.")]
    cond = next(line for line in lines if line.startswith("loss.cond "))
    assert "str = d2d_ce  {d2d_ce, 2c, ac, mh, pd, spd, none}  none: unconditional G and D" in cond
    assert any(line.split()[:5] == ["loss.m_n", "float", "|", "None", "="] and " = null " in line for line in lines)
    assert main(["config", "keys", "los.x"]) == 2
    assert capsys.readouterr().err.strip() == "condgan: error: no config key starts with 'los.x'"

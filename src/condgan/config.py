"""Typed run configuration: dataclasses, YAML presets, ``--set`` overrides and validation.

A config is a tree of dataclasses addressed by dotted keys (``train.steps``). Presets are partial YAML
trees applied over the defaults; ``--set key=value`` overrides are type-checked against the field types.
Every error is a one-line :class:`ConfigError` that names the offending key.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad configuration value, key or file; the message names the culprit."""


def _choice(*options: str, default: str) -> Any:
    return field(default=default, metadata={"choices": options})


@dataclass
class DataConfig:
    name: str = _choice("mnist5k", "cifar10", "cifar100", "folder", "npz", default="mnist5k")
    root: str = ""  # archive / folder / .npz path; "" = the cache dir (cifar) where that makes sense
    resolution: int = 32
    hflip: bool = False  # random horizontal flip
    crop_scale: float = 1.0  # random-resized-crop minimum area scale; 1.0 = off
    crop_ratio: float = 4 / 3  # random-resized-crop largest aspect ratio (its inverse the smallest); 1 = square
    download: bool = True  # cifar: download (checksum-verified) when missing and online


@dataclass
class ModelConfig:
    # dcgan: the small demo pair; deep_cnn: StudioGAN's DCGAN (fixed widths); resnet32: SNGAN / WGAN-GP ResNet
    # (g_width, d_width are its block channels); biggan32: BigGAN (blocks at 4 g_width / 2 d_width)
    # fastgan: the FastGAN / SNGAN-ImageNet ResNet pair (32 or 64 px, D downsampling to 2x2, no attention)
    arch: str = _choice("dcgan", "deep_cnn", "resnet32", "biggan32", "fastgan", default="dcgan")
    z_dim: int = 64
    g_width: int = 64  # base channel width of G
    d_width: int = 64  # base channel width of D
    shared_dim: int = 128  # biggan: shared class embedding fed to conditional BN
    attention: bool = True  # biggan: self-attention at 16x16 in G and D
    g_sn: bool = False  # spectral norm in G
    d_sn: bool = True  # spectral norm in D
    embed_dim: int = 512  # D2D-CE / 2C embedding dimension
    init: str = _choice("orthogonal", "normal", "xavier", "default", default="orthogonal")
    sync_bn: bool = False  # under torchrun: G's BatchNorm statistics over the global batch, not each rank's share


@dataclass
class LossConfig:
    adv: str = _choice("hinge", "ns", "ls", "wasserstein", "mh", default="hinge")  # mh goes with cond mh
    # none: unconditional G and D ("w/o condition"); pd: projection; ac: auxiliary classifier; mh: multi-hinge;
    # 2c: ContraGAN's conditional contrastive loss; d2d_ce: ReACGAN
    cond: str = _choice("d2d_ce", "2c", "ac", "mh", "pd", "none", default="d2d_ce")
    aux: str = _choice("none", "tac", "adc", default="none")  # twin (TAC) or discriminative (ADC) classifier
    cond_weight: float = 0.5  # lambda of the conditional term (D and G; for mh: G's multi-hinge weight)
    g_cond_weight: float | None = None  # G's conditional weight when it differs from D's (FastGAN alpha_g)
    fake_kl_weight: float = 0.0  # ac: D's KL(uniform || p(.|x_fake)) on fakes (FastGAN alpha_f); 0 = off
    d_fake_weight: float = 1.0  # weight of D's adversarial loss on fakes (2 in FastGAN's RobGAN baseline)
    fm_weight: float = 0.0  # feature matching in G: mean_d |E h_fake - E h_real| (MHGAN uses 1.0)
    ac_fake_in_d: bool = False  # original ACGAN: D also classifies fakes (ACGAN-Mod: real only)
    tac_d_weight: float = 1.0  # TAC: weight of the twin classifier's loss on fakes in D
    tac_g_weight: float = 1.0  # TAC: weight of minus that loss in G
    temperature: float = 0.5  # D2D-CE / 2C
    m_p: float = 0.98  # D2D-CE positive margin
    m_n: float | None = None  # D2D-CE negative margin; None = 1 - m_p
    reference_form: bool = True  # D2D-CE as in the reference code (see losses.conditional)


@dataclass
class RegConfig:
    """Regularisers; a weight of 0 turns one off."""
    gp: float = 0.0  # WGAN-GP gradient penalty on real-fake interpolates
    dra: float = 0.0  # DRAGAN gradient penalty around perturbed reals
    r1: float = 0.0  # R1 gamma: gamma/2 E||grad D(x_real)||^2
    cr: float = 0.0  # consistency regularisation: D(x_real) vs D(T(x_real))
    bcr_real: float = 0.0  # balanced CR, real side
    bcr_fake: float = 0.0  # balanced CR, fake side
    zcr_d: float = 0.0  # latent CR in D: D(G(z)) vs D(G(z + noise))
    zcr_g: float = 0.0  # latent CR in G: rewards ||G(z) - G(z + noise)||
    zcr_sigma: float = 0.05  # std of the latent noise of zCR
    lecam: float = 0.0  # LeCam regulariser weight
    lecam_decay: float = 0.99  # EMA decay of D's mean real/fake outputs for LeCam
    lecam_start: int = 1000  # G steps before which the EMAs track the last batch and LeCam is off
    topk: bool = False  # top-k training: G's adversarial loss over the k best fakes only
    topk_gamma: float = 0.99  # k = max(gamma^epoch, nu) * batch
    topk_nu: float = 0.5


@dataclass
class RobustConfig:
    """Adversarial training of D on perturbed reals (train.strategy free_adversarial or pgd)."""
    epsilon: float = 0.006  # L-inf radius of the perturbation, in pixel units of [-1, 1] images
    step_size: float = 0.006  # tau: size of each signed-gradient ascent step
    replays: int = 2  # free_adversarial: m D steps on the same real and fake batch per D iteration
    delta_init: str = _choice("normal", "zero", default="normal")  # free_adversarial: N(0, 1) clamped, or 0
    pgd_steps: int = 3  # pgd: ascent steps from a uniform start in [-epsilon, epsilon] per D step


@dataclass
class OptimConfig:
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-6
    # linear: to 0 over train.steps; exp: lr_0 * 0.5^(t / lr_half_life), t = finished G steps (FastGAN)
    lr_decay: str = _choice("none", "linear", "exp", default="none")
    lr_half_life: int = 80000  # kappa of the exp decay, in G steps
    lr_decay_start: int = 0  # linear: G steps at the full rate before the decay starts


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps
    batch_size: int = 64
    n_dis: int = 1  # D iterations per G step, each on its own real batch
    # the update order of one iteration: standard; free_adversarial (FastGAN); pgd (RobGAN); see robust.*
    strategy: str = _choice("standard", "free_adversarial", "pgd", default="standard")
    seed: int = 0
    ema_decay: float = 0.999
    ema_start: int = 0  # G steps before which G_ema is a plain copy of G
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 500
    keep_ckpts: int = 3


@dataclass
class SpeedConfig:
    """The fast path (mostly for CUDA). Each option changes speed, not the math: all off is plain fp32."""
    # bf16: autocast to bfloat16; fp16: autocast to float16 with a loss scaler per net (saved in checkpoints).
    # Losses, spectral norm's power iteration and D2D-CE / 2C similarities stay in float32 either way.
    precision: str = _choice("fp32", "bf16", "fp16", default="fp32")
    channels_last: bool = False  # NHWC nets and images (faster convolutions with cuDNN and oneDNN)
    compile: bool = False  # torch.compile G and D (the first steps compile; needs a C++ compiler on CPU)
    fused_adam: bool = False  # one fused kernel per Adam step instead of a loop over parameters


@dataclass
class EvalConfig:
    num_samples: int = 2000  # EMA-G samples per evaluation (periodic and end of training)
    every: int = 0  # G steps between evaluations during training, a multiple of train.ckpt_every; 0 = off
    metrics: str = "fid,acc"  # comma list of fid, is, prdc, ifid, acc, cas
    best: str = "fid"  # the value that picks checkpoints/best.pt (fid, ifid: lower is better; others: higher)
    backbone: str = _choice("classifier", "inception", default="classifier")
    ref: str = _choice("test", "train", default="test")  # reference split of the real images
    resize: str = _choice("bilinear", "clean", default="bilinear")  # inception backbone input resize


@dataclass
class Config:
    description: str = ""
    reproduces: str = ""  # the paper table row a preset reproduces, with the paper's figure
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ---------------------------------------------------------------------------------------------------
# flat view: dotted key -> (section object, field)

def _fields(obj: Any, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field, Any]]:
    """Dotted key -> (owning section object, its dataclass field, the field's resolved type)."""
    out: dict[str, tuple[Any, dataclasses.Field, Any]] = {}
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_fields(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = (obj, f, hints[f.name])
    return out


def valid_keys() -> list[str]:
    return sorted(_fields(Config()))


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid_keys(), n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field type ``hint``; YAML strings like '1e-4' become floats."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"config key '{key}' expects {name}, got {value!r}")


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set dotted ``key`` to ``value`` with a type and choice check."""
    table = _fields(cfg)
    if key not in table:
        if any(k.startswith(key + ".") for k in table):
            raise ConfigError(f"config key '{key}' is a section; set one of its keys, e.g. '{key}.…'")
        raise _unknown_key(key)
    obj, f, hint = table[key]
    value = _coerce(key, value, hint)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}; got {value!r}")
    setattr(obj, f.name, value)


def apply_tree(cfg: Config, tree: dict, prefix: str = "") -> None:
    """Apply a nested dict (a parsed YAML preset) over ``cfg``."""
    if not isinstance(tree, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            apply_tree(cfg, v, key + ".")
        else:
            set_value(cfg, key, v)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` override; the value is read as YAML (``true``, ``3``, ``null``, ``abc``)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def validate(cfg: Config) -> None:
    """Cross-field checks that single-field types cannot express."""
    positive = ["train.steps", "train.batch_size", "train.n_dis", "train.log_every", "train.sample_every",
                "train.ckpt_every", "train.keep_ckpts", "data.resolution", "model.z_dim", "model.g_width",
                "model.d_width", "model.embed_dim", "eval.num_samples", "robust.replays", "robust.pgd_steps",
                "optim.lr_half_life"]
    flat = to_flat(cfg)
    for key in positive:
        if flat[key] <= 0:
            raise ConfigError(f"config key '{key}' must be positive; got {flat[key]!r}")
    if not 0 <= cfg.optim.lr_decay_start < cfg.train.steps:
        raise ConfigError(f"config key 'optim.lr_decay_start' must be in [0, train.steps); "
                          f"got {cfg.optim.lr_decay_start}")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError(f"config key 'train.ema_decay' must be in [0, 1); got {cfg.train.ema_decay}")
    if cfg.data.crop_ratio < 1.0:
        raise ConfigError(f"config key 'data.crop_ratio' must be >= 1; got {cfg.data.crop_ratio}")
    if not 0.0 < cfg.data.crop_scale <= 1.0:
        raise ConfigError(f"config key 'data.crop_scale' must be in (0, 1]; got {cfg.data.crop_scale}")
    if cfg.loss.temperature <= 0:
        raise ConfigError(f"config key 'loss.temperature' must be positive; got {cfg.loss.temperature}")
    _validate_eval(cfg)
    _validate_loss(cfg)
    _validate_strategy(cfg)
    if cfg.model.arch == "biggan32" and cfg.model.z_dim % 4:
        raise ConfigError(f"config key 'model.z_dim' must split into 4 chunks for biggan32; got {cfg.model.z_dim}")


def _validate_loss(cfg: Config) -> None:
    loss, reg = cfg.loss, cfg.reg
    if (loss.adv == "mh") != (loss.cond == "mh"):
        raise ConfigError(f"config keys 'loss.adv' and 'loss.cond': the multi-hinge loss replaces the adversarial "
                          f"loss, so both must be mh or neither; got adv={loss.adv!r}, cond={loss.cond!r}")
    if reg.topk and loss.cond == "mh":
        raise ConfigError("config key 'reg.topk' cannot be used with loss.cond mh (no scalar adversarial logit)")
    if loss.aux != "none" and loss.cond not in ("ac", "2c", "d2d_ce"):
        raise ConfigError(f"config key 'loss.aux' ({loss.aux}) needs loss.cond ac, 2c or d2d_ce; got {loss.cond!r}")
    if loss.ac_fake_in_d and loss.cond != "ac":
        raise ConfigError(f"config key 'loss.ac_fake_in_d' needs loss.cond ac; got {loss.cond!r}")
    if loss.fake_kl_weight and (loss.cond != "ac" or loss.aux == "adc"):
        raise ConfigError(f"config key 'loss.fake_kl_weight' needs loss.cond ac over C classes (aux none or tac); "
                          f"got cond={loss.cond!r}, aux={loss.aux!r}")
    if loss.d_fake_weight <= 0 or (loss.d_fake_weight != 1.0 and loss.cond == "mh"):
        raise ConfigError(f"config key 'loss.d_fake_weight' must be positive (and 1 with loss.cond mh); "
                          f"got {loss.d_fake_weight}")
    for key in ("fake_kl_weight", "g_cond_weight"):
        if (getattr(loss, key) or 0.0) < 0:
            raise ConfigError(f"config key 'loss.{key}' must be >= 0; got {getattr(loss, key)}")
    for name, value in vars(reg).items():
        if isinstance(value, float) and value < 0:
            raise ConfigError(f"config key 'reg.{name}' must be >= 0; got {value}")
    if not 0.0 <= reg.lecam_decay < 1.0:
        raise ConfigError(f"config key 'reg.lecam_decay' must be in [0, 1); got {reg.lecam_decay}")
    if not (0.0 < reg.topk_gamma <= 1.0 and 0.0 < reg.topk_nu <= 1.0):
        raise ConfigError(f"config keys 'reg.topk_gamma' and 'reg.topk_nu' must be in (0, 1]; "
                          f"got {reg.topk_gamma}, {reg.topk_nu}")


# D-side regularisers need real and fake outputs of one pass; the robust strategies do not offer that.
D_REGULARIZERS = ("gp", "dra", "r1", "cr", "bcr_real", "bcr_fake", "zcr_d", "lecam")


def _validate_strategy(cfg: Config) -> None:
    r = cfg.robust
    for key in ("epsilon", "step_size"):
        if getattr(r, key) < 0:
            raise ConfigError(f"config key 'robust.{key}' must be >= 0; got {getattr(r, key)}")
    if cfg.train.strategy == "standard":
        return
    for name in D_REGULARIZERS:
        if getattr(cfg.reg, name):
            raise ConfigError(f"config key 'reg.{name}' cannot be used with train.strategy {cfg.train.strategy} "
                              f"(D's real and fake passes are separate there)")


def _validate_eval(cfg: Config) -> None:
    from .metrics.errors import EvalError  # lazy: the metrics package imports this module
    from .metrics.suite import METRICS, check_metric_names, parse_metrics

    e = cfg.eval
    if e.every < 0 or (e.every and e.every % cfg.train.ckpt_every):
        raise ConfigError(f"config key 'eval.every' must be 0 or a multiple of train.ckpt_every "
                          f"({cfg.train.ckpt_every}); got {e.every}")
    names = parse_metrics(e.metrics)
    try:
        check_metric_names(names)
    except EvalError as err:
        raise ConfigError(f"config key 'eval.metrics': {err}") from None
    values = [v for m in names for v in METRICS[m].values]
    if e.every and e.best not in values:
        raise ConfigError(f"config key 'eval.best' must be a value of eval.metrics ({', '.join(values)}); "
                          f"got {e.best!r}")


# ---------------------------------------------------------------------------------------------------
# conversion

def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def to_flat(cfg: Config) -> dict[str, Any]:
    return {k: getattr(obj, f.name) for k, (obj, f, _h) in _fields(cfg).items()}


def from_dict(tree: dict) -> Config:
    cfg = Config()
    apply_tree(cfg, tree)
    validate(cfg)
    return cfg


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return tree


def build_config(base_tree: dict | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then a preset/config tree, then ``key=value`` overrides; validated."""
    cfg = Config()
    if base_tree:
        apply_tree(cfg, base_tree)
    for text in overrides or []:
        set_value(cfg, *parse_override(text))
    validate(cfg)
    return cfg


def diff(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    fa, fb = to_flat(a), to_flat(b)
    return [k for k in fa if fa[k] != fb[k]]

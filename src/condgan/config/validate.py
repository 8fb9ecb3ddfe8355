"""Cross-field checks of a config that single-field types cannot express; each error names the key."""
from __future__ import annotations

from ..augment.diffaug import parse_policy
from ..nets.registry import STYLEGAN2_KEYS, model_problem
from .keys import to_flat
from .schema import Config, ConfigError, ModelConfig

POSITIVE = ("train.steps", "train.batch_size", "train.n_dis", "train.accumulate", "train.log_every",
            "train.sample_every", "train.ckpt_every", "train.keep_ckpts", "data.resolution", "model.z_dim",
            "dist.timeout", "model.g_width", "model.d_width", "model.embed_dim", "eval.num_samples", "robust.replays",
            "robust.pgd_steps", "optim.lr_half_life", "optim.g_lr", "optim.d_lr", "loss.temperature",
            "aug.ada_interval", "aug.ada_kimg", "reg.r1_interval", "reg.pl_interval", "reg.pl_batch_shrink")

# key -> (low, high, interval as written in the message); "[" / "]" closed, "(" / ")" open
INTERVALS = {
    "optim.beta1": (0.0, 1.0, "[0, 1)"),
    "optim.beta2": (0.0, 1.0, "[0, 1)"),
    "optim.eps": (0.0, float("inf"), "[0, inf)"),
    "train.seed": (0, 2**32 - 1, "[0, 4294967295]"),  # what numpy's global seed accepts
    "train.ema_start": (0, float("inf"), "[0, inf)"),
    "train.ema_decay": (0.0, 1.0, "[0, 1)"),
    "loss.m_p": (-1.0, 1.0, "(-1, 1]"),  # a cosine-similarity margin
    "data.crop_ratio": (1.0, float("inf"), "[1, inf)"),
    "data.crop_scale": (0.0, 1.0, "(0, 1]"),
    "data.subset": (0, float("inf"), "[0, inf)"),
    "aug.ada_p": (0.0, 1.0, "[0, 1]"),
    "reg.pl_decay": (0.0, 1.0, "[0, 1]"),
    "reg.style_mixing": (0.0, 1.0, "[0, 1]"),
}


def _inside(value: float, low: float, high: float, written: str) -> bool:
    above = value > low if written[0] == "(" else value >= low
    below = value < high if written[-1] == ")" else value <= high
    return above and below


def validate(cfg: Config) -> None:
    """Cross-field checks that single-field types cannot express."""
    flat = to_flat(cfg)
    for key in POSITIVE:
        if flat[key] <= 0:
            raise ConfigError(f"config key '{key}' must be positive; got {flat[key]!r}")
    for key, (low, high, written) in INTERVALS.items():
        if not _inside(flat[key], low, high, written):
            raise ConfigError(f"config key '{key}' must be in {written}; got {flat[key]!r}")
    if not 0 <= cfg.optim.lr_decay_start < cfg.train.steps:
        raise ConfigError(f"config key 'optim.lr_decay_start' must be in [0, train.steps); "
                          f"got {cfg.optim.lr_decay_start}")
    _validate_eval(cfg)
    _validate_aug(cfg)
    _validate_grid(cfg)
    _validate_loss(cfg)
    _validate_ablation(cfg)
    _validate_strategy(cfg)
    _validate_stylegan2(cfg)
    if cfg.train.init_classes != "strict" and not cfg.train.init_from:
        raise ConfigError(f"config key 'train.init_classes' ({cfg.train.init_classes}) applies to a run started "
                          f"from train.init_from; set that too, or leave init_classes strict")
    problem = model_problem(cfg.model, cfg.data.resolution)
    if problem:
        raise ConfigError(f"config key {problem}")


def _validate_loss(cfg: Config) -> None:
    loss, reg = cfg.loss, cfg.reg
    if (loss.adv == "mh") != (loss.cond == "mh"):
        raise ConfigError(f"config keys 'loss.adv' and 'loss.cond': the multi-hinge loss replaces the adversarial "
                          f"loss, so both must be mh or neither; got adv={loss.adv!r}, cond={loss.cond!r}")
    if reg.topk and loss.cond == "mh":
        raise ConfigError("config key 'reg.topk' cannot be used with loss.cond mh (no scalar adversarial logit)")
    if loss.aux != "none" and loss.cond not in ("ac", "2c", "d2d_ce"):
        raise ConfigError(f"config key 'loss.aux' ({loss.aux}) needs loss.cond ac, 2c or d2d_ce; got {loss.cond!r}")
    if cfg.model.cls_bias and loss.cond != "ac":
        raise ConfigError(f"config key 'model.cls_bias' needs loss.cond ac (the classifier head); got {loss.cond!r}")
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


def _validate_ablation(cfg: Config) -> None:
    """D2D-CE's Table 6 switches: only on d2d_ce, and in the paper's form (the reference code has none)."""
    loss = cfg.loss
    changed = [f"loss.{key}=false" for key in ("data_to_data", "margins") if not getattr(loss, key)]
    if changed and loss.cond != "d2d_ce":
        raise ConfigError(f"config key {changed[0]!r} ablates D2D-CE and needs loss.cond d2d_ce; got {loss.cond!r}")
    if changed and loss.reference_form:
        raise ConfigError(f"config key {changed[0]!r}: the ablations exist in the paper's form only; set "
                          f"loss.reference_form=false")
    if not 0.0 <= loss.neg_drop < 1.0 or (loss.neg_drop and (loss.cond != "d2d_ce" or changed)):
        raise ConfigError(f"config key 'loss.neg_drop' must be in [0, 1) and needs loss.cond d2d_ce with its "
                          f"data-to-data negatives and margins; got {loss.neg_drop} with cond={loss.cond!r}"
                          + (f", {', '.join(changed)}" if changed else ""))
    clips = [(key, value) for key in ("feature_clip", "cls_grad_clip") if (value := getattr(loss, key)) is not None]
    if len(clips) > 1:
        raise ConfigError("config keys 'loss.feature_clip' and 'loss.cls_grad_clip' are two cures of Table A5: "
                          "set one of them")
    for key, value in clips:
        if not value > 0 or loss.cond != "ac":
            raise ConfigError(f"config key 'loss.{key}' must be > 0 and needs loss.cond ac; got {value} with "
                              f"cond={loss.cond!r}")


def _validate_grid(cfg: Config) -> None:
    parts = cfg.train.grid_classes.split(",") if cfg.train.grid_classes else []
    if not all(p.strip().isdigit() for p in parts) or len(set(map(int, parts))) != len(parts):
        raise ConfigError(f"config key 'train.grid_classes' must be a comma list of distinct class indices "
                          f"(or empty); got {cfg.train.grid_classes!r}")


def _validate_aug(cfg: Config) -> None:
    a = cfg.aug
    try:
        parse_policy(a.diffaug)
    except ValueError as err:
        raise ConfigError(f"config key 'aug.diffaug': {err}") from None
    if a.ada and a.diffaug.strip():
        raise ConfigError(f"config keys 'aug.diffaug' and 'aug.ada': one augmentation at a time; got "
                          f"diffaug={a.diffaug!r}, ada={a.ada!r}")
    if a.ada_target is not None and not -1.0 <= a.ada_target <= 1.0:
        raise ConfigError(f"config key 'aug.ada_target' must be in [-1, 1] (a mean of signs) or null (fixed p); "
                          f"got {a.ada_target}")


# D-side regularisers need real and fake outputs of one pass; the robust strategies do not offer that.
D_REGULARIZERS = ("gp", "dra", "r1", "cr", "bcr_real", "bcr_fake", "zcr_d", "lecam")


def _validate_strategy(cfg: Config) -> None:
    r = cfg.robust
    for key in ("epsilon", "step_size"):
        if getattr(r, key) < 0:
            raise ConfigError(f"config key 'robust.{key}' must be >= 0; got {getattr(r, key)}")
    if cfg.train.strategy in ("standard", "stylegan2"):  # both update D on one real-and-fake pass
        return
    if cfg.train.accumulate != 1:
        raise ConfigError(f"config key 'train.accumulate' must be 1 with train.strategy {cfg.train.strategy} "
                          f"(its update order is not split into micro-batches); got {cfg.train.accumulate}")
    for name in D_REGULARIZERS:
        if getattr(cfg.reg, name):
            raise ConfigError(f"config key 'reg.{name}' cannot be used with train.strategy {cfg.train.strategy} "
                              f"(D's real and fake passes are separate there)")


def _validate_eval(cfg: Config) -> None:
    from ..metrics.errors import EvalError  # lazy: the metrics package imports this module
    from ..metrics.suite import METRICS, check_metric_names, parse_metrics

    e = cfg.eval
    if e.every < 0 or (e.every and e.every % cfg.train.ckpt_every):
        raise ConfigError(f"config key 'eval.every' must be 0 or a multiple of train.ckpt_every "
                          f"({cfg.train.ckpt_every}); got {e.every}")
    names = parse_metrics(e.metrics)
    try:
        if names != ["auto"]:
            check_metric_names(names)
    except EvalError as err:
        raise ConfigError(f"config key 'eval.metrics': {err}") from None
    values = ["fid"] if names == ["auto"] else [v for m in names for v in METRICS[m].values]
    if e.every and e.best not in values:
        raise ConfigError(f"config key 'eval.best' must be a value of eval.metrics ({', '.join(values)}); "
                          f"got {e.best!r}")


def _validate_stylegan2(cfg: Config) -> None:
    """StyleGAN2's nets go with its strategy, and its keys with its nets (condgan.train.stylegan2)."""
    m, loss, reg, t = cfg.model, cfg.loss, cfg.reg, cfg.train
    nets, strategy = m.arch == "stylegan2", t.strategy == "stylegan2"
    if nets != strategy:
        raise ConfigError(f"config keys 'model.arch' and 'train.strategy': StyleGAN2's nets train with its strategy "
                          f"and only with it (noise inputs, w_avg, lazy regularisation); got arch={m.arch!r}, "
                          f"strategy={t.strategy!r}")
    defaults = ModelConfig()
    changed = [key for key in STYLEGAN2_KEYS if getattr(m, key) != getattr(defaults, key)]
    if changed and not nets:
        raise ConfigError(f"config key 'model.{changed[0]}' applies to model.arch=stylegan2 only; got "
                          f"{getattr(m, changed[0])!r} with {m.arch}")
    if loss.cond == "spd" and not nets:
        raise ConfigError(f"config key 'loss.cond' spd is StyleGAN2's projection (its class mapping network): it "
                          f"needs model.arch stylegan2; got {m.arch}")
    if nets and (loss.feature_clip is not None or loss.cls_grad_clip is not None):
        raise ConfigError("config keys 'loss.feature_clip' / 'loss.cls_grad_clip' do not apply to model.arch "
                          "stylegan2 (its classifier head already reads the normalised features)")
    only_strategy = [f"reg.{k}" for k in ("pl_weight", "style_mixing") if getattr(reg, k)]
    only_strategy += ["reg.r1_own_step"] if reg.r1_own_step else []
    if only_strategy and not strategy:
        raise ConfigError(f"config key '{only_strategy[0]}' needs train.strategy stylegan2; got {t.strategy}")
    if reg.r1_own_step and not reg.r1:
        raise ConfigError("config key 'reg.r1_own_step' needs reg.r1 (the R1 gamma) > 0")
    if nets and t.batch_size % min(m.mbstd_group, t.batch_size):
        raise ConfigError(f"config key 'model.mbstd_group' ({m.mbstd_group}) must divide train.batch_size "
                          f"({t.batch_size}): the minibatch standard deviation splits a batch into equal groups")
    if strategy and t.batch_size < reg.pl_batch_shrink:
        raise ConfigError(f"config key 'reg.pl_batch_shrink' ({reg.pl_batch_shrink}) leaves no sample of "
                          f"train.batch_size {t.batch_size} for the path-length step")
    if t.ema_kimg is not None and not t.ema_kimg > 0:
        raise ConfigError(f"config key 'train.ema_kimg' must be positive or null; got {t.ema_kimg}")
    if t.ema_kimg is not None and t.ema_start:
        raise ConfigError(f"config key 'train.ema_start' ({t.ema_start}) belongs to train.ema_decay's EMA; with "
                          f"train.ema_kimg the ramp is train.ema_rampup: set ema_start to 0")
    if t.ema_rampup is not None and (t.ema_kimg is None or not t.ema_rampup > 0):
        raise ConfigError(f"config key 'train.ema_rampup' must be positive and needs train.ema_kimg; got "
                          f"{t.ema_rampup} with ema_kimg={t.ema_kimg}")

"""The run configuration's schema: one dataclass per section, each field with its default and, for named
options, its choices."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..augment.ada import ADA_PIPELINES
from ..data.registry import DATASETS
from ..data.residency import RESIDENCIES
from ..data.store import DEFAULT_RESIZER, RESIZERS
from ..nets.registry import ARCHITECTURES, CONDITIONING, LAYOUTS
from ..nets.stylegan2 import D_ARCHITECTURES


class ConfigError(ValueError):
    """A bad configuration value, key or file; the message names the culprit."""


def _choice(*options: str, default: str) -> Any:
    return field(default=default, metadata={"choices": options})


@dataclass
class DataConfig:
    name: str = _choice(*DATASETS, default="mnist5k")  # condgan.data.registry.DATASETS
    # archive / folder / .npz path, or a downloaded dataset's folder (or its prepared store); "" = the cache
    # dir (cifar) where that makes sense
    root: str = ""
    resolution: int = 32  # image side in pixels (32, 64, 128 or 256, as the architecture allows)
    # images not at data.resolution (cifar and mnist5k are 32 px): false = a one-line error; true = centre-crop
    # and resize them, cifar / mnist5k / npz with torch's antialiased bilinear, folder with PIL bicubic (prepared
    # datasets are resized by condgan prepare, with data.resizer)
    resize: bool = False
    resizer: str = _choice(*RESIZERS, default=DEFAULT_RESIZER)  # prepared datasets: PIL filter of the resize
    classes: str = ""  # imagenet143: the file listing its wnids
    residency: str = _choice(*RESIDENCIES, default="auto")  # where training images live: data/residency.py
    hflip: bool = False  # random horizontal flip
    crop_scale: float = 1.0  # random-resized-crop minimum area scale; 1.0 = off
    crop_ratio: float = 4 / 3  # random-resized-crop largest aspect ratio (its inverse the smallest); 1 = square
    download: bool = True  # cifar: download (checksum-verified) when missing and online
    subset: int = 0  # limited data: train on the first K images of each class (fixed shuffle, seed 0); 0 = all


@dataclass
class AugConfig:
    """Differentiable augmentation of every D input: reals and fakes in D steps, fakes in G steps."""
    diffaug: str = ""  # DiffAugment policy, a comma list of color, translation, cutout; "" = off
    ada: str = _choice("", *ADA_PIPELINES, default="")  # ADA pipeline (bgc: blit + geometric + colour); "" = off
    ada_p: float = 0.0  # ADA's initial p (the fixed p when ada_target is null)
    ada_target: float | None = 0.6  # adaptive p: the target of E[sign(D(x_real))]; null = fixed p
    ada_interval: int = 4  # D steps between two adjustments of p
    ada_kimg: int = 500  # thousands of real images for p to move by 1


@dataclass
class ModelConfig:
    arch: str = _choice(*ARCHITECTURES, default="dcgan")  # the names of condgan.nets.registry.ARCHITECTURES
    # fastgan only: which official net at that size ("" = the default: cifar at 32, imagenet143 at 64,
    # imagenet at 128); see condgan.nets.stages
    layout: str = _choice("", *LAYOUTS, default="")
    z_dim: int = 64  # latent size of G
    g_width: int = 64  # base channel width of G
    d_width: int = 64  # base channel width of D
    shared_dim: int = 128  # biggan: shared class embedding fed to conditional BN
    attention: bool = True  # biggan: self-attention in G and D where its stage table puts it (16x16 at 32 px)
    g_sn: bool = False  # spectral norm in G
    d_sn: bool = True  # spectral norm in D
    embed_dim: int = 512  # D2D-CE / 2C embedding dimension
    cls_bias: bool = False  # resnet family: the classifier head (ac) has a bias, as in the FastGAN code
    # weight initialisation of G and D ("default": torch's own)
    init: str = _choice("orthogonal", "normal", "xavier", "default", default="orthogonal")
    sync_bn: bool = False  # under torchrun: G's BatchNorm statistics over the global batch, not each rank's share
    # stylegan2 only (condgan.nets.stylegan2; g/d_width, shared_dim, attention, spectral norm and init do not apply):
    w_dim: int = 512  # stylegan2: size of the intermediate latent w
    mapping_layers: int = 8  # stylegan2: layers of G's mapping network (the CIFAR10 configs use 2)
    channel_base: int = 32768  # stylegan2: a resolution r has min(channel_base / r, channel_max) channels
    channel_max: int = 512  # stylegan2: the widest layer's channels
    d_arch: str = _choice(*D_ARCHITECTURES, default="resnet")  # stylegan2 D: orig (CIFAR10) or resnet (skip branch)
    mbstd_group: int = 4  # stylegan2 D: minibatch-std group size, per process (CIFAR10 32, AFHQ 8)
    conv_clamp: float | None = None  # stylegan2: conv outputs clamped to +-this (NVIDIA: 256 with mixed precision)
    w_avg_beta: float = 0.998  # stylegan2: decay of w_avg, the running mean of w (StudioGAN 0.998, NVIDIA 0.995)


@dataclass
class LossConfig:
    # adversarial loss: hinge, ns (non-saturating), ls (least squares), wasserstein; mh goes with cond mh
    adv: str = _choice("hinge", "ns", "ls", "wasserstein", "mh", default="hinge")
    # none: unconditional G and D ("w/o condition"); pd: projection; ac: auxiliary classifier; mh: multi-hinge;
    # 2c: ContraGAN's conditional contrastive loss; d2d_ce: ReACGAN; spd: cStyleGAN2's projection (stylegan2 only)
    cond: str = _choice(*CONDITIONING, default="d2d_ce")
    aux: str = _choice("none", "tac", "adc", default="none")  # twin (TAC) or discriminative (ADC) classifier
    cond_weight: float = 0.5  # lambda of the conditional term (D and G; for mh: G's multi-hinge weight)
    g_cond_weight: float | None = None  # G's conditional weight when it differs from D's (FastGAN alpha_g)
    fake_kl_weight: float = 0.0  # ac: D's KL(uniform || p(.|x_fake)) on fakes (FastGAN alpha_f); 0 = off
    d_fake_weight: float = 1.0  # weight of D's adversarial loss on fakes (2 in FastGAN's RobGAN baseline)
    fm_weight: float = 0.0  # feature matching in G: mean_d |E h_fake - E h_real| (MHGAN uses 1.0)
    ac_fake_in_d: bool = False  # original ACGAN: D also classifies fakes (ACGAN-Mod: real only)
    tac_d_weight: float = 1.0  # TAC: weight of the twin classifier's loss on fakes in D
    tac_g_weight: float = 1.0  # TAC: weight of minus that loss in G
    temperature: float = 0.5  # T of D2D-CE / 2C: similarities are divided by it
    m_p: float = 0.98  # D2D-CE positive margin
    m_n: float | None = None  # D2D-CE negative margin; None = 1 - m_p
    reference_form: bool = True  # D2D-CE as in the reference code (see losses.conditional)
    # D2D-CE's ablations (ReACGAN Table 6, losses.conditional.normalized_ce; need reference_form false):
    data_to_data: bool = True  # negatives: the batch's samples of other classes; false: the other classes' proxies
    margins: bool = True  # easy positive / negative suppression with m_p and m_n
    neg_drop: float = 0.0  # D2D-CE: each negative pair leaves the denominator with this probability (Table A4)
    # ac's cures of ReACGAN Table A5 (at most one of the two; losses.conditional):
    feature_clip: float | None = None  # ac: the classifier's input features clipped to this L2 norm per sample
    cls_grad_clip: float | None = None  # ac: each sample's CE gradient w.r.t. the classifier's weight, norm clip


@dataclass
class RegConfig:
    """Regularisers; a weight of 0 turns one off."""
    gp: float = 0.0  # WGAN-GP gradient penalty on real-fake interpolates
    dra: float = 0.0  # DRAGAN gradient penalty around perturbed reals
    r1: float = 0.0  # R1 gamma: gamma/2 E||grad D(x_real)||^2
    r1_interval: int = 1  # lazy R1: on every k-th D step only, weighted by k (StyleGAN2: 16)
    # train.strategy stylegan2: R1 as its own D optimiser step after the D step (NVIDIA's Dreg phase) instead of
    # a term of the D loss ("Tuning" of ReACGAN's Table 5 puts it in the D loss)
    r1_own_step: bool = False
    pl_weight: float = 0.0  # train.strategy stylegan2: path length regularisation weight (AFHQ: 2); 0 = off
    pl_interval: int = 4  # stylegan2: G steps between path-length steps (lazy), and Adam's lazy ratio of G
    pl_decay: float = 0.01  # stylegan2: decay of the path lengths' running mean
    pl_batch_shrink: int = 2  # stylegan2: the path-length step's batch is train.batch_size / this
    style_mixing: float = 0.0  # stylegan2: probability that a batch mixes two latents' styles (AFHQ: 0.9)
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
    topk_nu: float = 0.5  # the smallest share of the batch top-k keeps


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
    g_lr: float = 2e-4  # G's Adam learning rate
    d_lr: float = 2e-4  # D's Adam learning rate
    beta1: float = 0.5  # Adam beta1 (G and D)
    beta2: float = 0.999  # Adam beta2 (G and D)
    eps: float = 1e-6  # Adam epsilon
    # linear: to 0 over train.steps; exp: lr_0 * 0.5^(t / lr_half_life), t = finished G steps (FastGAN)
    lr_decay: str = _choice("none", "linear", "exp", default="none")
    lr_half_life: int = 80000  # kappa of the exp decay, in G steps
    lr_decay_start: int = 0  # linear: G steps at the full rate before the decay starts


@dataclass
class TrainConfig:
    steps: int = 2000  # generator steps
    batch_size: int = 64  # images per D and G step (the global batch under torchrun)
    n_dis: int = 1  # D iterations per G step, each on its own real batch
    accumulate: int = 1  # micro-batches of batch_size per D and G update (StudioGAN acml_steps; standard strategy)
    # the update order of one iteration: standard; free_adversarial (FastGAN); pgd (RobGAN), see robust.*;
    # stylegan2 (model.arch stylegan2: lazy R1, path length, style mixing; see condgan.train.stylegan2)
    strategy: str = _choice("standard", "free_adversarial", "pgd", "stylegan2", default="standard")
    # D steps or the G step first in an iteration; auto: G first for stylegan2 (NVIDIA, StudioGAN), else D first
    order: str = _choice("auto", "d_first", "g_first", default="auto")
    seed: int = 0  # seed of the weights, latents and data order
    # a new run starts from the weights (G, G_ema, D with their buffers) of this run dir's newest checkpoint or this
    # checkpoint file (an imported one too), with its own optimiser, step 0 and seeds; "" = fresh weights.
    # A resumed run keeps its own weights. See condgan.train.init_from
    init_from: str = ""
    # train.init_from with other classes: strict (every tensor must fit) or reinit (the layers whose shape depends
    # on the number of classes keep their fresh initialisation, even when the counts agree)
    init_classes: str = _choice("strict", "reinit", default="strict")
    ema_decay: float = 0.999  # decay of G_ema, the averaged generator that is sampled and evaluated
    ema_start: int = 0  # G steps before which G_ema is a plain copy of G
    # G_ema's half-life in thousands of images (StyleGAN2's EMA; replaces ema_decay and ema_start); null = off
    ema_kimg: float | None = None
    ema_rampup: float | None = None  # with ema_kimg: the half-life is at most (images seen) x this; null = no ramp
    log_every: int = 50  # G steps between records in metrics.jsonl
    sample_every: int = 500  # G steps between sample grids (samples/step_*.png)
    # classes of the sample grid's rows: comma list of indices; "" = every class up to 10, else 10 spread evenly
    grid_classes: str = ""
    ckpt_every: int = 500  # G steps between checkpoints
    keep_ckpts: int = 3  # newest checkpoints kept (older ones are deleted)


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
    # comma list of fid, is, prdc, ifid, acc, cas; auto: fid,acc up to 100 classes at 32 px, else fid,is
    metrics: str = "auto"
    best: str = "fid"  # the value that picks checkpoints/best.pt (fid, ifid: lower is better; others: higher)
    # auto: the evaluation classifier up to 100 classes at 32 px, else Inception (condgan.metrics.request); dinov2 and
    # swav read their default resize (eval.resize is the Inception's)
    backbone: str = _choice("auto", "classifier", "inception", "dinov2", "swav", default="auto")
    # reference split of the real images; auto: the papers' (train for cub200 and afhq, else test)
    ref: str = _choice("auto", "test", "train", default="auto")
    resize: str = _choice("bilinear", "clean", default="bilinear")  # inception backbone input resize


@dataclass
class LogConfig:
    """How a run reports, besides metrics.jsonl and the sample grids (a resumed run may change it)."""
    # the logged scalars, sample grids and evaluations as TensorBoard events in RUN/tensorboard too
    tensorboard: bool = False


@dataclass
class DistConfig:
    """Training under torchrun (a resumed run may change it)."""
    # seconds a rank waits for the others in a training step's collective before it stops naming the rank that did
    # not arrive (ranks waiting while rank 0 evaluates or writes, or while a rank starts up, wait as long as it answers)
    timeout: int = 600


@dataclass
class Config:
    description: str = ""  # one line of what this config is
    reproduces: str = ""  # the paper table row a preset reproduces, with the paper's figure
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    dist: DistConfig = field(default_factory=DistConfig)

"""Evaluation suite: the FID Inception (layout, TF pooling, weights search), input pipelines, backbones,
cached reference statistics, the metric registry end to end, ``condgan eval`` and periodic evaluation."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import conftest

import condgan.metrics.classifier as clf_mod
import condgan.metrics.inception_weights as iw
from condgan.cli import main
from condgan.config import ConfigError
from condgan.data import load_dataset
from condgan.metrics import (EvalError, EvalRequest, Evaluator, FIDInceptionV3, intra_class_fid, load_inception,
                             topk_accuracy)
from condgan.metrics.backbones import ClassifierBackbone
from condgan.metrics.inception import InceptionA, InceptionC, InceptionE
from condgan.metrics.reference import reference_path, reference_statistics
from condgan.metrics.resize import resize_bilinear, resize_clean
from condgan.train.trainer import Trainer

MANIFEST = Path(__file__).parent / "data" / "pytorch_fid_inception_manifest.json"


def tiny_cfg(*overrides: str):
    return conftest.tiny_cfg("train.ema_start=1", *overrides)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Private condgan and torch-hub caches, and a 1-epoch evaluation classifier (seconds, not minutes)."""
    monkeypatch.setenv("CONDGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(iw.ENV_VAR, raising=False)
    monkeypatch.setattr(iw, "WEIGHTS_URL", (tmp_path / "offline" / iw.WEIGHTS_NAME).as_uri())  # never online
    quick = clf_mod.train_classifier
    monkeypatch.setattr(clf_mod, "train_classifier", lambda train, **kw: quick(train, **{**kw, "epochs": 1}))


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """A weights file in the published format (a plain state dict, no num_batches_tracked), random values."""
    torch.manual_seed(0)
    net = FIDInceptionV3()
    with torch.no_grad():  # non-trivial BN statistics so that every layer matters
        for name, t in net.state_dict().items():
            if name.endswith(("running_mean", "bn.bias")):
                t.copy_(torch.randn_like(t) * 0.1)
            elif name.endswith(("running_var", "bn.weight")):
                t.copy_(torch.rand_like(t) * 0.5 + 0.75)
    path = tmp_path_factory.mktemp("w") / iw.WEIGHTS_NAME
    torch.save({k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}, path)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    Trainer(tiny_cfg("train.steps=2", "train.ckpt_every=2"), out, progress=False).train()
    return out


# -- the FID Inception ---------------------------------------------------------------------------------

def test_state_dict_matches_pytorch_fid_manifest():
    """Key names, order and shapes equal those of pytorch-fid's fid_inception_v3() (torchvision Inception3,
    1008 classes, no aux head, patched blocks); the manifest was dumped from that model on a machine with
    torchvision, and the published weights file loads into it."""
    manifest = json.loads(MANIFEST.read_text())
    ours = {k: list(v.shape) for k, v in FIDInceptionV3().state_dict().items()}
    assert list(ours) == list(manifest)
    assert ours == manifest


def _branch_pool_input(block: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = block.branch_pool.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    with torch.no_grad():
        block.eval()(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("block", [InceptionA(4, 3), InceptionC(4, 5), InceptionE(4, max_pool=False)])
def test_pooling_branch_averages_valid_pixels_only(block):
    x = torch.rand(2, 4, 6, 6) + 1.0
    got = _branch_pool_input(block, x)
    # independent reference: the mean over the in-image part of each 3x3 window
    padded = F.pad(x, (1, 1, 1, 1))
    ones = F.pad(torch.ones_like(x), (1, 1, 1, 1))
    sums = sum(padded[..., i:i + 6, j:j + 6] for i in range(3) for j in range(3))
    counts = sum(ones[..., i:i + 6, j:j + 6] for i in range(3) for j in range(3))
    torch.testing.assert_close(got, sums / counts)
    assert not torch.allclose(got, F.avg_pool2d(x, 3, 1, 1))  # torchvision's default differs at borders


def test_last_e_block_max_pools():
    x = torch.rand(2, 4, 5, 5)
    got = _branch_pool_input(InceptionE(4, max_pool=True), x)
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)
    ref = torch.stack([padded[..., i:i + 5, j:j + 5] for i in range(3) for j in range(3)]).amax(0)
    torch.testing.assert_close(got, ref)
    net = FIDInceptionV3()
    assert net.Mixed_7c.max_pool and not net.Mixed_7b.max_pool


def test_load_inception_outputs(weights_file):
    model = load_inception(weights_file)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = resize_bilinear(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    with torch.no_grad():
        pool, logits = model(x)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    torch.testing.assert_close(model.logits_without_bias(pool) + model.fc.bias, logits)


# -- weights search ------------------------------------------------------------------------------------

def test_weights_missing_offline_is_one_line_naming_where_to_put_it(tmp_path):
    with pytest.raises(EvalError) as err:
        iw.find_inception_weights()
    msg = str(err.value)
    assert "\n" not in msg and iw.WEIGHTS_NAME in msg and str(iw.hub_weights_path()) in msg
    assert iw.ENV_VAR in msg and "could not be downloaded" in msg
    assert not iw.hub_weights_path().exists() and not list(iw.hub_weights_path().parent.glob("*"))


def test_weights_search_order(tmp_path, monkeypatch, weights_file):
    hub = iw.hub_weights_path()
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"hub")
    assert iw.find_inception_weights() == hub
    env = tmp_path / "env.pth"
    env.write_bytes(b"env")
    monkeypatch.setenv(iw.ENV_VAR, str(env))
    assert iw.find_inception_weights() == env
    assert iw.find_inception_weights(weights_file) == weights_file
    with pytest.raises(EvalError, match="not found: .*nope.pth"):
        iw.find_inception_weights(tmp_path / "nope.pth")


def test_download_is_hash_checked(tmp_path, monkeypatch):
    src = tmp_path / "offline" / iw.WEIGHTS_NAME
    src.parent.mkdir()
    src.write_bytes(b"pretend weights")
    with pytest.raises(EvalError, match="checksum mismatch"):
        iw.find_inception_weights()
    assert not list(iw.hub_weights_path().parent.glob("*"))  # no partial or wrong file left
    monkeypatch.setattr(iw, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(src.read_bytes()).hexdigest()[:8])
    assert iw.find_inception_weights() == iw.hub_weights_path()
    assert iw.hub_weights_path().read_bytes() == b"pretend weights"
    src.unlink()  # now cached: found without the network
    assert iw.find_inception_weights() == iw.hub_weights_path()


# -- input pipelines ----------------------------------------------------------------------------------

def test_resize_bilinear_half_pixel_centres():
    img = torch.tensor([[0, 255]], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 1, 2, 2).contiguous()
    out = resize_bilinear(img, size=4)  # pixel centres at 0.25, 0.75 of each input pixel: 0, .25, .75, 1
    assert out.shape == (1, 3, 4, 4)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([-1.0, -0.5, 0.5, 1.0]))
    assert torch.equal(out[:, 0], out[:, 2])


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                    np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))


def _bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Interpolation matrix [n_out, n_in] of an upscaling bicubic filter (Keys, a = -0.5) with pixel
    centres at i + 1/2 and the taps that fall outside the image dropped and the rest renormalised."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * n_in / n_out
        lo, hi = max(int(centre - 2 + 0.5), 0), min(int(centre + 2 + 0.5), n_in)
        w = _keys_cubic(np.arange(lo, hi) + 0.5 - centre)
        m[i, lo:hi] = w / w.sum()
    return m


def test_resize_clean_is_separable_float_bicubic():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)
    got = (resize_clean(torch.from_numpy(img), size=37).numpy().astype(np.float64) + 1) * 127.5
    m = _bicubic_matrix(16, 37)
    ref = np.clip(np.einsum("oh,nchw,pw->ncop", m, img.astype(np.float64), m), 0, 255)
    np.testing.assert_allclose(got, ref, atol=2e-3)
    const = resize_clean(torch.full((1, 1, 8, 8), 200, dtype=torch.uint8))
    torch.testing.assert_close(const, torch.full_like(const, 200 / 127.5 - 1))
    assert const.shape == (1, 3, 299, 299)


# -- reference statistics ------------------------------------------------------------------------------

def test_reference_cached_by_backbone_and_raw_pixels(monkeypatch):
    cfg = tiny_cfg("data.hflip=true")  # training augmentation must never reach the reference
    test = load_dataset(cfg.data, "test")
    train = load_dataset(cfg.data, "train")
    backbone = ClassifierBackbone(train, progress=False)
    ref = reference_statistics(test, "test", backbone, progress=False)
    raw, _ = backbone.extract(test.images)
    torch.testing.assert_close(ref.features, raw)
    assert ref.mu.dtype == torch.float64 and not ref.from_cache
    np.testing.assert_allclose(ref.sigma.numpy(), np.cov(raw.double().numpy(), rowvar=False), rtol=1e-10)
    path = reference_path(test, "test", backbone)
    assert path.exists() and backbone.cache_key in path.name and test.identity in path.name
    monkeypatch.setattr(backbone, "extract", lambda *a, **k: pytest.fail("recomputed a cached reference"))
    again = reference_statistics(test, "test", backbone, progress=False)
    assert again.from_cache and torch.equal(again.sigma, ref.sigma)


# -- metrics end to end --------------------------------------------------------------------------------

class ReplayGenerator(torch.nn.Module):
    """A 'generator' that returns the real images of the requested classes, each image once, in order."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__()
        self.pools = {int(c): images[labels == c] for c in labels.unique()}
        self.used = {c: 0 for c in self.pools}

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = []
        for c in y.tolist():
            out.append(self.pools[c][self.used[c]])
            self.used[c] += 1
        return torch.stack(out).float() / 127.5 - 1.0


def test_real_images_as_samples_score_perfectly():
    """Fed the reference set itself, FID and intra-class FID vanish, precision = recall = coverage = 1,
    and accuracy on the 'samples' equals the classifier's accuracy on the real images."""
    cfg = tiny_cfg()
    test = load_dataset(cfg.data, "test")
    req = EvalRequest(metrics=["fid", "ifid", "prdc", "acc", "is"], num_samples=len(test), batch_size=128)
    ev = Evaluator(cfg.data, req, progress=False)
    m = ev(ReplayGenerator(test.images, test.labels), z_dim=4)["metrics"]
    assert abs(m["fid"]) < 1e-6 and abs(m["ifid"]) < 1e-6 and len(m["ifid_per_class"]) == 10
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0 and m["density"] >= 1.0 - 1e-9
    assert m["acc_top1"] == pytest.approx(m["real_acc_top1"], abs=1e-12)
    assert m["acc_top1"] <= m["acc_top5"] <= 1.0 and 1.0 <= m["is_mean"] <= 10.0


def test_bad_metric_name_is_one_line():
    with pytest.raises(EvalError, match="unknown metric 'fidd'"):
        EvalRequest(metrics=["fid", "fidd"]).check()


# -- condgan eval --------------------------------------------------------------------------------------

def test_cli_eval_classifier_backbone_twice_reuses_reference(tiny_run, capsys):
    args = ["eval", str(tiny_run), "--metrics", "fid,is,prdc,ifid,acc,cas", "--num", "60", "--no-progress"]
    assert main(args) == 0
    table = capsys.readouterr().out
    for key in ("fid", "is_mean", "precision", "coverage", "ifid", "acc_top1", "cas_top1"):
        assert f"  {key} " in table
    first = json.loads((tiny_run / "eval.json").read_text())
    assert first["protocol"]["backbone"]["name"] == "classifier" and first["protocol"]["num_samples"] == 60
    assert first["protocol"]["reference"]["split"] == "test" and first["step"] == 2
    assert not first["protocol"]["reference"]["from_cache"]
    assert main(args) == 0
    second = json.loads((tiny_run / "eval.json").read_text())
    assert second["protocol"]["reference"]["from_cache"]
    assert second["metrics"]["fid"] == first["metrics"]["fid"]  # same seed, same samples
    # eval.json keeps every evaluation, oldest first, the top level being the newest
    assert [r["protocol"]["reference"]["from_cache"] for r in second["history"]] == [False, True]
    assert second["history"][-1] == {k: v for k, v in second.items() if k != "history"}
    assert second["history"][0] == {k: v for k, v in first.items() if k != "history"}
    old = {k: v for k, v in first.items() if k != "history"}  # a record written before histories were kept
    (tiny_run / "old.json").write_text(json.dumps(old))
    assert main(args + ["--out", str(tiny_run / "old.json")]) == 0
    assert json.loads((tiny_run / "old.json").read_text())["history"][0] == old


def test_cli_eval_inception_backbone(tmp_path, weights_file, capsys):
    """A 3-class colour npz run (12 test images: Inception at 299x299 costs ~0.2 s per image on a CPU)."""
    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, images=rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8), labels=np.arange(24) % 3,
             test_images=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), test_labels=np.arange(12) % 3)
    run = tmp_path / "run"
    cfg = tiny_cfg("data.name=npz", f"data.root={npz}", "train.steps=1", "train.ckpt_every=1",
                   "train.batch_size=8")
    Trainer(cfg, run, progress=False).train()
    args = ["eval", str(run / "checkpoints" / "ckpt_00000001.pt"), "--backbone", "inception",
            "--inception-weights", str(weights_file), "--metrics", "fid,is,prdc", "--num", "12", "--ref", "test",
            "--is-splits", "2", "--no-progress", "--out", str(run / "inception.json")]
    assert main(args) == 0
    record = json.loads((run / "inception.json").read_text())
    backbone = record["protocol"]["backbone"]
    assert backbone["name"] == "inception" and backbone["resize"] == "bilinear"
    assert record["protocol"]["reference"]["num_images"] == 12
    assert record["protocol"]["is"]["splits"] == 2 and np.isfinite(record["metrics"]["fid"])
    assert 1.0 <= record["metrics"]["is_mean"] <= 6.0 + 1e-9  # IS <= images per split


def test_cli_eval_inception_offline_fails_with_one_line_and_writes_nothing(tiny_run, tmp_path, capsys):
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["eval", str(tiny_run), "--backbone", "inception", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and iw.WEIGHTS_NAME in err and "put the file at" in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


# -- periodic evaluation during training --------------------------------------------------------------

def test_periodic_eval_keeps_best_and_training_unchanged(tmp_path):
    plain = Trainer(tiny_cfg("train.steps=4", "train.ckpt_every=2"), tmp_path / "plain", progress=False)
    plain.train()
    evald = ["train.steps=4", "train.ckpt_every=2", "eval.every=2", "eval.metrics=fid,acc", "eval.best=acc_top1"]
    half = Trainer(tiny_cfg(*evald), tmp_path / "eval", progress=False)
    half.train(until=2)
    half.close()  # a run dir has one owner at a time
    resumed = Trainer(tiny_cfg(*evald), tmp_path / "eval", progress=False)
    assert resumed.step == 2 and resumed.best["step"] == 2
    resumed.train()
    for k, v in plain.run.ema.shadow.state_dict().items():  # evaluation never perturbs training
        assert torch.equal(v, resumed.run.ema.shadow.state_dict()[k]), k
    log = [json.loads(line) for line in (tmp_path / "eval" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in log if "eval" in r]
    assert [r["step"] for r in evals] == [2, 4] and all("fid" in r["eval"] for r in evals)
    best = json.loads((tmp_path / "eval" / "best.json").read_text())
    top = max(evals, key=lambda r: r["eval"]["acc_top1"])  # first of equal values wins
    assert best["step"] == top["step"] and best["metric"] == "acc_top1"
    state = torch.load(tmp_path / "eval" / "checkpoints" / "best.pt", weights_only=True)
    assert state["step"] == best["step"] and state["best"]["value"] == best["value"]


@pytest.mark.parametrize("override, culprit", [
    (["eval.every=3", "train.ckpt_every=2"], "eval.every"),
    (["eval.metrics=fid,fidd"], "fidd"),
    (["eval.every=2", "train.ckpt_every=2", "eval.metrics=fid", "eval.best=precision"], "eval.best"),
])
def test_eval_config_errors_name_the_key(override, culprit):
    with pytest.raises(ConfigError, match=culprit) as err:
        tiny_cfg(*override)
    assert "\n" not in str(err.value)


def test_cli_eval_bad_targets_are_one_line(tmp_path, capsys):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    for target, culprit in ((tmp_path / "missing", "missing"), (foreign, "not a condgan checkpoint"),
                            (tmp_path, "no checkpoint in")):
        assert main(["eval", str(target), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert culprit in err and "\n" not in err
    assert not (tmp_path / "eval.json").exists()


def test_plain_conditional_metrics_against_hand_values():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0], [5.0, 0.0, 4.0], [1.0, 3.0, 2.0]])
    labels = torch.tensor([0, 0, 2, 2])  # top-1 hits rows 0; top-2 hits rows 0, 2, 3
    assert topk_accuracy(logits, labels, 1) == 0.25
    assert topk_accuracy(logits, labels, 2) == 0.75 and topk_accuracy(logits, labels, 5) == 1.0
    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.standard_normal((40, 3)))
    real_labels = torch.arange(40) % 2
    fake = real.clone()
    fake[real_labels.bool()] += torch.tensor([1.0, 0.0, 0.0])  # class 1 shifted by 1 along x: FID 1
    mean, per_class = intra_class_fid(fake, real_labels, real, real_labels, 2)
    assert per_class[0] == pytest.approx(0.0, abs=1e-9) and per_class[1] == pytest.approx(1.0, rel=1e-9)
    assert mean == pytest.approx(0.5, rel=1e-9)
    with pytest.raises(EvalError, match="class 2"):
        intra_class_fid(fake, real_labels, real, real_labels, 3)

"""The objective's D/G terms for every conditioning method against numpy references of the formulas
(ACGAN / ACGAN-Mod, TAC, ADC, MH, feature matching), the CR augmentation, and the regularisers' wiring."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from condgan.config import LossConfig, build_config
from condgan.data import translate_flip
from condgan.nets.heads import DOutput
from condgan.presets import load_preset
from condgan.train.objective import Objective, total
from condgan.train.trainer import Trainer

C = 4


def ce(logits, labels):
    return float(-np.mean(log_softmax(logits, axis=1)[np.arange(len(labels)), labels]))


def mh(logits, targets):
    return float(np.mean([max(0.0, 1 + max(np.delete(o, t)) - o[t]) for o, t in zip(logits, targets)]))


def outputs(rng, n, k, twin=False):
    return DOutput(adv=torch.tensor(rng.normal(size=n)), features=torch.tensor(rng.normal(size=(n, 3))),
                   cls_logits=torch.tensor(rng.normal(size=(n, k))),
                   tac_logits=torch.tensor(rng.normal(size=(n, C))) if twin else None)


def weighted(terms):
    return {k: (v.item(), w) for k, (v, w) in terms.items()}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng, torch.tensor(rng.integers(0, C, 6)), torch.tensor(rng.integers(0, C, 6))


def test_acgan_mod_and_original(data):
    rng, yr, yf = data
    real, fake = outputs(rng, 6, C), outputs(rng, 6, C)
    hinge_d = np.mean(np.maximum(0, 1 - real.adv.numpy())) + np.mean(np.maximum(0, 1 + fake.adv.numpy()))
    mod = Objective(LossConfig(cond="ac", cond_weight=0.7), C)
    t = weighted(mod.d_terms(real, fake, yr, yf))
    assert t["d_adv"][0] == pytest.approx(hinge_d)
    assert t["d_cond"] == pytest.approx((ce(real.cls_logits.numpy(), yr), 0.7))
    orig = Objective(LossConfig(cond="ac", cond_weight=1.0, ac_fake_in_d=True), C)
    expect = ce(real.cls_logits.numpy(), yr) + ce(fake.cls_logits.numpy(), yf)
    assert weighted(orig.d_terms(real, fake, yr, yf))["d_cond"][0] == pytest.approx(expect)
    g = weighted(mod.g_terms(fake, yf))
    assert g["g_adv"][0] == pytest.approx(-fake.adv.mean().item()) and g["g_cond"][0] == pytest.approx(
        ce(fake.cls_logits.numpy(), yf))
    losses = total("g", mod.g_terms(fake, yf))
    assert losses["g_loss"].item() == pytest.approx(-fake.adv.mean().item() + 0.7 * ce(fake.cls_logits.numpy(), yf))


def test_tac_twin_classifier_on_fakes(data):
    rng, yr, yf = data
    real, fake = outputs(rng, 6, C, twin=True), outputs(rng, 6, C, twin=True)
    obj = Objective(LossConfig(cond="ac", aux="tac", cond_weight=1.0, tac_d_weight=0.5, tac_g_weight=0.25), C)
    d = weighted(obj.d_terms(real, fake, yr, yf))
    assert d["d_cond"] == pytest.approx((ce(real.cls_logits.numpy(), yr), 1.0))   # main classifier: reals only
    assert d["d_tac"] == pytest.approx((ce(fake.tac_logits.numpy(), yf), 0.5))     # twin: fakes only
    g = weighted(obj.g_terms(fake, yf))
    assert g["g_tac"] == pytest.approx((-ce(fake.tac_logits.numpy(), yf), 0.25))   # G fights the twin
    assert g["g_cond"] == pytest.approx((ce(fake.cls_logits.numpy(), yf), 1.0))


def test_adc_doubled_classes(data):
    rng, yr, yf = data
    real, fake = outputs(rng, 6, 2 * C), outputs(rng, 6, 2 * C)
    obj = Objective(LossConfig(cond="ac", aux="adc", cond_weight=1.0), C)
    d = weighted(obj.d_terms(real, fake, yr, yf))
    assert d["d_cond"][0] == pytest.approx(ce(real.cls_logits.numpy(), 2 * yr.numpy())
                                           + ce(fake.cls_logits.numpy(), 2 * yf.numpy() + 1))
    g = weighted(obj.g_terms(fake, yf))
    assert g["g_cond"][0] == pytest.approx(ce(fake.cls_logits.numpy(), 2 * yf.numpy())
                                           - ce(fake.cls_logits.numpy(), 2 * yf.numpy() + 1))


def test_multi_hinge_replaces_adversarial_loss_and_feature_matching(data):
    rng, yr, yf = data
    real, fake = outputs(rng, 6, C + 1), outputs(rng, 6, C + 1)
    obj = Objective(LossConfig(adv="mh", cond="mh", cond_weight=0.05, fm_weight=1.0), C)
    d = weighted(obj.d_terms(real, fake, yr, yf))
    assert list(d) == ["d_adv"]
    assert d["d_adv"][0] == pytest.approx(mh(real.cls_logits.numpy(), yr) + mh(fake.cls_logits.numpy(), [C] * 6))
    real_h = torch.tensor(rng.normal(size=(5, 3)))
    g = weighted(obj.g_terms(fake, yf, real_features=real_h))
    assert g["g_adv"] == pytest.approx((mh(fake.cls_logits.numpy(), yf), 0.05))
    fm = np.mean(np.abs(fake.features.numpy().mean(0) - real_h.numpy().mean(0)))
    assert g["g_fm"] == pytest.approx((fm, 1.0))


def test_embedding_methods_gather_proxies_from_the_table(data):
    rng, yr, yf = data
    emb = torch.tensor(rng.normal(size=(6, 5)))
    table = torch.tensor(rng.normal(size=(2 * C, 5)))
    out = DOutput(adv=torch.zeros(6), features=torch.zeros(6, 3), embed=emb, proxies=table)
    from condgan.losses import contrastive_2c, d2d_ce
    obj = Objective(LossConfig(cond="d2d_ce", aux="adc"), C)
    fake_labels = 2 * yf + 1
    expect = d2d_ce(emb, table[fake_labels], fake_labels, 0.5, 0.98, None, True)
    assert obj.class_loss(out, fake_labels).item() == pytest.approx(expect.item())
    obj2 = Objective(LossConfig(cond="2c", temperature=1.0), C)
    assert obj2.class_loss(out, yr).item() == pytest.approx(contrastive_2c(emb, table[yr], yr, 1.0).item())


def test_translate_flip_is_a_reflect_padded_shift_of_a_possibly_flipped_image():
    torch.manual_seed(0)
    x = torch.randn(12, 2, 16, 16)
    out = translate_flip(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    pad = 2
    seen_shift = False
    for xi, oi in zip(x.numpy(), out.numpy()):
        matches = []
        for flip in (False, True):
            src = xi[:, :, ::-1] if flip else xi
            padded = np.pad(src, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
            for dy in range(2 * pad + 1):
                for dx in range(2 * pad + 1):
                    if np.array_equal(padded[:, dy:dy + 16, dx:dx + 16], oi):
                        matches.append((flip, dy, dx))
        assert matches, "output is not a flipped/shifted copy of its input"
        seen_shift |= any((dy, dx) != (pad, pad) for _, dy, dx in matches)
    assert seen_shift


REGULARISED = [  # (overrides, logged terms that must appear)
    (["reg.gp=10", "loss.adv=wasserstein"], {"d_gp"}), (["reg.dra=10"], {"d_dra"}), (["reg.r1=1"], {"d_r1"}),
    (["reg.cr=10"], {"d_cr"}), (["reg.bcr_real=10", "reg.bcr_fake=10"], {"d_bcr_real", "d_bcr_fake"}),
    (["reg.zcr_d=20", "reg.zcr_g=0.5"], {"d_zcr", "g_zcr"}), (["reg.lecam=0.3", "reg.lecam_start=1"], {"d_lecam"}),
    (["reg.topk=true", "reg.topk_gamma=0.5"], set()),
    (["loss.cond=mh", "loss.adv=mh", "loss.cond_weight=0.05", "loss.fm_weight=1.0", "reg.cr=1"], {"g_fm", "d_cr"}),
    (["loss.cond=d2d_ce", "loss.aux=tac"], {"d_tac", "g_tac"}), (["loss.cond=2c", "loss.aux=adc"], {"d_cond"}),
    (["loss.cond=none"], {"d_adv"}),
]


@pytest.mark.parametrize("overrides,expected", REGULARISED, ids=lambda o: ",".join(o) if isinstance(o, list) else "")
def test_every_term_trains_and_is_logged(tmp_path, overrides, expected):
    cfg = build_config(load_preset("mnist5k-reacgan"),
                       ["model.g_width=4", "model.d_width=4", "model.embed_dim=8", "train.batch_size=8",
                        "train.steps=3", "train.log_every=1", "train.ckpt_every=3", "train.sample_every=3"]
                       + overrides)
    t = Trainer(cfg, tmp_path / "run", progress=False)
    t.train()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert expected <= set(records[-1]), set(records[-1])
    assert all(np.isfinite(v) for r in records for v in r.values() if isinstance(v, float))
    if "reg.lecam=0.3" in overrides:
        state = t.run.strategy.state_dict()["regularizers"]
        assert state["ema_real"] is not None and torch.isfinite(state["ema_real"])


def test_lecam_state_resumes_bitwise(tmp_path):
    over = ["model.g_width=4", "model.d_width=4", "model.embed_dim=8", "train.batch_size=8", "train.steps=4",
            "train.ckpt_every=2", "train.log_every=1", "train.sample_every=4", "reg.lecam=0.3", "reg.lecam_start=1"]
    cfg = build_config(load_preset("mnist5k-reacgan"), over)
    straight = Trainer(cfg, tmp_path / "a", progress=False)
    straight.train()
    first = Trainer(cfg, tmp_path / "b", progress=False)
    first.train(until=2)
    first.close()  # a run dir has one owner at a time
    resumed = Trainer(cfg, tmp_path / "b", progress=False)
    assert resumed.step == 2
    resumed.train()
    a, b = straight.run.models.D.state_dict(), resumed.run.models.D.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = straight.run.strategy.state_dict()["regularizers"], resumed.run.strategy.state_dict()["regularizers"]
    assert torch.equal(sa["ema_real"], sb["ema_real"]) and torch.equal(sa["ema_fake"], sb["ema_fake"])


def test_topk_training_uses_the_k_best_fakes_only():
    from condgan.train.regularize import Regularizers
    cfg = build_config(load_preset("mnist5k-reacgan"), ["reg.topk=true", "reg.topk_gamma=0.5", "reg.topk_nu=0.25"])
    reg = Regularizers(cfg)
    logits = torch.tensor([3.0, -1.0, 0.5, 2.0, -4.0, 1.0, 0.0, -2.0])
    assert reg.g_adv_logits(logits, epoch=0).numel() == 8
    assert sorted(reg.g_adv_logits(logits, epoch=1).tolist()) == [0.5, 1.0, 2.0, 3.0]   # k = 0.5 * 8
    assert sorted(reg.g_adv_logits(logits, epoch=9).tolist()) == [2.0, 3.0]             # floor nu * 8
    obj = Objective(cfg.loss, 10)
    fake = DOutput(adv=logits, features=torch.zeros(8, 3), embed=torch.randn(8, 4), proxies=torch.randn(10, 4))
    g = obj.g_terms(fake, torch.arange(8), reg.g_adv_logits(logits, epoch=1))
    assert g["g_adv"][0].item() == pytest.approx(-(3.0 + 2.0 + 1.0 + 0.5) / 4)  # hinge G on the top 4
    assert Regularizers(build_config(load_preset("mnist5k-reacgan"))).g_adv_logits(logits, 5) is None


def _grad_check_terms(make_terms, ref, arrays):
    """Gradients of sum(weight * value) over make_terms(*tensors) vs central differences of ref(*arrays)."""
    from test_loss_zoo import check_value_and_grads

    def fn(*tensors):
        return sum(w * v for v, w in make_terms(*tensors).values())
    check_value_and_grads(fn, ref, arrays)


def test_adc_tac_mh_gradients_match_reference(data):
    rng, yr, yf = data
    ynr, ynf = yr.numpy(), yf.numpy()
    z = torch.zeros(6, dtype=torch.float64)
    adc = Objective(LossConfig(cond="ac", aux="adc", cond_weight=0.5), C)
    _grad_check_terms(
        lambda r, f: adc.d_terms(DOutput(adv=z, features=z[:, None], cls_logits=r),
                                 DOutput(adv=z, features=z[:, None], cls_logits=f), yr, yf),
        lambda r, f: 2.0 + 0.5 * (ce(r, 2 * ynr) + ce(f, 2 * ynf + 1)),  # hinge of zero logits = 1 + 1
        [rng.normal(size=(6, 2 * C)), rng.normal(size=(6, 2 * C))])
    _grad_check_terms(lambda f: adc.g_terms(DOutput(adv=z, features=z[:, None], cls_logits=f), yf),
                      lambda f: 0.5 * (ce(f, 2 * ynf) - ce(f, 2 * ynf + 1)), [rng.normal(size=(6, 2 * C))])
    tac = Objective(LossConfig(cond="ac", aux="tac", cond_weight=1.0, tac_g_weight=0.5), C)
    _grad_check_terms(
        lambda c, t: tac.g_terms(DOutput(adv=z, features=z[:, None], cls_logits=c, tac_logits=t), yf),
        lambda c, t: ce(c, ynf) - 0.5 * ce(t, ynf), [rng.normal(size=(6, C)), rng.normal(size=(6, C))])
    mh_obj = Objective(LossConfig(adv="mh", cond="mh", cond_weight=0.05, fm_weight=1.0), C)
    real_h = torch.tensor(rng.normal(size=(4, 3)))
    logits = rng.normal(size=(6, C + 1))
    for o, t in zip(logits, ynf):
        o[t] += 0.017  # away from ties
    _grad_check_terms(
        lambda o, h: mh_obj.g_terms(DOutput(adv=z, features=h, cls_logits=o), yf, real_features=real_h),
        lambda o, h: 0.05 * mh(o, ynf) + np.mean(np.abs(h.mean(0) - real_h.numpy().mean(0))),
        [logits, rng.normal(size=(6, 3))])

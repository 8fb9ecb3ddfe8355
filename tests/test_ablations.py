"""ReACGAN Table 6's ablations of D2D-CE (losses.conditional.normalized_ce) against a float64 numpy reference
written from the paper's equations, the properties the paper states, and the config switches that select them."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tiny_cfg
from test_losses import central_diff, t64
from condgan.config import ConfigError
from condgan.losses import d2d_ce, normalized_ce
from condgan.train.trainer import Trainer

# (data_to_data, margins) -> the row of Table 6
ROWS = {(False, False): "+ Normalization (Eq. 3)", (True, False): "+ Data-to-data (Eq. 5)",
        (True, True): "+ Suppression (Eq. 6, D2D-CE)", (False, True): "- Data-to-data"}


def ref_family(embed, table, labels, temperature, data_to_data, margins, m_p, m_n) -> float:
    """Mean over i of -log[e^{P_i} / (e^{P_i} + sum_{n in N(i)} e^{Q_in})], loops over the paper's indices."""
    f = embed / np.linalg.norm(embed, axis=1, keepdims=True)
    v = table / np.linalg.norm(table, axis=1, keepdims=True)
    total = 0.0
    for i, y in enumerate(labels):
        pos = float(f[i] @ v[y])
        p = (min(pos - m_p, 0.0) if margins else pos) / temperature
        if data_to_data:
            negatives = [float(f[i] @ f[j]) for j in range(len(labels)) if labels[j] != y]
        else:
            negatives = [float(f[i] @ v[c]) for c in range(len(v)) if c != y]
        q = [(max(s - m_n, 0.0) if margins else s) / temperature for s in negatives]
        total += -math.log(math.exp(p) / (math.exp(p) + sum(math.exp(x) for x in q)))
    return total / len(labels)


def inputs(seed: int, n: int = 9, d: int = 6, k: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    table = rng.normal(size=(k, d))
    embed = table[labels] + rng.choice([0.1, 0.6, 2.0], size=(n, 1)) * rng.normal(size=(n, d))
    return embed, table, labels


@pytest.mark.parametrize("switches", list(ROWS), ids=list(ROWS.values()))
@pytest.mark.parametrize("seed,temperature,m_p,m_n", [(0, 0.5, 0.98, 0.02), (1, 0.25, 0.6, 0.1), (2, 1.0, 0.9, -0.2)])
def test_each_ablation_matches_the_numpy_reference_in_value_and_gradient(switches, seed, temperature, m_p, m_n):
    embed, table, labels = inputs(seed)
    args = (temperature, *switches, m_p, m_n)
    e, t = t64(embed, grad=True), t64(table, grad=True)
    loss = normalized_ce(e, t, torch.from_numpy(labels), *args)
    assert loss.item() == pytest.approx(ref_family(embed, table, labels, *args), rel=1e-12, abs=1e-12)
    loss.backward()
    np.testing.assert_allclose(e.grad.numpy(), central_diff(lambda x: ref_family(x, table, labels, *args), embed),
                               atol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), central_diff(lambda x: ref_family(embed, x, labels, *args), table),
                               atol=1e-6)


def test_the_family_contains_d2d_ce_and_the_normalised_softmax_cross_entropy():
    embed, table, labels = inputs(3)
    e, t, y = t64(embed), t64(table), torch.from_numpy(labels)
    assert normalized_ce(e, t, y, 0.5, True, True, 0.9, 0.1).item() == pytest.approx(
        d2d_ce(e, t[y], y, 0.5, 0.9, 0.1, reference_form=False).item(), rel=1e-12)
    cosines = (embed / np.linalg.norm(embed, axis=1, keepdims=True)) @ (
        table / np.linalg.norm(table, axis=1, keepdims=True)).T / 0.5
    log_softmax = cosines - np.log(np.exp(cosines).sum(1, keepdims=True))  # Eq. 3 over every class
    assert normalized_ce(e, t, y, 0.5, False, False).item() == pytest.approx(
        -log_softmax[np.arange(len(labels)), labels].mean(), rel=1e-12)


@pytest.mark.parametrize("data_to_data", [False, True])
def test_margins_suppress_easy_positives_and_negatives(data_to_data):
    # Every embedding on its proxy (pos = 1 >= m_p) and every negative orthogonal (s = 0 <= m_n): no gradient;
    # without margins the same inputs still pull and push.
    table = torch.eye(4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for margins, moved in ((True, False), (False, True)):
        embed = table[labels].clone().requires_grad_(True)
        normalized_ce(embed, table, labels, 0.5, data_to_data, margins, m_p=0.9, m_n=0.05).backward()
        assert (embed.grad.abs().max().item() > 1e-6) == moved


def test_switches_need_d2d_ce_in_the_paper_form():
    with pytest.raises(ConfigError, match="'loss.margins=false' ablates D2D-CE and needs loss.cond d2d_ce"):
        tiny_cfg("loss.cond=ac", "loss.margins=false")
    with pytest.raises(ConfigError, match="exist in the paper's form only; set loss.reference_form=false"):
        tiny_cfg("loss.data_to_data=false")


@pytest.mark.parametrize("switches", [(False, False), (True, False), (False, True)], ids=lambda s: str(s))
def test_each_ablation_trains(tmp_path, switches):
    sets = [f"loss.data_to_data={switches[0]}", f"loss.margins={switches[1]}", "loss.reference_form=false"]
    with Trainer(tiny_cfg("train.steps=2", *sets), tmp_path, progress=False) as trainer:
        trainer.train()
    assert trainer.step == 2


# ---------------------------------------------------------------------------- Table A4: dropped negatives
def ref_d2d_ce_kept(embed, proxy, labels, keep, temperature, m_p, m_n, reference_form) -> float:
    """D2D-CE (Eq. 6) with negative pair (i, j) in i's denominator only where keep[i, j]; the reference form's
    M_i = max over every j != i of (s_ij - m_n) / T, dropped or not."""
    f = embed / np.linalg.norm(embed, axis=1, keepdims=True)
    v = proxy / np.linalg.norm(proxy, axis=1, keepdims=True)
    n, total = len(labels), 0.0
    for i in range(n):
        m_i = max((float(f[i] @ f[j]) - m_n) / temperature for j in range(n) if j != i) if reference_form else 0.0
        p = math.exp(min(float(f[i] @ v[i]) - m_p, 0.0) / temperature)
        q = sum(math.exp(max(float(f[i] @ f[j]) - m_n, 0.0) / temperature - m_i)
                for j in range(n) if labels[j] != labels[i] and keep[i, j])
        total += -math.log(p / (p + q))
    return total / n


@pytest.mark.parametrize("reference_form", [False, True])
def test_dropped_negatives_match_the_numpy_reference(reference_form):
    embed, table, labels = inputs(4, n=10)
    proxy = table[labels]
    keep = np.random.default_rng(5).random((10, 10)) >= 0.4
    e, p = t64(embed, grad=True), t64(proxy, grad=True)
    args = (0.5, 0.9, 0.1, reference_form)
    loss = d2d_ce(e, p, torch.from_numpy(labels), *args, keep=torch.from_numpy(keep))
    assert loss.item() == pytest.approx(ref_d2d_ce_kept(embed, proxy, labels, keep, *args), rel=1e-12)
    assert loss.item() != pytest.approx(ref_d2d_ce_kept(embed, proxy, labels, keep | True, *args), rel=1e-3)
    loss.backward()
    if not reference_form:  # (the reference form's M_i is a detached constant: not a function to difference)
        ref = lambda x: ref_d2d_ce_kept(x, proxy, labels, keep, *args)  # noqa: E731
        np.testing.assert_allclose(e.grad.numpy(), central_diff(ref, embed), atol=1e-6)


def test_neg_drop_drops_its_share_of_the_global_batch_pairs_from_a_seeded_stream(monkeypatch):
    from condgan.config import build_config
    from condgan.presets import load_preset
    from condgan.train import objective as objective_module
    from condgan.train.objective import Objective

    masks = []
    monkeypatch.setattr(objective_module, "d2d_ce", lambda *a, keep=None, **k: masks.append(keep) or torch.zeros(()))
    cfg = build_config(load_preset("mnist5k-reacgan"), ["loss.neg_drop=0.3"]).loss
    out = type("Out", (), {"embed": torch.randn(400, 4), "proxies": torch.randn(10, 4)})()
    labels = torch.arange(400) % 10
    for seed in (7, 7, 8):
        Objective(cfg, 10, drop_stream=torch.Generator().manual_seed(seed)).class_loss(out, labels)
    dropped = 1 - masks[0].double().mean().item()
    assert masks[0].shape == (400, 400) and abs(dropped - 0.3) < 0.005  # 160,000 draws: 4 sigma is 0.0046
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    # A rank sees the global batch through its gather (here: 2 ranks' rows): its mask is the global one.
    half = type("Out", (), {"embed": torch.randn(200, 4), "proxies": torch.randn(10, 4)})()
    Objective(cfg, 10, gather=lambda x: torch.cat([x, x]), drop_stream=torch.Generator().manual_seed(7)).class_loss(
        half, labels[:200])
    assert torch.equal(masks[-1], masks[0])


def test_neg_drop_resumes_bitwise(tmp_path):
    sets = ["loss.neg_drop=0.5", "train.steps=4", "train.ckpt_every=2"]
    straight = Trainer(tiny_cfg(*sets), tmp_path / "straight", progress=False)
    straight.train()
    first = Trainer(tiny_cfg(*sets), tmp_path / "resumed", progress=False)
    first.train(until=2)
    first.close()
    second = Trainer(tiny_cfg(*sets), tmp_path / "resumed", progress=False)
    second.train()
    a, b = straight.run.ema.shadow.state_dict(), second.run.ema.shadow.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = Trainer(tiny_cfg("train.steps=4"), tmp_path / "plain", progress=False)
    plain.train()
    c = plain.run.ema.shadow.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the drops changed training
    for t in (straight, second, plain):
        t.close()


def test_neg_drop_needs_d2d_ce_and_a_probability():
    with pytest.raises(ConfigError, match="'loss.neg_drop' must be in \\[0, 1\\) and needs loss.cond d2d_ce"):
        tiny_cfg("loss.neg_drop=1.0")
    with pytest.raises(ConfigError, match="got 0.2 with cond='2c'"):
        tiny_cfg("loss.neg_drop=0.2", "loss.cond=2c")


# ---------------------------------------------------------------------------- Fig. 2's diagnostics
@pytest.mark.parametrize("cond", ["ac", "d2d_ce", "2c", "pd"])
def test_target_probability_is_the_classifiers_softmax_at_the_label(cond):
    from condgan.config import build_config
    from condgan.nets.heads import DOutput
    from condgan.presets import load_preset
    from condgan.train.objective import Objective

    cfg = build_config(load_preset("mnist5k-reacgan"), [f"loss.cond={cond}", "loss.temperature=0.3"]).loss
    rng = np.random.default_rng(6)
    logits, embed, table = rng.normal(size=(5, 4)) * 3, rng.normal(size=(5, 8)), rng.normal(size=(4, 8))
    labels = np.array([0, 3, 1, 1, 2])
    out = DOutput(adv=torch.zeros(5), features=torch.zeros(5, 2), cls_logits=torch.from_numpy(logits),
                  embed=torch.from_numpy(embed), proxies=torch.from_numpy(table))
    got = Objective(cfg, 4).target_probability(out, torch.from_numpy(labels))
    if cond == "pd":
        assert got is None
        return
    if cond != "ac":
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        logits = unit(embed) @ unit(table).T / 0.3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert got.item() == pytest.approx(p[np.arange(5), labels].mean(), rel=1e-6)


def test_the_diagnostics_are_logged(tmp_path):
    import json

    for cond, logged in (("ac", True), ("d2d_ce", True), ("pd", False)):
        with Trainer(tiny_cfg("train.steps=2", f"loss.cond={cond}"), tmp_path / cond, progress=False) as trainer:
            trainer.train()
        record = json.loads((tmp_path / cond / "metrics.jsonl").read_text().splitlines()[-1])
        diagnostics = {key in record for key in ("d_p_target", "d_cond_grad_norm", "d_head_grad_norm")}
        assert "d_feat_norm" in record and diagnostics == {logged}
        assert not logged or (0.0 < record["d_p_target"] < 1.0 and record["d_cond_grad_norm"] > 0.0
                              and record["d_head_grad_norm"] > 0.0)


@pytest.mark.parametrize("cond", ["ac", "d2d_ce"])
def test_heads_keep_their_weight_and_their_outputs(cond):
    import copy

    from condgan.nets.heads import DiscriminatorHeads

    torch.manual_seed(0)
    heads = DiscriminatorHeads(6, 4, cond, embed_dim=5, sn=True).double().train()
    twin = copy.deepcopy(heads)  # the same weights and power-iteration state
    h, y = torch.randn(7, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    out = heads(h, y)
    module = twin.classifier if cond == "ac" else twin.embed
    expected = module(h)  # the head module's own forward (one power-iteration step, as the heads took)
    assert torch.equal(out.cls_logits if cond == "ac" else out.embed, expected)
    assert torch.allclose(h @ out.head_weight.t() + (0 if module.bias is None else module.bias), expected)


@pytest.mark.parametrize("cond", ["ac", "d2d_ce"])
def test_gradient_norms_are_the_per_sample_feature_gradients_and_the_head_weights_gradient(cond):
    from condgan.config import build_config
    from condgan.losses import ac_ce
    from condgan.nets.heads import DiscriminatorHeads
    from condgan.presets import load_preset
    from condgan.train.objective import Objective

    torch.manual_seed(1)
    cfg = build_config(load_preset("mnist5k-reacgan"), [f"loss.cond={cond}"]).loss
    heads = DiscriminatorHeads(6, 4, cond, embed_dim=5, sn=True).double()
    h = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    out = heads(h, y)
    objective = Objective(cfg, 4)
    loss = objective.class_loss(out, y)
    norms = objective.gradient_norms(out, loss)
    got = norms["d_cond_grad_norm"]
    (direct,) = torch.autograd.grad(loss * 8, h, retain_graph=True)  # the summed loss, straight to the features
    assert got.item() == pytest.approx(direct.norm(dim=1).mean().item(), rel=1e-12)
    if cond == "ac":  # and by hand: d CE_i / d h_i = (softmax_i - onehot_i) W
        logits, w = out.cls_logits.detach().numpy(), out.head_weight.numpy()
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        p[np.arange(8), y.numpy()] -= 1
        assert got.item() == pytest.approx(np.linalg.norm(p @ w, axis=1).mean(), rel=1e-12)
        assert ac_ce(out.cls_logits, y).item() == pytest.approx(loss.item())


@pytest.mark.parametrize("cond,clip", [("ac", None), ("ac", 0.5), ("d2d_ce", None)])
def test_head_gradient_norm_is_the_weights_gradient(cond, clip):
    from condgan.config import build_config
    from condgan.losses import clip_feature_norm
    from condgan.nets.heads import DiscriminatorHeads
    from condgan.presets import load_preset
    from condgan.train.objective import Objective

    torch.manual_seed(3)
    sets = [f"loss.cond={cond}"] + ([f"loss.feature_clip={clip}"] if clip else [])
    cfg = build_config(load_preset("mnist5k-reacgan"), sets).loss
    heads = DiscriminatorHeads(6, 4, cond, embed_dim=5, sn=False).double()  # W is the leaf parameter
    heads.classifier_input = None if clip is None else (lambda x: clip_feature_norm(x, clip))
    h, y = torch.randn(8, 6, dtype=torch.float64) * 2, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    out = heads(h, y)
    objective = Objective(cfg, 4)
    loss = objective.class_loss(out, y)
    got = objective.gradient_norms(out, loss)["d_head_grad_norm"]
    (weight_grad,) = torch.autograd.grad(loss, (heads.classifier if cond == "ac" else heads.embed).weight)
    assert got.item() == pytest.approx(weight_grad.norm().item(), rel=1e-12)
    if cond == "ac":  # by hand (Sec. 3.1): d L / d W = (softmax - onehot)^T x / N, x the classifier's input
        x = h.numpy() if clip is None else clip_feature_norm(h, clip).numpy()
        logits = out.cls_logits.detach().numpy()
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        p[np.arange(8), y.numpy()] -= 1
        assert got.item() == pytest.approx(np.linalg.norm(p.T @ x / 8), rel=1e-12)


# ---------------------------------------------------------------------------- Table A5: feature and gradient clipping
def ref_clipped_ce(h, w, labels, max_norm) -> float:
    """Mean CE of logits W clip(h_i), clip(h_i) = h_i min(1, c / ||h_i||), loops over the samples."""
    total = 0.0
    for i, y in enumerate(labels):
        x = h[i] * min(1.0, max_norm / np.linalg.norm(h[i]))
        logits = w @ x
        total += -(logits[y] - math.log(np.exp(logits).sum()))
    return total / len(labels)


def classifier_heads(clip):
    from condgan.nets.heads import DiscriminatorHeads

    torch.manual_seed(2)
    heads = DiscriminatorHeads(6, 4, "ac", embed_dim=5, sn=False).double()
    heads.classifier_input = clip
    return heads


def test_feature_clipping_matches_the_numpy_reference_in_value_and_gradient():
    from condgan.losses import ac_ce, clip_feature_norm

    rng = np.random.default_rng(3)
    h = rng.normal(size=(7, 6)) * rng.choice([0.2, 1.0, 5.0], size=(7, 1))  # rows below, near and above c
    labels = np.array([0, 1, 2, 3, 0, 1, 2])
    heads = classifier_heads(lambda x: clip_feature_norm(x, 1.5))
    w = heads.classifier.weight.detach().numpy()
    x = t64(h, grad=True)
    loss = ac_ce(heads(x, torch.from_numpy(labels)).cls_logits, torch.from_numpy(labels))
    assert loss.item() == pytest.approx(ref_clipped_ce(h, w, labels, 1.5), rel=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), central_diff(lambda v: ref_clipped_ce(v, w, labels, 1.5), h),
                               atol=1e-7)
    clipped = clip_feature_norm(t64(h), 1.5).numpy()
    norms = np.linalg.norm(h, axis=1)
    assert np.allclose(np.linalg.norm(clipped, axis=1), np.minimum(norms, 1.5), rtol=1e-14)
    assert np.array_equal(clipped[norms <= 1.5], h[norms <= 1.5])  # rows within the bound pass unchanged
    assert torch.equal(clip_feature_norm(torch.zeros(2, 3), 1.0), torch.zeros(2, 3))  # no 0 / 0


def test_gradient_clipping_keeps_the_loss_and_clips_each_samples_classifier_gradient():
    from condgan.config import build_config
    from condgan.presets import load_preset
    from condgan.train.objective import Objective

    h = np.random.default_rng(4).normal(size=(8, 6)) * np.array([[0.2], [3.0]] * 4)
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    heads, y = classifier_heads(None), torch.from_numpy(labels)
    cfg = build_config(load_preset("mnist5k-acgan"), ["loss.cls_grad_clip=1.2"]).loss
    x = t64(h, grad=True)
    loss = Objective(cfg, 4).class_loss(heads(x, y), y)
    w = heads.classifier.weight.detach().numpy()
    assert loss.item() == pytest.approx(ref_clipped_ce(h, w, labels, math.inf), rel=1e-12)  # the plain CE's value
    (loss * 5).backward()  # a loss weight (or a loss scaler) scales the clipped gradient, not the bound
    # by hand: sample i's CE gradient is (p_i - e_i) h_i^T for W and (p_i - e_i) W for h_i; both get
    # k_i = min(1, 1.2 / (||p_i - e_i|| ||h_i||)), the norm of the first
    logits = h @ w.T
    miss = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    miss[np.arange(8), labels] -= 1
    per_sample = np.linalg.norm(miss, axis=1) * np.linalg.norm(h, axis=1)
    assert (per_sample > 1.2).any() and (per_sample < 1.2).any()  # both cases are exercised
    k = np.minimum(1.0, 1.2 / per_sample)[:, None]
    np.testing.assert_allclose(x.grad.numpy(), 5 * k * (miss @ w) / 8, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(heads.classifier.weight.grad.numpy(), 5 * (k * miss).T @ h / 8, rtol=1e-10,
                               atol=1e-15)
    assert np.linalg.norm(k[:, 0, None, None] * miss[:, :, None] * h[:, None, :], axis=(1, 2)).max() <= 1.2 + 1e-12


@pytest.mark.parametrize("key", ["feature_clip", "cls_grad_clip"])
def test_each_clipping_trains(tmp_path, key):
    from condgan.nets.registry import build_nets

    cfg = tiny_cfg("train.steps=2", "loss.cond=ac", f"loss.{key}=2.0")
    _g, d = build_nets(cfg, 10, 1)
    assert (d.heads.classifier_input is not None) == (key == "feature_clip")
    with Trainer(cfg, tmp_path, progress=False) as trainer:
        trainer.train()
    assert trainer.step == 2


def test_clipping_needs_ac_a_positive_bound_and_one_cure():
    with pytest.raises(ConfigError, match="'loss.feature_clip' must be > 0 and needs loss.cond ac; got 1.0 with cond="):
        tiny_cfg("loss.feature_clip=1.0")
    with pytest.raises(ConfigError, match="'loss.cls_grad_clip' must be > 0 .* got 0.0"):
        tiny_cfg("loss.cond=ac", "loss.cls_grad_clip=0")
    with pytest.raises(ConfigError, match="two cures of Table A5: set one"):
        tiny_cfg("loss.cond=ac", "loss.cls_grad_clip=1", "loss.feature_clip=1")

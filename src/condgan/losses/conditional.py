"""Class-conditioning losses on D's head outputs: AC, MH, 2C (ContraGAN) and D2D-CE (ReACGAN).

AC: cross-entropy of a linear classifier on D's features. MH (multi-hinge, Crammer-Singer) on C + 1
outputs o (index C = "fake"): L_i = ReLU(1 + max_{k != t_i} o_ik - o_{i t_i}). 2C, with p_i = e^{pos_i/T}
and e_ij = e^{s_ij/T}: L_i = -log[(p_i + sum_{j != i, y_j = y_i} e_ij) / (p_i + sum_{j != i} e_ij)].

D2D-CE (Data-to-Data Cross-Entropy) on normalised embeddings f_i and class proxies v_i, with
pos_i = <f_i, v_i>, s_ij = <f_i, f_j> and neg(i) = {j != i : y_j != y_i}:

    L_i = a_i + log( e^{-a_i} + sum_{j in neg(i)} e^{ReLU((s_ij - m_n) / T)} ),
    a_i = ReLU((m_p - pos_i) / T).

The margins make well-classified pairs free: pos_i >= m_p and s_ij <= m_n contribute no gradient.
``reference_form=True`` reproduces the public reference implementation, whose numbers the paper
reports: every negative term is multiplied by e^{-M_i}, M_i = max_{j != i} (s_ij - m_n) / T over
*all* j != i (before the ReLU), as a detached constant. The positive term is not scaled, so this is
not a mere log-sum-exp shift: values and gradients differ from the paper form.

ReACGAN's Table 6 ablates D2D-CE along two switches, one family (``normalized_ce``):
    L_i = -P_i + log( e^{P_i} + sum_{n in N(i)} e^{Q_in} )
negatives N(i): the proxies of the other classes (data-to-class, Eq. 3) or the batch's samples of other
classes (data-to-data, Eq. 5); margins off: P_i = pos_i / T, Q_in = s_in / T; on ("suppression", Eq. 6):
P_i = min(pos_i - m_p, 0) / T, Q_in = max(s_in - m_n, 0) / T. Data-to-class without margins is the feature-
normalised softmax cross-entropy ("+ Normalization"), data-to-data without margins "+ Data-to-data", with
margins D2D-CE ("+ Suppression"), data-to-class with margins "- Data-to-data".

Table A5's other cures for AC's exploding features and gradients act on the classifier's input h [N, F]:
feature clipping rescales each row to norm at most c (h_i min(1, c / ||h_i||)); gradient clipping keeps the
loss's value and rescales each sample's gradient d CE_i / d W (the classifier's weight) to norm at most c.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def ac_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Auxiliary-classifier loss: mean cross-entropy. logits [N, C], labels [N] int64 -> scalar."""
    return F.cross_entropy(logits, labels)


def _d2d_ce_from_similarities(
    pos: torch.Tensor,
    sim: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    m_p: float,
    m_n: float,
    reference_form: bool,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample D2D-CE from similarities: pos [N], sim [N, N] (diagonal ignored), labels [N] -> [N];
    keep: bool [N, N], the negative pairs left in the denominators (None: all).

    Pure function of the similarities, so the margin properties can be tested by differentiating
    w.r.t. pos and sim directly.
    """
    n = sim.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    is_neg = labels[:, None] != labels[None, :]          # [N, N]; the diagonal is never a negative
    if keep is not None:
        is_neg = is_neg & keep
    a = F.relu((m_p - pos) / temperature)                # [N] positive-attraction term
    z = (sim - m_n) / temperature                         # [N, N]
    neg_terms = F.relu(z)
    if reference_form:
        # M_i spans every j != i (same class included) and is taken before the ReLU, as a constant.
        m = z.detach().masked_fill(eye, float("-inf")).amax(dim=1)
        # N == 1 leaves no j != i (amax gives -inf); define M_i = 0 without a host-side branch.
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        neg_terms = neg_terms - m[:, None]
    # Non-negatives become -inf so they vanish from the log-sum-exp (and get exactly zero gradient);
    # the always-finite -a_i column keeps every row's log-sum-exp finite, even with no negatives.
    neg_terms = neg_terms.masked_fill(~is_neg, float("-inf"))
    terms = torch.cat([-a[:, None], neg_terms], dim=1)  # [N, N + 1]
    return a + torch.logsumexp(terms, dim=1)


def d2d_ce(
    embed: torch.Tensor,
    proxy: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.5,
    m_p: float = 0.98,
    m_n: float | None = None,
    reference_form: bool = False,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Data-to-Data Cross-Entropy loss (ReACGAN), mean over the batch.

    embed: [N, d] unnormalised sample embeddings; proxy: [N, d] unnormalised proxy of each sample's
    class (already gathered by label); labels: [N] int64. m_n defaults to 1 - m_p. keep: optional bool
    [N, N]; a negative pair (i, j) with keep[i, j] false leaves i's denominator (Table A4's dropped
    negatives; the reference form's constant M_i still spans every j != i). Half-precision inputs are
    computed in float32 (exp/log of similarities / T loses too much in 8 mantissa bits); the result has
    the compute dtype. Returns a scalar.
    """
    if m_n is None:
        m_n = 1.0 - m_p
    pos, sim = _similarities(embed, proxy)
    return _d2d_ce_from_similarities(pos, sim, labels, temperature, m_p, m_n, reference_form, keep).mean()


def normalized_ce(
    embed: torch.Tensor,
    proxies: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.5,
    data_to_data: bool = True,
    margins: bool = True,
    m_p: float = 0.98,
    m_n: float | None = None,
) -> torch.Tensor:
    """The normalised cross-entropy family of ReACGAN's Table 6 (module docstring), mean over the batch.

    embed: [N, d] unnormalised embeddings; proxies: [K, d] the whole unnormalised proxy table; labels: [N]
    int64 in [0, K). ``data_to_data``: negatives are the batch's samples of other classes, else the other
    classes' proxies; ``margins``: easy positive and negative suppression with m_p and m_n (default 1 - m_p).
    With both on it equals ``d2d_ce`` (paper form). Half precision is computed in float32. Returns a scalar.
    """
    if m_n is None:
        m_n = 1.0 - m_p
    if embed.dtype in (torch.float16, torch.bfloat16):
        embed, proxies = embed.float(), proxies.float()
    with _no_autocast(embed.device.type):
        f = F.normalize(embed, dim=1)
        v = F.normalize(proxies.to(embed.dtype), dim=1)
        pos = (f * v[labels]).sum(dim=1)                                          # [N]
        if data_to_data:
            sim, is_neg = f @ f.t(), labels[:, None] != labels[None, :]           # [N, N]
        else:
            sim = f @ v.t()                                                       # [N, K]
            is_neg = torch.ones_like(sim, dtype=torch.bool).scatter(1, labels[:, None], False)
        p = (pos - m_p).clamp(max=0) if margins else pos
        q = (sim - m_n).clamp(min=0) if margins else sim
        q = (q / temperature).masked_fill(~is_neg, float("-inf"))
        p = p / temperature
        return (torch.logsumexp(torch.cat([p[:, None], q], dim=1), dim=1) - p).mean()


def contrastive_2c(embed: torch.Tensor, proxy: torch.Tensor, labels: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """Conditional contrastive loss (ContraGAN's 2C), mean over the batch.

    embed: [N, d] unnormalised embeddings; proxy: [N, d] unnormalised proxies of each sample's class;
    labels: [N] int64. Positives of i: its proxy and every other sample of its class; the denominator
    spans its proxy and every j != i. Computed as a difference of log-sum-exps (stable). Returns a scalar.
    """
    pos, sim = _similarities(embed, proxy)
    n = sim.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    same = (labels[:, None] == labels[None, :]) & ~eye
    logits = sim / temperature
    pos_col = (pos / temperature)[:, None]
    log_den = torch.logsumexp(torch.cat([pos_col, logits.masked_fill(eye, float("-inf"))], 1), dim=1)
    log_num = torch.logsumexp(torch.cat([pos_col, logits.masked_fill(~same, float("-inf"))], 1), dim=1)
    return (log_den - log_num).mean()


def multi_hinge(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multi-class (Crammer-Singer) hinge loss, mean over the batch.

    logits: [N, K]; targets: [N] int64 in [0, K). L_i = ReLU(1 + max_{k != t_i} o_ik - o_{i t_i}). Scalar.
    """
    target = logits.gather(1, targets[:, None])                       # [N, 1]
    others = logits.scatter(1, targets[:, None], float("-inf"))       # the target column drops out of the max
    return F.relu(1.0 + others.amax(dim=1) - target[:, 0]).mean()


def clip_feature_norm(h: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Each row of h [N, F] rescaled to L2 norm at most ``max_norm`` (differentiable; rows within it unchanged)."""
    norm = h.norm(dim=1, keepdim=True)
    return h * (max_norm / norm.clamp(min=max_norm))


def ac_ce_clipped(logits: torch.Tensor, labels: torch.Tensor, features: torch.Tensor,
                  max_norm: float) -> torch.Tensor:
    """AC's cross-entropy with each sample's gradient of the classifier clipped (Table A5's gradient clipping).

    logits [N, K] = h W^T (+ b) of features h [N, F]; labels [N] int64. Sample i's gradient with respect to the
    classifier's weight, (softmax_i - onehot_i) h_i^T, has norm ||softmax_i - onehot_i|| ||h_i||: the product of
    feature norm and misclassification that ReACGAN's Sec. 3.1 finds exploding. The value is the mean CE; the
    gradient is that of mean_i k_i CE_i with k_i = min(1, c / that norm) held constant, so every sample's
    contribution to W's gradient is at most c (to h_i's, W's share of it too), whatever the batch size, the loss
    weight or a loss scaler. Returns a scalar.
    """
    ce = F.cross_entropy(logits, labels, reduction="none")
    with torch.no_grad():
        dtype = torch.promote_types(logits.dtype, torch.float32)  # half precision: k in float32
        probs = logits.to(dtype).softmax(dim=1)
        miss = (probs - F.one_hot(labels, probs.shape[1]).to(dtype)).norm(dim=1)
        k = max_norm / (miss * features.to(dtype).norm(dim=1)).clamp(min=max_norm)
    clipped = (k.to(ce.dtype) * ce).mean()
    return ce.mean().detach() + (clipped - clipped.detach())


def _similarities(embed: torch.Tensor, proxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pos [N] = <f_i, v_i>, sim [N, N] = <f_i, f_j>) of the L2-normalised embed [N, d] and proxy [N, d].

    Half-precision inputs are computed in float32 (exp/log of similarities / T loses too much in 8
    mantissa bits), with autocast off so the matmul keeps that dtype.
    """
    if embed.dtype in (torch.float16, torch.bfloat16):
        embed, proxy = embed.float(), proxy.float()
    with _no_autocast(embed.device.type):
        f = F.normalize(embed, dim=1)
        v = F.normalize(proxy.to(embed.dtype), dim=1)
        return (f * v).sum(dim=1), f @ f.t()


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Context that disables autocast on ``device_type`` where autocast exists, else does nothing."""
    available = getattr(torch.amp, "is_autocast_available", None)
    if available is not None and not available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)

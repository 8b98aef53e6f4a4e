"""Area under the ROC curve of a binary classifier: from scores, and the Bayes-optimal one from
the two classes' probability mass functions.

    AUC = P(s_S > s_B) + ½ P(s_S = s_B)

for a signal score s_S and a background score s_B drawn independently (the Mann–Whitney U statistic
divided by n_S·n_B). The best score is any increasing function of the likelihood ratio
r(k) = p_S(k) / p_B(k) (Neyman–Pearson), so for a discrete observable k the optimal AUC is

    AUC* = Σ_{k,l} p_S(k) p_B(l) ( [r(k) > r(l)] + ½ [r(k) = r(l)] ).
"""
from __future__ import annotations

import numpy as np


def roc_auc(score, label) -> float:
    """AUC of ``score`` for ``label`` (1 signal, 0 background), ties counted ½ (average ranks)."""
    score = np.asarray(score, dtype=np.float64).ravel()
    label = np.asarray(label).ravel().astype(bool)
    if score.shape != label.shape:
        raise ValueError(f"roc_auc: {score.size} scores for {label.size} labels")
    n_s, n_b = int(label.sum()), int((~label).sum())
    if n_s == 0 or n_b == 0:
        raise ValueError(f"roc_auc: needs both classes (have {n_s} signal, {n_b} background)")
    if not np.all(np.isfinite(score)):
        raise ValueError("roc_auc: non-finite scores")
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s))
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # mean 1-based rank of each tie group
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[label].sum() - n_s * (n_s + 1) / 2.0
    return float(u / (n_s * n_b))


def auc_from_pmfs(p_signal, p_background) -> float:
    """Bayes-optimal AUC for an observable with pmfs ``p_signal``, ``p_background`` on the same
    support (arrays over its values; each is normalised here). Support points where both are 0
    do not matter; ranking is by the likelihood ratio (p_B = 0: +∞), ties ½."""
    ps = np.asarray(p_signal, dtype=np.float64)
    pb = np.asarray(p_background, dtype=np.float64)
    if ps.shape != pb.shape or ps.ndim != 1:
        raise ValueError(f"auc_from_pmfs: pmfs of shapes {ps.shape} and {pb.shape}; need equal 1-d arrays")
    if np.any(ps < 0) or np.any(pb < 0) or ps.sum() <= 0 or pb.sum() <= 0:
        raise ValueError("auc_from_pmfs: pmfs must be non-negative with a positive sum")
    ps, pb = ps / ps.sum(), pb / pb.sum()
    keep = (ps > 0) | (pb > 0)
    ps, pb = ps[keep], pb[keep]
    with np.errstate(divide="ignore"):
        r = np.where(pb > 0, ps / np.where(pb > 0, pb, 1.0), np.inf)
    above = r[:, None] > r[None, :]
    tied = r[:, None] == r[None, :]
    return float(ps @ (above + 0.5 * tied) @ pb)

"""Dimensionality of learnt representations and of data (EMD-VAE, Collins, Eq. 2 and 3).

    D₁ = −dR/d log β,     D₂ = dD/dβ²                                        (Eq. 2)

with R = ⟨KL⟩ (the rate) and D = ⟨EMD²⟩ (the distortion) of VAEs trained at a sequence of β,
estimated by finite differences between neighbouring β (reported at the geometric mean of the
pair). For a d-dimensional Gaussian with standard deviations σ_i and the optimal linear VAE,
D = Σ_i min(β², σ_i²) and R = Σ_{σ_i > β} log(σ_i/β), so D₁ = D₂ = #{i : σ_i > β}
(appendix A.3, Eq. 9): :func:`gaussian_optimum`.

    D_corr(Q) = d log C(Q) / d log Q,   C(Q) = Σ_{i≠j} Θ(Q − EMD(x_i, x_j))     (correlation dimension)

from pairwise exact EMDs (POT) between jets: :func:`pairwise_emd`, :func:`correlation_dimension`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np


def dimensionalities(beta, rate, distortion):
    """Finite-difference D₁ and D₂ between neighbouring β values.

    ``beta``, ``rate`` (R = mean KL) and ``distortion`` (D = mean EMD² or MSE) are sequences over
    a β scan (any order). Returns (β_mid, D₁, D₂) with β_mid the geometric means of neighbours.
    """
    beta = np.asarray(beta, float)
    order = np.argsort(beta)
    b, r, d = beta[order], np.asarray(rate, float)[order], np.asarray(distortion, float)[order]
    if len(b) < 2 or np.any(np.diff(b) <= 0):
        raise ValueError("need at least two distinct β values")
    mid = np.sqrt(b[1:] * b[:-1])
    d1 = -np.diff(r) / np.diff(np.log(b))
    d2 = np.diff(d) / np.diff(b ** 2)
    return mid, d1, d2


def gaussian_optimum(sigmas, beta):
    """Rate, distortion and per-dimension KL of the optimal linear VAE on a Gaussian with
    standard deviations ``sigmas`` at resolution ``beta`` (seed appendix A.3, Eq. 6–8)."""
    s = np.asarray(sigmas, float)
    active = s > beta
    kl = np.where(active, np.log(np.where(active, s / beta, 1.0)), 0.0)
    dist = np.where(active, beta ** 2, s ** 2)
    return kl.sum(), dist.sum(), kl


def pairwise_emd(weights, points, R: float = 1.0, beta: float = 1.0, workers: int = 2):
    """Symmetric matrix of exact EMDs between all jets (POT network simplex, in parallel threads).

    ``weights`` (n, N) normalised pT/H_T, ``points`` (n, N, 2) as (η, φ)."""
    import torch

    from ..ot.emd import emd

    w = np.asarray(weights, float)
    p = np.asarray(points, float)
    n = len(w)
    iu, ju = np.triu_indices(n, k=1)
    out = np.zeros((n, n))
    chunks = np.array_split(np.arange(len(iu)), max(1, workers * 8))

    def work(idx):
        if len(idx) == 0:
            return idx, np.zeros(0)
        i, j = iu[idx], ju[idx]
        v = emd(torch.as_tensor(w[i]), torch.as_tensor(p[i]), torch.as_tensor(w[j]), torch.as_tensor(p[j]),
                backend="exact", R=R, beta=beta)
        return idx, v.numpy()

    with ThreadPoolExecutor(workers) as pool:
        for idx, v in pool.map(work, chunks):
            out[iu[idx], ju[idx]] = v
    return out + out.T


def correlation_dimension(distances, q):
    """D_corr at the geometric midpoints of ``q`` from a symmetric distance matrix:
    finite differences of log C(Q), C(Q) = #{i ≠ j : d_ij < Q}. Returns (q_mid, D_corr)."""
    d = np.asarray(distances, float)
    q = np.sort(np.asarray(q, float))
    vals = d[np.triu_indices(len(d), k=1)]
    vals.sort()
    counts = np.searchsorted(vals, q, side="left").astype(float)
    if np.any(counts == 0):
        raise ValueError("some Q values are below every pairwise distance; raise the smallest Q")
    return np.sqrt(q[1:] * q[:-1]), np.diff(np.log(counts)) / np.diff(np.log(q))

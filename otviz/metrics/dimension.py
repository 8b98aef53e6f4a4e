"""Dimensionality of learnt representations and of data (EMD-VAE, Collins, Eq. 2 and 3).

    D₁ = −dR/d log β,     D₂ = dD/dβ²                                        (Eq. 2)

with R = ⟨KL⟩ (the rate) and D = ⟨EMD²⟩ (the distortion) of VAEs trained at a sequence of β,
estimated by finite differences between neighbouring β (reported at the geometric mean of the
pair). For a d-dimensional Gaussian with standard deviations σ_i and the optimal linear VAE,
D = Σ_i min(β², σ_i²) and R = Σ_{σ_i > β} log(σ_i/β), so D₁ = D₂ = #{i : σ_i > β}
(appendix A.3, Eq. 9): :func:`gaussian_optimum`.

    D_corr(Q) = d log C(Q) / d log Q,   C(Q) = Σ_{i≠j} Θ(Q² − EMD²(x_i, x_j))     (Eq. 3)

from pairwise exact EMDs (POT's network simplex) between jets: :func:`pairwise_emd`, :func:`correlation_dimension`.
As in the paper's Fig. 3, D_corr(Q) is drawn on the β axis at β = Q/2 (``Q_PER_BETA``; "no direct
relation between Q and β has been established … arbitrarily plotted with Q = 2β").

Units: EMDs, β and Q are dimensionless (jets normalised to H_T = Σ pT, R = 1); the paper's
resolution in GeV is β·⟨H_T⟩ with the *mean* H_T of the training jets (``ht_mean_GeV``).
"""
from __future__ import annotations

import numpy as np

from ..progress import Steps

#: D_corr(Q) is plotted against β = Q / Q_PER_BETA (seed 001, Fig. 3: Q = 2β)
Q_PER_BETA = 2.0


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


def pairwise_emd(weights, points, R: float = 1.0, beta: float = 1.0, workers: int = 2, progress=None):
    """Symmetric matrix of exact EMDs between all jets (POT's C++ network simplex per pair).

    ``weights`` (n, N) pT/H_T (normalised per jet here), ``points`` (n, N, 2) as (η, φ); ground
    cost (ΔR/R)^β with φ wrapped, as :func:`otviz.ot.emd.emd`. Zero-padded particles are dropped
    and each row's costs to all later jets are computed at once: ≈ 25–40 µs a pair, 1000 jets in
    19–22 s on a busy 2-core machine (``benchmarks/dimension.py``). ``workers`` is accepted for
    compatibility and unused: the solver holds the GIL, so threads made it slower. ``progress``: see
    :mod:`otviz.progress` (16 steps of about equal numbers of pairs)."""
    from ot.lp.emd_wrap import check_result, emd_c

    w = np.asarray(weights, float)
    p = np.asarray(points, float)
    if w.ndim != 2 or p.shape != (*w.shape, 2):
        raise ValueError(f"pairwise_emd: weights (n, N) and points (n, N, 2) needed, got {w.shape} and {p.shape}")
    n = len(w)
    keep = w > 0
    ws, ps = [], []
    for k in range(n):
        if not keep[k].any():
            raise ValueError(f"pairwise_emd: jet {k} has no particle with positive weight")
        wk = w[k][keep[k]]
        ws.append(wk / wk.sum())
        ps.append(p[k][keep[k]])
    off = np.r_[0, np.cumsum([len(x) for x in ws])]
    allp = np.concatenate(ps) if ps else np.zeros((0, 2))
    out = np.zeros((n, n))
    # 16 progress steps with about equal numbers of pairs (row i has n − 1 − i pairs)
    cum = np.cumsum(np.arange(n - 1, 0, -1))
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, 16) / 16) + 1 if n > 1 else []
    blocks = [b for b in np.split(np.arange(max(n - 1, 0)), np.unique(cuts)) if len(b)] or [np.arange(0)]
    step = progress if isinstance(progress, Steps) else Steps(progress, len(blocks), "pairwise EMD")
    for rows in blocks:
        for i in rows:
            base = off[i + 1]
            q = allp[base:]
            deta = ps[i][:, None, 0] - q[None, :, 0]
            dphi = np.remainder(ps[i][:, None, 1] - q[None, :, 1] + np.pi, 2 * np.pi) - np.pi
            cost = np.sqrt(deta * deta + dphi * dphi) / R
            if beta != 1.0:
                cost = cost ** beta
            for j in range(i + 1, n):
                m = np.ascontiguousarray(cost[:, off[j] - base: off[j + 1] - base])
                _, value, _, _, code = emd_c(ws[i], ws[j], m, 100_000, 1)
                msg = check_result(code)
                if msg:
                    raise RuntimeError(f"pairwise_emd: network simplex failed on jets {i}, {j}: {msg}")
                out[i, j] = value
        step(f"{int(rows[-1]) + 1 if len(rows) else n} of {n} jets")
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


def production_curves(steps: list[dict]):
    """β, R, D and the per-dimension KL (n_β, latent) of a run's production-pass β steps."""
    if len(steps) < 2:
        raise ValueError("need at least two finished production β steps for D₁/D₂")
    steps = sorted(steps, key=lambda s: s["beta"])
    beta = np.array([s["beta"] for s in steps])
    rate = np.array([s["rate"] for s in steps])
    dist = np.array([s["distortion"] for s in steps])
    kl = np.array([s["kl_per_dim"] for s in steps])
    return beta, rate, dist, kl


def dimensionality(steps: list[dict], jets, ht, R: float = 1.0, n_jets: int = 1000, n_q: int = 25,
                   workers: int = 2, seed: int = 0, progress=None):
    """xarray Dataset of an EMD-VAE's dimensionality: R, D, KL per dimension vs β from its
    production-pass β ``steps``, D₁, D₂ at β_mid, and the data's correlation dimension D_corr(Q)
    from exact EMDs between ``n_jets`` of ``jets`` (B, N, 3) of (pT/H_T, η, φ) picked with ``seed``
    (Q in the units of β: EMD in units of H_T·R; ``beta_of_q`` = Q/2 is where the paper draws it on
    the β axis). ``ht`` (B,) in GeV gives ``ht_mean_GeV`` = ⟨H_T⟩, which converts β to GeV.
    ``progress``: see :mod:`otviz.progress` (the pairwise EMDs)."""
    import xarray as xr

    beta, rate, dist, kl = production_curves(steps)
    mid, d1, d2 = dimensionalities(beta, rate, dist)
    pick = np.random.default_rng(seed).choice(len(jets), size=min(n_jets, len(jets)), replace=False)
    sub = np.asarray(jets)[np.sort(pick)]
    dmat = pairwise_emd(sub[..., 0], sub[..., 1:], R=R, workers=workers, progress=progress)
    vals = dmat[np.triu_indices(len(dmat), k=1)]
    lo = np.quantile(vals, 10.0 / len(vals)) if len(vals) > 100 else vals.min()
    q = np.geomspace(max(lo, 1e-6), vals.max(), n_q)
    q_mid, dcorr = correlation_dimension(dmat, q)
    ds = xr.Dataset(
        {
            "rate": (("beta",), rate), "distortion": (("beta",), dist),
            "kl_per_dim": (("beta", "latent_dim"), kl),
            "D1": (("beta_mid",), d1), "D2": (("beta_mid",), d2),
            "D_corr": (("q_mid",), dcorr),
        },
        coords={"beta": beta, "beta_mid": mid, "q_mid": q_mid, "beta_of_q": (("q_mid",), q_mid / Q_PER_BETA),
                "latent_dim": np.arange(kl.shape[1])},
        attrs={"n_jets_corr": len(sub), "ht_mean_GeV": mean_ht(ht), "ht_median_GeV": float(np.median(ht)),
               "seed": seed, "q_per_beta": Q_PER_BETA,
               "description": "D1 = -dR/dlog(beta), D2 = dD/d(beta^2) (EMD-VAE Eq. 2); D_corr = dlog C(Q)/dlog Q "
                              "(Eq. 3), drawn at beta = Q/2 (Fig. 3); beta in GeV = beta * ht_mean_GeV"},
    )
    return ds


def mean_ht(ht) -> float:
    """⟨H_T⟩ in GeV of per-jet H_T values: the scale that turns a dimensionless β into GeV."""
    return float(np.mean(np.asarray(ht, dtype=np.float64)))


def ht_mean(ds) -> float:
    """⟨H_T⟩ in GeV of a stored dimension dataset (files written before it existed: the median)."""
    return float(ds.attrs.get("ht_mean_GeV", ds.attrs.get("ht_median_GeV")))


def beta_of_q(ds):
    """Where D_corr(Q) of a stored dimension dataset sits on the β axis: β = Q / 2."""
    return ds["beta_of_q"].values if "beta_of_q" in ds.coords else ds.q_mid.values / Q_PER_BETA

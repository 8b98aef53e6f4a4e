"""Closed forms of optimal transport between Gaussians, and the accuracy measure of neural OT maps.

For P = N(m₁, Σ₁) and Q = N(m₂, Σ₂) with the squared Euclidean cost, Brenier's map is affine,

    T*(x) = m₂ + A (x − m₁),   A = Σ₁^{-1/2} (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2} Σ₁^{-1/2}

(symmetric positive definite, so T* = ∇ of the convex ψ(x) = ½ xᵀAx + …), and

    W₂²(P, Q) = ‖m₁ − m₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2})

(Dowson & Landau 1982; Givens & Shortt 1984; ``../shared/REFERENCE.md`` §3). POT's
``ot.gaussian.bures_wasserstein_mapping`` gives the same A; the tests keep it as the reference.

The unexplained variance percentage of Korotin et al. (Wasserstein-2 benchmark, NeurIPS 2021):

    L2-UVP(T̂) = 100 · E_P ‖T̂(x) − T*(x)‖² / Var(Q)  [%],   Var(Q) = tr Σ₂ = E‖y − E y‖².
"""
from __future__ import annotations

import numpy as np


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigendecomposition)."""
    m = 0.5 * (m + m.T)
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_ot_map(m1, cov1, m2, cov2) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of the OT map T*(x) = A x + b from N(m1, cov1) to N(m2, cov2); b = m₂ − A m₁."""
    m1, m2 = np.asarray(m1, float), np.asarray(m2, float)
    cov1, cov2 = np.asarray(cov1, float), np.asarray(cov2, float)
    s1 = _sqrtm_psd(cov1)
    w, v = np.linalg.eigh(0.5 * (cov1 + cov1.T))
    if w.min() <= 0:
        raise ValueError("gaussian_ot_map: the source covariance must be positive definite")
    s1_inv = (v / np.sqrt(w)) @ v.T
    a = s1_inv @ _sqrtm_psd(s1 @ cov2 @ s1) @ s1_inv
    a = 0.5 * (a + a.T)
    return a, m2 - a @ m1


def gaussian_w2_squared(m1, cov1, m2, cov2) -> float:
    """W₂² between N(m1, cov1) and N(m2, cov2) (the Bures–Wasserstein formula above)."""
    m1, m2 = np.asarray(m1, float), np.asarray(m2, float)
    cov1, cov2 = np.asarray(cov1, float), np.asarray(cov2, float)
    s1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(s1 @ cov2 @ s1)
    return float(np.sum((m1 - m2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(cross))


def l2_uvp(mapped, exact, target_variance: float) -> float:
    """L2-UVP in %: 100 · mean ‖mapped − exact‖² / Var(target) (Korotin et al. 2021).

    ``mapped`` and ``exact`` are (n, d) arrays of T̂(x) and T*(x) on the same source points;
    ``target_variance`` is the total variance tr Σ₂ of the target."""
    mapped, exact = np.asarray(mapped, float), np.asarray(exact, float)
    if mapped.shape != exact.shape:
        raise ValueError(f"l2_uvp: shapes differ: {mapped.shape} vs {exact.shape}")
    if not target_variance > 0:
        raise ValueError("l2_uvp: the target variance must be positive")
    return float(100.0 * np.mean(np.sum((mapped - exact) ** 2, axis=-1)) / target_variance)


def random_gaussian(d: int, rng: np.random.Generator, eig_range=(0.5, 2.0), mean_scale: float = 1.0):
    """A random N(m, Σ) in d dimensions: m ~ N(0, mean_scale²), Σ = Q diag(λ) Qᵀ with Q a Haar
    rotation and λ log-uniform in ``eig_range`` — the Gaussian pairs of ``benchmarks/ot_map.py``."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    lam = np.exp(rng.uniform(np.log(eig_range[0]), np.log(eig_range[1]), d))
    return mean_scale * rng.standard_normal(d), (q * lam) @ q.T


def sample_gaussian(mean, cov, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of N(mean, cov), float64."""
    chol = np.linalg.cholesky(np.asarray(cov, float))
    return np.asarray(mean, float) + rng.standard_normal((n, len(mean))) @ chol.T

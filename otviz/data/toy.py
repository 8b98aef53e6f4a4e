"""Toy samples whose answer is known in closed form, in the layout of the real ones.

``gaussian_jets``: one-particle "jets" whose (η, φ) is Gaussian with standard deviations
(σ_η, σ_φ) around (0, 0). For one particle against one particle the EMD is the distance ΔR, so
EMD² = Δη² + Δφ² and the EMD-VAE loss EMD²/(2β²) + KL is the linear-Gaussian VAE of seed 001
appendix A.3 (Eq. 4–9) in two dimensions. Its optimum (:func:`otviz.metrics.dimension.gaussian_optimum`)
encodes a direction of width σ while σ > β, with rate log(σ/β), distortion β² (else σ²), and
D₁ = D₂ = #{σ_i > β}.
"""
from __future__ import annotations

import numpy as np

from .io import make_dataset


def gaussian_jets(n: int, sigma_eta: float, sigma_phi: float, seed: int = 0):
    """An xarray Dataset of ``n`` one-particle jets: x(event, constituent=1, feature=(pt, eta, phi))
    with pt = 1 GeV (so H_T = 1 and pT/H_T = 1), η ~ N(0, σ_η), φ ~ N(0, σ_φ); z holds the same
    particle as a massless four-vector (px, py, pz, E). Attributes record σ's and the seed."""
    if n < 1:
        raise ValueError(f"gaussian_jets: n must be ≥ 1, got {n}")
    if not (0 < sigma_eta < 3 and 0 < sigma_phi < 1):
        raise ValueError(f"gaussian_jets: need 0 < σ_η < 3 and 0 < σ_φ < 1 (φ must not wrap); got "
                         f"{sigma_eta}, {sigma_phi}")
    rng = np.random.default_rng(seed)
    eta = rng.normal(0.0, sigma_eta, n)
    phi = rng.normal(0.0, sigma_phi, n)
    x = np.stack([np.ones(n), eta, phi], -1)[:, None, :]
    from ..physics import fourvec as fv

    p4 = fv.from_ptetaphim(np.ones(n), eta, phi, np.zeros(n))
    attrs = {"process": "gaussian-jets", "sigma_eta": float(sigma_eta), "sigma_phi": float(sigma_phi),
             "seed": int(seed), "centred": 1,
             "description": "one-particle jets, (eta, phi) ~ N(0, diag(sigma_eta^2, sigma_phi^2)); "
                            "EMD = Delta R, closed-form EMD-VAE optimum in seed 001 appendix A.3"}
    return make_dataset(p4[:, None, :], x, ["particle"], None, attrs=attrs)


def gaussian_smearing(n: int, width: float = 10.0, resolution: float = 10.0, seed: int = 0, particle: str = "e-"):
    """A one-particle sample whose unfolding and simulation are known in closed form: the truth
    3-momentum z ~ N(0, width²·1₃), the detector one x = z + N(0, resolution²·1₃), both on the
    ``particle``'s mass shell. Linear-Gaussian: per component the regressions are
    E[x | z] = z and E[z | x] = x·w²/(w² + r²), and the marginal of x is N(0, w² + r²)."""
    if n < 1 or width <= 0 or resolution < 0:
        raise ValueError(f"gaussian_smearing: need n ≥ 1, width > 0, resolution ≥ 0; got {n}, {width}, {resolution}")
    from ..physics import fourvec as fv
    from ..physics.masses import mass_of

    rng = np.random.default_rng(seed)
    p_z = rng.normal(0.0, width, (n, 1, 3))
    p_x = p_z + rng.normal(0.0, resolution, (n, 1, 3))
    m = mass_of(particle)
    attrs = {"process": "gaussian-smearing", "width": float(width), "resolution": float(resolution),
             "seed": int(seed), "description": "z ~ N(0, width^2) per momentum component, x = z + N(0, "
                                               "resolution^2); E[z|x] = x w^2/(w^2 + r^2)"}
    return make_dataset(fv.minkowski(p_z, m), fv.minkowski(p_x, m), [particle], [particle], attrs=attrs)


def multiplicity_pmf(lam: float, n_max: int = 50) -> np.ndarray:
    """pmf over N = 0 … ``n_max`` of N ~ Poisson(λ) conditioned on 1 ≤ N ≤ n_max (0 at N = 0):
    the particle multiplicity of :func:`multiplicity_jets`."""
    from scipy.stats import poisson

    if not (lam > 0 and n_max >= 1):
        raise ValueError(f"multiplicity_pmf: need λ > 0 and n_max ≥ 1; got {lam}, {n_max}")
    p = poisson.pmf(np.arange(n_max + 1), lam)
    p[0] = 0.0
    return p / p.sum()


def multiplicity_jets(n: int, lam: float, n_max: int = 50, seed: int = 0, pt_mean: float = 20.0,
                      width: float = 0.3):
    """``n`` toy jets that differ between two samples only in their number of particles:
    N ~ Poisson(λ) conditioned on 1 ≤ N ≤ ``n_max`` (:func:`multiplicity_pmf`), and each particle,
    independently of N and of the others, pT ~ Exponential(mean ``pt_mean`` GeV), η, φ ~ N(0,
    ``width``²). x(event, constituent = n_max, feature = (pt, eta, phi)), the N particles first
    (in random order: they are iid), then zero padding; z holds the jet's summed four-vector. Two such samples with λ_S ≠ λ_B are separable
    only through N, whose likelihood ratio is monotonic in N, so the best possible tagger's AUC
    is ``otviz.metrics.roc.auc_from_pmfs(multiplicity_pmf(λ_S), multiplicity_pmf(λ_B))``."""
    if n < 1:
        raise ValueError(f"multiplicity_jets: n must be ≥ 1, got {n}")
    if not (pt_mean > 0 and 0 < width < 1):
        raise ValueError(f"multiplicity_jets: need pt_mean > 0 and 0 < width < 1; got {pt_mean}, {width}")
    from ..physics import fourvec as fv

    pmf = multiplicity_pmf(lam, n_max)
    rng = np.random.default_rng(seed)
    mult = rng.choice(n_max + 1, size=n, p=pmf)
    pt = rng.exponential(pt_mean, (n, n_max))
    eta = rng.normal(0.0, width, (n, n_max))
    phi = rng.normal(0.0, width, (n, n_max))
    real = np.arange(n_max)[None, :] < mult[:, None]
    x = np.stack([pt, eta, phi], -1) * real[..., None]  # iid particles, so already in random order
    p4 = fv.from_ptetaphim(x[..., 0], x[..., 1], x[..., 2], 0.0) * (x[..., :1] > 0)
    tot = p4.sum(1)
    jet = np.stack([fv.pt(tot), fv.eta(tot), fv.phi(tot), fv.mass(tot)], -1)
    attrs = {"process": "multiplicity-jets", "lambda": float(lam), "n_max": int(n_max), "seed": int(seed),
             "pt_mean": float(pt_mean), "width": float(width), "centred": 1,
             "description": "jets with N ~ Poisson(lambda) | 1 <= N <= n_max particles, pT ~ Exp(pt_mean), "
                            "eta, phi ~ N(0, width^2) iid; two samples differ only in N (tagger toy, issue 14)"}
    return make_dataset(tot[:, None, :], x, ["jet"], None, jet=jet, attrs=attrs)

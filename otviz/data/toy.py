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

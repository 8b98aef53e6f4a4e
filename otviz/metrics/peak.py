"""Resonance peak fits: a Voigt profile (Breit–Wigner ⊗ Gaussian) to a mass histogram.

    V(m; m₀, σ, γ) = ∫ BW(m'; m₀, γ) · N(m − m'; 0, σ) dm',   γ = Γ/2 (HWHM)

fitted by least squares (Poisson errors) to a histogram of ``m`` in [lo, hi]. For a parton-level
Z sample σ → 0 and Γ = 2γ ≈ 2.5 GeV; detector smearing shows up in σ.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import curve_fit
from scipy.special import voigt_profile


class PeakFit(NamedTuple):
    mass: float  # m₀, GeV
    gamma: float  # Breit–Wigner full width Γ, GeV
    sigma: float  # Gaussian resolution σ, GeV
    fwhm: float  # full width at half maximum of the fitted profile, GeV
    mass_err: float


def fit_peak(m, lo: float = 81.0, hi: float = 101.0, bins: int = 80) -> PeakFit:
    """Fit a Voigt profile plus a linear background to the masses ``m`` in [lo, hi]."""
    m = np.asarray(m, dtype=float)
    m = m[(m > lo) & (m < hi)]
    if len(m) < 100:
        raise ValueError(f"too few entries ({len(m)}) in [{lo}, {hi}] GeV to fit a peak")
    h, edges = np.histogram(m, bins=bins, range=(lo, hi))
    c = 0.5 * (edges[1:] + edges[:-1])
    w = edges[1] - edges[0]

    def model(x, n, m0, sigma, gamma, b0, b1):
        return n * w * voigt_profile(x - m0, abs(sigma), abs(gamma)) + b0 + b1 * (x - m0)

    p0 = [len(m), c[np.argmax(h)], 1.0, 1.25, 0.0, 0.0]
    err = np.sqrt(np.maximum(h, 1.0))
    popt, pcov = curve_fit(model, c, h, p0=p0, sigma=err, maxfev=20000)
    _, m0, sigma, gamma, _, _ = popt
    sigma, gamma = abs(sigma), abs(gamma)
    fl, fg = 2 * gamma, 2.3548200450309493 * sigma
    fwhm = 0.5346 * fl + np.sqrt(0.2166 * fl ** 2 + fg ** 2)  # Olivero & Longbothum (1977)
    return PeakFit(float(m0), float(2 * gamma), float(sigma), float(fwhm), float(np.sqrt(pcov[1, 1])))

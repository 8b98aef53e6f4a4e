"""Particle masses in GeV by otviz particle name: the masses of the OTUS Minkowski layer.

A generator that outputs 3-momenta puts each particle on its mass shell,
E = sqrt(|p|² + m²) (OTUS Eq. 10), with m taken from this table — never estimated from data
(float32 storage alone turns m_e = 0.511 MeV into anything between 0 and a few MeV).

Sources
    PDG: S. Navas et al. (Particle Data Group), Review of Particle Physics,
         Phys. Rev. D 110, 030001 (2024) — e, μ, τ, W, Z, H, t (direct measurements).
    b = 4.7 GeV: the pole-like b mass of MadGraph5_aMC@NLO's default ``sm`` model (MB = 4.7),
         the value OTUS (arXiv 2101.08944) uses in its Minkowski layer for the tt̄ b quarks.
    Massless by convention (as in MadGraph's ``sm`` model and the OTUS setup): neutrinos,
         photon, gluon, light quarks u, d, s and c, and the reconstructed objects otviz builds
         massless — jets (``jet1`` …), missing transverse momentum ``MET``.

Names follow the data files (``otviz.data.pythia``): ``e-``, ``e+``, ``nu_e~``, ``b~``, ``d~``,
``jet3``, ``MET``. ``mass_of`` accepts an antiparticle suffix ``~``, a charge sign and a jet
index: ``mass_of("b~") == mass_of("b")``, ``mass_of("jet3") == mass_of("jet")``.
"""
from __future__ import annotations

import re

# name → mass in GeV
MASSES: dict[str, float] = {
    # charged leptons (PDG 2024)
    "e": 0.51099895e-3,
    "mu": 0.1056583755,
    "tau": 1.77693,
    # neutrinos: massless
    "nu_e": 0.0,
    "nu_mu": 0.0,
    "nu_tau": 0.0,
    # quarks: u, d, s, c massless (light jets); b as in MadGraph's sm model / OTUS; t (PDG 2024)
    "u": 0.0,
    "d": 0.0,
    "s": 0.0,
    "c": 0.0,
    "b": 4.7,
    "t": 172.57,
    # gauge and Higgs bosons (PDG 2024)
    "g": 0.0,
    "gamma": 0.0,
    "W": 80.3692,
    "Z": 91.1880,
    "H": 125.20,
    # reconstructed objects otviz builds massless
    "jet": 0.0,
    "bjet": 0.0,
    "MET": 0.0,
}

_ALIASES = {"photon": "gamma", "met": "MET"}


def mass_of(name: str) -> float:
    """Mass in GeV of the particle called ``name``.

    Looked up as given, then without an antiparticle ``~``, a charge sign (``e-`` → ``e``,
    ``W+`` → ``W``) and a trailing index (``jet2`` → ``jet``). Unknown names raise KeyError:
    a mass is never guessed."""
    key = name
    for candidate in (key, key.rstrip("~"), key.rstrip("~").rstrip("+-"), re.sub(r"\d+$", "", key.rstrip("~"))):
        candidate = _ALIASES.get(candidate, candidate)
        if candidate in MASSES:
            return MASSES[candidate]
    raise KeyError(f"no mass for particle {name!r} in otviz.physics.masses (known: {', '.join(MASSES)})")


def masses_for(names) -> dict[str, float]:
    """{name: mass_of(name)} for each of ``names`` (GeV)."""
    return {str(n): mass_of(str(n)) for n in names}


# Hadrons by PDG Monte Carlo id (PDG 2024), for the cluster model and HadML: |id| → mass in GeV.
# Keyed by id, not name, so that π⁰ (111) and π± (211) can never be confused by name stripping.
HADRON_MASSES: dict[int, float] = {
    111: 0.1349768,  # π⁰
    211: 0.13957039,  # π±
    221: 0.547862,  # η
    113: 0.77526,  # ρ⁰
    213: 0.77526,  # ρ±
    311: 0.497611,  # K⁰
    321: 0.493677,  # K±
}
HADRON_NAMES: dict[int, str] = {111: "π⁰", 211: "π⁺", -211: "π⁻", 221: "η", 113: "ρ⁰", 213: "ρ⁺",
                                -213: "ρ⁻", 311: "K⁰", -311: "K̄⁰", 321: "K⁺", -321: "K⁻"}


def mass_of_pid(pid) -> "float | np.ndarray":
    """Mass in GeV of the hadron(s) with PDG id ``pid`` (an int or an integer array; sign ignored).
    Unknown ids raise KeyError naming them."""
    import numpy as np

    arr = np.abs(np.asarray(pid, dtype=np.int64))
    unknown = sorted(set(np.unique(arr).tolist()) - set(HADRON_MASSES))
    if unknown:
        raise KeyError(f"no mass for PDG id(s) {unknown} in otviz.physics.masses.HADRON_MASSES "
                       f"(known: {sorted(HADRON_MASSES)})")
    out = np.vectorize(HADRON_MASSES.__getitem__, otypes=[float])(arr) if arr.size else arr.astype(float)
    return float(out) if np.ndim(pid) == 0 else out

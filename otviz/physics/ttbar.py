"""Semileptonic tt̄ (t → b W⁺ → b u d̄, t̄ → b̄ W⁻ → b̄ e⁻ ν̄) event reconstruction: m_tt, m_W^had,
m_t^lep, m_t^had, for NumPy arrays and torch tensors, vectorised over events.

Layouts (the shipped ``data/ttbar_*.nc``, :mod:`otviz.data.pythia`), four-vectors (px, py, pz, E) in GeV:

    z = (e⁻, ν̄, b, b̄, u, d̄)          partons:   m_W^had = m(u d̄), m_t^had = m(b u d̄),
                                                   m_t^lep = m(e⁻ ν̄ b̄), m_tt = m(all six)
    x = (e⁻, MET, jet1 … jet4)         detector:  neutrino from MET, jets assigned by χ²

Neutrino p_z (W-mass constraint, m_W² = (p_e + p_ν)², p_T^ν = MET; exact for a massive lepton):

    μ   = (m_W² − m_e²)/2 + p_T^e · p_T^ν,     a = E_e² − p_z,e²
    p_z = (μ p_z,e ± E_e √(μ² − a |p_T^ν|²)) / a

both roots kept; a negative discriminant takes the real part μ p_z,e / a; the smaller |p_z| is
used, and E_ν = √(|p|² + m_ν²) with m_ν from :mod:`otviz.physics.masses`.

Jet assignment: over the 12 assignments (leptonic b, hadronic b, the unordered W pair) of the four
jets, the one minimising

    χ² = ((m_t^lep − 172.76)/5)² + ((m_W^had − 80.379)/10)² + ((m_t^had − 172.76)/15)²

(the reconstruction of the Turbo-Sim / OTUS comparison, Quétant et al. 2022, whose code uses these
PDG-2020 hypothesis masses and 80.379 also for the neutrino constraint; they are parameters of
this reconstruction, not the particle masses of :mod:`otviz.physics.masses`).
"""
from __future__ import annotations

import itertools

import numpy as np

from . import fourvec as fv
from .masses import mass_of

# Hypothesis masses and resolutions of the published χ² (Turbo-Sim code; PDG 2020 averages), GeV
M_W_HYPOTHESIS = 80.379
M_T_HYPOTHESIS = 172.76
SIGMA_T_LEP = 5.0
SIGMA_W_HAD = 10.0
SIGMA_T_HAD = 15.0

Z_PARTICLES = ("e-", "nu_e~", "b", "b~", "u", "d~")
X_PARTICLES = ("e-", "MET", "jet1", "jet2", "jet3", "jet4")
MASS_NAMES = ("m_tt", "m_W_had", "m_t_lep", "m_t_had")

# (leptonic b, hadronic b, W jet 1, W jet 2) jet indices; the W pair unordered: 4·3 = 12 assignments
JET_ASSIGNMENTS = tuple((bl, bh, *sorted(set(range(4)) - {bl, bh}))
                        for bl, bh in itertools.permutations(range(4), 2))


def _prepare(p4):
    """float64 for NumPy (float32 storage loses the W constraint's digits); tensors as they are."""
    p4 = fv._asarray(p4)
    return p4 if fv._is_tensor(p4) else np.asarray(p4, dtype=np.float64)


def neutrino_pz_roots(lepton, met, m_w: float = M_W_HYPOTHESIS):
    """Both solutions (p_z⁺, p_z⁻) of m(e, ν) = m_W for p_T^ν = MET, and whether they are real.

    ``lepton``, ``met``: (…, 4) four-vectors (only MET's px, py are used). Complex solutions
    (negative discriminant) give their real part μ p_z,e / a for both roots."""
    lepton, met = _prepare(lepton), _prepare(met)
    xp = fv._ns(lepton)
    lx, ly, lz, le = (lepton[..., i] for i in range(4))
    nx, ny = met[..., 0], met[..., 1]
    mu = 0.5 * (m_w ** 2 - fv.mass2(lepton)) + lx * nx + ly * ny
    a = le ** 2 - lz ** 2
    disc = mu ** 2 - a * (nx ** 2 + ny ** 2)
    real = disc >= 0
    # sqrt of the real branch only: finite torch gradients where the solution is complex
    root = xp.where(real, le * xp.sqrt(xp.where(real, disc, 1.0 + 0.0 * disc)), 0.0 * disc)
    centre = mu * lz / a
    return centre + root / a, centre - root / a, real


def neutrino_pz(lepton, met, m_w: float = M_W_HYPOTHESIS):
    """The neutrino p_z of the root with the smaller |p_z| (the real part when complex)."""
    plus, minus, _ = neutrino_pz_roots(lepton, met, m_w)
    xp = fv._ns(plus)
    return xp.where(abs(plus) <= abs(minus), plus, minus)


def neutrino(lepton, met, m_w: float = M_W_HYPOTHESIS):
    """The neutrino four-vector (MET_x, MET_y, p_z, E), p_z from :func:`neutrino_pz`."""
    met = _prepare(met)
    xp = fv._ns(met)
    p3 = fv._stack(xp, [met[..., 0], met[..., 1], neutrino_pz(lepton, met, m_w)])
    return fv.minkowski(p3, mass_of("nu_e"))


def _mass(*p4s):
    total = p4s[0]
    for p in p4s[1:]:
        total = total + p
    return fv.mass(total)


def assignment_chi2(m_t_lep, m_w_had, m_t_had):
    """χ² of one jet assignment (module docstring)."""
    return (((m_t_lep - M_T_HYPOTHESIS) / SIGMA_T_LEP) ** 2 + ((m_w_had - M_W_HYPOTHESIS) / SIGMA_W_HAD) ** 2
            + ((m_t_had - M_T_HYPOTHESIS) / SIGMA_T_HAD) ** 2)


def reconstruct_ttbar(x, return_assignment: bool = False) -> dict:
    """m_tt, m_W^had, m_t^lep, m_t^had (GeV) of x-level events (events, 6, 4) = (e⁻, MET, jet1..4).

    Returns {"m_tt", "m_W_had", "m_t_lep", "m_t_had"} as (events,) arrays (tensors for tensor
    input), plus "assignment" (index into ``JET_ASSIGNMENTS``) and "chi2" when
    ``return_assignment``. All 12 assignments are evaluated at once: no loop over events."""
    x = _prepare(x)
    xp = fv._ns(x)
    lep, jets = x[..., 0, :], x[..., 2:6, :]
    nu = neutrino(lep, x[..., 1, :])
    idx = np.array(JET_ASSIGNMENTS)  # (12, 4)
    if xp is not np:
        idx = xp.as_tensor(idx, device=x.device)
    perm = jets[..., idx, :]  # (events, 12, 4 jets, 4)
    b_lep, b_had, w = perm[..., 0, :], perm[..., 1, :], perm[..., 2, :] + perm[..., 3, :]
    lep_w = (lep + nu)[..., None, :]
    m_t_lep, m_w_had, m_t_had = _mass(lep_w, b_lep), fv.mass(w), _mass(w, b_had)
    chi2 = assignment_chi2(m_t_lep, m_w_had, m_t_had)
    best = chi2.argmin(-1)

    def pick(m):
        if xp is np:
            return np.take_along_axis(m, best[..., None], -1)[..., 0]
        return m.gather(-1, best[..., None])[..., 0]

    out = {"m_tt": _mass(lep, nu, jets.sum(-2)), "m_W_had": pick(m_w_had),
           "m_t_lep": pick(m_t_lep), "m_t_had": pick(m_t_had)}
    if return_assignment:
        out.update(assignment=best, chi2=pick(chi2))
    return out


def ttbar_masses_from_partons(z) -> dict:
    """The same four masses from parton-level z (events, 6, 4) = (e⁻, ν̄, b, b̄, u, d̄): no
    ambiguity, t → b u d̄ (hadronic), t̄ → b̄ e⁻ ν̄ (leptonic)."""
    z = _prepare(z)
    e, nu, b, bbar, u, dbar = (z[..., i, :] for i in range(6))
    return {"m_tt": fv.invariant_mass(z), "m_W_had": _mass(u, dbar),
            "m_t_lep": _mass(e, nu, bbar), "m_t_had": _mass(b, u, dbar)}


def ttbar_masses(p4, particles) -> dict:
    """The four masses of a (events, 6, 4) sample whose particle names are ``particles``: parton
    level for ``Z_PARTICLES``, reconstructed for ``X_PARTICLES``, {} for any other layout (so a
    caller listing derived quantities can ask every sample)."""
    particles = tuple(str(p) for p in particles)
    if particles == Z_PARTICLES:
        return ttbar_masses_from_partons(p4)
    if particles == X_PARTICLES:
        return reconstruct_ttbar(p4)
    return {}

"""Relativistic kinematics: four-vectors (px, py, pz, E) in GeV for NumPy and torch."""
from .fourvec import (  # noqa: F401
    COMPONENTS,
    PTETAPHIM,
    delta_r,
    eta,
    from_ptetaphim,
    invariant_mass,
    mass,
    mass2,
    minkowski,
    minkowski_energy,
    phi,
    pt,
    to_ptetaphim,
    total,
    wrap_phi,
)
from .ttbar import (  # noqa: F401
    neutrino_pz,
    reconstruct_ttbar,
    ttbar_masses,
    ttbar_masses_from_partons,
)

"""One table of observables: name → symbol and unit, and the axis label every plot uses.

Quantity names are the columns of :func:`otviz.metrics.fidelity.quantities` ("e-.px", "m_ee"; the tt̄
masses "m_tt", "m_W_had", "m_t_lep", "m_t_had" of :func:`otviz.physics.ttbar.ttbar_masses`)
and the jet/latent names of the EMD-VAE pages ("beta", "beta_ht", "eta", "phi", …). Labels read
like "p_x(e⁻) [GeV]", "η", "φ [rad]", "m_ee [GeV]".
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Observable:
    name: str
    symbol: str
    unit: str = ""
    description: str = ""

    @property
    def label(self) -> str:
        """Axis label: the symbol, with the unit in brackets when it has one."""
        return f"{self.symbol} [{self.unit}]" if self.unit else self.symbol


OBSERVABLES: dict[str, Observable] = {o.name: o for o in (
    Observable("px", "p_x", "GeV", "momentum along x"),
    Observable("py", "p_y", "GeV", "momentum along y"),
    Observable("pz", "p_z", "GeV", "momentum along the beam"),
    Observable("E", "E", "GeV", "energy"),
    Observable("pt", "p_T", "GeV", "transverse momentum"),
    Observable("eta", "η", "", "pseudorapidity"),
    Observable("phi", "φ", "rad", "azimuth"),
    Observable("m", "m", "GeV", "invariant mass"),
    Observable("m_ee", "m_ee", "GeV", "invariant mass of the electron pair"),
    Observable("m_tt", "m_tt", "GeV", "invariant mass of the tt̄ system (otviz.physics.ttbar)"),
    Observable("m_W_had", "m_W^had", "GeV", "invariant mass of the hadronic W (otviz.physics.ttbar)"),
    Observable("m_t_lep", "m_t^lep", "GeV", "invariant mass of the leptonic top (otviz.physics.ttbar)"),
    Observable("m_t_had", "m_t^had", "GeV", "invariant mass of the hadronic top (otviz.physics.ttbar)"),
    Observable("pt_frac", "p_T/H_T", "", "particle's share of the jet's scalar p_T sum"),
    Observable("ht", "H_T", "GeV", "scalar p_T sum of the jet"),
    Observable("beta", "β", "", "EMD-VAE resolution (units of H_T)"),
    Observable("beta_ht", "β·H_T", "GeV", "EMD-VAE resolution in GeV"),
    Observable("rate", "R (KL)", "nats", "rate: KL of the posterior to the prior"),
    Observable("distortion", "D (EMD²/H_T²)", "", "distortion: mean squared EMD"),
    Observable("kl", "KL", "nats", "KL of one latent direction"),
    Observable("density", "density", "1/unit", "normalised histogram"),
    Observable("ratio", "ratio to truth", "", "histogram ratio to the truth"),
    Observable("count", "decodings", "", "number of decodings per bin"),
)}

PARTICLE_SYMBOLS = {"e-": "e⁻", "e+": "e⁺", "mu-": "μ⁻", "mu+": "μ⁺", "nu": "ν", "met": "MET", "b": "b", "bbar": "b̄"}


def observable(name: str) -> Observable:
    """The table entry of ``name``; "e-.px" is p_x of the electron, "j1.pt" p_T of jet j1."""
    if name in OBSERVABLES:
        return OBSERVABLES[name]
    if "." in name:
        particle, comp = name.rsplit(".", 1)
        base = observable(comp)
        sym = PARTICLE_SYMBOLS.get(particle, particle)
        return Observable(name, f"{base.symbol}({sym})", base.unit, f"{base.description} of {sym}")
    raise KeyError(f"unknown observable {name!r}: known are {', '.join(OBSERVABLES)} and PARTICLE.COMPONENT")


def label(name: str, prefix: str = "") -> str:
    """Axis label of ``name`` ("e-.px" → "p_x(e⁻) [GeV]"); ``prefix`` names the sample or space
    ("z" → "z: p_x(e⁻) [GeV]")."""
    text = observable(name).label
    return f"{prefix}: {text}" if prefix else text


def unit(name: str) -> str:
    return observable(name).unit


def sig(value: float, digits: int = 3) -> str:
    """A number to ``digits`` significant figures (β 0.003981071705534973 → "0.00398")."""
    return f"{float(value):.{digits}g}"

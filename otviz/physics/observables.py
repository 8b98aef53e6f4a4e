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
    # statistics of otviz.metrics.fidelity.STATISTICS; W₁ carries the unit of the compared quantity
    Observable("ks", "KS", "", "Kolmogorov–Smirnov distance"),
    Observable("w1", "W₁", "", "Wasserstein-1 distance, in the unit of the compared quantity"),
    Observable("chi2r", "χ²/dof", "", "reduced χ² of the two histograms"),
)}

# comparisons of otviz.metrics.fidelity.COMPARISONS: truth vs model output
COMPARISON_LABELS = {"z_vs_z_tilde": "z vs z̃ = E(x)", "x_vs_x_tilde": "x vs x̃ = D(E(x))",
                     "x_vs_x_tilde_prime": "x vs x̃′ = D(z)"}
# the short symbol of a sample, for a ratio axis ("x̃′ / x")
SAMPLE_SYMBOLS = {"x": "x", "z": "z", "x_tilde_prime": "x̃′", "x_tilde": "x̃", "z_tilde": "z̃",
                  "x̃′ = D(z)": "x̃′", "x̃ = D(E(x))": "x̃", "z̃ = E(x)": "z̃",
                  "train sample": "train", "test sample": "test", "truth": "truth"}

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


def statistic_label(stat: str, quantity: str | None = None, floor: bool = False) -> str:
    """Column title of a statistic: "KS", "χ²/dof", "W₁ [GeV]" (W₁ in the unit of ``quantity``);
    ``floor=True`` → "KS floor", "W₁ floor [GeV]"."""
    sym = observable(stat).symbol + (" floor" if floor else "")
    u = unit(quantity) if stat == "w1" and quantity else ""
    return f"{sym} [{u}]" if u else sym


def comparison_label(comparison: str) -> str:
    """"x_vs_x_tilde_prime" → "x vs x̃′ = D(z)"."""
    return COMPARISON_LABELS.get(comparison, comparison)


def ratio_label(numerators, denominator: str) -> str:
    """Ratio-axis title naming what over what: (["x̃′ = D(z)", "x̃ = D(E(x))"], "x") → "x̃′ / x, x̃ / x"."""
    d = SAMPLE_SYMBOLS.get(denominator, denominator)
    return ", ".join(f"{SAMPLE_SYMBOLS.get(n, n)} / {d}" for n in numerators) or "ratio"


def unit(name: str) -> str:
    return observable(name).unit


def sig(value: float, digits: int = 3) -> str:
    """A number to ``digits`` significant figures (β 0.003981071705534973 → "0.00398")."""
    return f"{float(value):.{digits}g}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def readable(value: float, digits: int = 3) -> str:
    """A number for people: ``digits`` significant figures, plain decimals from 10⁻³ to 10⁶
    (1670.3 → "1670", 0.012345 → "0.0123", −0.0004 at 2 decimals never "-0.00": a value that rounds
    to zero is "0"), else "1.23×10⁻⁵"; NaN → "–"."""
    import math

    v = float(value)
    if not math.isfinite(v):
        return "–" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    if v == 0:
        return "0"
    v = float(f"{v:.{digits}g}")  # round to the significant figures first
    e = math.floor(math.log10(abs(v)))
    if -3 <= e < 6:
        text = f"{v:.{max(digits - 1 - e, 0)}f}"
    else:
        m = f"{v / 10 ** e:.{digits - 1}f}".rstrip("0").rstrip(".")
        text = f"{m}×10{str(e).translate(_SUPERSCRIPT)}"
    return "0" if float(text.split("×")[0]) == 0 else text


def readable_fixed(value: float, decimals: int = 2) -> str:
    """``value`` to ``decimals`` decimals without a negative zero (−0.001 → "0.00")."""
    text = f"{float(value):.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def readable_range(lo: float, hi: float, digits: int = 3) -> str:
    """"125–1670" for the range [125.2, 1667.9)."""
    return f"{readable(lo, digits)}–{readable(hi, digits)}"
